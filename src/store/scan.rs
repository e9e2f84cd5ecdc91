//! Scanning the keyspace on every primary of a cluster, or the one server.

use redis::Cmd;

use super::error::StoreError;
use super::handle::Store;

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

    pub(super) fn command(&self) -> Cmd {
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

impl Store {
    /// The cluster's primaries, `(host, port)`, from `CLUSTER NODES`.
    pub(super) async fn primaries(&self) -> Result<Vec<(String, u16)>, StoreError> {
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
