//! Runs one job: the lock, the timeout, panics, shutdown, the summary line and the metrics.
//!
//! The daemon's scheduler and `once` both come here; `once` is this runner asked once. A run
//! that cannot take its lock is skipped, not failed: another replica is doing the work. A run
//! that took it leaves its [`record`] in Redis for `status`.

pub mod record;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::jobs::{Job, JobError, JobName, RunContext, RunOptions, RunReport, Shared};
use crate::keys;
use crate::metrics::{self, RunCounters};
use crate::notify;
use crate::progress::{Bar, Unit};
use crate::shutdown::{Shutdown, Signal};
use crate::store::{Fence, Lock};
use crate::traces;
use record::RunRecord;

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Ok,
    /// The job ran but failed; the reason is for people.
    Failed(String),
    /// Another process holds the job's lock.
    SkippedLock,
    /// Shutdown was requested before the job finished.
    Interrupted(Signal),
}

impl Outcome {
    /// The `outcome` label of metrics and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed(_) => "failed",
            Outcome::SkippedLock => "skipped_lock",
            Outcome::Interrupted(_) => "interrupted",
        }
    }
}

/// One finished run.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub job: JobName,
    pub run_id: String,
    pub outcome: Outcome,
    pub report: RunReport,
    pub duration: Duration,
    pub upstream_requests: u64,
    pub upstream_retries: u64,
    pub redis_round_trips: u64,
}

/// Runs jobs; cheap to clone.
#[derive(Clone)]
pub struct Runner {
    shared: Arc<Shared>,
    shutdown: Shutdown,
    show_progress: bool,
    /// Runs this runner has finished, whatever their outcome.
    finished: Arc<AtomicUsize>,
}

impl Runner {
    pub fn new(shared: Arc<Shared>, shutdown: Shutdown) -> Runner {
        Runner {
            shared,
            shutdown,
            show_progress: false,
            finished: Arc::default(),
        }
    }

    /// How many runs this runner (and its clones) have finished, whatever their outcome.
    pub fn runs_finished(&self) -> usize {
        self.finished.load(Relaxed)
    }

