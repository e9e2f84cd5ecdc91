//! Gathering the report from Redis: each job's record, locks and next runs, and the health rule.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::coverage::coverage;
use super::report::{JobStatus, LockHolder, NEXT_RUNS, RequestsSummary, Status};
use crate::config::{JobSettings, Settings};
use crate::jobs::JobName;
use crate::keys;
use crate::runner::record::{self, rfc3339_ms};
use crate::schedule::next_fire;
use crate::startup;
use crate::store::{Store, StoreError};

/// Gathers the report.
pub async fn gather(
    settings: &Settings,
    store: &Store,
    now: DateTime<Utc>,
) -> Result<Status, StoreError> {
    let tz = settings.market.timezone.0;
    let mut jobs = Vec::new();
    for job in JobName::ALL {
        jobs.push(job_status(job, job.settings(settings), tz, store, now).await?);
    }
    let (watchlist, mut coverage) = coverage(
        store,
        &startup::resolver(settings),
        settings.scheduler.scan_count,
        settings.scheduler.batch_size as usize,
    )
    .await?;
    let min = settings.status.min_coverage;
    for c in &mut coverage {
        let enabled = JobName::ALL
            .into_iter()
            .any(|j| j.cache_kind() == Some(c.kind) && j.settings(settings).enabled);
        if enabled && watchlist.tickers > 0 && (c.present as f64) < min * watchlist.tickers as f64 {
            c.problem = Some(format!(
                "{} of {} watchlist tickers cached ({:.0} %), under status.min_coverage ({:.0} %)",
                c.present,
                watchlist.tickers,
                100.0 * c.present as f64 / watchlist.tickers as f64,
                100.0 * min
            ));
        }
    }
    let requests = match settings.requests.enabled {
        true => {
            let group = &settings.requests.group;
            let state = store.request_group(group).await?;
            Some(RequestsSummary {
                stream: keys::REQUESTS,
                group: group.clone(),
                consumers: state.as_ref().map(|s| s.consumers),
                pending: state.as_ref().map(|s| s.pending),
                waiting: state.and_then(|s| s.waiting),
            })
        }
        false => None,
    };
    Ok(Status {
        generated_at: rfc3339_ms(now),
        redis: store.address().to_owned(),
        healthy: jobs.iter().all(|j| j.healthy) && coverage.iter().all(|c| c.problem.is_none()),
        jobs,
        watchlist,
        coverage,
        requests,
    })
}

pub(super) async fn job_status(
    job: JobName,
    settings: &JobSettings,
    tz: Tz,
    store: &Store,
    now: DateTime<Utc>,
) -> Result<JobStatus, StoreError> {
    let record = record::load(store, job).await?;
    let shards = record
        .last_run
        .as_ref()
        .and_then(|r| r.shard.as_deref())
        .and_then(|s| s.split_once('/'))
        .and_then(|(_, n)| n.parse::<u32>().ok());
    let locks = locks(store, job, shards).await?;
    let cron = settings.schedule.cron();
    let mut next_runs = Vec::new();
    let mut after = now;
    while next_runs.len() < NEXT_RUNS {
        let Some(at) = next_fire(cron, tz, after) else {
            break;
        };
        next_runs.push(at);
        after = at;
    }
    let healthy_until = record
        .last_success_at
        .and_then(|t| healthy_until(settings, tz, t));
    let problem = match (settings.enabled, record.last_success_at, healthy_until) {
        (false, _, _) => None,
        (true, None, _) => Some("never succeeded".to_owned()),
        (true, Some(t), Some(until)) if now > until => Some(format!(
            "no success since {}: two scheduled runs have passed",
            crate::model::rfc3339(t)
        )),
        (true, Some(_), _) => None,
    };
    Ok(JobStatus {
        job: job.as_str(),
        enabled: settings.enabled,
        schedule: settings.schedule.as_str().to_owned(),
        healthy: problem.is_none(),
        problem,
        last_run: record.last_run,
        last_success_at: record.last_success_at,
        healthy_until,
        locks,
        next_runs,
    })
}

/// Until when a job that last succeeded at `success` counts as healthy: the second fire time
/// after it plus the job's timeout.
pub fn healthy_until(
    settings: &JobSettings,
    tz: Tz,
    success: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let cron = settings.schedule.cron();
    let second = next_fire(cron, tz, next_fire(cron, tz, success)?)?;
    Some(second + settings.timeout.get())
}

/// The job's lock, and its shards' locks when its last run was sharded (the shard count comes
/// from that run, so no key scan is needed).
pub(super) async fn locks(
    store: &Store,
    job: JobName,
    shards: Option<u32>,
) -> Result<Vec<LockHolder>, StoreError> {
    let mut keys = vec![keys::job_lock(job.as_str(), None)];
    if let Some(n) = shards {
        keys.extend((0..n).map(|i| keys::job_lock(job.as_str(), Some((i, n)))));
    }
    let values = store.get_each("GET locks", &keys).await?;
    Ok(keys
        .into_iter()
        .zip(values)
        .filter_map(|(key, value)| {
            let value = value?;
            let holder: serde_json::Value = serde_json::from_slice(&value).unwrap_or_default();
            Some(LockHolder {
                key,
                host: holder["host"].as_str().map(str::to_owned),
                pid: holder["pid"].as_u64().map(|p| p as u32),
                since: holder["since"].as_str().map(str::to_owned),
            })
        })
        .collect())
}
