//! The runner on its own, with small jobs that misbehave on purpose: a panic, a run past its
//! timeout, a lost lock, a shutdown in the middle (a job that stops, one that does not), a lock
//! another process holds, a job error and too many failed tickers. Each checks the outcome, the
//! report, the run record `status` reads and what became of the lock.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use async_trait::async_trait;
use finance_cache_warmer::config::{RedisUrl, Settings};
use finance_cache_warmer::jobs::{Job, JobError, JobName, RunContext, RunOptions, RunReport};
use finance_cache_warmer::keys;
use finance_cache_warmer::local_redis::LocalRedis;
use finance_cache_warmer::runner::{Outcome, RunResult, Runner};
use finance_cache_warmer::shutdown::{Shutdown, Signal};
use finance_cache_warmer::startup;
use finance_cache_warmer::store::Store;
use redis::AsyncCommands;
use tokio::sync::Notify;

use crate::support::{conn, redis};

/// A timeout or lock no run here comes near: the runs end for other reasons. A lock must outlast
/// a panic too: the test runtime has one thread, and the panic hook printing a backtrace holds
/// it (and so the lock's renewals) for as long as symbolising takes.
const LONG: &str = "1m";

/// What a toy job does once it has said that it started.
#[derive(Clone)]
enum Act {
    Panic,
    /// Waits forever (until the runner gives up on it), having written `written` values.
    Hang {
        written: u64,
    },
    /// Waits for the signal to stop starting new work, then ends as an interrupted run should.
    StopWhenAsked,
    Return(Result<RunReport, &'static str>),
}

struct Toy {
    act: Act,
    started: Arc<Notify>,
}

#[async_trait]
impl Job for Toy {
    fn name(&self) -> JobName {
        JobName::Stock
    }

    async fn run(&self, ctx: &RunContext) -> Result<RunReport, JobError> {
        self.started.notify_one();
        match &self.act {
            Act::Panic => panic!("boom"),
            Act::Hang { written } => {
                ctx.writes.written.store(*written, Relaxed);
                std::future::pending().await
            }
            Act::StopWhenAsked => {
                ctx.stop_new_work.cancelled().await;
                Ok(RunReport {
                    written: 3,
                    interrupted: true,
                    ..RunReport::default()
                })
            }
            Act::Return(Ok(report)) => Ok(report.clone()),
            Act::Return(Err(_)) => Err(JobError::LockLost),
        }
    }
}

/// A runner over its own Redis, with the job's `timeout`, a `lock_ttl` (renewed every third of
/// it) and a 200 ms shutdown grace.
struct Bench {
    server: LocalRedis,
    runner: Runner,
    shutdown: Shutdown,
}

async fn bench(timeout: &str, lock_ttl: &str) -> Bench {
    let server = redis().await;
    let mut settings = Settings::defaults().unwrap();
    settings.redis.url = RedisUrl::parse(&server.url()).unwrap();
    settings.jobs.stock.timeout = timeout.parse().unwrap();
    settings.scheduler.lock_ttl = lock_ttl.parse().unwrap();
    settings.scheduler.shutdown_grace = "200ms".parse().unwrap();
    let store = Store::lazy(&settings.redis).unwrap();
    let shutdown = Shutdown::default();
    let runner = Runner::new(startup::shared(settings, store).unwrap(), shutdown.clone());
    Bench {
        server,
        runner,
        shutdown,
    }
}

impl Bench {
    /// Starts `act` as a run; resolves when the job has started, with the run to await.
    async fn start(&self, act: Act) -> tokio::task::JoinHandle<RunResult> {
        let started = Arc::new(Notify::new());
        let job = Arc::new(Toy {
            act,
            started: started.clone(),
        });
        let runner = self.runner.clone();
        let run = tokio::spawn(async move { runner.run(job, RunOptions::default()).await });
        tokio::time::timeout(Duration::from_secs(10), started.notified())
            .await
            .expect("the job starts");
        run
    }

    async fn run(&self, act: Act) -> RunResult {
        finish(self.start(act).await).await
    }

    async fn record(&self) -> HashMap<String, String> {
        conn(&self.server)
            .await
            .hgetall(keys::run_record("stock"))
            .await
            .unwrap()
    }

