//! One replica's side of the consumer group: reading and claiming entries, warming their
//! tickers through the runner, acknowledging them, and the counts and latencies they make.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::config::RequestsSettings;
use crate::jobs::{self, JobName, RunOptions};
use crate::metrics;
use crate::runner::{Outcome, Runner};
use crate::shutdown::Shutdown;
use crate::store::{Request, StoreError};
use crate::ticker::Ticker;
use crate::watchlist::escape;

/// Entries read at once: their tickers are warmed together (one quote request for up to a
/// provider batch of them).
pub(super) const READ_COUNT: usize = 100;
/// A consumer not seen for this long and with nothing pending is removed from the group: every
/// start of a replica adds one (its name has the process id), and months of restarts would
/// pile them up.
const CONSUMER_FORGOTTEN_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Invalid entries logged one by one per batch; the rest are counted.
const INVALID_LOGGED: usize = 3;

pub(super) struct Worker {
    pub(super) runner: Runner,
    pub(super) settings: RequestsSettings,
    pub(super) consumer: String,
    pub(super) kinds: Vec<JobName>,
}

impl Worker {
    pub(super) async fn read(&self) -> Result<Vec<Request>, StoreError> {
        let store = &self.runner.shared().store;
        store
            .read_requests(&self.settings.group, &self.consumer, READ_COUNT)
            .await
    }

    /// Entries pending too long at another consumer, now ours; and consumers long gone removed.
    pub(super) async fn claim(&self) -> Result<Vec<Request>, StoreError> {
        let store = &self.runner.shared().store;
        let group = &self.settings.group;
        let idle = self.settings.claim_after.get().as_millis() as u64;
        let claimed = store
            .claim_requests(group, &self.consumer, idle, READ_COUNT)
            .await?;
        if !claimed.is_empty() {
            tracing::info!(
                entries = claimed.len(),
                "claimed warm requests another consumer left unacknowledged"
            );
        }
        let forgotten = CONSUMER_FORGOTTEN_AFTER.as_millis() as u64;
        for gone in store.request_consumers(group).await? {
            if gone.name != self.consumer && gone.pending == 0 && gone.idle_ms >= forgotten {
                store.forget_consumer(group, &gone.name).await?;
                tracing::info!(consumer = %gone.name, "removed a consumer gone for a day from the group");
            }
        }
        Ok(claimed)
    }

    /// Warms the tickers of `entries` and acknowledges them. Entries whose runs were
    /// interrupted by shutdown, or whose tickers could not be checked, stay pending for
    /// another replica (or this one, later) to claim.
    pub(super) async fn handle(&self, entries: Vec<Request>, shutdown: &Shutdown) {
        let store = &self.runner.shared().store;
        let mut tickers: Vec<Ticker> = Vec::new();
        let mut invalid = 0;
        for entry in &entries {
            let parsed = entry.ticker.as_deref().map(Ticker::parse);
            match parsed {
                Some(Ok(ticker)) => {
                    if !tickers.contains(&ticker) {
                        tickers.push(ticker);
                    }
                    continue;
                }
                Some(Err(why)) if invalid < INVALID_LOGGED => {
                    let sent = entry.ticker.as_deref().map(escape).unwrap_or_default();
                    tracing::warn!(id = %entry.id, ticker = %sent, reason = %why, "invalid warm request skipped");
                }
                None if invalid < INVALID_LOGGED => {
                    tracing::warn!(id = %entry.id, "warm request without a ticker field skipped");
                }
                _ => {}
            }
            invalid += 1;
        }
        let names: Vec<String> = tickers.iter().map(|t| t.as_str().to_owned()).collect();
        let watched = match store.watched(&names).await {
            Ok(watched) => watched,
            Err(e) => {
                tracing::warn!(error = %e, "cannot check warm requests against the watchlist; they stay pending");
                return;
            }
        };
        let (due, unwatched): (Vec<_>, Vec<_>) = tickers
            .into_iter()
            .zip(watched)
            .partition(|(_, watched)| *watched);
        let due: Vec<Ticker> = due.into_iter().map(|(t, _)| t).collect();
        if !unwatched.is_empty() {
            let names: Vec<&str> = unwatched.iter().map(|(t, _)| t.as_str()).collect();
            tracing::info!(tickers = ?names, "warm requests for tickers not in finance:watchlist; not fetched");
        }
        let (finished, failed) = self.warm(&due).await;
        if shutdown.signal().is_some() && !finished {
            return;
        }
        let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
        let max_len = self.settings.max_len;
        if let Err(e) = store
            .ack_requests(&self.settings.group, &ids, max_len)
            .await
        {
            tracing::warn!(error = %e, "cannot acknowledge warm requests; another consumer will claim them");
        }
        let watched_entries = entries
            .iter()
            .filter(|e| {
                e.ticker
                    .as_deref()
                    .and_then(|t| Ticker::parse(t).ok())
                    .is_some_and(|t| due.contains(&t))
            })
            .collect::<Vec<_>>();
        let now_ms = Utc::now().timestamp_millis();
        if finished && !failed {
            for entry in &watched_entries {
                if let Some(added) = entry.added_ms() {
                    metrics::request_latency((now_ms - added).max(0) as f64 / 1000.0);
                }
            }
        }
        let outcome = if failed { "failed" } else { "warmed" };
        metrics::requests(outcome, watched_entries.len() as u64);
        metrics::requests("invalid", invalid as u64);
        metrics::requests(
            "unwatched",
            (entries.len() - invalid - watched_entries.len()) as u64,
        );
    }

    /// One run of each warming job for `tickers`, side by side. Whether they all finished
    /// (not interrupted), and whether any failed or failed a ticker.
    pub(super) async fn warm(&self, tickers: &[Ticker]) -> (bool, bool) {
        if tickers.is_empty() {
            return (true, false);
        }
        let requested: Arc<[Ticker]> = tickers.into();
        let runs = self.kinds.iter().map(|&job| {
            let options = RunOptions {
                requested: Some(requested.clone()),
                ..RunOptions::default()
            };
            self.runner.run(jobs::named(job), options)
        });
        let results = futures_util::future::join_all(runs).await;
        let finished = !results
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Interrupted(_)));
        let failed = results
            .iter()
            .any(|r| !matches!(r.outcome, Outcome::Ok) || r.report.failed > 0);
        (finished, failed)
    }
}
