//! Following a primary under Redis Sentinel: ask the sentinels where it is, connect to it, and
//! ask again once its connection fails or it answers as a replica.
//!
//! The redis crate finds the primary (`SENTINEL MASTERS`, then `ROLE` on the address named) but
//! hands back a client bound to that one address; its connection manager would keep
//! reconnecting to a primary that is gone or demoted. Here the manager is dropped on such an
//! error, so the retry that follows (every idempotent command is retried, see `Store::retry`)
//! asks the sentinels afresh and lands on the new primary.

use std::sync::RwLock;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{Cmd, ConnectionAddr, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, Value};

use super::error::{StoreError, is_transient};
use crate::config::RedisSettings;

/// The primary named by the sentinels, and the connection to it.
pub(super) struct Primary {
    master_name: String,
    db: i64,
    sentinels: tokio::sync::Mutex<SentinelClient>,
    config: ConnectionManagerConfig,
    /// The whole lookup (every sentinel asked, the primary's `ROLE` checked) gives up after
    /// this: a sentinel or primary that accepts connections and never answers must not hang
    /// a command past its own timeouts.
    lookup_timeout: Duration,
    current: RwLock<Option<Current>>,
}

#[derive(Clone)]
struct Current {
    manager: ConnectionManager,
    address: String,
    client: redis::Client,
}

impl Primary {
    /// Builds the lookup without touching the network.
    pub(super) fn new(
        settings: &RedisSettings,
        config: ConnectionManagerConfig,
    ) -> Result<Primary, StoreError> {
        let s = &settings.sentinel;
        let bad = |e: RedisError| StoreError::Client(format!("redis.sentinel: {e}"));
        let addrs = s
            .nodes
            .iter()
            .map(|n| n.expose().into_connection_info().map(|i| i.addr().clone()))
            .collect::<Result<Vec<ConnectionAddr>, _>>()
            .map_err(bad)?;
        let ca =
            match &settings.ca_file {
                Some(ca) => Some(std::fs::read(ca).map_err(|e| {
                    StoreError::Client(format!("redis.ca_file {}: {e}", ca.display()))
                })?),
                None => None,
            };
        let certs = |pem: &Vec<u8>| redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.clone()),
        };
        let mut builder =
            SentinelClientBuilder::new(addrs, &s.master_name, SentinelServerType::Master)
                .map_err(bad)?
                .set_client_to_redis_db(i64::from(s.db));
        if !s.username.is_empty() {
            builder = builder.set_client_to_redis_username(&s.username);
        }
        if let Some(password) = &settings.password {
            builder = builder.set_client_to_redis_password(password.expose());
        }
        if s.tls {
            builder = builder.set_client_to_redis_tls_mode(redis::TlsMode::Secure);
            if let Some(pem) = &ca {
                builder = builder.set_client_to_redis_certificates(certs(pem));
            }
        }
        // The sentinels' own user and password: from the keys, else from their URLs.
        let first = s.nodes.first();
        let user = Some(s.sentinel_username.as_str())
            .filter(|u| !u.is_empty())
            .or_else(|| first.and_then(|n| n.username()));
        if let Some(user) = user {
            builder = builder.set_client_to_sentinel_username(user);
        }
        let url_password = first.and_then(|n| {
            n.expose()
                .into_connection_info()
                .ok()
                .and_then(|i| i.redis_settings().password().map(str::to_owned))
        });
        let password = s
            .sentinel_password
            .as_ref()
            .map(|p| p.expose().to_owned())
            .or(url_password);
        if let Some(password) = password {
            builder = builder.set_client_to_sentinel_password(password);
        }
        if s.nodes.iter().any(|n| n.is_tls())
            && let Some(pem) = &ca
        {
            builder = builder.set_client_to_sentinel_certificates(certs(pem));
        }
        let client = builder.build().map_err(bad)?;
        Ok(Primary {
            master_name: s.master_name.clone(),
            db: i64::from(s.db),
            sentinels: tokio::sync::Mutex::new(client),
            config,
            lookup_timeout: settings.connect_timeout.get(),
            current: RwLock::new(None),
        })
    }

    /// The manager of the primary, looked up first when there is none.
    async fn current(&self) -> Result<Current, RedisError> {
        if let Some(current) = self.current.read().expect("primary lock").clone() {
            return Ok(current);
        }
        // One lookup at a time: the commands waiting behind it use its answer.
        let mut sentinels = self.sentinels.lock().await;
        if let Some(current) = self.current.read().expect("primary lock").clone() {
            return Ok(current);
        }
        let client = tokio::time::timeout(self.lookup_timeout, sentinels.async_get_client())
            .await
            .unwrap_or_else(|_| {
                Err(RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no answer within {:?} (redis.connect_timeout)",
                        self.lookup_timeout
                    ),
                )))
            })
            .map_err(|e| self.not_found(e))?;
        let address = client.get_connection_info().addr().to_string();
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), self.config.clone())?;
        tracing::info!(master = %self.master_name, primary = %address, "Redis primary found through Sentinel");
        let current = Current {
            manager,
            address,
            client,
        };
        *self.current.write().expect("primary lock") = Some(current.clone());
        Ok(current)
    }

    /// A client of the primary of the moment, for a connection of its own.
    pub(super) async fn client(&self) -> Result<redis::Client, RedisError> {
        Ok(self.current().await?.client)
    }

    /// A failed lookup, as an I/O error: the primary is unreachable for now (during a failover
    /// the sentinels name none, or one that is down), and the command is retried. Refused
    /// credentials stay what they are, so the store reports them as such.
    fn not_found(&self, e: RedisError) -> RedisError {
        let message = format!(
            "the sentinels name no reachable primary for {:?}: {e}",
            self.master_name
        );
        if e.kind() == redis::ErrorKind::AuthenticationFailed {
            return RedisError::from((
                redis::ErrorKind::AuthenticationFailed,
                "credentials refused",
                message,
            ));
        }
        RedisError::from(std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            message,
        ))
    }

    /// Drops the connection to `address` after `error` when it means the primary is gone or
    /// demoted, so the next command looks it up again.
    fn observe<T>(&self, address: &str, result: &Result<T, RedisError>) {
        let Err(error) = result else { return };
        // A write queued in `MULTI` on a demoted primary fails the whole `EXEC` instead.
        let demoted = error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ExecAbort);
        if demoted || is_transient(error) {
            self.forget(address);
        }
    }

    /// Forgets the connection to `address` (a newer one is kept).
    fn forget(&self, address: &str) {
        let mut current = self.current.write().expect("primary lock");
        if current.as_ref().is_some_and(|c| c.address == address) {
            *current = None;
        }
    }

    /// Forgets whatever connection there is (refused credentials: the next one starts afresh).
    pub(super) fn forget_any(&self) {
        *self.current.write().expect("primary lock") = None;
    }
}

/// A connection through [`Primary`]: each command goes to the primary of the moment.
#[derive(Clone)]
pub(super) struct ToPrimary(pub(super) std::sync::Arc<Primary>);

impl ConnectionLike for ToPrimary {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let Current {
                mut manager,
                address,
                ..
            } = self.0.current().await?;
            let result = manager.req_packed_command(cmd).await;
            self.0.observe(&address, &result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let Current {
                mut manager,
                address,
                ..
            } = self.0.current().await?;
            let result = manager.req_packed_commands(pipeline, offset, count).await;
            self.0.observe(&address, &result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.0.db
    }
}
