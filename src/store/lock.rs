//! The per-job Redis lock that keeps replicas from running the same job at once, and the fence
//! that keeps a run that lost it from writing.
//!
//! `SET key value NX PX ttl` with a value unique to this run; renewed every `ttl/3` by a script
//! that extends it only if it still holds our value; released by a compare-and-delete script, so
//! a run never deletes a lock another run took after ours expired.
//!
//! A lock alone does not stop a run that was paused past its TTL (SIGSTOP, a VM pause, a long
//! stall) from waking up and writing the older answers it holds over newer ones. Its writes go
//! through the lock's [`Fence`]: on a single server a script applies them only while the lock
//! still holds this run's value, atomically; on a cluster, where the lock and the cache keys live
//! in different slots and no script can touch both, only while the lease this run last renewed
//! has not run out by its own clock, which narrows the window to one round trip but cannot close
//! it.

use std::collections::VecDeque;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use chrono::Utc;
use redis::{Cmd, Script};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::error::{StoreError, is_no_script};
use super::handle::{Batch, Store};

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

/// Runs one command on each of KEYS[2..] only while the lock KEYS[1] holds ARGV[1]. ARGV[2] is
/// the command; then, per key, the number of its arguments and the arguments. Returns how many
/// keys it wrote, or -1 when the lock is another run's (and nothing was written).
const FENCED: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local at = 3
for i = 2, #KEYS do
  local n = tonumber(ARGV[at])
  redis.call(ARGV[2], KEYS[i], unpack(ARGV, at + 1, at + n))
  at = at + n + 1
end
return #KEYS - 1";

static FENCED_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(FENCED));
static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE));

/// Lock values this process sent whose `SET` or release never answered (a timeout: the server
/// may have applied the one and not the other). Such a lock is ours to take back; any other
/// value, even one naming this host and pid (two containers can share both), belongs to someone
/// else. A handful is plenty: a leftover expires within its TTL anyway.
static UNCONFIRMED: LazyLock<Mutex<VecDeque<String>>> = LazyLock::new(Default::default);
const UNCONFIRMED_KEPT: usize = 16;

/// A held lock. Dropping it stops the renewals; call [`Lock::release`] to free it at once.
pub struct Lock {
    fence: Fence,
    stop_renewing: CancellationToken,
    lost: CancellationToken,
}

