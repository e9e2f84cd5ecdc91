//! Keyspace notifications of one key (`__keyspace@<db>__:<key>`), on a connection of their own:
//! a subscribed connection can send nothing else. The server publishes them only when its
//! `notify-keyspace-events` names them (`K` and the key's type, e.g. `Ks` for a set).

use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use redis::aio::PubSubStream;

use super::error::StoreError;
use super::handle::{Shared, Store};

/// The commands that changed the key, as the server names them (`sadd`, `srem`, `del`, ...).
/// Ends when the connection does.
pub struct KeyEvents(PubSubStream);

impl KeyEvents {
    /// The next event, waiting for it; `None` once the connection is gone.
    pub async fn next(&mut self) -> Option<String> {
        let message = self.0.next().await?;
        Some(message.get_payload::<String>().unwrap_or_default())
    }

    /// The events already received, without waiting; whether the connection is still up.
    pub fn drain(&mut self) -> bool {
        loop {
            match self.0.next().now_or_never() {
                Some(Some(_)) => continue,
                Some(None) => return false,
                None => return true,
            }
        }
    }
}

impl Store {
    /// Subscribes to the keyspace notifications of `key` on the server holding it: the single
    /// server, or the primary Sentinel names now. A Cluster publishes them on the key's own
    /// node only, which this does not follow.
    pub async fn key_events(&self, key: &str, timeout: Duration) -> Result<KeyEvents, StoreError> {
        let what = "SUBSCRIBE keyspace";
        let failed = |source| StoreError::Command {
            address: self.address.clone(),
            what,
            source,
        };
        let client = match &self.conn {
            Shared::Single(single) => single.client.clone(),
            Shared::Sentinel(primary) => primary.client().await.map_err(failed)?,
            Shared::Cluster(_) => {
                return Err(StoreError::Client(
                    "keyspace notifications are not followed on a Redis Cluster".into(),
                ));
            }
        };
        let db = client.get_connection_info().redis_settings().db();
        let channel = format!("__keyspace@{db}__:{key}");
        let subscribe = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok(pubsub.into_on_message())
        };
        match tokio::time::timeout(timeout, subscribe).await {
            Ok(Ok(stream)) => Ok(KeyEvents(stream)),
            Ok(Err(e)) => Err(failed(e)),
            Err(_) => Err(failed(
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no answer within redis.connect_timeout",
                )
                .into(),
            )),
        }
    }
}
