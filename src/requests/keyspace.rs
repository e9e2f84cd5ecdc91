//! Following the watchlist itself (`requests.keyspace_notifications`): when the server publishes
//! keyspace notifications for `finance:watchlist` (`notify-keyspace-events` with `K` and `s`),
//! a change is noticed at once, and (the changes that follow it for 200 ms gathered) the set is
//! read again and the members it did not have before are warmed like requested tickers,
//! without the app asking.
//!
//! The set is read whole after each burst of changes (an `SSCAN` walk: a few milliseconds per
//! thousand members), so the members known are always the set as it is, whatever the commands
//! were; a reconnect reads it again and warms what was added meanwhile.

use std::collections::HashSet;
use std::time::Duration;

use super::worker::{READ_COUNT, Worker};
use crate::keys;
use crate::metrics;
use crate::shutdown::Shutdown;
use crate::store::StoreError;
use crate::ticker::Ticker;
use crate::watchlist::WatchlistReader;

/// How long the changes that follow a first one are gathered before the set is read: an app
/// adding a hundred tickers one by one costs a read or two, not a hundred.
const GATHER: Duration = Duration::from_millis(200);
/// After a lost subscription (Redis down), the next attempt waits this long.
const RESUBSCRIBE: Duration = Duration::from_secs(2);

/// Warms what is added to the watchlist until shutdown.
pub(super) async fn follow(worker: &Worker, shutdown: &Shutdown) {
    let store = &worker.runner.shared().store;
    let timeout = worker.runner.shared().settings.redis.connect_timeout.get();
    let mut known: Option<HashSet<Ticker>> = None;
    let mut said: Option<String> = None;
    loop {
        let subscribed = store.key_events(keys::WATCHLIST, timeout).await;
        let mut events = match subscribed {
            Ok(events) => events,
            Err(e) => {
                let message = e.to_string();
                if said.as_ref() != Some(&message) {
                    tracing::warn!(error = %message, "cannot follow the watchlist's keyspace notifications; trying again");
                    said = Some(message);
                }
                if matches!(e, StoreError::Client(_)) {
                    return;
                }
                tokio::select! {
                    _ = shutdown.requested() => return,
                    _ = tokio::time::sleep(RESUBSCRIBE) => continue,
                }
            }
        };
        if said.take().is_some() || known.is_none() {
            tracing::info!(
                key = keys::WATCHLIST,
                "following the watchlist's keyspace notifications"
            );
        }
        // Read after subscribing, so nothing added between the two goes unnoticed.
        let mut up = true;
        while up {
            match members(worker).await {
                Ok(now) => {
                    if let Some(before) = &known {
                        warm_added(worker, before, &now).await;
                    }
                    known = Some(now);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot read the watchlist after a change");
                    break;
                }
            }
            // Wait for a change, and gather those that follow it for a moment.
            tokio::select! {
                _ = shutdown.requested() => return,
                event = events.next() => if event.is_none() { break },
            }
            tokio::select! {
                _ = shutdown.requested() => return,
                _ = tokio::time::sleep(GATHER) => {}
            }
            up = events.drain();
        }
        tokio::select! {
            _ = shutdown.requested() => return,
            _ = tokio::time::sleep(RESUBSCRIBE) => {}
        }
    }
}

/// The watchlist's valid members now.
async fn members(worker: &Worker) -> Result<HashSet<Ticker>, StoreError> {
    let shared = worker.runner.shared();
    let scan_count = shared.settings.scheduler.scan_count;
    let mut reader = WatchlistReader::new(shared.store.clone(), scan_count, None).quietly();
    let mut all = HashSet::new();
    while let Some(page) = reader.next_batch(scan_count as usize).await? {
        all.extend(page);
    }
    Ok(all)
}

/// Warms the members of `now` that `before` did not have.
async fn warm_added(worker: &Worker, before: &HashSet<Ticker>, now: &HashSet<Ticker>) {
    let added: Vec<Ticker> = now.difference(before).cloned().collect();
    if added.is_empty() {
        return;
    }
    tracing::info!(
        tickers = added.len(),
        "warming tickers just added to the watchlist"
    );
    for chunk in added.chunks(READ_COUNT) {
        let (_, failed) = worker.warm(chunk).await;
        let outcome = if failed { "failed" } else { "noticed" };
        metrics::requests(outcome, chunk.len() as u64);
    }
}