/// Writes that apply only while a run holds its lock. Cheap to clone.
#[derive(Clone)]
pub struct Fence {
    store: Store,
    key: String,
    value: String,
    /// When the lease runs out by this process's clock: the last successful renewal (or the
    /// acquisition) was sent at most `ttl` before it.
    lease_until: Arc<Mutex<Instant>>,
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
        let mut taken = set_nx(store, key, &value, ttl).await?;
        if taken.is_none() {
            // Ours if this process sent it and never heard back: a SET whose reply timed out
            // (the server was stuck) may still have been applied, by this call's own retry
            // or by an earlier run. No run of this job is going on here (the runner never
            // overlaps one), so take it back instead of idling until it expires.
            match Lock::holder(store, key).await? {
                Some(holder) if holder == value || unconfirmed(&holder, false) => {
                    store
                        .retry("reclaim lock", |mut conn| {
                            let (key, holder) = (key.to_owned(), holder.clone());
                            async move {
                                RELEASE_SCRIPT
                                    .key(key)
                                    .arg(holder)
                                    .invoke_async::<i64>(&mut conn)
                                    .await
                            }
                        })
                        .await?;
                    unconfirmed(&holder, true);
                    tracing::info!(lock = %key, "reclaimed a job lock this process had left behind");
                    taken = set_nx(store, key, &value, ttl).await?;
                }
                _ => {}
            }
        }
        let Some(sent) = taken else {
            return Ok(None);
        };
        let lock = Lock {
            fence: Fence {
                store: store.clone(),
                key: key.to_owned(),
                value,
                lease_until: Arc::new(Mutex::new(sent + ttl)),
            },
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

    /// The fence for this run's writes.
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    /// Who holds `key` now (the lock's value), if anyone.
    pub async fn holder(store: &Store, key: &str) -> Result<Option<String>, StoreError> {
        store.get("GET lock", key).await
    }

    fn spawn_renewals(&self, ttl: Duration) {
        let fence = self.fence.clone();
        let (stop, lost) = (self.stop_renewing.clone(), self.lost.clone());
        tokio::spawn(async move {
            let script = Script::new(RENEW);
            let mut last_renewed = Instant::now();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(ttl / 3) => {}
                }
                let sent = Instant::now();
                // One attempt each time, but observed like any round trip: an outage during a
                // run is logged once and counted, whoever meets it first.
                let renewed = fence
                    .store
                    .attempt("renew lock", 0, |mut conn| {
                        let mut invocation = script.key(&fence.key);
                        invocation.arg(&fence.value).arg(ttl.as_millis() as u64);
                        async move { invocation.invoke_async::<i64>(&mut conn).await }
                    })
                    .await;
                match renewed {
                    Ok(1) => {
                        last_renewed = sent;
                        *fence.lease_until.lock().expect("lease lock") = sent + ttl;
                    }
                    Ok(_) => {
                        tracing::warn!(lock = %fence.key, "lost the job lock (it expired and was taken); stopping the run");
                        lost.cancel();
                        return;
                    }
                    // A Redis blip: keep trying until the lease would have run out.
                    Err(e) if e.is_unreachable() && last_renewed.elapsed() < ttl => {
                        tracing::debug!(lock = %fence.key, error = %e, "lock renewal failed; retrying");
                    }
                    Err(e) => {
                        tracing::warn!(lock = %fence.key, error = %e, "could not renew the job lock for a whole TTL; stopping the run");
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
        let released = self
            .fence
            .store
            .attempt("release lock", 0, |mut conn| {
                let mut invocation = RELEASE_SCRIPT.key(&self.fence.key);
                invocation.arg(&self.fence.value);
                async move { invocation.invoke_async::<i64>(&mut conn).await }
            })
            .await;
        if let Err(e) = released {
            // It expires by itself within the TTL, or the job's next run here takes it back:
            // a stuck Redis that recovers must not hold the job up for a whole lock TTL.
            remember_unconfirmed(&self.fence.value);
            tracing::warn!(lock = %self.fence.key, error = %e, "could not release the job lock; it will expire");
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.stop_renewing.cancel();
    }
}

/// Whether a fenced write was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fenced {
    Written,
    /// The lock is another run's now: nothing was written.
    LockLost,
}

impl Fence {
    /// A fence without a lock, for a run that takes none (a warm request): its writes apply
    /// until `ttl` from now has passed, and not after.
    pub fn lease(store: &Store, ttl: Duration) -> Fence {
        Fence {
            store: store.clone(),
            key: String::new(),
            value: String::new(),
            lease_until: Arc::new(Mutex::new(Instant::now() + ttl)),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs `command key args...` for each `(key, args)` only while this run holds its lock:
    /// atomically with the check on a single server (all or nothing), after a check of the
    /// lease's own deadline on a cluster or without a lock ([`Fence::lease`]). `retries`
    /// attempts more after a dropped connection, so the commands must be idempotent (`SETEX`,
    /// `HSET`).
    pub async fn apply(
        &self,
        what: &'static str,
        retries: usize,
        command: &str,
        writes: &[(String, Vec<Vec<u8>>)],
    ) -> Result<Fenced, StoreError> {
        if self.store.is_cluster() || self.key.is_empty() {
            // No script can see the lock and the keys at once (or there is no lock): trust the
            // lease while it lasts.
            if Instant::now() >= *self.lease_until.lock().expect("lease lock") {
                return Ok(Fenced::LockLost);
            }
            let cmds: Vec<Cmd> = writes
                .iter()
                .map(|(key, args)| redis::cmd(command).arg(key).arg(args).to_owned())
                .collect();
            self.store
                .batch_in(what, &cmds, Batch::Atomic, retries)
                .await?;
            return Ok(Fenced::Written);
        }
        // Built once for every attempt: the batch's values are copied into the command once (a
        // script invocation copies them again into the command it sends, at each attempt).
        // Sized for its arguments up front: grown by doubling, a batch of megabytes would be
        // copied again at each step. Per write: its key, its argument count (20 digits at most)
        // and its arguments; then 6 more: the name, hash, key count, lock key, lock value and
        // command (the lock's two and 64 bytes for the rest). An estimate only: short, it regrows.
        let args: usize = writes.iter().map(|(_, args)| args.len() + 2).sum();
        let bytes: usize = writes
            .iter()
            .map(|(key, args)| key.len() + 20 + args.iter().map(Vec::len).sum::<usize>())
            .sum();
        let fixed = self.key.len() + self.value.len() + 64;
        let mut evalsha = redis::Cmd::with_capacity(args + 6, bytes + fixed);
        evalsha
            .arg("EVALSHA")
            .arg(FENCED_SCRIPT.get_hash())
            .arg(writes.len() + 1)
            .arg(&self.key);
        for (key, _) in writes {
            evalsha.arg(key);
        }
        evalsha.arg(&self.value).arg(command);
        for (_, args) in writes {
            evalsha.arg(args.len()).arg(args);
        }
        let written: i64 = self
            .store
            .attempt(what, retries, |mut conn| {
                let evalsha = &evalsha;
                async move {
                    match evalsha.query_async(&mut conn).await {
                        Err(e) if is_no_script(&e) => {
                            FENCED_SCRIPT.load_async(&mut conn).await?;
                            evalsha.query_async(&mut conn).await
                        }
                        other => other,
                    }
                }
            })
            .await?;
        Ok(if written < 0 {
            Fenced::LockLost
        } else {
            Fenced::Written
        })
    }
}

/// One `SET key value NX PX ttl`: when it was first sent, if it took the lock (the lease runs
/// from then at the latest). A value whose `SET` got no answer is remembered as possibly ours
/// (see [`UNCONFIRMED`]).
async fn set_nx(
    store: &Store,
    key: &str,
    value: &str,
    ttl: Duration,
) -> Result<Option<Instant>, StoreError> {
    let sent = Instant::now();
    let set = store
        .retry("SET NX lock", |mut conn| {
            let (key, value) = (key.to_owned(), value.to_owned());
            async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl.as_millis() as u64)
                    .query_async::<Option<String>>(&mut conn)
                    .await
            }
        })
        .await;
    match set {
        Ok(reply) => Ok(reply.map(|_| sent)),
        Err(e) => {
            remember_unconfirmed(value);
            Err(e)
        }
    }
}

fn remember_unconfirmed(value: &str) {
    let mut sent = UNCONFIRMED.lock().expect("unconfirmed lock");
    sent.push_back(value.to_owned());
    if sent.len() > UNCONFIRMED_KEPT {
        sent.pop_front();
    }
}

/// Whether `value` is one of [`UNCONFIRMED`]; with `forget`, also drops it.
fn unconfirmed(value: &str, forget: bool) -> bool {
    let mut sent = UNCONFIRMED.lock().expect("unconfirmed lock");
    let found = sent.iter().position(|v| v == value);
    if let (Some(at), true) = (found, forget) {
        sent.remove(at);
    }
    found.is_some()
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
