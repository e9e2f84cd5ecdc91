//! Reading `finance:watchlist` in chunks: memory stays flat however large the set is.
//!
//! Members are untrusted bytes. Each is normalised and validated as a [`Ticker`] before it can
//! reach a URL or a key; an invalid one is counted and logged (escaped, once per run). `SSCAN`
//! may return a member twice and two members may normalise to one ticker, so tickers are
//! de-duplicated for the run by a 64-bit hash (8 bytes per ticker, not the ticker itself).

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, RandomState};

use crate::keys;
use crate::store::{Store, StoreError};
use crate::ticker::Ticker;

/// Invalid members logged one by one per run; beyond this they are only counted, so a watchlist
/// full of garbage cannot flood the logs.
const INVALID_LOGGED: u64 = 20;
/// Bytes of an invalid member shown in the log.
const INVALID_SHOWN: usize = 64;

/// One of `count` disjoint parts of the watchlist, by the tickers' stable hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub fn new(index: u32, count: u32) -> Result<Shard, String> {
        if count == 0 || index >= count {
            return Err(format!("shard {index}/{count}: need 0 <= I < N"));
        }
        Ok(Shard { index, count })
    }

    pub fn contains(&self, ticker: &Ticker) -> bool {
        ticker.stable_hash() % u64::from(self.count) == u64::from(self.index)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;
    /// `I/N`, e.g. `0/4`.
    fn from_str(s: &str) -> Result<Shard, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not I/N (e.g. 0/4)"))?;
        let parse = |v: &str| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| format!("{s:?} is not I/N (e.g. 0/4)"))
        };
        Shard::new(parse(i)?, parse(n)?)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Counts of what the reader saw.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReadCounts {
    pub seen: u64,
    pub invalid: u64,
    pub duplicates: u64,
}

/// Streams the watchlist's tickers in batches.
pub struct WatchlistReader {
    store: Store,
    scan_count: u32,
    shard: Option<Shard>,
    cursor: u64,
    finished: bool,
    buffered: VecDeque<Ticker>,
    seen_hashes: HashSet<u64>,
    hasher: RandomState,
    log_invalid: bool,
    pub counts: ReadCounts,
}

impl WatchlistReader {
    pub fn new(store: Store, scan_count: u32, shard: Option<Shard>) -> WatchlistReader {
        WatchlistReader {
            store,
            scan_count,
            shard,
            cursor: 0,
            finished: false,
            buffered: VecDeque::new(),
            seen_hashes: HashSet::new(),
            hasher: RandomState::new(),
            log_invalid: true,
            counts: ReadCounts::default(),
        }
    }

    /// A reader of `tickers` alone (a warm request's), counted and de-duplicated like
    /// watchlist members, without reading the set.
    pub fn requested(store: Store, tickers: &[Ticker]) -> WatchlistReader {
        let mut reader = WatchlistReader::new(store, 1, None);
        for ticker in tickers {
            reader.admit(ticker.as_str().as_bytes());
        }
        reader.finished = true;
        reader
    }

    /// Counts invalid members without logging them (for readers that only report, like
    /// `status`; the jobs log them).
    pub fn quietly(mut self) -> WatchlistReader {
        self.log_invalid = false;
        self
    }

    /// Up to `max` new tickers, or `None` when the whole set has been read.
    pub async fn next_batch(&mut self, max: usize) -> Result<Option<Vec<Ticker>>, StoreError> {
        while self.buffered.len() < max && !self.finished {
            let (cursor, members) = self.scan_page().await?;
            self.cursor = cursor;
            self.finished = cursor == 0;
            for member in members {
                self.admit(&member);
            }
        }
        if self.buffered.is_empty() {
            return Ok(None);
        }
        let take = max.min(self.buffered.len());
        Ok(Some(self.buffered.drain(..take).collect()))
    }

    async fn scan_page(&self) -> Result<(u64, Vec<Vec<u8>>), StoreError> {
        self.store
            .sscan(
                "SSCAN watchlist",
                keys::WATCHLIST.as_bytes(),
                self.cursor,
                self.scan_count,
            )
            .await
    }

    fn admit(&mut self, member: &[u8]) {
        let ticker = match Ticker::parse(member) {
            Ok(t) => t,
            Err(why) => {
                self.counts.seen += 1;
                self.counts.invalid += 1;
                if self.log_invalid && self.counts.invalid <= INVALID_LOGGED {
                    tracing::warn!(member = %escape(member), reason = %why, "invalid watchlist member skipped");
                }
                return;
            }
        };
        if self.shard.is_some_and(|s| !s.contains(&ticker)) {
            return;
        }
        self.counts.seen += 1;
        if !self
            .seen_hashes
            .insert(self.hasher.hash_one(ticker.as_str()))
        {
            self.counts.duplicates += 1;
            return;
        }
        self.buffered.push_back(ticker);
    }

    /// Invalid members beyond those logged one by one.
    pub fn unlogged_invalid(&self) -> u64 {
        self.counts.invalid.saturating_sub(INVALID_LOGGED)
    }
}

/// A member as printable text: invalid UTF-8 replaced, control characters escaped, long ones cut.
pub fn escape(member: &[u8]) -> String {
    let shown = &member[..member.len().min(INVALID_SHOWN)];
    let mut text: String = String::from_utf8_lossy(shown).escape_debug().collect();
    if member.len() > INVALID_SHOWN {
        text.push_str(&format!("... ({} bytes)", member.len()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_split_disjointly() {
        assert_eq!("2/8".parse::<Shard>(), Ok(Shard { index: 2, count: 8 }));
        for bad in ["8/8", "1/0", "x/2", "3", "-1/4"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        let shards: Vec<Shard> = (0..5).map(|i| Shard::new(i, 5).unwrap()).collect();
        for n in 0..2000 {
            let t: Ticker = format!("T{n}").parse().unwrap();
            assert_eq!(shards.iter().filter(|s| s.contains(&t)).count(), 1, "{t}");
        }
    }

    #[test]
    fn escaping_keeps_logs_one_line_and_short() {
        assert_eq!(escape(b"a\r\nb"), "a\\r\\nb");
        assert_eq!(escape(b"\xff*"), "\u{fffd}*");
        let long = escape(&[b'x'; 10_000]);
        assert!(
            long.ends_with("... (10000 bytes)") && long.len() < 100,
            "{long}"
        );
    }
}
