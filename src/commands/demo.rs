//! `demo`: the whole program offline, on a private `redis-server`, in one command.
//!
//! It fills a sample watchlist, runs every job once through the same runner as the daemon, with
//! the `replay` provider (recorded answers, no network), and prints what landed in the cache:
//! per key its market (`calendar`), that market's state at the demo's instant (every job decides
//! its TTLs for that same instant), the TTL and a few fields of the value.
//!
//! Honest about being a replay. Every sample has a quote recording of its own, so no price,
//! currency or market is another instrument's. The replay still answers every kind for every
//! ticker, relabelling another instrument's recording when the ticker has none (MSFT has no
//! options recording, Tokyo's 7203.T no earnings one), and the jobs cache those answers like any
//! other; the table shows such a key's market and TTL but not its value, saying it is another's.
//! Dates are the recordings' own: a recorded earnings date before the demo's day is labelled
//! past, never "next".

use std::io::Write;

use chrono::{DateTime, Utc};

use super::common::AppError;
use super::once::run_jobs;
use crate::calendar::Calendar;
use crate::codec;
use crate::config::{ConfigError, ProviderName, RedisUrl, Settings};
use crate::jobs::{JobName, RunOptions, Shared};
use crate::keys::{self, CacheKind};
use crate::local_redis::{LocalRedis, LocalRedisOptions};
use crate::model::{self, Earnings, OptionsChain, StockQuote};
use crate::provider::replay::Replay;
use crate::runner::Runner;
use crate::shutdown::Shutdown;
use crate::startup;
use crate::store::Store;
use crate::ticker::Ticker;
use crate::ttl::{self, QuoteKind};

