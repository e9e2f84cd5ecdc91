//! Redis access: one auto-reconnecting, multiplexed connection shared by every job.
//!
//! The redis crate's `ConnectionManager` reconnects in the background but hands the failing
//! command's error back to its caller, so idempotent commands go through [`Store::retry`]. Its
//! default timeouts (1 s connect, 500 ms per reply) are too short for big pipelines; ours come
//! from `[redis]`. Redis Cluster (`redis.cluster_nodes`) is rejected by the config for now; this
//! type is where a cluster connection will plug in.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, IntoConnectionInfo, RedisError};

use crate::config::RedisSettings;
use crate::stats;

/// Attempts for one idempotent command: the first plus this many retries. Enough to ride out the
/// manager's reconnect after a dropped connection; a longer outage is the caller's to report.
const COMMAND_RETRIES: usize = 3;
/// Backoff between those attempts: exponential from this floor ...
const RETRY_MIN_DELAY: Duration = Duration::from_millis(100);
/// ... to this cap, with jitter so many workers do not retry in lockstep.
const RETRY_MAX_DELAY: Duration = Duration::from_secs(2);
/// Reconnect attempts the manager makes inside one command. Kept low: [`Store::retry`] already
/// retries with backoff, and the two would multiply (a command during an outage would block for
/// many seconds instead of failing in about 3).
const RECONNECT_RETRIES: usize = 1;

/// A Redis failure, naming the server (never its password).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis.url: {0}")]
    Client(String),
    #[error("cannot connect to Redis at {address}: {source}")]
    Unreachable { address: String, source: RedisError },
    #[error("Redis at {address}: {what} failed: {source}")]
    Command {
        address: String,
        what: &'static str,
        source: RedisError,
    },
}

impl StoreError {
    /// True when the server could not be reached at all (exit code 3), as opposed to a command
    /// the server refused.
    pub fn is_unreachable(&self) -> bool {
        match self {
            StoreError::Unreachable { .. } => true,
            StoreError::Command { source, .. } => is_transient(source),
            StoreError::Client(_) => false,
        }
    }
}

/// The shared Redis handle. Cloning is cheap and shares the one connection.
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    address: String,
    /// Whether the last round trip worked ([`UP`], [`DOWN`] or [`UNKNOWN`]), so an outage is
    /// logged once when it starts and once when it ends, not on every failed command.
    health: Arc<AtomicU8>,
}

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

impl Store {
    /// Builds the handle without touching the network: the daemon must start (and report
    /// readiness problems) while Redis is down.
    pub fn lazy(settings: &RedisSettings) -> Result<Store, StoreError> {
        let (client, config) = client(settings)?;
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| StoreError::Client(e.to_string()))?;
        // The daemon starts optimistic, so Redis being down at start-up is logged as an outage.
        Ok(Store {
            conn,
            address: settings.url.address(),
            health: Arc::new(AtomicU8::new(UP)),
        })
    }

    /// Builds the handle and proves the server answers `PING`, riding out a blip of a few
    /// seconds.
    pub async fn connect(settings: &RedisSettings) -> Result<Store, StoreError> {
        let store = Store::lazy(settings)?;
        // Failing here is reported as this call's error, not also as an outage.
        store.health.store(UNKNOWN, Ordering::Relaxed);
        let address = store.address.clone();
        store
            .retry("PING", |mut conn| async move {
                redis::cmd("PING").query_async::<String>(&mut conn).await
            })
            .await
            .map_err(|e| match e {
                StoreError::Command { source, .. } => StoreError::Unreachable { address, source },
                other => other,
            })?;
        Ok(store)
    }

    /// `host:port` of the server, for messages.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// A connection handle for pipelines and iterators; it shares the one multiplexed socket.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let result = redis::cmd("PING").query_async::<String>(&mut conn).await;
        self.observe(&result);
        result.map(drop).map_err(|source| StoreError::Unreachable {
            address: self.address.clone(),
            source,
        })
    }

    /// Whether the last round trip reached the server.
    pub fn is_up(&self) -> bool {
        self.health.load(Ordering::Relaxed) != DOWN
    }

    /// Notes a round trip's outcome: counts it for the run, and logs the start and end of an
    /// outage once each.
    fn observe<T>(&self, result: &Result<T, RedisError>) {
        stats::redis_round_trip();
        match result {
            Ok(_) => {
                if self.health.swap(UP, Ordering::Relaxed) == DOWN {
                    tracing::info!(redis = %self.address, "Redis is reachable again");
                }
            }
            Err(e) if is_transient(e) => {
                if self.health.swap(DOWN, Ordering::Relaxed) == UP {
                    tracing::warn!(redis = %self.address, error = %e, "Redis is unreachable; retrying until it is back");
                }
                stats::redis_error();
            }
            Err(_) => stats::redis_error(),
        }
    }

    /// The server's `redis_version` from `INFO server`.
    pub async fn server_version(&self) -> Result<String, StoreError> {
        let info: String = self
            .retry("INFO server", |mut conn| async move {
                redis::cmd("INFO")
                    .arg("server")
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(info
            .lines()
            .find_map(|line| line.strip_prefix("redis_version:"))
            .unwrap_or("unknown")
            .trim()
            .to_owned())
    }

    /// Runs an idempotent operation, retrying it while the connection is being re-established.
    /// Only transport failures are retried; a command the server rejects fails at once.
    pub async fn retry<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T, StoreError>
    where
        F: FnMut(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let mut op = op;
        let conn = self.conn.clone();
        (|| {
            let attempt = op(conn.clone());
            async move {
                let result = attempt.await;
                self.observe(&result);
                result
            }
        })
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(RETRY_MIN_DELAY)
                .with_max_delay(RETRY_MAX_DELAY)
                .with_max_times(COMMAND_RETRIES)
                .with_jitter(),
        )
        .when(is_transient)
        .notify(|e, delay| tracing::debug!(what, error = %e, ?delay, "retrying Redis command"))
        .await
        .map_err(|source| StoreError::Command {
            address: self.address.clone(),
            what,
            source,
        })
    }
}

/// A failure of the connection rather than of the command.
pub fn is_transient(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

fn client(settings: &RedisSettings) -> Result<(Client, ConnectionManagerConfig), StoreError> {
    crate::tls::install_crypto_provider();
    let bad = |e: RedisError| StoreError::Client(e.to_string());
    let mut info = settings.url.expose().into_connection_info().map_err(bad)?;
    if let Some(password) = &settings.password {
        let redis = info
            .redis_settings()
            .clone()
            .set_password(password.expose());
        info = info.set_redis_settings(redis);
    }
    let client = match &settings.ca_file {
        Some(ca) => {
            let pem = std::fs::read(ca)
                .map_err(|e| StoreError::Client(format!("redis.ca_file {}: {e}", ca.display())))?;
            Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            )
            .map_err(bad)?
        }
        None => Client::open(info).map_err(bad)?,
    };
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(RECONNECT_RETRIES)
        .set_min_delay(RETRY_MIN_DELAY)
        .set_max_delay(RETRY_MAX_DELAY)
        .set_connection_timeout(Some(settings.connect_timeout.get()))
        .set_response_timeout(Some(settings.response_timeout.get()));
    Ok((client, config))
}