    /// Draws a progress bar for each run (for `once` and `demo` at a terminal).
    pub fn with_progress(mut self, show: bool) -> Runner {
        self.show_progress = show;
        self
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Runs `job` once, start to finish. Any [`Job`] will do: the runner asks it only for its
    /// name (which picks its settings, lock and labels) and its `run`.
    pub async fn run(&self, job: Arc<dyn Job>, options: RunOptions) -> RunResult {
        let name = job.name();
        let run_id = format!("{:016x}", fastrand::u64(..));
        let shard = options.shard.map(|s| s.to_string());
        let at = options.at.map(crate::model::rfc3339);
        let requested = options.requested.as_ref().map(|t| t.len());
        let span = tracing::info_span!(
            "run",
            job = %name,
            run_id = %run_id,
            shard = shard.as_deref(),
            at = at.as_deref(),
            requested,
            trace_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
            seen = tracing::field::Empty,
            fetched = tracing::field::Empty,
            written = tracing::field::Empty,
            failed = tracing::field::Empty,
        );
        traces::record_trace_id(&span);
        let result = self
            .run_in_span(job, run_id, options)
            .instrument(span.clone())
            .await;
        // The run's counts on its span (and so its trace), once known.
        span.record("outcome", result.outcome.as_str());
        span.record("seen", result.report.seen);
        span.record("fetched", result.report.fetched);
        span.record("written", result.report.written);
        span.record("failed", result.report.failed);
        result
    }

    async fn run_in_span(
        &self,
        job: Arc<dyn Job>,
        run_id: String,
        options: RunOptions,
    ) -> RunResult {
        let name = job.name();
        let (started, started_at) = (Instant::now(), Utc::now());
        let counters = Arc::new(RunCounters::default());
        let (shard, requested) = (options.shard, options.requested.is_some());
        let (outcome, report, lock) = metrics::counting(
            counters.clone(),
            self.locked(job, options, counters.clone()),
        )
        .await;
        let result = RunResult {
            job: name,
            run_id,
            outcome,
            report,
            duration: started.elapsed(),
            upstream_requests: counters.upstream_requests.load(Relaxed),
            upstream_retries: counters.upstream_retries.load(Relaxed),
            redis_round_trips: counters.redis_round_trips.load(Relaxed),
        };
        self.record(&result, requested);
        if requested {
            // A request's run says nothing of the whole watchlist's warmth.
            return result;
        }
        self.finished.fetch_add(1, Relaxed);
        notify::last_run(
            name.as_str(),
            format!(
                "{} {}, {} written, {} failed",
                result.outcome.as_str(),
                Utc::now().format("%H:%M:%SZ"),
                result.report.written,
                result.report.failed
            ),
        );
        // A run that took the lock records itself while it still holds it: one that lost it
        // leaves the record to the run that holds it now.
        if let Some(lock) = lock {
            RunRecord {
                run_id: result.run_id.clone(),
                started_at,
                duration_ms: result.duration.as_millis() as u64,
                outcome: result.outcome.as_str().to_owned(),
                reason: match &result.outcome {
                    Outcome::Failed(why) => why.clone(),
                    _ => String::new(),
                },
                host: crate::store::hostname(),
                pid: std::process::id(),
                shard: shard.map(|s| s.to_string()),
                counts: result
                    .report
                    .counts()
                    .into_iter()
                    .map(|(name, n)| (name.to_owned(), n))
                    .collect(),
            }
            .save(&lock.fence(), name)
            .await;
            lock.release().await;
        }
        result
    }

    /// Takes the job's lock and runs the job; the lock is handed back still held (to record the
    /// run under it), unless the run was skipped for it.
    async fn locked(
        &self,
        job: Arc<dyn Job>,
        options: RunOptions,
        counters: Arc<RunCounters>,
    ) -> (Outcome, RunReport, Option<Lock>) {
        let name = job.name();
        let settings = &self.shared.settings;
        if options.requested.is_some() {
            // A warm request runs beside the scheduled runs, under a lease instead of the lock.
            let fence = Fence::lease(&self.shared.store, settings.scheduler.lock_ttl.get());
            let never_lost = CancellationToken::new();
            let (outcome, report) = self
                .in_context(job, options, fence, never_lost, counters)
                .await;
            return (outcome, report, None);
        }
        let key = keys::job_lock(name.as_str(), options.shard.map(|s| (s.index, s.count)));
        // A signal while the lock is being taken (a Redis that hangs) ends the run at once; a
        // lock that lands anyway expires within its TTL.
        let acquired = tokio::select! {
            acquired = Lock::acquire(&self.shared.store, &key, settings.scheduler.lock_ttl.get()) => acquired,
            _ = self.shutdown.requested() => {
                let signal = self.shutdown.signal().unwrap_or(Signal::Terminate);
                return (Outcome::Interrupted(signal), RunReport::default(), None);
            }
        };
        let lock = match acquired {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                let holder = Lock::holder(&self.shared.store, &key).await.ok().flatten();
                tracing::info!(lock = %key, holder = holder.as_deref().unwrap_or("?"), "another process holds the job lock; skipping this run");
                return (Outcome::SkippedLock, RunReport::default(), None);
            }
            Err(e) => {
                return (
                    Outcome::Failed(format!("cannot take the job lock: {e}")),
                    RunReport::default(),
                    None,
                );
            }
        };
        let (outcome, report) = self
            .in_context(job, options, lock.fence(), lock.lost(), counters)
            .await;
        (outcome, report, Some(lock))
    }

    /// Runs the job with its writes behind `fence`, stopping it when `lost` is cancelled.
    async fn in_context(
        &self,
        job: Arc<dyn Job>,
        options: RunOptions,
        fence: Fence,
        lost: CancellationToken,
        counters: Arc<RunCounters>,
    ) -> (Outcome, RunReport) {
        let name = job.name();
        let unit = match name.cache_kind() {
            Some(_) => Unit::Tickers,
            None => Unit::Members,
        };
        let bar = Arc::new(Bar::new(name.as_str(), unit, self.show_progress));
        let ctx = Arc::new(RunContext {
            shared: self.shared.clone(),
            options,
            stop_new_work: CancellationToken::new(),
            progress: bar.clone(),
            fence,
            writes: Default::default(),
        });
        let (outcome, report) = self.supervise(job, ctx, lost, counters).await;
        bar.finish(outcome.as_str(), report.failed);
        (outcome, report)
    }

