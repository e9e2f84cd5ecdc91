//! What a job is and what it works with: its name, the parts every run shares, the options and
//! context of one run, what it reports, how it fails, and the [`Job`] trait itself. The jobs
//! build on this; it depends on none of them.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::keys::CacheKind;
use crate::market::Resolver;
use crate::progress::Progress;
use crate::provider::Providers;
use crate::store::{Fence, Store, StoreError};
use crate::ticker::Ticker;
use crate::ttl::TtlPolicy;
use crate::watchlist::Shard;

/// A job's name, as on the command line and in keys, logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobName {
    Stock,
    Options,
    Earnings,
    Integrity,
}

impl JobName {
    pub const ALL: [JobName; 4] = [
        JobName::Stock,
        JobName::Options,
        JobName::Earnings,
        JobName::Integrity,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobName::Stock => "stock",
            JobName::Options => "options",
            JobName::Earnings => "earnings",
            JobName::Integrity => "integrity",
        }
    }

    /// The settings section `[jobs.<name>]`.
    pub fn settings(self, settings: &Settings) -> &crate::config::JobSettings {
        let jobs = &settings.jobs;
        match self {
            JobName::Stock => &jobs.stock,
            JobName::Options => &jobs.options,
            JobName::Earnings => &jobs.earnings,
            JobName::Integrity => &jobs.integrity,
        }
    }

    /// The cache kind a warming job writes.
    pub fn cache_kind(self) -> Option<CacheKind> {
        match self {
            JobName::Stock => Some(CacheKind::Stock),
            JobName::Options => Some(CacheKind::Options),
            JobName::Earnings => Some(CacheKind::Earnings),
            JobName::Integrity => None,
        }
    }
}

impl fmt::Display for JobName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything a run needs, shared by all runs of the process.
pub struct Shared {
    pub settings: Settings,
    pub store: Store,
    pub providers: Providers,
    /// Which market each ticker is on, and every market's calendar.
    pub markets: Resolver,
    /// Markets whose data has been said to have run out (said once per process).
    pub past_data_noticed: std::sync::Mutex<std::collections::BTreeSet<String>>,
    pub policy: TtlPolicy,
}

/// How one run was asked for.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Ignore refresh-ahead: fetch every ticker.
    pub force: bool,
    pub shard: Option<Shard>,
    /// Integrity: report what would change, change nothing.
    pub dry_run: bool,
    /// Market time is decided for this instant instead of the clock's (`once --at`).
    pub at: Option<DateTime<Utc>>,
    /// A warm request's tickers, instead of the watchlist. Such a run takes no job lock (it
    /// must not wait behind a scheduled run): its writes apply only within a lease of
    /// `scheduler.lock_ttl` from its start, so a stalled one cannot write old data late.
    pub requested: Option<Arc<[Ticker]>>,
}

impl RunOptions {
    /// The instant TTLs and freshness are decided for: `at`, else now.
    pub fn now(&self) -> DateTime<Utc> {
        self.at.unwrap_or_else(Utc::now)
    }
}

/// One run's view: the shared parts, its options, and the signal to stop starting new work.
pub struct RunContext {
    pub shared: Arc<Shared>,
    pub options: RunOptions,
    /// Cancelled on shutdown: finish the batch in flight, start no other.
    pub stop_new_work: CancellationToken,
    /// Where the run reports how far it got (a bar, when a person is watching).
    pub progress: Arc<dyn Progress>,
    /// The run's lock: cache writes go through it, so a run that lost its lock writes nothing.
    pub fence: Fence,
    /// What the run has handed to Redis, for the runner to report even if it abandons the run.
    pub writes: WriteProgress,
}

/// Values a run has written, and those in a write Redis has not answered yet.
#[derive(Debug, Default)]
pub struct WriteProgress {
    pub written: AtomicU64,
    pub in_flight: AtomicU64,
}

/// Why a run could not finish.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Redis(#[from] StoreError),
    #[error("lost the job lock to another run; nothing more was written")]
    LockLost,
}

/// What a run did, for its summary line, metrics and exit code.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// Watchlist members read (in this run's shard, before de-duplication).
    pub seen: u64,
    /// Members that are not ticker symbols.
    pub invalid: u64,
    /// Members that normalise to a ticker already seen this run.
    pub duplicates: u64,
    /// Tickers whose cached value was still fresh (refresh-ahead).
    pub skipped_fresh: u64,
    /// Tickers asked of the providers.
    pub fetched: u64,
    /// Values written.
    pub written: u64,
    /// Tickers no provider knows.
    pub unknown: u64,
    /// Tickers that failed (upstream error, invalid answer, value too large); their old values
    /// stay.
    pub failed: u64,
    /// Of those, values over `cache.max_value_bytes`.
    pub too_large: u64,
    /// A few failures, for the log.
    pub failure_samples: Vec<String>,
    /// The run stopped early because shutdown was requested.
    pub interrupted: bool,
    /// Integrity: index members checked, found orphaned, removed; objects re-indexed; cache keys
    /// of unwatched tickers pruned; whether it only reported.
    pub checked: u64,
    pub orphans: u64,
    pub removed: u64,
    pub reindexed: u64,
    pub pruned: u64,
    pub dry_run: bool,
}

/// Failures kept verbatim in a report; the rest are only counted.
pub const FAILURE_SAMPLES: usize = 5;

impl RunReport {
    /// The ticker counts by outcome, as `fcw_tickers_total` labels them.
    pub fn ticker_counts(&self) -> [(&'static str, u64); 8] {
        [
            ("seen", self.seen),
            ("invalid", self.invalid),
            ("skipped_fresh", self.skipped_fresh),
            ("fetched", self.fetched),
            ("written", self.written),
            ("unknown", self.unknown),
            ("failed", self.failed),
            ("too_large", self.too_large),
        ]
    }

    pub fn note_failure(&mut self, what: String) {
        self.failed += 1;
        if self.failure_samples.len() < FAILURE_SAMPLES {
            self.failure_samples.push(what);
        }
    }

    /// The counts, named as in the summary line, the run record and `status --json`.
    pub fn counts(&self) -> [(&'static str, u64); 14] {
        [
            ("seen", self.seen),
            ("invalid", self.invalid),
            ("duplicates", self.duplicates),
            ("skipped_fresh", self.skipped_fresh),
            ("fetched", self.fetched),
            ("written", self.written),
            ("unknown", self.unknown),
            ("failed", self.failed),
            ("too_large", self.too_large),
            ("checked", self.checked),
            ("orphans", self.orphans),
            ("removed", self.removed),
            ("reindexed", self.reindexed),
            ("pruned", self.pruned),
        ]
    }

    /// The share of fetched tickers that failed.
    pub fn failure_ratio(&self) -> f64 {
        if self.fetched == 0 {
            0.0
        } else {
            self.failed as f64 / self.fetched as f64
        }
    }
}

/// A job: a name and a run.
#[async_trait]
pub trait Job: Send + Sync {
    fn name(&self) -> JobName;
    async fn run(&self, ctx: &RunContext) -> Result<RunReport, JobError>;
}
