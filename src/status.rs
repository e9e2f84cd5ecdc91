//! `status`: is the cache warm, and if not, why. Read from Redis alone, so it works from any
//! machine and with no daemon running (the jobs may be CronJobs): each job's run record
//! ([`crate::record`]), its lock, its schedule, and the cache's coverage of the watchlist.
//!
//! A job is healthy when it succeeded within two of its scheduled periods: its last success is
//! no older than the second fire time after it plus the job's timeout (the run started then has
//! had its full time to finish). Counting fire times rather than a fixed period keeps a
//! weekday-only schedule healthy over the weekend.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::config::next_fire;
use crate::config::{JobSettings, Settings};
use crate::jobs::watchlist::WatchlistReader;
use crate::jobs::{JobName, Shared};
use crate::keys::{self, CacheKind};
use crate::metrics;
use crate::record::{self, RunRecord, rfc3339_ms};
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreError};

/// Fire times listed per job.
const NEXT_RUNS: usize = 3;
/// Missing tickers named per cache kind (the alphabetically first ones).
const MISSING_NAMED: usize = 5;
/// "Expiring soon": the app may find these gone before the next run.
const EXPIRING_SOON_MS: i64 = 60_000;

/// The whole report, as `status --json` prints it.
#[derive(Debug, Serialize)]
pub struct Status {
    pub generated_at: String,
    pub redis: String,
    /// Every enabled job succeeded recently enough and every enabled kind covers at least
    /// `status.min_coverage` of the watchlist; `status` exits 0 exactly when this holds.
    pub healthy: bool,
    pub jobs: Vec<JobStatus>,
    pub watchlist: WatchlistSummary,
    pub coverage: Vec<Coverage>,
}

#[derive(Debug, Serialize)]
pub struct JobStatus {
    pub job: &'static str,
    pub enabled: bool,
    pub schedule: String,
    pub healthy: bool,
    /// Why it is not healthy.
    pub problem: Option<String>,
    pub last_run: Option<RunRecord>,
    /// RFC 3339, as recorded (milliseconds).
    pub last_success_at: Option<DateTime<Utc>>,
    /// When the job turns unhealthy if no run succeeds before.
    pub healthy_until: Option<DateTime<Utc>>,
    /// Who holds the job's lock (or its shards' locks) now.
    pub locks: Vec<LockHolder>,
    pub next_runs: Vec<DateTime<Utc>>,
}

/// A held job lock: its key and the holder's own account of itself.
#[derive(Debug, Serialize)]
pub struct LockHolder {
    pub key: String,
    pub host: Option<String>,
    pub pid: Option<u32>,
    pub since: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct WatchlistSummary {
    pub key: &'static str,
    /// Members read, including invalid ones and duplicates.
    pub members: u64,
    /// Distinct valid tickers: what coverage is counted against.
    pub tickers: u64,
    pub invalid: u64,
    pub duplicates: u64,
}

/// How much of the watchlist one kind of cache key covers.
#[derive(Debug, Serialize)]
pub struct Coverage {
    pub kind: CacheKind,
    /// Why this kind is not healthy: too little of the watchlist cached.
    pub problem: Option<String>,
    pub present: u64,
    pub missing: u64,
    pub expiring_within_1m: u64,
    pub ttl_histogram: TtlHistogram,
    /// The alphabetically first missing tickers.
    pub missing_tickers: Vec<String>,
}

/// Present keys by remaining TTL.
#[derive(Debug, Default, Serialize)]
pub struct TtlHistogram {
    pub under_1m: u64,
    #[serde(rename = "1m_to_10m")]
    pub m1_to_m10: u64,
    #[serde(rename = "10m_to_1h")]
    pub m10_to_h1: u64,
    #[serde(rename = "1h_to_1d")]
    pub h1_to_d1: u64,
    pub over_1d: u64,
    /// Keys without an expiry: not written by this daemon (it always sets one).
    pub no_expiry: u64,
}

impl TtlHistogram {
    fn add(&mut self, pttl_ms: i64) {
        let slot = match pttl_ms {
            -1 => &mut self.no_expiry,
            i64::MIN..60_000 => &mut self.under_1m,
            60_000..600_000 => &mut self.m1_to_m10,
            600_000..3_600_000 => &mut self.m10_to_h1,
            3_600_000..86_400_000 => &mut self.h1_to_d1,
            _ => &mut self.over_1d,
        };
        *slot += 1;
    }
}

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
    Ok(Status {
        generated_at: rfc3339_ms(now),
        redis: store.address().to_owned(),
        healthy: jobs.iter().all(|j| j.healthy) && coverage.iter().all(|c| c.problem.is_none()),
        jobs,
        watchlist,
        coverage,
    })
}

