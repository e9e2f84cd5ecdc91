//! The per-job Redis lock that keeps replicas from running the same job at once.
//!
//! `SET key value NX PX ttl` with a value unique to this run; renewed every `ttl/3` by a script
//! that extends it only if it still holds our value; released by a compare-and-delete script, so
//! a run never deletes a lock another run took after ours expired. This saves upstream quota;
//! the cache stays correct without it (writes are idempotent).

use std::time::Duration;

use chrono::Utc;
use redis::Script;
use tokio_util::sync::CancellationToken;

use crate::store::{Store, StoreError, is_transient};

/// Extends the lock only while it still holds our value.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

/// Deletes the lock only while it still holds our value.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// A held lock. Dropping it stops the renewals; call [`Lock::release`] to free it at once.
pub struct Lock {
    store: Store,
    key: String,
    value: String,
    stop_renewing: CancellationToken,
    lost: CancellationToken,
}

impl Lock {
    /// Takes `key` for `ttl` if nobody holds it. The value records who holds it (`host`, `pid`,
    /// `since`) for operators, and a random token that makes it unique.
    pub async fn acquire(
        store: &Store,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<Lock>, StoreError> {
        let value = serde_json::json!({
            "token": format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
            "host": hostname(),
            "pid": std::process::id(),
            "since": crate::model::rfc3339(Utc::now()),
        })
        .to_string();
        let ttl_ms = ttl.as_millis() as u64;
        let set = || {
            store.retry("SET NX lock", |mut conn| {
                let (key, value) = (key.to_owned(), value.clone());
                async move {
                    redis::cmd("SET")
                        .arg(key)
                        .arg(value)
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl_ms)
                        .query_async::<Option<String>>(&mut conn)
                        .await
                }
            })
        };
        if set().await?.is_none() {
            // A lock of this very process is a leftover: a SET whose reply timed out (the server
            // was stuck) may still have been applied. No run of this job is going on here (the
            // runner never overlaps one), so take it back instead of idling until it expires.
            match Lock::holder(store, key).await? {
                Some(holder) if is_ours(&holder) => {
                    let mut conn = store.connection();
                    let _: i64 = Script::new(RELEASE)
                        .key(key)
                        .arg(&holder)
                        .invoke_async(&mut conn)
                        .await
                        .map_err(|source| StoreError::Command {
                            address: store.address().to_owned(),
                            what: "reclaim lock",
                            source,
                        })?;
                    tracing::info!(lock = %key, "reclaimed a job lock this process had left behind");
                    if set().await?.is_none() {
                        return Ok(None);
                    }
                }
                _ => return Ok(None),
            }
        }
        let lock = Lock {
            store: store.clone(),
            key: key.to_owned(),
            value,
            stop_renewing: CancellationToken::new(),
            lost: CancellationToken::new(),
        };
        lock.spawn_renewals(ttl);
        Ok(Some(lock))
    }

    /// Cancelled when the lock is lost (taken over after it expired, or not renewable for a
    /// whole TTL): the run must stop.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Who holds `key` now (the lock's value), if anyone.
    pub async fn holder(store: &Store, key: &str) -> Result<Option<String>, StoreError> {
        store
            .retry("GET lock", |mut conn| {
                let key = key.to_owned();
                async move { redis::cmd("GET").arg(key).query_async(&mut conn).await }
            })
            .await
    }

    fn spawn_renewals(&self, ttl: Duration) {
        let (store, key, value) = (self.store.clone(), self.key.clone(), self.value.clone());
        let (stop, lost) = (self.stop_renewing.clone(), self.lost.clone());
        tokio::spawn(async move {
            let script = Script::new(RENEW);
            let mut last_renewed = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(ttl / 3) => {}
                }
                let mut conn = store.connection();
                let renewed: Result<i64, _> = script
                    .key(&key)
                    .arg(&value)
                    .arg(ttl.as_millis() as u64)
                    .invoke_async(&mut conn)
                    .await;
                match renewed {
                    Ok(1) => last_renewed = tokio::time::Instant::now(),
                    Ok(_) => {
                        tracing::warn!(lock = %key, "lost the job lock (it expired and was taken); stopping the run");
                        lost.cancel();
                        return;
                    }
                    // A Redis blip: keep trying until the lease would have run out.
                    Err(e) if is_transient(&e) && last_renewed.elapsed() < ttl => {
                        tracing::debug!(lock = %key, error = %e, "lock renewal failed; retrying");
                    }
                    Err(e) => {
                        tracing::warn!(lock = %key, error = %e, "could not renew the job lock for a whole TTL; stopping the run");
                        lost.cancel();
                        return;
                    }
                }
            }
        });
    }

    /// Stops renewing and deletes the lock if it is still ours.
    pub async fn release(self) {
        self.stop_renewing.cancel();
        let mut conn = self.store.connection();
        let released: Result<i64, _> = Script::new(RELEASE)
            .key(&self.key)
            .arg(&self.value)
            .invoke_async(&mut conn)
            .await;
        if let Err(e) = released {
            // It expires by itself within the TTL.
            tracing::warn!(lock = %self.key, error = %e, "could not release the job lock; it will expire");
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.stop_renewing.cancel();
    }
}

/// Whether a lock value was written by this process (same host and pid).
fn is_ours(holder: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(holder)
        .is_ok_and(|v| v["host"] == hostname().as_str() && v["pid"] == std::process::id())
}

/// This machine's name, for the lock's holder (pods get theirs in `HOSTNAME`).
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}
