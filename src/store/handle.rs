//! The handle: connecting, retrying, batching, and tracking whether Redis answers.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};

use backon::{ExponentialBuilder, Retryable};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Client, Cmd, Pipeline, RedisError, RedisFuture, Value};
use tracing::Instrument;

use super::clients::{
    COMMAND_RETRIES, NodeTemplate, RETRY_MAX_DELAY, RETRY_MIN_DELAY, client, cluster,
    manager_config,
};
use super::error::{StoreError, is_transient};
use super::sentinel::{Primary, ToPrimary};
use crate::config::RedisSettings;
use crate::metrics;
use crate::traces;

/// The connection every command goes through. Cloning is cheap and shares it.
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    /// Routes each command to its slot's node and follows MOVED/ASK and failovers itself.
    Cluster(ClusterConnection),
    /// The primary the sentinels name, looked up again after it fails or is demoted.
    Sentinel(ToPrimary),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Sentinel(c) => c.get_db(),
        }
    }
}

/// The shared Redis handle. Cloning is cheap and shares the one connection.
#[derive(Clone)]
pub struct Store {
    pub(super) conn: Shared,
    /// A cluster's per-node connection settings, for commands that must visit every node.
    pub(super) nodes: Option<Arc<NodeTemplate>>,
    pub(super) address: String,
    /// Whether the last round trip worked ([`UP`], [`DOWN`] or [`UNKNOWN`]), so an outage is
    /// logged once when it starts and once when it ends, not on every failed command.
    pub(super) health: Arc<AtomicU8>,
}

pub(super) const UNKNOWN: u8 = 0;
pub(super) const UP: u8 = 1;
pub(super) const DOWN: u8 = 2;
/// Reachable, but the credentials were refused.
pub(super) const REFUSED: u8 = 3;

/// What the handle holds: a single server's manager, which it can replace, the cluster's
/// connection, or the lookup of a Sentinel-managed primary.
#[derive(Clone)]
pub(super) enum Shared {
    Single(Arc<Single>),
    Cluster(ClusterConnection),
    Sentinel(Arc<Primary>),
}

/// A single server's connection manager, and what it takes to build a new one.
///
/// The manager reconnects by itself after an I/O error, but a reconnect that fails to
/// authenticate (a rotated password, an ACL user missing on a new primary) leaves it holding
/// that failure for good: every command gets it, and nothing would ever restart the daemon.
/// On such a failure the store builds a new manager, so the next command connects afresh and
/// works as soon as the credentials do.
pub(super) struct Single {
    manager: RwLock<ConnectionManager>,
    pub(super) client: Client,
    config: ConnectionManagerConfig,
}

impl Store {
    /// Builds the handle without touching the network: the daemon must start (and report
    /// readiness problems) while Redis is down.
    pub fn lazy(settings: &RedisSettings) -> Result<Store, StoreError> {
        crate::tls::install_crypto_provider();
        let sentinel = &settings.sentinel;
        let (conn, address, nodes) = if sentinel.in_use() {
            let config = manager_config(settings);
            let sentinels: Vec<String> = sentinel.nodes.iter().map(|n| n.address()).collect();
            (
                Shared::Sentinel(Arc::new(Primary::new(settings, config)?)),
                format!(
                    "sentinel {} via {}",
                    sentinel.master_name,
                    sentinels.join(",")
                ),
                None,
            )
        } else if settings.cluster_nodes.is_empty() {
            let (client, config) = client(settings)?;
            let manager = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                .map_err(|e| StoreError::Client(format!("redis.url: {e}")))?;
            let single = Single {
                manager: RwLock::new(manager),
                client,
                config,
            };
            (
                Shared::Single(Arc::new(single)),
                settings.url.address(),
                None,
            )
        } else {
            let nodes: Vec<String> = settings.cluster_nodes.iter().map(|n| n.address()).collect();
            let (conn, template) = cluster(settings)?;
            (
                Shared::Cluster(conn),
                format!("cluster {}", nodes.join(",")),
                Some(Arc::new(template)),
            )
        };
        // The daemon starts optimistic, so Redis being down at start-up is logged as an outage.
        Ok(Store {
            conn,
            nodes,
            address,
            health: Arc::new(AtomicU8::new(UP)),
        })
    }

    /// Whether this is a Redis Cluster (no cross-slot pipelines or scripts).
    pub fn is_cluster(&self) -> bool {
        matches!(self.conn, Shared::Cluster(_))
    }

