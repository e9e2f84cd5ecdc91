//! The Prometheus series the daemon records, named in one place. Recording goes through the
//! `metrics` facade: without an installed exporter (the CLI commands) it costs nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets of `fcw_request_latency_seconds`: around the one-second goal.
const REQUEST_LATENCY_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The `outcome`s of `fcw_requests_total`.
pub const REQUEST_OUTCOMES: &[&str] = &["warmed", "failed", "invalid", "unwatched", "noticed"];

/// Buckets of `fcw_run_duration_seconds`: from a quick run to the longest default timeout.
const RUN_DURATION_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// The label naming a job. Not `job`: Prometheus attaches `job` (and `instance`) to every
/// scraped series itself, and would rename ours to `exported_job`.
pub const JOB_LABEL: &str = "job_name";

/// The `outcome`s of `fcw_runs_total`.
pub const RUN_OUTCOMES: &[&str] = &[
    "ok",
    "failed",
    "interrupted",
    "skipped_lock",
    "skipped_overlap",
];

/// Every series the daemon exports, with its help text: the list the dashboard and the alert
/// rules may use, and the table in docs/monitoring.md.
pub const SERIES: &[(&str, Kind, &str)] = &[
    (
        "fcw_runs_total",
        Kind::Counter,
        "Job runs by job and outcome (ok, failed, interrupted, skipped_lock, skipped_overlap).",
    ),
    (
        "fcw_run_duration_seconds",
        Kind::Histogram,
        "Duration of job runs in seconds, by job.",
    ),
    (
        "fcw_last_success_timestamp_seconds",
        Kind::Gauge,
        "Unix time of the job's last successful run by any process (from its run record), by job.",
    ),
    (
        "fcw_tickers_total",
        Kind::Counter,
        "Tickers by job and outcome (seen, invalid, skipped_fresh, fetched, written, unknown, failed, too_large).",
    ),
    (
        "fcw_upstream_requests_total",
        Kind::Counter,
        "HTTP requests to market-data providers by provider, endpoint and status class.",
    ),
    (
        "fcw_upstream_retries_total",
        Kind::Counter,
        "Retried upstream requests by provider and endpoint.",
    ),
    (
        "fcw_rate_limit_waits_total",
        Kind::Counter,
        "Upstream requests that waited for the token bucket or a 429 pause, by provider.",
    ),
    (
        "fcw_circuit_breaker_open",
        Kind::Gauge,
        "1 while a provider's circuit breaker is open.",
    ),
    (
        "fcw_circuit_breaker_opened_total",
        Kind::Counter,
        "Times a provider's circuit breaker opened.",
    ),
    (
        "fcw_redis_errors_total",
        Kind::Counter,
        "Failed Redis round trips.",
    ),
    (
        "fcw_integrity_members_checked_total",
        Kind::Counter,
        "Index members checked by the integrity job, by rule.",
    ),
    (
        "fcw_integrity_orphans_found_total",
        Kind::Counter,
        "Index members found without their object, by rule.",
    ),
    (
        "fcw_integrity_members_removed_total",
        Kind::Counter,
        "Orphaned index members removed, by rule.",
    ),
    (
        "fcw_integrity_reindexed_total",
        Kind::Counter,
        "Objects re-added to their index, by rule.",
    ),
    (
        "fcw_watchlist_tickers",
        Kind::Gauge,
        "Distinct valid tickers in finance:watchlist.",
    ),
    (
        "fcw_cache_keys",
        Kind::Gauge,
        "Watchlist tickers by cache kind and state (present, missing, expiring_soon: under a minute left).",
    ),
    (
        "fcw_requests_total",
        Kind::Counter,
        "Warm requests read from finance:warmer:requests, by outcome (warmed, failed, invalid, unwatched), and watchlist additions noticed by keyspace notifications and warmed (noticed).",
    ),
    (
        "fcw_request_latency_seconds",
        Kind::Histogram,
        "Seconds from a warm request's XADD to its ticker's keys written or found fresh (warmed requests).",
    ),
    (
        "fcw_runtime_tasks",
        Kind::Gauge,
        "Tasks alive in the daemon's async runtime when /metrics is read: a count that only grows is a leak.",
    ),
    (
        "fcw_market_calendar_expired",
        Kind::Gauge,
        "1 once a market's shipped calendar data has run out (it then follows its regular week without holidays), by market.",
    ),
    (
        "fcw_tickers_by_market_total",
        Kind::Counter,
        "Values written by job and market (the calendar their TTL followed).",
    ),
];

