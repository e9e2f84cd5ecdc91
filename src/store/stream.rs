//! The warm-request stream (`finance:warmer:requests`) and its consumer group: reading new
//! entries, acknowledging them, claiming those a dead consumer left pending, trimming, and
//! forgetting consumers long gone.
//!
//! Every command here is safe to retry: an `XREADGROUP` whose reply was lost leaves its entries
//! pending at this consumer, where the next claim finds them.

use redis::streams::{
    StreamAutoClaimReply, StreamId, StreamInfoConsumersReply, StreamInfoGroupsReply,
    StreamReadReply,
};
use redis::{Cmd, Value};

use super::error::StoreError;
use super::handle::Store;
use crate::keys;

/// One entry of the stream: its id and its `ticker` field as sent (absent or not text: `None`).
#[derive(Debug, Clone)]
pub struct Request {
    pub id: String,
    pub ticker: Option<Vec<u8>>,
}

impl Request {
    fn from_entry(entry: StreamId) -> Request {
        let ticker = entry.map.get("ticker").and_then(|v| match v {
            Value::BulkString(bytes) => Some(bytes.clone()),
            Value::SimpleString(text) => Some(text.clone().into_bytes()),
            _ => None,
        });
        Request {
            id: entry.id,
            ticker,
        }
    }

    /// When the entry was added: the milliseconds part of its id.
    pub fn added_ms(&self) -> Option<i64> {
        self.id.split('-').next()?.parse().ok()
    }
}

/// A consumer of the group: its name, entries pending at it, and milliseconds since it was last
/// seen.
#[derive(Debug, Clone)]
pub struct Consumer {
    pub name: String,
    pub pending: u64,
    pub idle_ms: u64,
}

/// The consumer group as the server sees it: its consumers, the entries they read and have not
/// acknowledged, and those no consumer has read yet (`None` from a server that cannot tell).
#[derive(Debug, Clone)]
pub struct GroupState {
    pub consumers: u64,
    pub pending: u64,
    pub waiting: Option<u64>,
}

