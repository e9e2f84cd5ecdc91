//! What each command does once the configuration has loaded. Errors are typed so the binary can
//! map each to its documented exit code.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::calendar::Calendar;
use crate::cli::{Command, JobArg};
use crate::config::{ConfigError, Settings};
use crate::explain;
use crate::jobs::{JobName, RunOptions, Shard, Shared};
use crate::local_redis::LocalRedisError;
use crate::provider::{Providers, SetupError};
use crate::runner::{Outcome, RunResult, Runner};
use crate::scheduler;
use crate::server::{self, Health};
use crate::shutdown::{Shutdown, Signal};
use crate::store::{Store, StoreError};
use crate::ttl::TtlPolicy;
use crate::{notify, progress, stats};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("config error: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Redis(#[from] StoreError),
    #[error(transparent)]
    LocalRedis(#[from] LocalRedisError),
    #[error("config error: {0}")]
    Setup(#[from] SetupError),
    #[error("usage error: {0}")]
    Usage(String),
    #[error("{}", failed_jobs(.0))]
    JobsFailed(Vec<(JobName, String)>),
    #[error("interrupted by {0}")]
    Interrupted(Signal),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    #[error("server.listen: cannot listen on {0}: {1}")]
    Listen(std::net::SocketAddr, std::io::Error),
    #[error("cannot set up metrics: {0}")]
    Metrics(String),
    #[error("unhealthy: {}", .0.join("; "))]
    Unhealthy(Vec<String>),
}

impl AppError {
    /// The documented exit code: 1 job failed, 2 usage/config, 3 Redis unreachable,
    /// 130/143 interrupted.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Config(_) | AppError::Setup(_) | AppError::Usage(_) => 2,
            AppError::Redis(e) if e.is_unreachable() => 3,
            AppError::Interrupted(signal) => signal.exit_code(),
            AppError::Redis(_)
            | AppError::LocalRedis(_)
            | AppError::JobsFailed(_)
            | AppError::Output(_)
            | AppError::Listen(..)
            | AppError::Metrics(_)
            | AppError::Unhealthy(_) => 1,
        }
    }
}

/// Runs one command. Command output goes to `out` (stdout in the binary); logs go to stderr.
pub async fn execute(
    command: Command,
    config_path: Option<&Path>,
    settings: Settings,
    shutdown: Shutdown,
    out: &mut dyn Write,
) -> Result<(), AppError> {
    match command {
        Command::CheckConfig { connect } => check_config(&settings, connect, &shutdown, out).await,
        Command::Run => run(settings, config_path, shutdown).await,
        Command::Once {
            job,
            force,
            shard,
            shards,
            completion_index,
            dry_run,
            even_if_disabled,
            at,
        } => {
            let shard = match (shard, shards, completion_index) {
                (Some(shard), _, _) => Some(shard),
                (None, Some(count), Some(index)) => {
                    Some(Shard::new(index, count).map_err(AppError::Usage)?)
                }
                (None, Some(_), None) => {
                    return Err(AppError::Usage(
                        "--shards takes the shard index from JOB_COMPLETION_INDEX, which is not \
                         set (a Kubernetes Indexed Job sets it); use --shard I/N otherwise"
                            .into(),
                    ));
                }
                (None, None, _) => None,
            };
            let options = RunOptions {
                force,
                shard,
                dry_run,
                at: at.map(|t| t.with_timezone(&Utc)),
            };
            let jobs = once_jobs(job, &options, even_if_disabled, &settings)?;
            once(settings, jobs, options, shutdown).await
        }
        Command::Calendar { from, to, .. } if from.zip(to).is_some_and(|(f, t)| f > t) => {
            Err(AppError::Usage("calendar: --from is after --to".into()))
        }
        Command::Calendar { from, to, json } => {
            let cal = Calendar::from_settings(&settings.market);
            Ok(explain::calendar(&cal, from, to, Utc::now(), json, out)?)
        }
        Command::Ttl {
            at,
            earnings_date,
            json,
        } => {
            let cal = Calendar::from_settings(&settings.market);
            let policy = TtlPolicy::from_settings(&settings.ttl);
            let at = at.map_or_else(Utc::now, |t| t.with_timezone(&Utc));
            Ok(explain::ttl(&cal, &policy, at, earnings_date, json, out)?)
        }
        Command::Demo { redis_url } => crate::demo::run(settings, redis_url, shutdown, out).await,
        Command::Status { json } => status(&settings, json, &shutdown, out).await,
        Command::Completions { .. } | Command::Man => {
            without_config(&command, out).unwrap_or(Ok(()))
        }
    }
}