/// Installs the Prometheus recorder (once per process) and describes every series.
pub fn install() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("fcw_run_duration_seconds".into()),
            RUN_DURATION_BUCKETS,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("fcw_request_latency_seconds".into()),
                REQUEST_LATENCY_BUCKETS,
            )
        })
        .and_then(|b| b.install_recorder())
        .map_err(|e| e.to_string())?;
    for &(name, kind, help) in SERIES {
        match kind {
            Kind::Counter => ::metrics::describe_counter!(name, help),
            Kind::Gauge => ::metrics::describe_gauge!(name, help),
            Kind::Histogram => ::metrics::describe_histogram!(name, help),
        }
    }
    Ok(handle)
}

/// Creates at zero the series alerts and panels select, for every job and HTTP provider the
/// config names: a run counter per outcome, the breaker state, Redis errors. Without them a healthy daemon that has not
/// failed yet looks like one that exports nothing, and "absent" hides "healthy".
pub fn zero_series(jobs: &[&'static str], providers: &[&'static str]) {
    for &job in jobs {
        for &outcome in RUN_OUTCOMES {
            ::metrics::counter!("fcw_runs_total", JOB_LABEL => job, "outcome" => outcome)
                .increment(0);
        }
    }
    ::metrics::counter!("fcw_redis_errors_total").increment(0);
    for &outcome in REQUEST_OUTCOMES {
        ::metrics::counter!("fcw_requests_total", "outcome" => outcome).increment(0);
    }
    for &provider in providers {
        ::metrics::gauge!("fcw_circuit_breaker_open", "provider" => provider).set(0.0);
        ::metrics::counter!("fcw_circuit_breaker_opened_total", "provider" => provider)
            .increment(0);
    }
}

/// Counts of one run, for its summary line. The counters live in a task-local, so everything a
/// run's task does (including the futures it polls concurrently) counts toward that run only,
/// while jobs running at the same time keep separate counts.
#[derive(Debug, Default)]
pub struct RunCounters {
    pub upstream_requests: AtomicU64,
    pub upstream_retries: AtomicU64,
    pub redis_round_trips: AtomicU64,
}

tokio::task_local! {
    static RUN: Arc<RunCounters>;
}

/// Runs `f` with `counters` collecting what it does.
pub async fn counting<F: Future>(counters: Arc<RunCounters>, f: F) -> F::Output {
    RUN.scope(counters, f).await
}

fn bump(field: fn(&RunCounters) -> &AtomicU64) {
    let _ = RUN.try_with(|c| field(c).fetch_add(1, Ordering::Relaxed));
}

/// One Redis round trip (a command or a pipeline).
pub fn redis_round_trip() {
    bump(|c| &c.redis_round_trips);
}

/// `fcw_redis_errors_total`: failed Redis round trips.
pub fn redis_error() {
    ::metrics::counter!("fcw_redis_errors_total").increment(1);
}

/// `fcw_upstream_requests_total{provider, endpoint, status}`: every HTTP attempt, by status class
/// (`2xx`, `4xx`, `5xx`, ...) or `timeout` / `error` when no status came back.
pub fn upstream_request(provider: &'static str, endpoint: &'static str, status: &'static str) {
    ::metrics::counter!("fcw_upstream_requests_total", "provider" => provider, "endpoint" => endpoint, "status" => status)
        .increment(1);
    bump(|c| &c.upstream_requests);
}

/// `fcw_upstream_retries_total{provider, endpoint}`.
pub fn upstream_retry(provider: &'static str, endpoint: &'static str) {
    ::metrics::counter!("fcw_upstream_retries_total", "provider" => provider, "endpoint" => endpoint)
        .increment(1);
}

/// `fcw_rate_limit_waits_total{provider}`: requests that had to wait for the token bucket or a
/// 429 pause.
pub fn rate_limit_wait(provider: &'static str) {
    ::metrics::counter!("fcw_rate_limit_waits_total", "provider" => provider).increment(1);
}

/// `fcw_circuit_breaker_open{provider}` (1 while open) and `fcw_circuit_breaker_opened_total`.
pub fn breaker_state(provider: &'static str, open: bool) {
    ::metrics::gauge!("fcw_circuit_breaker_open", "provider" => provider).set(if open {
        1.0
    } else {
        0.0
    });
    if open {
        ::metrics::counter!("fcw_circuit_breaker_opened_total", "provider" => provider)
            .increment(1);
    }
}

