//! `once <job>`: the jobs a command line asks for, each run once, then the exit code; with a
//! Pushgateway, the run's metrics pushed there.

use crate::cli::JobArg;
use crate::commands::common::{AppError, connect, warn_if_the_grace_outlasts_stop_timeouts};
use crate::config::Settings;
use crate::jobs::{self, JobName, RunOptions};
use crate::runner::{Outcome, RunResult, Runner};
use crate::shutdown::Shutdown;
use crate::{metrics, progress, startup};

/// The jobs `once` runs, or why the flags do not fit them: `--dry-run` is integrity's alone,
/// `--force` and sharding are for the warming jobs, and a disabled job runs only when asked
/// with `--even-if-disabled` (`once all` skips it, saying so).
pub fn once_jobs(
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
        Some(_) => Some(metrics::install().map_err(AppError::Metrics)?),
        None => None,
    };
    let store = connect(&settings, &shutdown).await?;
    let show_progress = progress::wanted(settings.log.format);
    let runner =
        Runner::new(startup::shared(settings, store)?, shutdown).with_progress(show_progress);
    let result = run_jobs(&runner, &jobs, options).await.map(drop);
    if let (Some(gateway), Some(metrics)) = (gateway, metrics) {
        let store = &runner.shared().store;
        // The last success as recorded, so a failed run pushes it too (a push replaces its
        // group whole; without it an alert on its age would see nothing).
        for &job in &jobs {
            if let Ok(Some(at)) = crate::runner::record::load(store, job)
                .await
                .map(|r| r.last_success_at)
            {
                metrics::last_success(job.as_str(), at);
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
        let result = runner.run(jobs::named(job), options.clone()).await;
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
