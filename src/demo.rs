//! `demo`: the whole program offline, on a private `redis-server`, in one command.
//!
//! It fills a sample watchlist, runs every job once and prints what landed in the cache. Jobs that
//! this version does not have yet are listed as such.

use std::io::Write;

use crate::app::AppError;
use crate::config::{RedisUrl, Settings};
use crate::keys::{self, CacheKind};
use crate::local_redis::{LocalRedis, LocalRedisOptions};
use crate::store::Store;
use crate::ticker::Ticker;

/// A watchlist with a bit of everything: large caps, an ETF, a class share, an index, FX, crypto.
pub const SAMPLE_WATCHLIST: &[&str] = &[
    "AAPL", "MSFT", "GOOG", "AMZN", "ABBV", "QQQ", "BRK-B", "^GSPC", "EURUSD=X", "BTC-USD",
];

pub async fn run(
    mut settings: Settings,
    redis_url: Option<String>,
    out: &mut dyn Write,
) -> Result<(), AppError> {
    // Held until the end: dropping it stops the private server.
    let _private = match redis_url {
        Some(url) => {
            settings.redis.url =
                RedisUrl::parse(&url).map_err(|message| crate::config::ConfigError::Invalid {
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
    let store = Store::connect(&settings.redis).await?;
    let mut conn = store.connection();
    let _: usize = redis::cmd("SADD")
        .arg(keys::WATCHLIST)
        .arg(SAMPLE_WATCHLIST)
        .query_async(&mut conn)
        .await
        .map_err(|source| crate::store::StoreError::Command {
            address: store.address().to_owned(),
            what: "SADD watchlist",
            source,
        })?;
    writeln!(
        out,
        "demo: Redis at {}, watchlist {} with {} tickers",
        store.address(),
        keys::WATCHLIST,
        SAMPLE_WATCHLIST.len()
    )?;
    writeln!(
        out,
        "jobs not available in this version: stock, options, earnings, integrity"
    )?;
    writeln!(out)?;
    writeln!(out, "{:<34} {:>8}", "KEY", "TTL (s)")?;
    for symbol in SAMPLE_WATCHLIST {
        let ticker: Ticker = symbol.parse().expect("sample tickers are valid");
        for kind in CacheKind::ALL {
            let key = keys::cache(kind, &ticker);
            let ttl: i64 = redis::cmd("TTL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .map_err(|source| crate::store::StoreError::Command {
                    address: store.address().to_owned(),
                    what: "TTL",
                    source,
                })?;
            let shown = if ttl < 0 {
                "missing".to_owned()
            } else {
                ttl.to_string()
            };
            writeln!(out, "{key:<34} {shown:>8}")?;
        }
    }
    out.flush()?;
    Ok(())
}