    /// Builds the handle and proves the server answers `PING`, riding out a blip: reconnects
    /// and retries for at most `redis.connect_timeout` in all, whether the server refuses
    /// connections or accepts them and never answers.
    pub async fn connect(settings: &RedisSettings) -> Result<Store, StoreError> {
        let store = Store::lazy(settings)?;
        // Failing here is reported as this call's error, not also as an outage.
        store.health.store(UNKNOWN, Ordering::Relaxed);
        let address = store.address.clone();
        let give_up = settings.connect_timeout;
        let ping = store.retry("PING", |mut conn| async move {
            redis::cmd("PING").query_async::<String>(&mut conn).await
        });
        let source = match tokio::time::timeout(give_up.get(), ping).await {
            Ok(Ok(_)) => return Ok(store),
            Ok(Err(StoreError::Command { source, .. })) => source,
            Ok(Err(other)) => return Err(other),
            Err(_) => std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {give_up} (redis.connect_timeout)"),
            )
            .into(),
        };
        Err(StoreError::Unreachable { address, source })
    }

    /// `host:port` of the server, for messages.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// A connection handle; it shares the one multiplexed connection.
    pub(super) fn connection(&self) -> Conn {
        match &self.conn {
            Shared::Single(single) => {
                Conn::Single(single.manager.read().expect("manager lock").clone())
            }
            Shared::Cluster(cluster) => Conn::Cluster(cluster.clone()),
            Shared::Sentinel(primary) => Conn::Sentinel(ToPrimary(primary.clone())),
        }
    }

    /// Runs `cmds` with one round trip on a single server (a pipeline, `MULTI`/`EXEC` when
    /// `atomic`, so it lands whole or not at all). A cluster cannot pipeline across slots: there
    /// each command is sent on its own, all at once, routed to its slot's node (the driver
    /// pipelines those per node), and `atomic` holds per command only.
    pub(super) async fn batch(
        &self,
        what: &'static str,
        cmds: &[Cmd],
        atomic: bool,
    ) -> Result<Vec<Value>, StoreError> {
        let mode = if atomic {
            Batch::Atomic
        } else {
            Batch::Pipeline
        };
        self.batch_in(what, cmds, mode, COMMAND_RETRIES).await
    }

    /// Like a non-atomic [`Store::batch`], except that a command the server refuses (`WRONGTYPE`
    /// on a key of another type) answers with its `Value::ServerError` instead of failing the
    /// batch, so one odd key cannot fail the others. A lost connection still fails it all.
    pub(super) async fn batch_each(
        &self,
        what: &'static str,
        cmds: &[Cmd],
    ) -> Result<Vec<Value>, StoreError> {
        self.batch_in(what, cmds, Batch::EachOwnReply, COMMAND_RETRIES)
            .await
    }

    /// `cmds` sent as `mode` says, with up to `retries` retries of a transport failure.
    pub(super) async fn batch_in(
        &self,
        what: &'static str,
        cmds: &[Cmd],
        mode: Batch,
        retries: usize,
    ) -> Result<Vec<Value>, StoreError> {
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        self.attempt(what, retries, |mut conn| async move {
            match conn {
                Conn::Single(_) | Conn::Sentinel(_) => {
                    let mut pipe = redis::pipe();
                    match mode {
                        Batch::Atomic => pipe.atomic(),
                        Batch::Pipeline => &mut pipe,
                        Batch::EachOwnReply => pipe.ignore_errors(),
                    };
                    for cmd in cmds {
                        pipe.add_command(cmd.clone());
                    }
                    pipe.query_async(&mut conn).await
                }
                Conn::Cluster(_) => {
                    futures_util::future::try_join_all(cmds.iter().map(|cmd| {
                        let mut conn = conn.clone();
                        async move {
                            match mode {
                                // The reply as it came, a server error included.
                                Batch::EachOwnReply => conn.req_packed_command(cmd).await,
                                _ => cmd.query_async::<Value>(&mut conn).await,
                            }
                        }
                    }))
                    .await
                }
            }
        })
        .await
    }

    /// The error for a command of `what` that the server refused with `error`.
    pub(super) fn refused(&self, what: &'static str, error: redis::ServerError) -> StoreError {
        StoreError::Command {
            address: self.address.clone(),
            what,
            source: error.into(),
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.connection();
        let result = redis::cmd("PING").query_async::<String>(&mut conn).await;
        self.observe(&result);
        result.map(drop).map_err(|source| StoreError::Unreachable {
            address: self.address.clone(),
            source,
        })
    }

    /// Whether the last round trip reached the server and was let in: during an outage or
    /// while the credentials are refused (both logged once) failed runs are routine.
    pub fn is_up(&self) -> bool {
        !matches!(self.health.load(Ordering::Relaxed), DOWN | REFUSED)
    }

    /// Notes a round trip's outcome: counts it for the run, and logs the start and end of an
    /// outage once each.
    pub(super) fn observe<T>(&self, result: &Result<T, RedisError>) {
        metrics::redis_round_trip();
        match result {
            Ok(_) => match self.health.swap(UP, Ordering::Relaxed) {
                DOWN => tracing::info!(redis = %self.address, "Redis is reachable again"),
                REFUSED => {
                    tracing::info!(redis = %self.address, "Redis accepts the credentials again")
                }
                _ => {}
            },
            Err(e) if e.kind() == redis::ErrorKind::AuthenticationFailed => {
                if self.health.swap(REFUSED, Ordering::Relaxed) != REFUSED {
                    tracing::error!(redis = %self.address, error = %e, "Redis refused the credentials; trying them again at every command until it accepts them");
                }
                metrics::redis_error();
                self.reconnect_afresh();
            }
            Err(e) if is_transient(e) => {
                if matches!(self.health.swap(DOWN, Ordering::Relaxed), UP | REFUSED) {
                    tracing::warn!(redis = %self.address, error = %e, "Redis is unreachable; retrying until it is back");
                }
                metrics::redis_error();
            }
            Err(_) => metrics::redis_error(),
        }
    }

    /// Replaces a single server's manager with a new, unconnected one (see [`Single`]).
    pub(super) fn reconnect_afresh(&self) {
        match &self.conn {
            Shared::Single(single) => match ConnectionManager::new_lazy_with_config(
                single.client.clone(),
                single.config.clone(),
            ) {
                Ok(manager) => *single.manager.write().expect("manager lock") = manager,
                Err(e) => tracing::warn!(error = %e, "cannot build a new Redis connection"),
            },
            Shared::Sentinel(primary) => primary.forget_any(),
            Shared::Cluster(_) => {}
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

    /// One `SSCAN` page of `set`: the next cursor (0 when done) and the members.
    pub async fn sscan(
        &self,
        what: &'static str,
        set: &[u8],
        cursor: u64,
        count: u32,
    ) -> Result<(u64, Vec<Vec<u8>>), StoreError> {
        self.retry(what, |mut conn| async move {
            redis::cmd("SSCAN")
                .arg(set)
                .arg(cursor)
                .arg("COUNT")
                .arg(count)
                .query_async(&mut conn)
                .await
        })
        .await
    }

    /// Runs an idempotent operation, retrying it while the connection is being re-established.
    /// Only transport failures are retried; a command the server rejects fails at once.
    pub(super) async fn retry<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T, StoreError>
    where
        F: FnMut(Conn) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        self.attempt(what, COMMAND_RETRIES, op).await
    }

    /// Runs an operation with up to `retries` retries of a transport failure (0: one attempt).
    pub(super) async fn attempt<T, F, Fut>(
        &self,
        what: &'static str,
        retries: usize,
        op: F,
    ) -> Result<T, StoreError>
    where
        F: FnMut(Conn) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let mut op = op;
        (|| {
            let attempt = op(self.connection())
                .instrument(tracing::info_span!(target: traces::TARGET, "redis", command = what));
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
                .with_max_times(retries)
                .with_jitter(),
        )
        .when(is_transient)
        .notify(|e, delay| tracing::debug!(what, error = %e, delay_ms = delay.as_millis() as u64, "retrying Redis command"))
        .await
        .map_err(|source| StoreError::Command {
            address: self.address.clone(),
            what,
            source,
        })
    }
}

/// How [`Store::batch_in`] sends its commands.
#[derive(Debug, Clone, Copy)]
pub(super) enum Batch {
    /// `MULTI`/`EXEC` on a single server: all or nothing.
    Atomic,
    /// One round trip; the first refused command fails the batch.
    Pipeline,
    /// One round trip; each command gets its own reply, errors included.
    EachOwnReply,
}