/// The jobs `once` runs, or why the flags do not fit them: `--dry-run` is integrity's alone,
/// `--force` and sharding are for the warming jobs, and a disabled job runs only when asked
/// with `--even-if-disabled` (`once all` skips it, saying so).
fn once_jobs(
    job: JobArg,
    options: &RunOptions,
    even_if_disabled: bool,
    settings: &Settings,
) -> Result<Vec<JobName>, AppError> {
    let usage = |message: &str| Err(AppError::Usage(format!("once {job}: {message}")));
    let sharded = options.shard.is_some();
    match job {
        JobArg::Integrity if options.force || sharded => {
            return usage("--force, --shard and --shards apply to the warming jobs only");
        }
        JobArg::All if sharded => {
            return usage("--shard and --shards split one warming job; name it");
        }
        JobArg::Integrity => {}
        _ if options.dry_run => return usage("--dry-run applies to `once integrity` only"),
        _ => {}
    }
    let mut jobs = job.jobs();
    if job == JobArg::All {
        jobs.retain(|&j| {
            let enabled = j.settings(settings).enabled;
            if !enabled {
                tracing::info!(job = %j, "skipped: jobs.{j}.enabled = false");
            }
            enabled
        });
    } else if let [only] = jobs[..]
        && !only.settings(settings).enabled
        && !even_if_disabled
    {
        return usage(&format!(
            "jobs.{only}.enabled = false; pass --even-if-disabled to run it anyway"
        ));
    }
    Ok(jobs)
}

/// The commands that need no configuration (`completions`, `man`): the binary runs them before
/// loading it, so a broken config cannot stop them. `None` for every other command.
pub fn without_config(command: &Command, out: &mut dyn Write) -> Option<Result<(), AppError>> {
    use clap::CommandFactory;
    let mut cli = crate::cli::Cli::command();
    let written = match command {
        Command::Completions { shell } => {
            let name = cli.get_name().to_owned();
            clap_complete::generate(*shell, &mut cli, name, out);
            Ok(())
        }
        Command::Man => clap_mangen::Man::new(cli).render(out),
        _ => return None,
    };
    Some(written.map_err(AppError::from))
}

/// `status`: the report on stdout, then exit 1 (with the problems logged) if a job is unhealthy.
async fn status(
    settings: &Settings,
    json: bool,
    shutdown: &Shutdown,
    out: &mut dyn Write,
) -> Result<(), AppError> {
    let store = connect(settings, shutdown).await?;
    let now = Utc::now();
    let report = crate::status::gather(settings, &store, now).await?;
    if json {
        serde_json::to_writer(&mut *out, &report).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        crate::status::render(&report, settings.market.timezone.0, now, out)?;
    }
    out.flush()?;
    if report.healthy {
        Ok(())
    } else {
        let jobs = report
            .jobs
            .iter()
            .filter_map(|j| Some(format!("job {}: {}", j.job, j.problem.as_ref()?)));
        let kinds = report
            .coverage
            .iter()
            .filter_map(|c| Some(format!("coverage {}: {}", c.kind, c.problem.as_ref()?)));
        Err(AppError::Unhealthy(jobs.chain(kinds).collect()))
    }
}

