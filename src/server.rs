//! The daemon's HTTP endpoint (`server.listen`): `/healthz`, `/readyz` and `/metrics`.
//!
//! Liveness is the scheduler's heartbeat, not merely "the process answers"; readiness is Redis
//! answering `PING`, so an orchestrator stops routing to (or alerting on) a replica that cannot
//! reach Redis without restarting it.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::health::Health;
use crate::shutdown::Shutdown;
use crate::store::Store;

/// How long `/readyz` waits for Redis to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(2);
#[derive(Clone)]
struct AppState {
    health: Arc<Health>,
    store: Store,
    metrics: PrometheusHandle,
}

/// Serves until shutdown.
pub async fn serve(
    listener: tokio::net::TcpListener,
    health: Arc<Health>,
    store: Store,
    metrics: PrometheusHandle,
    shutdown: Shutdown,
) {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AppState {
            health,
            store,
            metrics,
        });
    let stop = async move { shutdown.requested().await };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::error!(error = %e, "the HTTP endpoint failed");
    }
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    if state.health.is_alive() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "scheduler stalled\n")
    }
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n".to_owned()),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("redis: {e}\n")),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("redis: no answer within {}s\n", READY_TIMEOUT.as_secs()),
        ),
    }
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    crate::metrics::runtime_tasks(
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
    );
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
