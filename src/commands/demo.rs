//! `demo`: the whole program offline, on a private `redis-server`, in one command.
//!
//! It fills a sample watchlist, runs every job once through the same runner as the daemon, with
//! the `replay` provider (recorded answers, no network), and prints what landed in the cache.

use std::io::Write;

use super::common::AppError;
use super::once::run_jobs;
use crate::codec;
use crate::config::{ConfigError, ProviderName, RedisUrl, Settings};
use crate::jobs::{JobName, RunOptions};
use crate::keys::{self, CacheKind};
use crate::local_redis::{LocalRedis, LocalRedisOptions};
use crate::model::{Earnings, OptionsChain, StockQuote};
use crate::runner::Runner;
use crate::shutdown::Shutdown;
use crate::startup;
use crate::store::Store;
use crate::ticker::Ticker;

/// A watchlist with a bit of everything: large caps, an ETF, a class share, an index, FX, crypto,
/// and one member that is not a ticker (counted as invalid, never fetched).
pub const SAMPLE_WATCHLIST: &[&str] = &[
    "AAPL",
    "MSFT",
    "GOOG",
    "AMZN",
    "ABBV",
    "QQQ",
    "BRK-B",
    "^GSPC",
    "EURUSD=X",
    "BTC-USD",
    "not a ticker!",
];

pub async fn run(
    mut settings: Settings,
    redis_url: Option<String>,
    shutdown: Shutdown,
    out: &mut dyn Write,
) -> Result<(), AppError> {
    // Held until the end: dropping it stops the private server.
    let _private = match redis_url {
        Some(url) => {
            settings.redis.url = RedisUrl::parse(&url).map_err(|message| ConfigError::Invalid {
                key: "--redis-url".into(),
                message,
                origin: Default::default(),
            })?;
            None
        }
        None => {
            let server = LocalRedis::start(LocalRedisOptions::default()).await?;
            settings.redis.url = RedisUrl::parse(&server.url()).expect("a loopback URL parses");
            settings.redis.password = None;
            settings.redis.ca_file = None;
            Some(server)
        }
    };
    let p = &mut settings.provider;
    (p.stock, p.options, p.earnings) = (
        vec![ProviderName::Replay],
        vec![ProviderName::Replay],
        vec![ProviderName::Replay],
    );
    let store = Store::connect(&settings.redis).await?;
    store
        .add_members("SADD watchlist", keys::WATCHLIST, SAMPLE_WATCHLIST)
        .await?;
    writeln!(
        out,
        "demo: Redis at {}, {} with {} members, provider replay (recorded answers)\n",
        store.address(),
        keys::WATCHLIST,
        SAMPLE_WATCHLIST.len()
    )?;
    // Sample positions for the integrity job: p3's object is gone, so its index entry is an
    // orphan; a short grace keeps the demo quick.
    store
        .add_members(
            "sample positions",
            "finance:positions:index",
            &["p1", "p2", "p3"],
        )
        .await?;
    store
        .set_each(
            "sample positions",
            &[
                ("finance:position:p1", r#"{"ticker":"AAPL","qty":10}"#),
                ("finance:position:p2", r#"{"ticker":"MSFT","qty":5}"#),
            ],
        )
        .await?;
    settings.integrity.grace =
        crate::config::HumanDuration::new(std::time::Duration::from_millis(500));
    let show_progress = crate::progress::wanted(settings.log.format);
    let runner = Runner::new(startup::shared(settings, store.clone())?, shutdown)
        .with_progress(show_progress);
    let results = run_jobs(&runner, &JobName::ALL, RunOptions::default()).await?;
    for r in &results {
        let rep = &r.report;
        if r.job == JobName::Integrity {
            writeln!(
                out,
                "{:<9} {:<7} {:>5} ms  checked {} orphans {} removed {}",
                r.job.as_str(),
                r.outcome.as_str(),
                r.duration.as_millis(),
                rep.checked,
                rep.orphans,
                rep.removed
            )?;
            continue;
        }
        writeln!(
            out,
            "{:<9} {:<7} {:>5} ms  seen {} invalid {} written {} unknown {} failed {}",
            r.job.as_str(),
            r.outcome.as_str(),
            r.duration.as_millis(),
            rep.seen,
            rep.invalid,
            rep.written,
            rep.unknown,
            rep.failed
        )?;
    }
    writeln!(out, "\n{:<34} {:>8}  VALUE", "KEY", "TTL (s)")?;
    for symbol in SAMPLE_WATCHLIST {
        let Ok(ticker) = symbol.parse::<Ticker>() else {
            continue;
        };
        for kind in CacheKind::ALL {
            let key = keys::cache(kind, &ticker);
            let (ttl, value) = store.ttl_and_value("TTL/GET", &key).await?;
            let shown = value.map_or_else(|| "(missing)".to_owned(), |v| describe(kind, &v));
            writeln!(out, "{key:<34} {ttl:>8}  {shown}")?;
        }
    }
    out.flush()?;
    Ok(())
}

/// A few fields of a cached value (plain or gzip), for the table.
fn describe(kind: CacheKind, stored: &[u8]) -> String {
    let Ok(value) = codec::decode(stored, codec::MAX_JSON_BYTES) else {
        return "(unreadable gzip)".to_owned();
    };
    let text = summarise(kind, &value);
    if stored.starts_with(&codec::GZIP_MAGIC) {
        format!("{text}  [gzip: {} of {} bytes]", stored.len(), value.len())
    } else {
        text
    }
}

fn summarise(kind: CacheKind, value: &[u8]) -> String {
    let unreadable = || "(unreadable)".to_owned();
    match kind {
        CacheKind::Stock => serde_json::from_slice::<StockQuote>(value).map_or_else(
            |_| unreadable(),
            |q| {
                let change = q
                    .change_percent
                    .map_or_else(String::new, |c| format!(" ({c:+.2}%)"));
                format!(
                    "{} {}{change}",
                    q.price,
                    q.currency.as_deref().unwrap_or("")
                )
            },
        ),
        CacheKind::Options => serde_json::from_slice::<OptionsChain>(value).map_or_else(
            |_| unreadable(),
            |c| {
                let contracts: usize = c.chains.iter().map(|e| e.calls.len() + e.puts.len()).sum();
                format!(
                    "{} expiries listed, {} fetched, {contracts} contracts",
                    c.expirations.len(),
                    c.chains.len()
                )
            },
        ),
        CacheKind::Earnings => serde_json::from_slice::<Earnings>(value).map_or_else(
            |_| unreadable(),
            |e| match e.earnings_date {
                Some(d) => format!(
                    "next earnings {d}{}",
                    if e.is_estimate == Some(true) {
                        " (estimate)"
                    } else {
                        ""
                    }
                ),
                None => "no earnings (ETF, fund, FX or crypto)".to_owned(),
            },
        ),
    }
}
