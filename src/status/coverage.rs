//! How much of the watchlist each cache kind covers: one pipelined `PTTL` per key, a batch at a time.

use std::collections::{BTreeMap, BTreeSet};

use super::report::{Coverage, EXPIRING_SOON_MS, MISSING_NAMED, TtlHistogram, WatchlistSummary};
use crate::keys::{self, CacheKind};
use crate::market::Resolver;
use crate::store::{Store, StoreError};
use crate::watchlist::WatchlistReader;

/// Walks the watchlist and counts, per kind, which tickers have a cache key and how long it has
/// left, and which markets' clocks the tickers follow: one `SSCAN` page and one pipelined `PTTL`
/// batch at a time, so memory stays flat.
pub async fn coverage(
    store: &Store,
    markets: &Resolver,
    scan_count: u32,
    batch_size: usize,
) -> Result<(WatchlistSummary, Vec<Coverage>), StoreError> {
    let mut reader = WatchlistReader::new(store.clone(), scan_count, None).quietly();
    let mut kinds: Vec<(Coverage, BTreeSet<String>)> = CacheKind::ALL
        .into_iter()
        .map(|kind| {
            let coverage = Coverage {
                kind,
                problem: None,
                present: 0,
                missing: 0,
                expiring_within_1m: 0,
                ttl_histogram: TtlHistogram::default(),
                missing_tickers: Vec::new(),
            };
            (coverage, BTreeSet::new())
        })
        .collect();
    let mut tickers = 0;
    let mut calendars: BTreeMap<String, u64> = BTreeMap::new();
    while let Some(batch) = reader.next_batch(batch_size.max(1)).await? {
        tickers += batch.len() as u64;
        for ticker in &batch {
            // By the symbol rules alone: reading each stock value for the market the provider's
            // metadata gave would cost this walk far more than its PTTLs.
            let placed = markets.resolve(ticker.as_str(), None);
            *calendars
                .entry(placed.calendar.id().to_owned())
                .or_default() += 1;
        }
        let cache_keys: Vec<String> = CacheKind::ALL
            .into_iter()
            .flat_map(|kind| batch.iter().map(move |t| keys::cache(kind, t)))
            .collect();
        let pttls = store.pttl_each("PTTL coverage", &cache_keys).await?;
        for (i, pttl) in pttls.into_iter().enumerate() {
            let (coverage, missing) = &mut kinds[i / batch.len()];
            let ticker = &batch[i % batch.len()];
            match pttl {
                -2 => {
                    coverage.missing += 1;
                    missing.insert(ticker.as_str().to_owned());
                    if missing.len() > MISSING_NAMED {
                        missing.pop_last();
                    }
                }
                pttl => {
                    coverage.present += 1;
                    if (0..EXPIRING_SOON_MS).contains(&pttl) {
                        coverage.expiring_within_1m += 1;
                    }
                    coverage.ttl_histogram.add(pttl);
                }
            }
        }
    }
    let counts = reader.counts;
    let watchlist = WatchlistSummary {
        key: keys::WATCHLIST,
        members: counts.seen,
        tickers,
        invalid: counts.invalid,
        duplicates: counts.duplicates,
        calendars,
    };
    let coverage = kinds
        .into_iter()
        .map(|(mut coverage, missing)| {
            coverage.missing_tickers = missing.into_iter().collect();
            coverage
        })
        .collect();
    Ok((watchlist, coverage))
}
