//! What each command does once the configuration has loaded. Errors are typed so the binary can
//! map each to its documented exit code.

use std::io::Write;

use chrono::Utc;

use crate::calendar::Calendar;
use crate::cli::{Command, JobArg};
use crate::config::{ConfigError, Settings};
use crate::explain;
use crate::local_redis::LocalRedisError;
use crate::shutdown::{Shutdown, Signal};
use crate::store::{Store, StoreError};
use crate::ttl::TtlPolicy;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("config error: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Redis(#[from] StoreError),
    #[error(transparent)]
    LocalRedis(#[from] LocalRedisError),
    #[error("job `{0}` is not available in this version")]
    JobUnavailable(&'static str),
    #[error("interrupted by {0:?} before the job finished")]
    Interrupted(Signal),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

impl AppError {
    /// The documented exit code: 1 job failed, 2 usage/config, 3 Redis unreachable,
    /// 130/143 interrupted.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Config(_) => 2,
            AppError::Redis(e) if e.is_unreachable() => 3,
            AppError::Interrupted(signal) => signal.exit_code(),
            AppError::Redis(_)
            | AppError::LocalRedis(_)
            | AppError::JobUnavailable(_)
            | AppError::Output(_) => 1,
        }
    }
}

/// Runs one command. Command output goes to `out` (stdout in the binary); logs go to stderr.
pub async fn execute(
    command: Command,
    settings: Settings,
    shutdown: Shutdown,
    out: &mut dyn Write,
) -> Result<(), AppError> {
    match command {
        Command::CheckConfig { connect } => check_config(&settings, connect, out).await,
        Command::Run => run(&settings, shutdown).await,
        Command::Once { job } => once(&settings, job).await,
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
        Command::Demo { redis_url } => crate::demo::run(settings, redis_url, out).await,
    }
}

/// Prints the effective config; with `connect`, appends the Redis check as TOML comments so the
/// output stays valid TOML.
async fn check_config(
    settings: &Settings,
    connect: bool,
    out: &mut dyn Write,
) -> Result<(), AppError> {
    out.write_all(settings.to_redacted_toml().as_bytes())?;
    if connect {
        let store = Store::connect(&settings.redis).await?;
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

/// The daemon. Until the scheduler lands it holds the Redis handle and waits for a signal.
async fn run(settings: &Settings, shutdown: Shutdown) -> Result<(), AppError> {
    let store = Store::lazy(&settings.redis)?;
    tracing::info!(redis = store.address(), "daemon started");
    shutdown.requested().await;
    tracing::info!(signal = ?shutdown.signal(), "daemon stopped");
    Ok(())
}

async fn once(settings: &Settings, job: JobArg) -> Result<(), AppError> {
    Store::connect(&settings.redis).await?;
    Err(AppError::JobUnavailable(match job {
        JobArg::Stock => "stock",
        JobArg::Options => "options",
        JobArg::Earnings => "earnings",
        JobArg::Integrity => "integrity",
        JobArg::All => "all",
    }))
}