/// Instruments with quote recordings of their own (`tests/fixtures/yahoo/`, compiled into the
/// replay): US equities and an ETF, London, Xetra, Copenhagen and Tokyo listings, crypto and a
/// currency pair; and one member that is not a ticker (counted as invalid, never fetched).
pub const SAMPLE_WATCHLIST: &[&str] = &[
    "AAPL",
    "MSFT",
    "BABA",
    "QQQ",
    "OCDO.L",
    "GS2C.DE",
    "ORSTED.CO",
    "7203.T",
    "BTC-USD",
    "EURUSD=X",
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
    // Market time for the whole demo: the jobs' TTLs and the table's market states agree.
    let at = Utc::now();
    // The same recordings the jobs' replay serves, asked which are whose.
    let replay = Replay::load(
        settings.provider.replay.dir.as_deref(),
        settings.market.timezone.0,
    )?;
    let store = Store::connect(&settings.redis).await?;
    store
        .add_members("SADD watchlist", keys::WATCHLIST, SAMPLE_WATCHLIST)
        .await?;
    writeln!(
        out,
        "demo: Redis at {}, {} with {} members, provider replay (recorded answers)\n\
         market time {}: every TTL and MARKET below is for this instant\n",
        store.address(),
        keys::WATCHLIST,
        SAMPLE_WATCHLIST.len(),
        model::rfc3339(at)
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
    let options = RunOptions {
        at: Some(at),
        ..RunOptions::default()
    };
    let results = run_jobs(&runner, &JobName::ALL, options).await?;
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
    writeln!(
        out,
        "\n{:<34} {:<8} {:<8} {:>8}  VALUE (replayed recordings)",
        "KEY", "CALENDAR", "MARKET", "TTL (s)"
    )?;
    let shared = runner.shared();
    for symbol in SAMPLE_WATCHLIST {
        let Ok(ticker) = symbol.parse::<Ticker>() else {
            continue;
        };
        // The stock key's `calendar`, read as the options and earnings jobs read it.
        let mut recorded = None;
        for kind in CacheKind::ALL {
            let key = keys::cache(kind, &ticker);
            let (ttl, stored) = store.ttl_and_value("TTL/GET", &key).await?;
            if kind == CacheKind::Stock {
                recorded = stored
                    .as_deref()
                    .and_then(|s| codec::decode(s, codec::MAX_JSON_BYTES).ok())
                    .and_then(|v| serde_json::from_slice::<StockQuote>(&v).ok())
                    .and_then(|q| q.calendar);
            }
            let calendar = shared
                .markets
                .resolve_recorded(ticker.as_str(), recorded.as_deref())
                .calendar;
            let shown = match stored {
                None => "(missing)".to_owned(),
                Some(_) if !replay.has_own(kind, &ticker) => {
                    "(not shown: no recording of its own, another's relabelled)".to_owned()
                }
                Some(stored) => describe(kind, &stored, calendar, at),
            };
            writeln!(
                out,
                "{key:<34} {:<8} {:<8} {ttl:>8}  {shown}",
                calendar.id(),
                market_state(shared, kind, calendar, at)
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The market's state at `at` as the key's TTL saw it: US extended hours are a phase of their own
/// for stock keys alone, and only with `ttl.extended` set.
fn market_state(
    shared: &Shared,
    kind: CacheKind,
    calendar: &Calendar,
    at: DateTime<Utc>,
) -> &'static str {
    let extended = kind == CacheKind::Stock
        && shared
            .policy
            .quote_policy(QuoteKind::Stock, calendar.id())
            .extended
            .is_some();
    ttl::phase(calendar, at, extended).state.as_str()
}

/// A few fields of a cached value (plain or gzip), for the table.
fn describe(kind: CacheKind, stored: &[u8], calendar: &Calendar, at: DateTime<Utc>) -> String {
    let Ok(value) = codec::decode(stored, codec::MAX_JSON_BYTES) else {
        return "(unreadable gzip)".to_owned();
    };
    let text = summarise(kind, &value, calendar, at);
    if stored.starts_with(&codec::GZIP_MAGIC) {
        format!("{text}  [gzip: {} of {} bytes]", stored.len(), value.len())
    } else {
        text
    }
}

/// The fields of a decoded value; dates are placed against `at` on the key's market.
fn summarise(kind: CacheKind, value: &[u8], calendar: &Calendar, at: DateTime<Utc>) -> String {
    let unreadable = || "(unreadable)".to_owned();
    match kind {
        CacheKind::Stock => serde_json::from_slice::<StockQuote>(value).map_or_else(
            |_| unreadable(),
            |q| {
                let currency = q
                    .currency
                    .map_or_else(|| " (no currency recorded)".to_owned(), |c| format!(" {c}"));
                let change = q
                    .change_percent
                    .map_or_else(String::new, |c| format!(" ({c:+.2}%)"));
                let when = q.market_time.map_or_else(String::new, |t| {
                    format!(" {}", t.with_timezone(&calendar.timezone()).date_naive())
                });
                format!("{}{currency}{change}, recorded{when}", q.price)
            },
        ),
        CacheKind::Options => serde_json::from_slice::<OptionsChain>(value).map_or_else(
            |_| unreadable(),
            |c| {
                if c.expirations.is_empty() {
                    return "no options listed (recorded)".to_owned();
                }
                let contracts: usize = c.chains.iter().map(|e| e.calls.len() + e.puts.len()).sum();
                format!(
                    "{} expiries listed, {} fetched, {contracts} contracts (recorded)",
                    c.expirations.len(),
                    c.chains.len()
                )
            },
        ),
        CacheKind::Earnings => serde_json::from_slice::<Earnings>(value).map_or_else(
            |_| unreadable(),
            |e| match e.earnings_date {
                Some(d) => {
                    // A recording's date is as old as the recording: say where it lies.
                    let today = at.with_timezone(&calendar.timezone()).date_naive();
                    let when = match d.cmp(&today) {
                        std::cmp::Ordering::Less => "past",
                        std::cmp::Ordering::Equal => "today",
                        std::cmp::Ordering::Greater => "upcoming",
                    };
                    let estimate = if e.is_estimate == Some(true) {
                        "; estimate"
                    } else {
                        ""
                    };
                    format!("earnings {d} (recorded; {when}{estimate})")
                }
                None => "no earnings date (recorded: an ETF, fund, FX or crypto)".to_owned(),
            },
        ),
    }
}
