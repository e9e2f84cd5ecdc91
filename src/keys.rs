//! The Redis key schema. No other module formats a key string, so this file is the whole list of
//! what the daemon reads and writes: the cache keys, its locks (`finance:lock:*`) and its own
//! bookkeeping (`finance:warmer:*`). It never uses `KEYS`; enumeration is `SSCAN`/`SCAN`.

use std::fmt;

use crate::ticker::Ticker;

/// The set of ticker symbols the app wants warm (read with `SSCAN`).
pub const WATCHLIST: &str = "finance:watchlist";

/// The three kinds of cached value, one key per kind and ticker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CacheKind {
    Stock,
    Options,
    Earnings,
}

impl CacheKind {
    pub const ALL: [CacheKind; 3] = [CacheKind::Stock, CacheKind::Options, CacheKind::Earnings];

    pub fn as_str(self) -> &'static str {
        match self {
            CacheKind::Stock => "stock",
            CacheKind::Options => "options",
            CacheKind::Earnings => "earnings",
        }
    }
}

impl fmt::Display for CacheKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `finance:cache:{kind}:{TICKER}`, e.g. `finance:cache:stock:AAPL`.
pub fn cache(kind: CacheKind, ticker: &Ticker) -> String {
    format!("finance:cache:{}:{}", kind.as_str(), ticker.as_str())
}

/// The lock a run of `job` holds (`finance:lock:job:stock`); a sharded run locks its shard only
/// (`finance:lock:job:stock:shard:2-of-8`), so shards run in parallel but each once.
pub fn job_lock(job: &str, shard: Option<(u32, u32)>) -> String {
    match shard {
        None => format!("finance:lock:job:{job}"),
        Some((index, count)) => format!("finance:lock:job:{job}:shard:{index}-of-{count}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keys_match_what_the_app_reads() {
        let t: Ticker = "brk-b".parse().unwrap();
        assert_eq!(cache(CacheKind::Stock, &t), "finance:cache:stock:BRK-B");
        assert_eq!(cache(CacheKind::Options, &t), "finance:cache:options:BRK-B");
        assert_eq!(
            cache(CacheKind::Earnings, &t),
            "finance:cache:earnings:BRK-B"
        );
    }
}