/// The metrics of a finished run: `fcw_runs_total{job_name, outcome}`,
/// `fcw_run_duration_seconds{job_name}`, `fcw_tickers_total{job_name, outcome}` and, on success,
/// `fcw_last_success_timestamp_seconds{job_name}` (what "cache not warmed for 15 minutes" alerts use)
/// when the run went through the whole watchlist (`whole`; a warm request's run does not).
/// `tickers` are the run's ticker counts by outcome (`seen`, `fetched`, `written`, ...).
pub fn run_finished(
    job: &'static str,
    outcome: &'static str,
    duration: std::time::Duration,
    tickers: &[(&'static str, u64)],
    whole: bool,
) {
    ::metrics::counter!("fcw_runs_total", JOB_LABEL => job, "outcome" => outcome).increment(1);
    ::metrics::histogram!("fcw_run_duration_seconds", JOB_LABEL => job)
        .record(duration.as_secs_f64());
    for &(what, n) in tickers {
        ::metrics::counter!("fcw_tickers_total", JOB_LABEL => job, "outcome" => what).increment(n);
    }
    if outcome == "ok" && whole {
        last_success(job, chrono::Utc::now());
    }
}

/// `fcw_last_success_timestamp_seconds{job_name}`.
pub fn last_success(job: &'static str, at: chrono::DateTime<chrono::Utc>) {
    ::metrics::gauge!("fcw_last_success_timestamp_seconds", JOB_LABEL => job)
        .set(at.timestamp_millis() as f64 / 1000.0);
}

/// `fcw_requests_total{outcome}`: `n` warm requests that ended as `outcome`.
pub fn requests(outcome: &'static str, n: u64) {
    ::metrics::counter!("fcw_requests_total", "outcome" => outcome).increment(n);
}

/// `fcw_request_latency_seconds`: one warmed request, `seconds` after it was added.
pub fn request_latency(seconds: f64) {
    ::metrics::histogram!("fcw_request_latency_seconds").record(seconds);
}

/// `fcw_runtime_tasks`: the runtime's live tasks now.
pub fn runtime_tasks(tasks: usize) {
    ::metrics::gauge!("fcw_runtime_tasks").set(tasks as f64);
}

/// `fcw_watchlist_tickers`, from a coverage count.
pub fn watchlist_tickers(tickers: u64) {
    ::metrics::gauge!("fcw_watchlist_tickers").set(tickers as f64);
}

/// `fcw_cache_keys{kind, state}`: watchlist tickers of one cache kind, by `state` (`present`,
/// `missing`, `expiring_soon`).
pub fn cache_keys(kind: &'static str, state: &'static str, tickers: u64) {
    ::metrics::gauge!("fcw_cache_keys", "kind" => kind, "state" => state).set(tickers as f64);
}

/// `fcw_market_calendar_expired{market}`: the market's data ends before the instant a TTL was
/// decided for.
pub fn market_calendar_expired(market: &str) {
    ::metrics::gauge!("fcw_market_calendar_expired", "market" => market.to_owned()).set(1.0);
}

/// `fcw_tickers_by_market_total{job_name, market}`: values a run wrote on one market's clock.
pub fn written_by_market(job: &'static str, market: &str, values: u64) {
    ::metrics::counter!("fcw_tickers_by_market_total", JOB_LABEL => job, "market" => market.to_owned())
        .increment(values);
}

/// `fcw_runs_total{job_name, outcome="skipped_overlap"}`: a tick that found the previous run still
/// going.
pub fn run_skipped_overlap(job: &'static str) {
    ::metrics::counter!("fcw_runs_total", JOB_LABEL => job, "outcome" => "skipped_overlap")
        .increment(1);
}

/// `fcw_integrity_members_checked_total{rule}`, `fcw_integrity_orphans_found_total{rule}`,
/// `fcw_integrity_members_removed_total{rule}`, `fcw_integrity_reindexed_total{rule}`.
pub fn integrity_rule(rule: &str, checked: u64, orphans: u64, removed: u64, reindexed: u64) {
    let rule = rule.to_owned();
    ::metrics::counter!("fcw_integrity_members_checked_total", "rule" => rule.clone())
        .increment(checked);
    ::metrics::counter!("fcw_integrity_orphans_found_total", "rule" => rule.clone())
        .increment(orphans);
    ::metrics::counter!("fcw_integrity_members_removed_total", "rule" => rule.clone())
        .increment(removed);
    ::metrics::counter!("fcw_integrity_reindexed_total", "rule" => rule).increment(reindexed);
}