async fn job_status(
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
async fn locks(
    store: &Store,
    job: JobName,
    shards: Option<u32>,
) -> Result<Vec<LockHolder>, StoreError> {
    let mut keys = vec![keys::job_lock(job.as_str(), None)];
    if let Some(n) = shards {
        keys.extend((0..n).map(|i| keys::job_lock(job.as_str(), Some((i, n)))));
    }
    let cmds: Vec<redis::Cmd> = keys
        .iter()
        .map(|k| redis::cmd("GET").arg(k).to_owned())
        .collect();
    let values = store.batch("GET locks", &cmds, false).await?;
    Ok(keys
        .into_iter()
        .zip(values)
        .filter_map(|(key, value)| {
            let value: String = redis::from_redis_value(value).ok()?;
            let holder: serde_json::Value = serde_json::from_str(&value).unwrap_or_default();
            Some(LockHolder {
                key,
                host: holder["host"].as_str().map(str::to_owned),
                pid: holder["pid"].as_u64().map(|p| p as u32),
                since: holder["since"].as_str().map(str::to_owned),
            })
        })
        .collect())
}

/// Walks the watchlist and counts, per kind, which tickers have a cache key and how long it has
/// left: one `SSCAN` page and one pipelined `PTTL` batch at a time, so memory stays flat.
pub async fn coverage(
    store: &Store,
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
    while let Some(batch) = reader.next_batch(batch_size.max(1)).await? {
        tickers += batch.len() as u64;
        let cmds: Vec<redis::Cmd> = CacheKind::ALL
            .into_iter()
            .flat_map(|kind| batch.iter().map(move |t| keys::cache(kind, t)))
            .map(|key| redis::cmd("PTTL").arg(key).to_owned())
            .collect();
        let replies = store.batch("PTTL coverage", &cmds, false).await?;
        for (i, reply) in replies.into_iter().enumerate() {
            let (coverage, missing) = &mut kinds[i / batch.len()];
            let ticker = &batch[i % batch.len()];
            match redis::from_redis_value::<i64>(reply).unwrap_or(-2) {
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

/// The report as text: a table of jobs, a table of cache coverage, and the verdict.
pub fn render(
    status: &Status,
    tz: Tz,
    now: DateTime<Utc>,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let mut text = String::new();
    let verdict = if status.healthy {
        "healthy"
    } else {
        "UNHEALTHY"
    };
    let _ = writeln!(
        text,
        "finance-cache-warmer status at {} ({}) · redis {} · {verdict}\n",
        now.format("%Y-%m-%d %H:%M:%S UTC"),
        now.with_timezone(&tz).format("%H:%M %Z"),
        status.redis,
    );
    let mut rows = vec![
        [
            "JOB",
            "HEALTH",
            "LAST RUN",
            "OUTCOME",
            "TOOK",
            "OK",
            "FAILED",
            "SKIPPED",
            "INVALID",
            "LAST SUCCESS",
            "LOCK",
            "NEXT RUNS",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    let mut notes = Vec::new();
    for j in &status.jobs {
        let health = match (j.enabled, j.healthy, &j.last_success_at) {
            (false, _, _) => "disabled",
            (true, true, _) => "ok",
            (true, false, None) => "never",
            (true, false, Some(_)) => "stale",
        };
        let count = |name: &str| {
            j.last_run
                .as_ref()
                .and_then(|r| r.counts.get(name))
                .map_or("-".to_owned(), u64::to_string)
        };
        let warming = j.job != JobName::Integrity.as_str();
        let (ok, failed, skipped, invalid) = if warming {
            (
                count("written"),
                count("failed"),
                count("skipped_fresh"),
                count("invalid"),
            )
        } else {
            ("-".into(), count("failed"), "-".into(), "-".into())
        };
        let lock = match j.locks.as_slice() {
            [] => "free".to_owned(),
            [one] => holder(one, now),
            many => format!("{} held", many.len()),
        };
        rows.push(vec![
            j.job.to_owned(),
            health.to_owned(),
            j.last_run
                .as_ref()
                .map_or("never".into(), |r| ago(now, r.started_at)),
            j.last_run
                .as_ref()
                .map_or("-".into(), |r| r.outcome.clone()),
            j.last_run
                .as_ref()
                .map_or("-".into(), |r| took(r.duration_ms)),
            ok,
            failed,
            skipped,
            invalid,
            j.last_success_at.map_or("never".into(), |t| ago(now, t)),
            lock,
            j.next_runs
                .iter()
                .take(2)
                .map(|t| t.with_timezone(&tz).format("%a %H:%M").to_string())
                .collect::<Vec<_>>()
                .join(", "),
        ]);
        if let Some(r) = &j.last_run {
            if !r.reason.is_empty() {
                notes.push(format!("{}: last run {}: {}", j.job, r.outcome, r.reason));
            }
            if !warming {
                notes.push(format!(
                    "{}: checked {}, orphans {}, removed {}, reindexed {}",
                    j.job,
                    count("checked"),
                    count("orphans"),
                    count("removed"),
                    count("reindexed")
                ));
            }
        }
        if let Some(problem) = &j.problem {
            notes.push(format!("{}: {problem}", j.job));
        }
        if j.locks.len() > 1 {
            for l in &j.locks {
                notes.push(format!("{}: {} held by {}", j.job, l.key, holder(l, now)));
            }
        }
    }
    table(&mut text, &rows, "llllrrrrrlll");
    for note in notes {
        let _ = writeln!(text, "  {note}");
    }
    let w = &status.watchlist;
    let _ = writeln!(
        text,
        "\nCache coverage of {} ({} tickers; {} members, {} invalid, {} duplicates)",
        w.key, w.tickers, w.members, w.invalid, w.duplicates
    );
    let mut rows = vec![
        [
            "KIND",
            "PRESENT",
            "MISSING",
            "EXPIRING <1m",
            "TTL <1m",
            "1m-10m",
            "10m-1h",
            "1h-1d",
            ">1d",
            "NONE",
            "FIRST MISSING",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for c in &status.coverage {
        let h = &c.ttl_histogram;
        let mut row = vec![c.kind.to_string()];
        row.extend(
            [
                c.present,
                c.missing,
                c.expiring_within_1m,
                h.under_1m,
                h.m1_to_m10,
                h.m10_to_h1,
                h.h1_to_d1,
                h.over_1d,
                h.no_expiry,
            ]
            .map(|n| n.to_string()),
        );
        row.push(if c.missing_tickers.is_empty() {
            "-".into()
        } else {
            c.missing_tickers.join(", ")
        });
        rows.push(row);
    }
    table(&mut text, &rows, "lrrrrrrrrrl");
    for c in &status.coverage {
        if let Some(problem) = &c.problem {
            let _ = writeln!(text, "  {}: {problem}", c.kind);
        }
    }
    out.write_all(text.as_bytes())
}

/// Aligned columns, two spaces apart; `align` has an `l` or `r` per column.
fn table(text: &mut String, rows: &[Vec<String>], align: &str) {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for ((cell, width), a) in row.iter().zip(&widths).zip(align.chars()) {
            if a == 'r' {
                let _ = write!(line, "{cell:>width$}  ");
            } else {
                let _ = write!(line, "{cell:<width$}  ");
            }
        }
        let _ = writeln!(text, "{}", line.trim_end());
    }
}

fn holder(lock: &LockHolder, now: DateTime<Utc>) -> String {
    let since = lock
        .since
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| format!(" for {}", span(now - t.with_timezone(&Utc))))
        .unwrap_or_default();
    format!(
        "{}:{}{since}",
        lock.host.as_deref().unwrap_or("?"),
        lock.pid.map_or("?".into(), |p| p.to_string())
    )
}

fn ago(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    format!("{} ago", span(now - t))
}

fn took(ms: u64) -> String {
    if ms < 10_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        span(chrono::Duration::milliseconds(ms as i64))
    }
}

/// A duration in its largest two units: `42s`, `5m 03s`, `3h 12m`, `2d 4h`.
fn span(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_at_a_glance() {
        let secs = chrono::Duration::seconds;
        assert_eq!(span(secs(42)), "42s");
        assert_eq!(span(secs(303)), "5m 03s");
        assert_eq!(span(secs(3 * 3600 + 12 * 60)), "3h 12m");
        assert_eq!(span(secs(2 * 86_400 + 4 * 3600 + 5)), "2d 4h");
        assert_eq!(span(secs(-5)), "0s");
        assert_eq!(took(1234), "1.2s");
        assert_eq!(took(61_000), "1m 01s");
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_job_stays_healthy_for_two_fire_times_plus_its_timeout() {
        let settings = Settings::defaults().unwrap();
        let ny = chrono_tz::America::New_York;
        // Every 5 minutes, 4 minute timeout: a success at 10:01 is good until 10:10 + 4m.
        assert_eq!(
            healthy_until(&settings.jobs.stock, ny, utc("2026-11-24T15:01:00Z")),
            Some(utc("2026-11-24T15:14:00Z"))
        );
        // Weekdays at 08:00 New York, 30 minute timeout: Friday's success lasts the weekend,
        // until Tuesday's run has had its time.
        assert_eq!(
            healthy_until(&settings.jobs.earnings, ny, utc("2026-11-20T13:00:30Z")),
            Some(utc("2026-11-24T13:30:00Z"))
        );
    }

    #[test]
    fn ttl_histogram_buckets_by_remaining_time() {
        let mut h = TtlHistogram::default();
        for ms in [
            -1, 0, 59_999, 60_000, 599_999, 600_000, 3_600_000, 86_399_999, 86_400_000,
        ] {
            h.add(ms);
        }
        assert_eq!(
            (
                h.no_expiry,
                h.under_1m,
                h.m1_to_m10,
                h.m10_to_h1,
                h.h1_to_d1,
                h.over_1d
            ),
            (1, 2, 2, 1, 2, 1)
        );
    }
}
