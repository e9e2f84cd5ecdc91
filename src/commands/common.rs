//! What the commands share: the error every command returns (with its exit code), connecting
//! to Redis before a command that needs it, and the start-up warning about a long grace.

use std::time::Duration;

use crate::config::{ConfigError, Settings};
use crate::jobs::JobName;
use crate::local_redis::LocalRedisError;
use crate::provider::SetupError;
use crate::shutdown::{Shutdown, Signal};
use crate::store::{Store, StoreError};

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

/// [`Store::connect`] for a command that needs Redis to answer first (exit 3 after
/// `redis.connect_timeout`), unless a signal comes first (exit 130/143 at once).
pub async fn connect(settings: &Settings, shutdown: &Shutdown) -> Result<Store, AppError> {
    tokio::select! {
        store = Store::connect(&settings.redis) => Ok(store?),
        _ = shutdown.requested() => Err(AppError::Interrupted(
            shutdown.signal().unwrap_or(Signal::Terminate),
        )),
    }
}

/// A grace longer than the usual stop timeouts is cut short by a SIGKILL: say so at start-up.
pub fn warn_if_the_grace_outlasts_stop_timeouts(settings: &Settings) {
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

fn failed_jobs(failed: &[(JobName, String)]) -> String {
    failed
        .iter()
        .map(|(job, why)| format!("job {job} failed: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}