    /// Runs the job in its own task (a panic fails the run, not the process) under its timeout,
    /// its lock and the shutdown signal.
    async fn supervise(
        &self,
        runnable: Arc<dyn Job>,
        ctx: Arc<RunContext>,
        lock_lost: CancellationToken,
        counters: Arc<RunCounters>,
    ) -> (Outcome, RunReport) {
        let job = runnable.name();
        let settings = &self.shared.settings;
        let timeout = job.settings(settings).timeout.get();
        let grace = settings.scheduler.shutdown_grace.get();
        let stop_new_work = ctx.stop_new_work.clone();
        let writes = ctx.clone();
        // In the run's span, so the job's log lines name their run and its spans are its trace's.
        let mut handle = tokio::spawn(
            metrics::counting(counters, async move { runnable.run(&ctx).await }).in_current_span(),
        );
        // An abandoned run still reports the values it wrote, and says so when a write it had
        // already handed to Redis may land after all.
        let abandon = |handle: &JoinHandle<Result<RunReport, JobError>>, why: &str| {
            handle.abort();
            let in_flight = writes.writes.in_flight.load(Relaxed);
            if in_flight > 0 {
                tracing::warn!(
                    values = in_flight,
                    "{why}; a batch write already handed to Redis may still land"
                );
            } else {
                tracing::warn!("{why}; no batch write was in flight");
            }
            RunReport {
                written: writes.writes.written.load(Relaxed),
                ..RunReport::default()
            }
        };
        let finished = tokio::select! {
            joined = &mut handle => joined,
            _ = tokio::time::sleep(timeout) => {
                let why = format!("timed out after {}", crate::config::HumanDuration::new(timeout));
                let report = abandon(&handle, &format!("the run {why}"));
                return (Outcome::Failed(why), report);
            }
            _ = lock_lost.cancelled() => {
                let report = abandon(&handle, "the run lost its job lock");
                return (Outcome::Failed("lost the job lock".into()), report);
            }
            _ = self.shutdown.requested() => {
                stop_new_work.cancel();
                let signal = self.shutdown.signal().unwrap_or(Signal::Terminate);
                match tokio::time::timeout(grace, &mut handle).await {
                    Ok(Ok(Ok(report))) if !report.interrupted => return self.judge(job, Ok(report)),
                    Ok(Ok(Ok(report))) => return (Outcome::Interrupted(signal), report),
                    Ok(_) => return (Outcome::Interrupted(signal), RunReport::default()),
                    Err(_) => {
                        let report = abandon(&handle, &format!("the batch in flight did not finish within the shutdown grace ({}); abandoned", crate::config::HumanDuration::new(grace)));
                        return (Outcome::Interrupted(signal), report);
                    }
                }
            }
        };
        match finished {
            Ok(result) => self.judge(job, result),
            Err(e) if e.is_panic() => (
                Outcome::Failed(format!("panicked: {}", panic_message(e.into_panic()))),
                RunReport::default(),
            ),
            Err(e) => (
                Outcome::Failed(format!("aborted: {e}")),
                RunReport::default(),
            ),
        }
    }

    /// A run fails when Redis failed it or too many tickers failed.
    fn judge(&self, job: JobName, result: Result<RunReport, JobError>) -> (Outcome, RunReport) {
        match result {
            Err(e) => (Outcome::Failed(e.to_string()), RunReport::default()),
            Ok(report) => {
                let limit = job.settings(&self.shared.settings).max_failure_ratio;
                if report.failure_ratio() > limit {
                    let why = format!(
                        "{} of {} fetched tickers failed (jobs.{job}.max_failure_ratio = {limit})",
                        report.failed, report.fetched
                    );
                    (Outcome::Failed(why), report)
                } else {
                    (Outcome::Ok, report)
                }
            }
        }
    }

    /// The run's one summary line and its metrics.
    fn record(&self, r: &RunResult, requested: bool) {
        let rep = &r.report;
        let reason = match &r.outcome {
            Outcome::Failed(why) => why.as_str(),
            _ => "",
        };
        let samples = rep.failure_samples.join("; ");
        macro_rules! summary {
            ($level:expr) => {
                tracing::event!(
                    $level,
                    job = %r.job,
                    run_id = %r.run_id,
                    outcome = r.outcome.as_str(),
                    reason,
                    duration_ms = r.duration.as_millis() as u64,
                    seen = rep.seen,
                    invalid = rep.invalid,
                    duplicates = rep.duplicates,
                    skipped_fresh = rep.skipped_fresh,
                    fetched = rep.fetched,
                    written = rep.written,
                    unknown = rep.unknown,
                                                            failed = rep.failed,
                    too_large = rep.too_large,
                    checked = rep.checked,
                    orphans = rep.orphans,
                    removed = rep.removed,
                    reindexed = rep.reindexed,
                    pruned = rep.pruned,
                    dry_run = rep.dry_run,
                    upstream_requests = r.upstream_requests,
                    upstream_retries = r.upstream_retries,
                    redis_round_trips = r.redis_round_trips,
                    failures = samples.as_str(),
                    "run finished"
                )
            };
        }
        // During a Redis outage (already logged once by the store) failed runs are routine.
        let quiet = !self.shared.store.is_up();
        match (&r.outcome, rep.failed > 0) {
            (Outcome::Failed(_), _) if !quiet => summary!(tracing::Level::WARN),
            (Outcome::Ok, true) => summary!(tracing::Level::WARN),
            _ => summary!(tracing::Level::INFO),
        }
        metrics::run_finished(
            r.job.as_str(),
            r.outcome.as_str(),
            r.duration,
            &rep.ticker_counts(),
            !requested,
        );
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
