//! Changes to sets: adding members, and the integrity job's repairs of index sets, plain or
//! guarded by a script that re-checks the member's object in the same step.

use std::sync::LazyLock;

use redis::{Cmd, Script, Value};

use super::error::{StoreError, is_no_script};
use super::handle::Store;
use super::orphans::SCRIPT_PAGE_MAX;
use super::reads::ints;

/// Changes members with `command` (`SREM`, `SADD`) only while their object's `EXISTS` is
/// `wanted`, each checked and changed atomically. KEYS: the index sets; ARGV: per member, its
/// index's place in KEYS, the member, its object's key. Returns 1 or 0 per member: changed or
/// not.
///
/// The object keys travel as arguments, not in KEYS: Redis ACLs treat every declared key of a
/// script as read-write, while the daemon only ever reads objects, so its Redis user can be
/// denied writing them. Scripts run on a single server only (a cluster uses the re-check
/// fallback), where undeclared keys are no routing problem.
fn guarded_change(command: &str, wanted: u8) -> Script {
    Script::new(&format!(
        r"
local changed = {{}}
for i = 1, #ARGV, 3 do
  local done = 0
  if redis.call('EXISTS', ARGV[i + 2]) == {wanted} then
    done = redis.call('{command}', KEYS[tonumber(ARGV[i])], ARGV[i + 1])
  end
  changed[#changed + 1] = done
end
return changed"
    ))
}

/// Removes members only while their object is missing.
static CHECK_AND_REMOVE_SCRIPT: LazyLock<Script> = LazyLock::new(|| guarded_change("SREM", 0));
/// Adds members only while their object exists.
static CHECK_AND_ADD_SCRIPT: LazyLock<Script> = LazyLock::new(|| guarded_change("SADD", 1));

/// Members one guarded-change script call handles: a script blocks the server while it runs,
/// and the integrity job's budget is 2 ms of server time per call ([`SCRIPT_PAGE_MAX`]'s); a
/// check and a change cost about as much as a page's scan and check per member.
const GUARDED_PER_CALL: usize = SCRIPT_PAGE_MAX as usize;

/// A change to an index set's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetChange {
    /// `SREM`; guarded: only while the member's object is missing.
    Remove,
    /// `SADD`; guarded: only while the member's object exists.
    Add,
}

/// One member of one index set, and the key of the object it stands for.
pub struct IndexEntry<'a> {
    pub index: &'a [u8],
    pub member: &'a [u8],
    pub object: &'a [u8],
}

impl SetChange {
    fn command(self) -> &'static str {
        match self {
            SetChange::Remove => "SREM",
            SetChange::Add => "SADD",
        }
    }

    fn script(self) -> &'static Script {
        match self {
            SetChange::Remove => &CHECK_AND_REMOVE_SCRIPT,
            SetChange::Add => &CHECK_AND_ADD_SCRIPT,
        }
    }
}

impl Store {
    /// `SADD set members...`.
    pub async fn add_members(
        &self,
        what: &'static str,
        set: &str,
        members: &[&str],
    ) -> Result<(), StoreError> {
        self.retry(what, |mut conn| async move {
            redis::cmd("SADD")
                .arg(set)
                .arg(members)
                .query_async::<usize>(&mut conn)
                .await
        })
        .await
        .map(drop)
    }

    /// `SET key value` for each pair, in one round trip.
    pub async fn set_each(
        &self,
        what: &'static str,
        pairs: &[(&str, &str)],
    ) -> Result<(), StoreError> {
        let cmds: Vec<Cmd> = pairs
            .iter()
            .map(|(k, v)| redis::cmd("SET").arg(k).arg(v).to_owned())
            .collect();
        self.batch(what, &cmds, false).await.map(drop)
    }

    /// `UNLINK` of each key, in one round trip; how many were there.
    pub async fn unlink_each<K: AsRef<[u8]>>(
        &self,
        what: &'static str,
        keys: &[K],
    ) -> Result<u64, StoreError> {
        Ok(ints(self.each_key(what, "UNLINK", keys).await?)
            .into_iter()
            .sum::<i64>() as u64)
    }

    /// Applies `change` to each entry, unconditionally, in one round trip; which ones changed
    /// their set.
    pub async fn change_members(
        &self,
        change: SetChange,
        entries: &[IndexEntry<'_>],
    ) -> Result<Vec<bool>, StoreError> {
        let command = change.command();
        let cmds: Vec<Cmd> = entries
            .iter()
            .map(|e| redis::cmd(command).arg(e.index).arg(e.member).to_owned())
            .collect();
        Ok(ints(self.batch(command, &cmds, false).await?)
            .into_iter()
            .map(|n| n == 1)
            .collect())
    }

    /// Applies `change` to each entry only while its object still says so (missing for a
    /// removal, present for an addition), checked and changed atomically by a script, a few
    /// hundred entries per call, all calls in one round trip; which ones changed. Single server
    /// only: a cluster may keep the index and the object on different nodes.
    pub async fn change_members_guarded(
        &self,
        change: SetChange,
        entries: &[IndexEntry<'_>],
    ) -> Result<Vec<bool>, StoreError> {
        let script = change.script();
        let cmds: Vec<Cmd> = entries
            .chunks(GUARDED_PER_CALL)
            .map(|chunk| {
                let mut indexes: Vec<&[u8]> = Vec::new();
                let mut args: Vec<(usize, &[u8], &[u8])> = Vec::with_capacity(chunk.len());
                for e in chunk {
                    let at = match indexes.iter().position(|i| *i == e.index) {
                        Some(at) => at,
                        None => {
                            indexes.push(e.index);
                            indexes.len() - 1
                        }
                    };
                    args.push((at + 1, e.member, e.object));
                }
                let mut cmd = redis::cmd("EVALSHA");
                cmd.arg(script.get_hash()).arg(indexes.len()).arg(&indexes);
                for (at, member, object) in args {
                    cmd.arg(at).arg(member).arg(object);
                }
                cmd
            })
            .collect();
        Ok(self
            .scripts(script, &cmds)
            .await?
            .into_iter()
            .flat_map(|call| ints(redis::from_redis_value(call).unwrap_or_default()))
            .map(|r| r == 1)
            .collect())
    }

    /// Runs `EVALSHA` commands of `script` as one batch, loading the script first if the server
    /// lost it (a restart or failover empties the script cache).
    async fn scripts(&self, script: &Script, cmds: &[Cmd]) -> Result<Vec<Value>, StoreError> {
        match self.batch("EVALSHA batch", cmds, false).await {
            Err(StoreError::Command { source, .. }) if is_no_script(&source) => {
                self.retry("SCRIPT LOAD", |mut conn| {
                    let script = script.clone();
                    async move { script.load_async(&mut conn).await }
                })
                .await?;
                self.batch("EVALSHA batch", cmds, false).await
            }
            other => other,
        }
    }
}
