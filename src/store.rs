//! Redis access: one auto-reconnecting, multiplexed connection shared by every job, to a single
//! server or a Redis Cluster.
//!
//! The redis crate's connections reconnect in the background but hand the failing command's
//! error back to its caller, so idempotent commands go through [`Store::retry`]. Its default
//! timeouts (1 s connect, 500 ms per reply) are too short for big pipelines; ours come from
//! `[redis]`. A cluster cannot run a pipeline across slots, nor a `SCAN` of the whole keyspace on
//! one node: [`Store::batch`] and [`KeyScan`] hide both differences.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Client, Cmd, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, Value};

use crate::config::RedisSettings;
use crate::metrics;

/// Attempts for one idempotent command: the first plus this many retries. Enough to ride out the
/// manager's reconnect after a dropped connection; a longer outage is the caller's to report.
pub const COMMAND_RETRIES: usize = 3;
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

/// The connection every command goes through. Cloning is cheap and shares it.
#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    /// Routes each command to its slot's node and follows MOVED/ASK and failovers itself.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
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
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The shared Redis handle. Cloning is cheap and shares the one connection.
#[derive(Clone)]
pub struct Store {
    conn: Shared,
    /// A cluster's per-node connection settings, for commands that must visit every node.
    nodes: Option<Arc<NodeTemplate>>,
    address: String,
    /// Whether the last round trip worked ([`UP`], [`DOWN`] or [`UNKNOWN`]), so an outage is
    /// logged once when it starts and once when it ends, not on every failed command.
    health: Arc<AtomicU8>,
}

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;
/// Reachable, but the credentials were refused.
const REFUSED: u8 = 3;

/// What the handle holds: a single server's manager, which it can replace, or the cluster's
/// connection.
#[derive(Clone)]
enum Shared {
    Single(Arc<Single>),
    Cluster(ClusterConnection),
}

/// A single server's connection manager, and what it takes to build a new one.
///
/// The manager reconnects by itself after an I/O error, but a reconnect that fails to
/// authenticate (a rotated password, an ACL user missing on a new primary) leaves it holding
/// that failure for good: every command gets it, and nothing would ever restart the daemon.
/// On such a failure the store builds a new manager, so the next command connects afresh and
/// works as soon as the credentials do.
struct Single {
    manager: RwLock<ConnectionManager>,
    client: Client,
    config: ConnectionManagerConfig,
}

