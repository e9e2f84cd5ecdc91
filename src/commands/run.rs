//! `run`: the daemon. Every enabled job on its schedule until a signal, the warm requests of the
//! app, the HTTP endpoint, the gauges it serves, and the systemd notifications.

use std::path::Path;
use std::time::Duration;

use crate::commands::common::{AppError, warn_if_the_grace_outlasts_stop_timeouts};
use crate::config::{ProviderName, Settings};
use crate::health::Health;
use crate::jobs::JobName;
use crate::runner::Runner;
use crate::scheduler;
use crate::server;
use crate::shutdown::Shutdown;
use crate::store::Store;
use crate::{metrics, notify, startup};

/// The daemon: every enabled job on its schedule until a signal, and the HTTP endpoint. Starts
/// while Redis is down (the runs fail and log it until it is back) and exits 0 after a clean
/// shutdown.
pub async fn run(
    settings: Settings,
    config_path: Option<&Path>,
    shutdown: Shutdown,
) -> Result<(), AppError> {
    warn_if_the_grace_outlasts_stop_timeouts(&settings);
    let metrics = metrics::install().map_err(AppError::Metrics)?;
    metrics::zero_series(&enabled_jobs(&settings), &http_providers(&settings));
    let listen = settings.server.address();
    let store = Store::lazy(&settings.redis)?;
    let runner = Runner::new(startup::shared(settings, store.clone())?, shutdown.clone());
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
    let requests = tokio::spawn(crate::requests::serve(runner.clone(), shutdown.clone()));
    scheduler::run(runner, shutdown.clone(), health).await;
    let _ = requests.await;
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

/// How often the gauge exporter looks whether the start-up runs are done.
const START_UP_POLL: Duration = Duration::from_millis(100);

/// The scheduler's heartbeat (and systemd watchdog ping) interval, at most.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// How often histogram buckets are compacted; the exporter needs it or they grow without bound.
const METRICS_UPKEEP: Duration = Duration::from_secs(10);

/// The jobs this daemon schedules.
fn enabled_jobs(settings: &Settings) -> Vec<&'static str> {
    settings
        .jobs
        .iter()
        .filter(|(_, job)| job.enabled)
        .map(|(name, _)| name)
        .collect()
}

/// The providers of every chain that call out over HTTP (and so have a circuit breaker).
fn http_providers(settings: &Settings) -> Vec<&'static str> {
    let p = &settings.provider;
    let mut names: Vec<&'static str> = [&p.stock, &p.options, &p.earnings]
        .into_iter()
        .flatten()
        .filter(|name| **name != ProviderName::Replay)
        .map(|name| name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}
