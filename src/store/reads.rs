//! Typed reads of single keys and of many keys in one round trip: what the jobs, `status` and
//! `demo` ask of Redis, without any of them building a command.

use std::collections::HashMap;

use redis::{Cmd, Value};

use super::error::StoreError;
use super::handle::Store;

/// A cache key as a refresh-ahead check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedKey {
    /// `PTTL`: milliseconds left, -1 without an expiry, -2 when missing.
    pub pttl_ms: i64,
    /// The stored bytes, when they were asked for and the key holds a string.
    pub value: Option<Vec<u8>>,
    /// The key's type when it holds something other than a string (an `HSET` by someone else).
    pub foreign_type: Option<String>,
}

impl Store {
    /// `command key` for each key, in one round trip.
    pub(super) async fn each_key<K: AsRef<[u8]>>(
        &self,
        what: &'static str,
        command: &str,
        keys: &[K],
    ) -> Result<Vec<Value>, StoreError> {
        let cmds: Vec<Cmd> = keys
            .iter()
            .map(|k| redis::cmd(command).arg(k.as_ref()).to_owned())
            .collect();
        self.batch(what, &cmds, false).await
    }

    /// `TYPE key`: `string`, `set`, ..., or `none`.
    pub async fn key_type(&self, what: &'static str, key: &str) -> Result<String, StoreError> {
        self.retry(what, |mut conn| async move {
            redis::cmd("TYPE").arg(key).query_async(&mut conn).await
        })
        .await
    }

    /// `SCARD set`.
    pub async fn set_size(&self, what: &'static str, set: &str) -> Result<u64, StoreError> {
        self.retry(what, |mut conn| async move {
            redis::cmd("SCARD").arg(set).query_async(&mut conn).await
        })
        .await
    }

    /// `GET key` of a string.
    pub async fn get(&self, what: &'static str, key: &str) -> Result<Option<String>, StoreError> {
        self.retry(what, |mut conn| async move {
            redis::cmd("GET").arg(key).query_async(&mut conn).await
        })
        .await
    }

    /// `HGETALL hash`, as text.
    pub async fn hash(
        &self,
        what: &'static str,
        key: &str,
    ) -> Result<HashMap<String, String>, StoreError> {
        self.retry(what, |mut conn| async move {
            redis::cmd("HGETALL").arg(key).query_async(&mut conn).await
        })
        .await
    }

    /// `TTL` and `GET` of one key: seconds left (-2 when missing) and the stored bytes.
    pub async fn ttl_and_value(
        &self,
        what: &'static str,
        key: &str,
    ) -> Result<(i64, Option<Vec<u8>>), StoreError> {
        self.retry(what, |mut conn| async move {
            redis::pipe()
                .cmd("TTL")
                .arg(key)
                .cmd("GET")
                .arg(key)
                .query_async(&mut conn)
                .await
        })
        .await
    }

    /// `GET` of each key in one round trip, as bytes; `None` for a missing one or one of another
    /// type (its `WRONGTYPE` fails no other key). Any other refusal (an ACL, say) fails the read.
    pub async fn get_each(
        &self,
        what: &'static str,
        keys: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let cmds: Vec<Cmd> = keys
            .iter()
            .map(|k| redis::cmd("GET").arg(k).to_owned())
            .collect();
        self.batch_each(what, &cmds)
            .await?
            .into_iter()
            .map(|reply| {
                if let Value::ServerError(e) = &reply
                    && foreign_type(&reply).is_none()
                {
                    return Err(self.refused(what, e.clone()));
                }
                Ok(redis::from_redis_value::<Option<Vec<u8>>>(reply)
                    .ok()
                    .flatten())
            })
            .collect()
    }

    /// `PTTL` of each key in one round trip (-2 when missing).
    pub async fn pttl_each(
        &self,
        what: &'static str,
        keys: &[String],
    ) -> Result<Vec<i64>, StoreError> {
        Ok(self
            .each_key(what, "PTTL", keys)
            .await?
            .into_iter()
            .map(|v| redis::from_redis_value(v).unwrap_or(-2))
            .collect())
    }

    /// Whether each key exists, in one round trip.
    pub async fn exists_each<K: AsRef<[u8]>>(
        &self,
        what: &'static str,
        keys: &[K],
    ) -> Result<Vec<bool>, StoreError> {
        Ok(ints(self.each_key(what, "EXISTS", keys).await?)
            .into_iter()
            .map(|n| n > 0)
            .collect())
    }

    /// Whether each member is in `set`, in one round trip.
    pub async fn is_member_each<M: AsRef<[u8]>>(
        &self,
        what: &'static str,
        set: &[u8],
        members: &[M],
    ) -> Result<Vec<bool>, StoreError> {
        let cmds: Vec<Cmd> = members
            .iter()
            .map(|m| redis::cmd("SISMEMBER").arg(set).arg(m.as_ref()).to_owned())
            .collect();
        Ok(ints(self.batch(what, &cmds, false).await?)
            .into_iter()
            .map(|n| n == 1)
            .collect())
    }

    /// Each cache key's `PTTL`, and its value (`with_values`) or else just whether it holds a
    /// string, in one round trip. A key of another type answers with its type instead of
    /// failing the others; any other refusal (an ACL, say) fails the read.
    pub async fn cached_keys(
        &self,
        what: &'static str,
        keys: &[String],
        with_values: bool,
    ) -> Result<Vec<CachedKey>, StoreError> {
        let second = if with_values { "GET" } else { "TYPE" };
        let cmds: Vec<Cmd> = ["PTTL", second]
            .iter()
            .flat_map(|name| keys.iter().map(|k| redis::cmd(name).arg(k).to_owned()))
            .collect();
        let mut replies = self.batch_each(what, &cmds).await?;
        let seconds = replies.split_off(keys.len());
        replies
            .into_iter()
            .zip(seconds)
            .map(|(pttl, second)| {
                if let Some(kind) = foreign_type(&second) {
                    return Ok(CachedKey {
                        pttl_ms: -2,
                        value: None,
                        foreign_type: Some(kind.to_owned()),
                    });
                }
                if let Value::ServerError(e) = &second {
                    return Err(self.refused(what, e.clone()));
                }
                Ok(CachedKey {
                    pttl_ms: redis::from_redis_value(pttl).unwrap_or(-2),
                    value: if with_values {
                        redis::from_redis_value::<Option<Vec<u8>>>(second)
                            .ok()
                            .flatten()
                    } else {
                        None
                    },
                    foreign_type: None,
                })
            })
            .collect()
    }
}

/// The type of a key that holds something other than a cached value: the answer to `TYPE`
/// when it is not `string` (or `none`, a missing key), or `GET`'s `WRONGTYPE` refusal.
fn foreign_type(reply: &Value) -> Option<&str> {
    match reply {
        Value::ServerError(e) if e.code() == "WRONGTYPE" => Some("not a string"),
        Value::SimpleString(t) if t != "string" && t != "none" => Some(t),
        _ => None,
    }
}

/// Integer replies (0 for anything else).
pub(super) fn ints(values: Vec<Value>) -> Vec<i64> {
    values
        .into_iter()
        .map(|v| redis::from_redis_value(v).unwrap_or(0))
        .collect()
}