    async fn lock(&self) -> Option<String> {
        conn(&self.server)
            .await
            .get(keys::job_lock("stock", None))
            .await
            .unwrap()
    }
}

async fn finish(run: tokio::task::JoinHandle<RunResult>) -> RunResult {
    tokio::time::timeout(Duration::from_secs(15), run)
        .await
        .expect("the run ends")
        .expect("the runner itself does not panic")
}

#[tokio::test]
async fn a_panicking_job_fails_its_run_and_the_next_run_goes_ahead() {
    let b = bench(LONG, LONG).await;
    let result = b.run(Act::Panic).await;
    assert_eq!(result.outcome, Outcome::Failed("panicked: boom".into()));
    let record = b.record().await;
    assert_eq!(record["outcome"], "failed");
    assert_eq!(record["reason"], "panicked: boom");
    assert_eq!(b.lock().await, None, "the lock is released");

    let next = b.run(Act::Return(Ok(RunReport::default()))).await;
    assert_eq!(next.outcome, Outcome::Ok);
    assert_eq!(b.runner.runs_finished(), 2);
    assert!(b.record().await.contains_key("last_success_at"));
}

#[tokio::test]
async fn a_job_past_its_timeout_is_abandoned_with_what_it_wrote() {
    let b = bench("1s", LONG).await;
    let result = b.run(Act::Hang { written: 7 }).await;
    assert_eq!(result.outcome, Outcome::Failed("timed out after 1s".into()));
    assert_eq!(result.report.written, 7);
    assert_eq!(b.record().await["written"], "7");
    assert_eq!(b.lock().await, None);
}

#[tokio::test]
async fn a_run_that_loses_its_lock_stops_and_leaves_the_lock_and_record_alone() {
    // Renewed every 500 ms: the first renewal after the takeover finds another value.
    let b = bench(LONG, "1500ms").await;
    let run = b.start(Act::Hang { written: 0 }).await;
    // The lock expired and another replica took it: the next renewal finds its value.
    let _: () = conn(&b.server)
        .await
        .set(keys::job_lock("stock", None), "another replica")
        .await
        .unwrap();
    let result = finish(run).await;
    assert_eq!(result.outcome, Outcome::Failed("lost the job lock".into()));
    assert_eq!(b.lock().await.as_deref(), Some("another replica"));
    assert!(
        b.record().await.is_empty(),
        "the record is the lock holder's to write"
    );
}

#[tokio::test]
async fn a_shutdown_lets_the_job_finish_its_batch_and_records_an_interrupted_run() {
    let b = bench(LONG, LONG).await;
    let run = b.start(Act::StopWhenAsked).await;
    b.shutdown.trigger(Signal::Terminate);
    let result = finish(run).await;
    assert_eq!(result.outcome, Outcome::Interrupted(Signal::Terminate));
    assert_eq!(result.report.written, 3);
    assert_eq!(b.record().await["outcome"], "interrupted");
    assert_eq!(b.lock().await, None);
}

#[tokio::test]
async fn a_job_that_ignores_shutdown_is_abandoned_after_the_grace() {
    let b = bench(LONG, LONG).await;
    let run = b.start(Act::Hang { written: 2 }).await;
    b.shutdown.trigger(Signal::Interrupt);
    let result = finish(run).await;
    assert_eq!(result.outcome, Outcome::Interrupted(Signal::Interrupt));
    assert_eq!(result.report.written, 2);
    assert_eq!(b.lock().await, None);
}

#[tokio::test]
async fn a_shutdown_before_the_run_starts_runs_nothing() {
    let b = bench(LONG, LONG).await;
    b.shutdown.trigger(Signal::Terminate);
    let started = Arc::new(Notify::new());
    let job = Arc::new(Toy {
        act: Act::StopWhenAsked,
        started: started.clone(),
    });
    let result = b.runner.run(job, RunOptions::default()).await;
    assert_eq!(result.outcome, Outcome::Interrupted(Signal::Terminate));
    assert_eq!(b.lock().await, None);
}

#[tokio::test]
async fn a_lock_held_elsewhere_skips_the_run_without_running_the_job() {
    let b = bench(LONG, LONG).await;
    let _: () = conn(&b.server)
        .await
        .set(keys::job_lock("stock", None), "another replica")
        .await
        .unwrap();
    let started = Arc::new(Notify::new());
    let job = Arc::new(Toy {
        act: Act::Panic,
        started: started.clone(),
    });
    let result = b.runner.run(job, RunOptions::default()).await;
    assert_eq!(result.outcome, Outcome::SkippedLock);
    assert!(b.record().await.is_empty(), "skipped runs are not recorded");
    assert_eq!(b.lock().await.as_deref(), Some("another replica"));
    assert_eq!(b.runner.runs_finished(), 1);
}

#[tokio::test]
async fn a_job_error_or_too_many_failed_tickers_fail_the_run_with_the_report() {
    let b = bench(LONG, LONG).await;
    let result = b.run(Act::Return(Err("lock lost"))).await;
    assert_eq!(
        result.outcome,
        Outcome::Failed("lost the job lock to another run; nothing more was written".into())
    );

    let report = RunReport {
        fetched: 10,
        written: 4,
        failed: 6,
        ..RunReport::default()
    };
    let result = b.run(Act::Return(Ok(report))).await;
    assert_eq!(
        result.outcome,
        Outcome::Failed(
            "6 of 10 fetched tickers failed (jobs.stock.max_failure_ratio = 0.5)".into()
        )
    );
    assert_eq!(result.report.written, 4);
    let record = b.record().await;
    assert_eq!(
        (record["failed"].as_str(), record["fetched"].as_str()),
        ("6", "10")
    );

    let report = RunReport {
        fetched: 10,
        written: 5,
        failed: 5,
        ..RunReport::default()
    };
    let result = b.run(Act::Return(Ok(report))).await;
    assert_eq!(result.outcome, Outcome::Ok, "at the limit is still ok");
}
