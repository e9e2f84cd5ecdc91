//! Building the clients from `[redis]`: a single server's manager, or the cluster's connection
//! and what a per-node connection needs.

use std::time::Duration;

use redis::aio::ConnectionManagerConfig;
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Client, IntoConnectionInfo, RedisError};

use super::error::StoreError;
use crate::config::RedisSettings;

/// Attempts for one idempotent command: the first plus this many retries. Enough to ride out the
/// manager's reconnect after a dropped connection; a longer outage is the caller's to report.
pub const COMMAND_RETRIES: usize = 3;
/// Backoff between those attempts: exponential from this floor ...
pub(super) const RETRY_MIN_DELAY: Duration = Duration::from_millis(100);
/// ... to this cap, with jitter so many workers do not retry in lockstep.
pub(super) const RETRY_MAX_DELAY: Duration = Duration::from_secs(2);
/// Reconnect attempts the manager makes inside one command. Kept low: [`Store::retry`] already
/// retries with backoff, and the two would multiply (a command during an outage would block for
/// many seconds instead of failing in about 3).
pub(super) const RECONNECT_RETRIES: usize = 1;

pub(super) fn client(
    settings: &RedisSettings,
) -> Result<(Client, ConnectionManagerConfig), StoreError> {
    let bad = |e: RedisError| StoreError::Client(format!("redis.url: {e}"));
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
    Ok((client, manager_config(settings)))
}

/// How a single server's (or the Sentinel primary's) connection manager reconnects and waits.
pub(super) fn manager_config(settings: &RedisSettings) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_number_of_retries(RECONNECT_RETRIES)
        .set_min_delay(RETRY_MIN_DELAY)
        .set_max_delay(RETRY_MAX_DELAY)
        .set_connection_timeout(Some(settings.connect_timeout.get()))
        .set_response_timeout(Some(settings.response_timeout.get()))
}

/// A lazy cluster connection: it connects (and learns the topology) on first use, so the daemon
/// starts while the cluster is down.
pub(super) fn cluster(
    settings: &RedisSettings,
) -> Result<(ClusterConnection, NodeTemplate), StoreError> {
    let bad = |e: RedisError| StoreError::Client(format!("redis.cluster_nodes: {e}"));
    let nodes = settings
        .cluster_nodes
        .iter()
        .map(|n| n.expose().into_connection_info())
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    let (connect, respond) = (
        settings.connect_timeout.get(),
        settings.response_timeout.get(),
    );
    let seed = nodes
        .first()
        .map(|n| n.redis_settings().clone())
        .unwrap_or_default();
    let mut builder = ClusterClientBuilder::new(nodes)
        .connection_timeout(connect)
        .response_timeout(respond);
    if let Some(password) = &settings.password {
        builder = builder.password(password.expose());
    }
    if let Some(user) = settings.cluster_nodes.iter().find_map(|n| n.username()) {
        builder = builder.username(user);
    }
    if settings.cluster_nodes.iter().any(|n| n.is_tls()) {
        builder = builder.tls(redis::TlsMode::Secure);
    }
    let ca = match &settings.ca_file {
        Some(ca) => Some(
            std::fs::read(ca)
                .map_err(|e| StoreError::Client(format!("redis.ca_file {}: {e}", ca.display())))?,
        ),
        None => None,
    };
    if let Some(pem) = &ca {
        builder = builder.certs(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.clone()),
        });
    }
    let client = builder.build().map_err(bad)?;
    let config = ClusterConfig::new()
        .set_connection_timeout(connect)
        .set_response_timeout(respond);
    let mut redis = seed;
    if let Some(password) = &settings.password {
        redis = redis.set_password(password.expose());
    }
    let template = NodeTemplate {
        scheme: if settings.cluster_nodes.iter().any(|n| n.is_tls()) {
            "rediss"
        } else {
            "redis"
        },
        redis,
        ca,
        config: redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect))
            .set_response_timeout(Some(respond)),
    };
    Ok((
        client.get_pending_async_connection_with_config(config),
        template,
    ))
}

/// How to open a direct connection to one cluster node: the seed node's settings (user,
/// password, TLS, CA, timeouts) with another address.
pub struct NodeTemplate {
    scheme: &'static str,
    redis: redis::RedisConnectionInfo,
    ca: Option<Vec<u8>>,
    config: redis::AsyncConnectionConfig,
}

impl NodeTemplate {
    pub(super) async fn connect(
        &self,
        host: &str,
        port: u16,
    ) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let info = format!("{}://{host}:{port}", self.scheme)
            .into_connection_info()?
            .set_redis_settings(self.redis.clone());
        let client = match &self.ca {
            Some(pem) => Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            )?,
            None => Client::open(info)?,
        };
        client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
    }
}
