//! The daemon's gauges of what is in Redis, refreshed until shutdown.

use std::sync::Arc;
use std::time::Duration;

use super::coverage::coverage;
use crate::jobs::{JobName, Shared};
use crate::metrics;
use crate::runner::record;
use crate::shutdown::Shutdown;
use crate::store::StoreError;

/// How often the daemon refreshes `fcw_cache_keys`, `fcw_watchlist_tickers` and
/// `fcw_last_success_timestamp_seconds` from Redis. A count reads the watchlist and one `PTTL`
/// per cache key, pipelined; once a minute keeps that small next to the jobs' own traffic.
pub const EXPORT_INTERVAL: Duration = Duration::from_secs(60);

/// The daemon's gauges of what is in Redis, refreshed until shutdown. Last successes come from
/// the run records, so they survive restarts and include runs by other replicas or CronJobs.
pub async fn export(
    shared: Arc<Shared>,
    first_count_after: impl std::future::Future<Output = ()>,
    shutdown: Shutdown,
) {
    let (settings, store) = (&shared.settings, &shared.store);
    tokio::select! {
        _ = first_count_after => {}
        _ = shutdown.requested() => return,
    }
    loop {
        let counted = async {
            for job in JobName::ALL {
                if let Some(at) = record::load(store, job).await?.last_success_at {
                    metrics::last_success(job.as_str(), at);
                }
            }
            let (watchlist, kinds) = coverage(
                store,
                &shared.markets,
                settings.scheduler.scan_count,
                settings.scheduler.batch_size as usize,
            )
            .await?;
            metrics::watchlist_tickers(watchlist.tickers);
            for c in &kinds {
                for (state, n) in [
                    ("present", c.present),
                    ("missing", c.missing),
                    ("expiring_soon", c.expiring_within_1m),
                ] {
                    metrics::cache_keys(c.kind.as_str(), state, n);
                }
            }
            Ok::<_, StoreError>(())
        };
        // A Redis that hangs must not hold up a shutdown.
        let counted = tokio::select! {
            counted = counted => counted,
            _ = shutdown.requested() => return,
        };
        if let Err(e) = counted {
            // A Redis outage is logged by the store once; the gauges keep their last values.
            tracing::debug!(error = %e, "could not refresh the coverage gauges");
        }
        tokio::select! {
            _ = shutdown.requested() => return,
            _ = tokio::time::sleep(EXPORT_INTERVAL) => {}
        }
    }
}