impl Store {
    /// `group`'s state (`XINFO GROUPS`), or `None` while the stream or the group does not
    /// exist (no daemon has served requests yet).
    pub async fn request_group(&self, group: &str) -> Result<Option<GroupState>, StoreError> {
        let reply = self
            .retry("XINFO GROUPS requests", |mut conn| async move {
                redis::cmd("XINFO")
                    .arg("GROUPS")
                    .arg(keys::REQUESTS)
                    .query_async::<StreamInfoGroupsReply>(&mut conn)
                    .await
            })
            .await;
        let groups = match reply {
            Ok(reply) => reply.groups,
            Err(e) if no_stream(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(groups
            .into_iter()
            .find(|g| g.name == group)
            .map(|g| GroupState {
                consumers: g.consumers as u64,
                pending: g.pending as u64,
                waiting: g.lag.map(|n| n as u64),
            }))
    }

    /// Up to `count` entries no consumer of `group` has read yet, now pending at `consumer`.
    /// Creates the group (and the stream) when missing: at the first start, and after a
    /// restarted or failed-over Redis came back without them.
    pub async fn read_requests(
        &self,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<Request>, StoreError> {
        let read = || {
            self.retry("XREADGROUP requests", |mut conn| async move {
                redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(group)
                    .arg(consumer)
                    .arg("COUNT")
                    .arg(count)
                    .arg("STREAMS")
                    .arg(keys::REQUESTS)
                    .arg(">")
                    .query_async::<Option<StreamReadReply>>(&mut conn)
                    .await
            })
        };
        let reply = match read().await {
            Err(e) if no_group(&e) => {
                self.create_group(group).await?;
                read().await?
            }
            other => other?,
        };
        Ok(reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(Request::from_entry)
            .collect())
    }

    /// `XGROUP CREATE ... 0 MKSTREAM`: the group reads the stream from its start (entries the
    /// app added before the group existed are warmed too). Another replica creating it first
    /// is fine.
    async fn create_group(&self, group: &str) -> Result<(), StoreError> {
        let created = self
            .retry("XGROUP CREATE requests", |mut conn| async move {
                redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(keys::REQUESTS)
                    .arg(group)
                    .arg("0")
                    .arg("MKSTREAM")
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await;
        match created {
            Err(StoreError::Command { source, .. }) if source.code() == Some("BUSYGROUP") => Ok(()),
            other => {
                if other.is_ok() {
                    tracing::info!(stream = keys::REQUESTS, group, "created the consumer group");
                }
                other
            }
        }
    }

    /// Entries pending at any consumer of `group` for at least `idle_ms` (a consumer that died
    /// or hung), up to `count`, now pending at `consumer`.
    pub async fn claim_requests(
        &self,
        group: &str,
        consumer: &str,
        idle_ms: u64,
        count: usize,
    ) -> Result<Vec<Request>, StoreError> {
        let reply = self
            .retry("XAUTOCLAIM requests", |mut conn| async move {
                redis::cmd("XAUTOCLAIM")
                    .arg(keys::REQUESTS)
                    .arg(group)
                    .arg(consumer)
                    .arg(idle_ms)
                    .arg("0-0")
                    .arg("COUNT")
                    .arg(count)
                    .query_async::<StreamAutoClaimReply>(&mut conn)
                    .await
            })
            .await;
        match reply {
            Ok(reply) => Ok(reply.claimed.into_iter().map(Request::from_entry).collect()),
            // No group yet: nothing can be pending.
            Err(e) if no_group(&e) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Acknowledges `ids` and trims the stream to about `max_len` entries (`MAXLEN ~`, which
    /// drops whole nodes only and so costs next to nothing), in one round trip.
    pub async fn ack_requests(
        &self,
        group: &str,
        ids: &[String],
        max_len: u32,
    ) -> Result<(), StoreError> {
        let ack = redis::cmd("XACK")
            .arg(keys::REQUESTS)
            .arg(group)
            .arg(ids)
            .to_owned();
        let trim = redis::cmd("XTRIM")
            .arg(keys::REQUESTS)
            .arg("MAXLEN")
            .arg("~")
            .arg(max_len)
            .to_owned();
        let cmds: [Cmd; 2] = [ack, trim];
        self.batch("XACK requests", &cmds, false).await.map(drop)
    }

    /// The consumers of `group`.
    pub async fn request_consumers(&self, group: &str) -> Result<Vec<Consumer>, StoreError> {
        let reply = self
            .retry("XINFO CONSUMERS requests", |mut conn| async move {
                redis::cmd("XINFO")
                    .arg("CONSUMERS")
                    .arg(keys::REQUESTS)
                    .arg(group)
                    .query_async::<StreamInfoConsumersReply>(&mut conn)
                    .await
            })
            .await;
        match reply {
            Ok(reply) => Ok(reply
                .consumers
                .into_iter()
                .map(|c| Consumer {
                    name: c.name,
                    pending: c.pending as u64,
                    idle_ms: c.idle as u64,
                })
                .collect()),
            // No stream or no group yet: no consumers.
            Err(e) if no_stream(&e) || no_group(&e) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Removes `consumer` from `group` (`XGROUP DELCONSUMER`); its pending entries, if any,
    /// would go with it, so only consumers with none are removed.
    pub async fn forget_consumer(&self, group: &str, consumer: &str) -> Result<(), StoreError> {
        self.retry("XGROUP DELCONSUMER requests", |mut conn| async move {
            redis::cmd("XGROUP")
                .arg("DELCONSUMER")
                .arg(keys::REQUESTS)
                .arg(group)
                .arg(consumer)
                .query_async::<()>(&mut conn)
                .await
        })
        .await
    }

    /// Which of `tickers` are members of the watchlist (`SISMEMBER` each, one round trip).
    pub async fn watched(&self, tickers: &[String]) -> Result<Vec<bool>, StoreError> {
        let cmds: Vec<Cmd> = tickers
            .iter()
            .map(|t| {
                redis::cmd("SISMEMBER")
                    .arg(keys::WATCHLIST)
                    .arg(t)
                    .to_owned()
            })
            .collect();
        let replies = self.batch("SISMEMBER watchlist", &cmds, false).await?;
        Ok(replies
            .into_iter()
            .map(|v| redis::from_redis_value::<bool>(v).unwrap_or(false))
            .collect())
    }
}

/// `NOGROUP`: the group, or the stream it reads, is not there yet.
fn no_group(e: &StoreError) -> bool {
    matches!(e, StoreError::Command { source, .. } if source.code() == Some("NOGROUP"))
}

/// `XINFO` on a stream not made yet (`ERR no such key`).
fn no_stream(e: &StoreError) -> bool {
    matches!(e, StoreError::Command { source, .. }
        if source.to_string().to_ascii_lowercase().contains("no such key"))
}
