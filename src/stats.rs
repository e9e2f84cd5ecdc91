//! The Prometheus series the daemon records, named in one place. Recording goes through the
//! `metrics` facade: without an installed exporter (the CLI commands) it costs nothing.

use crate::provider::ProviderError;
use crate::provider::http::Reply;

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