impl Store {
    /// Builds the handle without touching the network: the daemon must start (and report
    /// readiness problems) while Redis is down.
    pub fn lazy(settings: &RedisSettings) -> Result<Store, StoreError> {
        crate::tls::install_crypto_provider();
        let (conn, address, nodes) = if settings.cluster_nodes.is_empty() {
            let (client, config) = client(settings)?;
            let manager = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                .map_err(|e| StoreError::Client(e.to_string()))?;
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
    pub fn connection(&self) -> Conn {
        match &self.conn {
            Shared::Single(single) => {
                Conn::Single(single.manager.read().expect("manager lock").clone())
            }
            Shared::Cluster(cluster) => Conn::Cluster(cluster.clone()),
        }
    }

    /// Runs `cmds` with one round trip on a single server (a pipeline, `MULTI`/`EXEC` when
    /// `atomic`, so it lands whole or not at all). A cluster cannot pipeline across slots: there
    /// each command is sent on its own, all at once, routed to its slot's node (the driver
    /// pipelines those per node), and `atomic` holds per command only.
    pub async fn batch(
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
    pub async fn batch_each(
        &self,
        what: &'static str,
        cmds: &[Cmd],
    ) -> Result<Vec<Value>, StoreError> {
        self.batch_in(what, cmds, Batch::EachOwnReply, COMMAND_RETRIES)
            .await
    }

    /// `cmds` sent as `mode` says, with up to `retries` retries of a transport failure.
    pub async fn batch_in(
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
                Conn::Single(_) => {
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
    pub fn refused(&self, what: &'static str, error: redis::ServerError) -> StoreError {
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
    pub(crate) fn observe<T>(&self, result: &Result<T, RedisError>) {
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
    fn reconnect_afresh(&self) {
        if let Shared::Single(single) = &self.conn {
            match ConnectionManager::new_lazy_with_config(
                single.client.clone(),
                single.config.clone(),
            ) {
                Ok(manager) => *single.manager.write().expect("manager lock") = manager,
                Err(e) => tracing::warn!(error = %e, "cannot build a new Redis connection"),
            }
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
    pub async fn retry<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T, StoreError>
    where
        F: FnMut(Conn) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        self.attempt(what, COMMAND_RETRIES, op).await
    }

    /// Runs an operation with up to `retries` retries of a transport failure (0: one attempt).
    pub async fn attempt<T, F, Fut>(
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
            let attempt = op(self.connection());
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
pub enum Batch {
    /// `MULTI`/`EXEC` on a single server: all or nothing.
    Atomic,
    /// One round trip; the first refused command fails the batch.
    Pipeline,
    /// One round trip; each command gets its own reply, errors included.
    EachOwnReply,
}

/// A failure of the connection rather than of the command.
pub fn is_transient(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

fn client(settings: &RedisSettings) -> Result<(Client, ConnectionManagerConfig), StoreError> {
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

/// A lazy cluster connection: it connects (and learns the topology) on first use, so the daemon
/// starts while the cluster is down.
fn cluster(settings: &RedisSettings) -> Result<(ClusterConnection, NodeTemplate), StoreError> {
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

/// Walks every key matching a pattern with `SCAN`, page by page: on a cluster, on every primary
/// in turn, each through a connection of its own (a plain `SCAN` would see one random node's keys
/// only).
pub struct KeyScan<'a> {
    store: &'a Store,
    pattern: String,
    kind: Option<&'static str>,
    count: u32,
    /// Cluster primaries still to walk, the current one last.
    nodes: Vec<(String, u16)>,
    /// The current primary's connection.
    node: Option<redis::aio::MultiplexedConnection>,
    cursor: u64,
    done: bool,
}

impl<'a> KeyScan<'a> {
    /// `SCAN MATCH pattern [TYPE kind] COUNT count`.
    pub async fn new(
        store: &'a Store,
        pattern: &str,
        kind: Option<&'static str>,
        count: u32,
    ) -> Result<KeyScan<'a>, StoreError> {
        let nodes = if store.is_cluster() {
            store.primaries().await?
        } else {
            Vec::new()
        };
        Ok(KeyScan {
            store,
            pattern: pattern.to_owned(),
            kind,
            count,
            nodes,
            node: None,
            cursor: 0,
            done: false,
        })
    }

    fn command(&self) -> Cmd {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(self.cursor)
            .arg("MATCH")
            .arg(&self.pattern)
            .arg("COUNT")
            .arg(self.count);
        if let Some(kind) = self.kind {
            cmd.arg("TYPE").arg(kind);
        }
        cmd
    }

    /// The next page of keys (possibly empty), or `None` when every node has been walked.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let cmd = self.command();
        let (next, keys): (u64, Vec<Vec<u8>>) = match &self.store.nodes {
            None => {
                self.store
                    .retry("SCAN", |mut conn| {
                        let cmd = cmd.clone();
                        async move { cmd.query_async(&mut conn).await }
                    })
                    .await?
            }
            Some(template) => {
                let Some((host, port)) = self.nodes.last().cloned() else {
                    self.done = true;
                    return Ok(None);
                };
                let failed = |source| StoreError::Command {
                    address: format!("{host}:{port}"),
                    what: "SCAN",
                    source,
                };
                if self.node.is_none() {
                    self.node = Some(template.connect(&host, port).await.map_err(failed)?);
                }
                let conn = self.node.as_mut().expect("connected above");
                let page = cmd.query_async(conn).await;
                self.store.observe(&page);
                page.map_err(failed)?
            }
        };
        self.cursor = next;
        if next == 0 {
            // This node is done: on to the next primary, or the end.
            self.node = None;
            self.done = self.nodes.pop().is_none() || self.nodes.is_empty();
        }
        Ok(Some(keys))
    }
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
    async fn connect(
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

impl Store {
    /// The cluster's primaries, `(host, port)`, from `CLUSTER NODES`.
    async fn primaries(&self) -> Result<Vec<(String, u16)>, StoreError> {
        let text: String = self
            .retry("CLUSTER NODES", |mut conn| async move {
                redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(text
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let flags = fields.get(2)?;
                if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
                    return None;
                }
                // ip:port@cport[,hostname]
                let address = fields.get(1)?.split('@').next()?;
                let (host, port) = address.rsplit_once(':')?;
                Some((host.to_owned(), port.parse().ok()?))
            })
            .collect())
    }
}