/// Prints the effective config; with `connect`, appends the Redis check as TOML comments so the
/// output stays valid TOML.
async fn check_config(
    settings: &Settings,
    check: bool,
    shutdown: &Shutdown,
    out: &mut dyn Write,
) -> Result<(), AppError> {
    out.write_all(settings.to_redacted_toml().as_bytes())?;
    if check {
        let store = connect(settings, shutdown).await?;
        let version = store.server_version().await?;
        writeln!(
            out,
            "\n# redis: PONG from {} (redis_version {version})",
            store.address()
        )?;
    }
    out.flush()?;
    Ok(())
}

/// [`Store::connect`] for a command that needs Redis to answer first (exit 3 after
/// `redis.connect_timeout`), unless a signal comes first (exit 130/143 at once).
async fn connect(settings: &Settings, shutdown: &Shutdown) -> Result<Store, AppError> {
    tokio::select! {
        store = Store::connect(&settings.redis) => Ok(store?),
        _ = shutdown.requested() => Err(AppError::Interrupted(
            shutdown.signal().unwrap_or(Signal::Terminate),
        )),
    }
}

/// The parts every run shares, on a Redis handle that is connected or not.
pub fn shared(settings: Settings, store: Store) -> Result<Arc<Shared>, AppError> {
    Ok(Arc::new(Shared {
        providers: Providers::from_settings(&settings)?,
        calendar: Calendar::from_settings(&settings.market),
        policy: TtlPolicy::from_settings(&settings.ttl),
        store,
        settings,
    }))
}

/// The daemon: every enabled job on its schedule until a signal, and the HTTP endpoint. Starts
/// while Redis is down (the runs fail and log it until it is back) and exits 0 after a clean
/// shutdown.
async fn run(
    settings: Settings,
    config_path: Option<&Path>,
    shutdown: Shutdown,
) -> Result<(), AppError> {
    warn_if_the_grace_outlasts_stop_timeouts(&settings);
    let metrics = stats::install().map_err(AppError::Metrics)?;
    let listen = settings.server.address();
    let store = Store::lazy(&settings.redis)?;
    let runner = Runner::new(shared(settings, store.clone())?, shutdown.clone());
    let heartbeat = notify::watchdog_interval().map_or(HEARTBEAT, |w| (w / 2).min(HEARTBEAT));
    let health = Health::new(heartbeat);
    let server = match listen {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .map_err(|e| AppError::Listen(address, e))?;
            tracing::info!(address = %address, "serving /healthz, /readyz and /metrics");
            Some(tokio::spawn(server::serve(
                listener,
                health.clone(),
                store.clone(),
                metrics.clone(),
                shutdown.clone(),
            )))
        }
        None => None,
    };
    let upkeep = {
        let (metrics, shutdown) = (metrics.clone(), shutdown.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.requested() => return,
                    _ = tokio::time::sleep(METRICS_UPKEEP) => metrics.run_upkeep(),
                }
            }
        })
    };
    // The coverage count feeds /metrics only; without the endpoint nobody would read it. It
    // starts once the start-up runs are done: a count before them would say the cache is cold.
    let gauges = server.is_some().then(|| {
        let settings = &runner.shared().settings;
        let start_up_runs = JobName::ALL
            .into_iter()
            .filter(|j| j.settings(settings).enabled && j.settings(settings).run_on_start)
            .count();
        let runs = runner.clone();
        let after_start_up = async move {
            while runs.runs_finished() < start_up_runs {
                tokio::time::sleep(START_UP_POLL).await;
            }
        };
        tokio::spawn(crate::status::export(
            runner.shared().clone(),
            after_start_up,
            shutdown.clone(),
        ))
    });
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = config_path.map_or("(none: defaults and FCW_* variables)".into(), |p| p
            .display()
            .to_string()),
        redis = store.address(),
        "daemon started"
    );
    scheduler::run(runner, shutdown.clone(), health).await;
    if let Some(gauges) = gauges {
        let _ = gauges.await;
    }
    if let Some(server) = server {
        let _ = server.await;
    }
    let _ = upkeep.await;
    tracing::info!(
        signal = shutdown.signal().map(|s| s.to_string()),
        "daemon stopped"
    );
    Ok(())
}

