//! The Prometheus series the daemon records, named in one place. Recording goes through the
//! `metrics` facade: without an installed exporter (the CLI commands) it costs nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::provider::ProviderError;
use crate::provider::http::Reply;

/// Buckets of `fcw_run_duration_seconds`: from a quick run to the longest default timeout.
const RUN_DURATION_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

/// Installs the Prometheus recorder (once per process) and describes every series.
pub fn install() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("fcw_run_duration_seconds".into()),
            RUN_DURATION_BUCKETS,
        )
        .and_then(|b| b.install_recorder())
        .map_err(|e| e.to_string())?;
    for (name, help) in [
        (
            "fcw_runs_total",
            "Job runs by job and outcome (ok, failed, interrupted, skipped_lock, skipped_overlap).",
        ),
        (
            "fcw_tickers_total",
            "Tickers by job and outcome (seen, invalid, skipped_fresh, fetched, written, unknown, failed).",
        ),
        (
            "fcw_upstream_requests_total",
            "HTTP requests to market-data providers by provider, endpoint and status class.",
        ),
        (
            "fcw_upstream_retries_total",
            "Retried upstream requests by provider and endpoint.",
        ),
        (
            "fcw_rate_limit_waits_total",
            "Upstream requests that waited for the token bucket or a 429 pause, by provider.",
        ),
        (
            "fcw_circuit_breaker_opened_total",
            "Times a provider's circuit breaker opened.",
        ),
        ("fcw_redis_errors_total", "Failed Redis round trips."),
        (
            "fcw_integrity_members_checked_total",
            "Index members checked by the integrity job, by rule.",
        ),
        (
            "fcw_integrity_orphans_found_total",
            "Index members found without their object, by rule.",
        ),
        (
            "fcw_integrity_members_removed_total",
            "Orphaned index members removed, by rule.",
        ),
        (
            "fcw_integrity_reindexed_total",
            "Objects re-added to their index, by rule.",
        ),
    ] {
        metrics::describe_counter!(name, help);
    }
    metrics::describe_histogram!(
        "fcw_run_duration_seconds",
        metrics::Unit::Seconds,
        "Duration of job runs, by job."
    );
    metrics::describe_gauge!(
        "fcw_last_success_timestamp_seconds",
        metrics::Unit::Seconds,
        "Unix time of the last successful run, by job."
    );
    metrics::describe_gauge!(
        "fcw_circuit_breaker_open",
        "1 while a provider's circuit breaker is open."
    );
    Ok(handle)
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
    metrics::counter!("fcw_redis_errors_total").increment(1);
}

/// `fcw_upstream_requests_total{provider, endpoint, status}`: every HTTP attempt, by status class
/// (`2xx`, `4xx`, `5xx`, ...) or `timeout` / `error` when no status came back.
pub fn upstream_request(
    provider: &'static str,
    endpoint: &'static str,
    outcome: &Result<Reply, ProviderError>,
) {
    let status = match outcome {
        Ok(reply) => match reply.status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        },
        Err(ProviderError::Timeout { .. }) => "timeout",
        Err(_) => "error",
    };
    metrics::counter!("fcw_upstream_requests_total", "provider" => provider, "endpoint" => endpoint, "status" => status)
        .increment(1);
    bump(|c| &c.upstream_requests);
}

/// `fcw_upstream_retries_total{provider, endpoint}`.
pub fn upstream_retry(provider: &'static str, endpoint: &'static str) {
    metrics::counter!("fcw_upstream_retries_total", "provider" => provider, "endpoint" => endpoint)
        .increment(1);
}

/// `fcw_rate_limit_waits_total{provider}`: requests that had to wait for the token bucket or a
/// 429 pause.
pub fn rate_limit_wait(provider: &'static str) {
    metrics::counter!("fcw_rate_limit_waits_total", "provider" => provider).increment(1);
}

/// `fcw_circuit_breaker_open{provider}` (1 while open) and `fcw_circuit_breaker_opened_total`.
pub fn breaker_state(provider: &'static str, open: bool) {
    metrics::gauge!("fcw_circuit_breaker_open", "provider" => provider).set(if open {
        1.0
    } else {
        0.0
    });
    if open {
        metrics::counter!("fcw_circuit_breaker_opened_total", "provider" => provider).increment(1);
    }
}

/// The metrics of a finished run: `fcw_runs_total{job, outcome}`,
/// `fcw_run_duration_seconds{job}`, `fcw_tickers_total{job, outcome}` and, on success,
/// `fcw_last_success_timestamp_seconds{job}` (what "cache not warmed for 15 minutes" alerts use).
pub fn run_finished(
    job: &'static str,
    outcome: &'static str,
    duration: std::time::Duration,
    report: &crate::jobs::RunReport,
) {
    metrics::counter!("fcw_runs_total", "job" => job, "outcome" => outcome).increment(1);
    metrics::histogram!("fcw_run_duration_seconds", "job" => job).record(duration.as_secs_f64());
    for (what, n) in [
        ("seen", report.seen),
        ("invalid", report.invalid),
        ("skipped_fresh", report.skipped_fresh),
        ("fetched", report.fetched),
        ("written", report.written),
        ("unknown", report.unknown),
        ("failed", report.failed),
    ] {
        metrics::counter!("fcw_tickers_total", "job" => job, "outcome" => what).increment(n);
    }
    if outcome == "ok" {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        metrics::gauge!("fcw_last_success_timestamp_seconds", "job" => job).set(now.as_secs_f64());
    }
}

/// `fcw_runs_total{job, outcome="skipped_overlap"}`: a tick that found the previous run still
/// going.
pub fn run_skipped_overlap(job: &'static str) {
    metrics::counter!("fcw_runs_total", "job" => job, "outcome" => "skipped_overlap").increment(1);
}

/// `fcw_integrity_members_checked_total{rule}`, `fcw_integrity_orphans_found_total{rule}`,
/// `fcw_integrity_members_removed_total{rule}`, `fcw_integrity_reindexed_total{rule}`.
pub fn integrity_rule(rule: &str, checked: u64, orphans: u64, removed: u64, reindexed: u64) {
    let rule = rule.to_owned();
    metrics::counter!("fcw_integrity_members_checked_total", "rule" => rule.clone())
        .increment(checked);
    metrics::counter!("fcw_integrity_orphans_found_total", "rule" => rule.clone())
        .increment(orphans);
    metrics::counter!("fcw_integrity_members_removed_total", "rule" => rule.clone())
        .increment(removed);
    metrics::counter!("fcw_integrity_reindexed_total", "rule" => rule).increment(reindexed);
}