/// A grace longer than the usual stop timeouts is cut short by a SIGKILL: say so at start-up.
fn warn_if_the_grace_outlasts_stop_timeouts(settings: &Settings) {
    let grace = settings.scheduler.shutdown_grace;
    if grace.get() > STOP_TIMEOUT_COMMON {
        tracing::warn!(
            shutdown_grace = %grace,
            "scheduler.shutdown_grace is above 30s, the stop timeout of the shipped unit and \
             Kubernetes' default: a stopping process may be killed before its runs end"
        );
    }
}

/// The stop timeout of the shipped systemd unit (`TimeoutStopSec=30s`) and Kubernetes' default
/// `terminationGracePeriodSeconds`: a shutdown grace above it is cut short by a SIGKILL.
const STOP_TIMEOUT_COMMON: Duration = Duration::from_secs(30);

/// How often the gauge exporter looks whether the start-up runs are done.
const START_UP_POLL: Duration = Duration::from_millis(100);

/// The scheduler's heartbeat (and systemd watchdog ping) interval, at most.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// How often histogram buckets are compacted; the exporter needs it or they grow without bound.
const METRICS_UPKEEP: Duration = Duration::from_secs(10);

/// Runs `jobs` once each, in order. Redis must answer first (exit 3 otherwise).
pub async fn once(
    settings: Settings,
    jobs: Vec<JobName>,
    options: RunOptions,
    shutdown: Shutdown,
) -> Result<(), AppError> {
    warn_if_the_grace_outlasts_stop_timeouts(&settings);
    let gateway = settings.telemetry.pushgateway_url.clone();
    let metrics = match &gateway {
        Some(_) => Some(stats::install().map_err(AppError::Metrics)?),
        None => None,
    };
    let store = connect(&settings, &shutdown).await?;
    let show_progress = progress::wanted(settings.log.format);
    let runner = Runner::new(shared(settings, store)?, shutdown).with_progress(show_progress);
    let result = run_jobs(&runner, &jobs, options).await.map(drop);
    if let (Some(gateway), Some(metrics)) = (gateway, metrics) {
        let store = &runner.shared().store;
        // The last success as recorded, so a failed run pushes it too (a push replaces its
        // group whole; without it an alert on its age would see nothing).
        for &job in &jobs {
            if let Ok(Some(at)) = crate::record::load(store, job)
                .await
                .map(|r| r.last_success_at)
            {
                stats::last_success(job.as_str(), at);
            }
        }
        let names: Vec<&str> = jobs.iter().map(|j| j.as_str()).collect();
        match crate::push::push(&gateway, &metrics.render(), &names).await {
            Ok(()) => tracing::info!(pushgateway = %gateway.0, "pushed the run's metrics"),
            Err(e) => tracing::warn!("{e}"),
        }
    }
    result
}

/// Runs `jobs` in order on `runner`; the results, or why it stopped.
pub async fn run_jobs(
    runner: &Runner,
    jobs: &[JobName],
    options: RunOptions,
) -> Result<Vec<RunResult>, AppError> {
    let mut results = Vec::new();
    let mut failed = Vec::new();
    for &job in jobs {
        let result = runner.run(job, options).await;
        match &result.outcome {
            Outcome::Interrupted(signal) => return Err(AppError::Interrupted(*signal)),
            Outcome::Failed(why) => failed.push((job, why.clone())),
            Outcome::Ok | Outcome::SkippedLock => {}
        }
        results.push(result);
    }
    if failed.is_empty() {
        Ok(results)
    } else {
        Err(AppError::JobsFailed(failed))
    }
}

fn failed_jobs(failed: &[(JobName, String)]) -> String {
    failed
        .iter()
        .map(|(job, why)| format!("job {job} failed: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}
