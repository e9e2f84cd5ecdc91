//! The `integrity` job: removes index entries whose object is gone, without ever removing a
//! live one, while the app keeps writing.
//!
//! Each index is walked with `SSCAN`; object existence is checked with one pipelined `EXISTS`
//! round trip per chunk. A member whose object is missing becomes a suspect. It is removed only
//! once its object has been missing for `grace` since it was first seen missing (a writer may add
//! the index entry a moment before the object), and only by a script that re-checks `EXISTS` and
//! `SREM`s atomically, so a member whose object appeared meanwhile stays. Suspects from every
//! index share one queue, so a run costs its scan plus one grace, however many indexes; the
//! queue is capped, so memory stays bounded on a 1,000,000-member index.
//!
//! SSCAN returns every member present for the whole scan at least once (maybe twice: removal
//! is idempotent); members added during the scan may be missed and are checked by the next run.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::Script;

use crate::config::IntegrityRule;
use crate::jobs::watchlist::{WatchlistReader, escape};
use crate::jobs::{Job, JobError, JobName, RunContext, RunReport};
use crate::keys::{self, MemberKey};
use crate::stats;
use crate::store::{Store, StoreError};

/// Removes a member only while its object is missing. KEYS: index, object; ARGV: member.
const CHECK_AND_REMOVE: &str = r"
if redis.call('EXISTS', KEYS[2]) == 0 then
  return redis.call('SREM', KEYS[1], ARGV[1])
end
return 0";

/// Adds a member only while its object exists. KEYS: index, object; ARGV: member.
const CHECK_AND_ADD: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then
  return redis.call('SADD', KEYS[1], ARGV[1])
end
return 0";

/// Suspects held at once. When the queue is full the scan waits for the oldest to age out, so
/// memory is bounded by this, not by the size of the index or the number of orphans.
const MAX_SUSPECTS: usize = 100_000;

pub struct IntegrityJob;

/// What one rule did.
#[derive(Debug, Default, Clone)]
pub struct RuleReport {
    pub indexes: u64,
    pub checked: u64,
    pub orphans: u64,
    pub removed: u64,
    pub reindexed: u64,
    pub error: Option<String>,
    pub duration: Duration,
}

/// A member seen without its object.
struct Suspect {
    rule: usize,
    index: Arc<[u8]>,
    member: Vec<u8>,
    object: Vec<u8>,
    seen_missing: Instant,
}

/// The suspects waiting out the grace, oldest first, and what removing them did.
struct Sweeper<'a> {
    store: &'a Store,
    grace: Duration,
    dry_run: bool,
    chunk: usize,
    queue: VecDeque<Suspect>,
    remove: Script,
}

/// How far [`Sweeper::sweep`] goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sweep {
    /// While a whole chunk has aged (one full round trip each): during the scan.
    FullChunks,
    /// Until the queue is below its cap, waiting for suspects to age if needed.
    Room,
    /// Until the queue is empty, waiting out the grace: the end of a run.
    All,
}

impl Sweeper<'_> {
    /// Removes (or, dry, counts) suspects that have been missing for the whole grace, one chunk
    /// per round trip.
    async fn sweep(&mut self, reports: &mut [RuleReport], mode: Sweep) -> Result<(), StoreError> {
        loop {
            let aged = self.aged(Instant::now());
            let go_on = match mode {
                Sweep::FullChunks => aged == self.chunk,
                Sweep::Room => self.queue.len() >= MAX_SUSPECTS,
                Sweep::All => !self.queue.is_empty(),
            };
            if !go_on {
                return Ok(());
            }
            if aged == 0 {
                let due = self.queue.front().map(|s| s.seen_missing + self.grace);
                if let Some(due) = due {
                    tokio::time::sleep_until(due.into()).await;
                }
                continue;
            }
            let batch: Vec<Suspect> = self.queue.drain(..aged).collect();
            let removed = self.remove_aged(&batch).await?;
            for (suspect, gone) in batch.iter().zip(removed) {
                reports[suspect.rule].removed += u64::from(gone);
            }
        }
    }

    /// How many suspects at the head of the queue have aged, up to one chunk.
    fn aged(&self, now: Instant) -> usize {
        self.queue
            .iter()
            .take(self.chunk)
            .take_while(|s| s.seen_missing + self.grace <= now)
            .count()
    }

    /// One round trip: the check-and-remove script per member (dry: `EXISTS` only). Returns,
    /// per suspect, whether it was (or would be) removed.
    async fn remove_aged(&self, aged: &[Suspect]) -> Result<Vec<bool>, StoreError> {
        if aged.is_empty() {
            return Ok(Vec::new());
        }
        let (dry, hash) = (self.dry_run, self.remove.get_hash().to_owned());
        let replies: Vec<i64> = self
            .store
            .retry("integrity sweep", |mut conn| {
                let mut pipe = redis::pipe();
                for s in aged {
                    if dry {
                        pipe.cmd("EXISTS").arg(&s.object);
                    } else {
                        pipe.cmd("EVALSHA")
                            .arg(&hash)
                            .arg(2)
                            .arg(&*s.index)
                            .arg(&s.object)
                            .arg(&s.member);
                    }
                }
                let script = self.remove.clone();
                async move { with_script(&mut conn, &script, &pipe).await }
            })
            .await?;
        Ok(replies
            .into_iter()
            .map(|r| if dry { r == 0 } else { r == 1 })
            .collect())
    }
}

/// Runs a pipeline of `EVALSHA`s, loading the script first if the server lost it (a restart or
/// failover empties the script cache).
async fn with_script(
    conn: &mut redis::aio::ConnectionManager,
    script: &Script,
    pipe: &redis::Pipeline,
) -> redis::RedisResult<Vec<i64>> {
    match pipe.query_async(conn).await {
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            script.load_async(conn).await?;
            pipe.query_async(conn).await
        }
        other => other,
    }
}

#[async_trait]
impl Job for IntegrityJob {
    fn name(&self) -> JobName {
        JobName::Integrity
    }

    async fn run(&self, ctx: &RunContext) -> Result<RunReport, JobError> {
        let settings = &ctx.shared.settings.integrity;
        let store = &ctx.shared.store;
        let dry_run = settings.dry_run || ctx.options.dry_run;
        let rules = &settings.rules;
        let mut reports = vec![RuleReport::default(); rules.len()];
        let mut sweeper = Sweeper {
            store,
            grace: settings.grace.get(),
            dry_run,
            chunk: settings.scan_count as usize,
            queue: VecDeque::new(),
            remove: Script::new(CHECK_AND_REMOVE),
        };
        let started = Instant::now();
        let mut report = RunReport::default();
        for (n, rule) in rules.iter().enumerate() {
            if ctx.stop_new_work.is_cancelled() {
                report.interrupted = true;
                break;
            }
            let rule_started = Instant::now();
            match scan_rule(ctx, n, rule, &mut sweeper, &mut reports).await {
                Ok(()) => {}
                Err(RuleFailure::Redis(e)) => return Err(e.into()),
                Err(RuleFailure::Rule(why)) => {
                    tracing::error!(rule = %rule.index, error = %why, "integrity rule failed; the other rules still run");
                    reports[n].error = Some(why);
                }
            }
            reports[n].duration += rule_started.elapsed();
        }
        // One run waits the grace out itself: every orphan present at its start is handled now.
        sweeper.sweep(&mut reports, Sweep::All).await?;
        for (n, rule) in rules.iter().enumerate() {
            if rule.reindex && reports[n].error.is_none() && !report.interrupted {
                let rule_started = Instant::now();
                reports[n].reindexed = reindex(store, rule, settings.scan_count, dry_run).await?;
                reports[n].duration += rule_started.elapsed();
            }
        }
        let pruned = if settings.prune_unwatched && !report.interrupted {
            prune_unwatched(store, settings.scan_count, dry_run).await?
        } else {
            0
        };
        for (rule, r) in rules.iter().zip(&reports) {
            tracing::info!(
                rule = %rule.index,
                indexes = r.indexes,
                checked = r.checked,
                orphans = r.orphans,
                removed = r.removed,
                reindexed = r.reindexed,
                error = r.error.as_deref().unwrap_or(""),
                dry_run,
                duration_ms = r.duration.as_millis() as u64,
                "integrity rule finished"
            );
            stats::integrity_rule(&rule.index, r.checked, r.orphans, r.removed, r.reindexed);
            report.fetched += 1;
            if let Some(why) = &r.error {
                report.note_failure(format!("{}: {why}", rule.index));
            }
            report.checked += r.checked;
            report.orphans += r.orphans;
            report.removed += r.removed;
            report.reindexed += r.reindexed;
        }
        report.pruned = pruned;
        report.dry_run = dry_run;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "integrity sweep done"
        );
        Ok(report)
    }
}

/// Why a rule stopped: Redis itself (the run fails) or this rule's data (the others go on).
enum RuleFailure {
    Redis(StoreError),
    Rule(String),
}

impl From<StoreError> for RuleFailure {
    fn from(e: StoreError) -> Self {
        RuleFailure::Redis(e)
    }
}

/// Walks every index of `rule`, queueing members whose object is missing.
async fn scan_rule(
    ctx: &RunContext,
    n: usize,
    rule: &IntegrityRule,
    sweeper: &mut Sweeper<'_>,
    reports: &mut [RuleReport],
) -> Result<(), RuleFailure> {
    let store = &ctx.shared.store;
    let count = ctx.shared.settings.integrity.scan_count;
    let template = MemberKey::parse(&rule.member_key);
    let indexes: Vec<Vec<u8>> = if rule.is_pattern() {
        scan_keys(store, &rule.index, Some("set"), count).await?
    } else {
        let kind: String = store
            .retry("TYPE index", |mut conn| {
                let key = rule.index.clone();
                async move { redis::cmd("TYPE").arg(key).query_async(&mut conn).await }
            })
            .await?;
        match kind.as_str() {
            "set" => vec![rule.index.as_bytes().to_vec()],
            // No index yet: nothing to repair.
            "none" => Vec::new(),
            other => {
                return Err(RuleFailure::Rule(format!(
                    "{} is a {other}, not a set",
                    rule.index
                )));
            }
        }
    };
    for index in indexes {
        let index: Arc<[u8]> = index.into();
        let mut page = sscan(store, &index, 0, count).await?;
        loop {
            let (next, members) = page;
            let objects: Vec<Vec<u8>> = members.iter().map(|m| template.key(m)).collect();
            // The next page is read while this one's objects are checked.
            let (exists, following) = if next == 0 {
                (exists_all(store, &objects).await?, None)
            } else {
                let (exists, following) = tokio::join!(
                    exists_all(store, &objects),
                    sscan(store, &index, next, count)
                );
                (exists?, Some(following?))
            };
            reports[n].checked += members.len() as u64;
            let now = Instant::now();
            for ((member, object), exists) in members.into_iter().zip(objects).zip(exists) {
                if !exists {
                    reports[n].orphans += 1;
                    tracing::debug!(index = %escape(&index), member = %escape(&member), "object missing; member is a suspect");
                    sweeper.queue.push_back(Suspect {
                        rule: n,
                        index: index.clone(),
                        member,
                        object,
                        seen_missing: now,
                    });
                }
            }
            sweeper.sweep(reports, Sweep::FullChunks).await?;
            sweeper.sweep(reports, Sweep::Room).await?;
            match following {
                Some(following) => page = following,
                None => break,
            }
        }
        reports[n].indexes += 1;
    }
    Ok(())
}

async fn sscan(
    store: &Store,
    index: &[u8],
    cursor: u64,
    count: u32,
) -> Result<(u64, Vec<Vec<u8>>), StoreError> {
    store
        .retry("SSCAN index", |mut conn| async move {
            redis::cmd("SSCAN")
                .arg(index)
                .arg(cursor)
                .arg("COUNT")
                .arg(count)
                .query_async(&mut conn)
                .await
        })
        .await
}

/// Whether each object exists, in one pipelined round trip.
async fn exists_all(store: &Store, objects: &[Vec<u8>]) -> Result<Vec<bool>, StoreError> {
    if objects.is_empty() {
        return Ok(Vec::new());
    }
    store
        .retry("EXISTS chunk", |mut conn| {
            let mut pipe = redis::pipe();
            for object in objects {
                pipe.cmd("EXISTS").arg(object);
            }
            async move { pipe.query_async(&mut conn).await }
        })
        .await
}

/// Every key matching `pattern` (of `kind`, when given), by `SCAN`.
async fn scan_keys(
    store: &Store,
    pattern: &str,
    kind: Option<&str>,
    count: u32,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, page): (u64, Vec<Vec<u8>>) = store
            .retry("SCAN", |mut conn| async move {
                let mut cmd = redis::cmd("SCAN");
                cmd.arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(count);
                if let Some(kind) = kind {
                    cmd.arg("TYPE").arg(kind);
                }
                cmd.query_async(&mut conn).await
            })
            .await?;
        keys.extend(page);
        cursor = next;
        if cursor == 0 {
            return Ok(keys);
        }
    }
}

/// Re-adds objects that exist but are missing from the rule's index. Returns how many (dry: how
/// many would be).
async fn reindex(
    store: &Store,
    rule: &IntegrityRule,
    count: u32,
    dry_run: bool,
) -> Result<u64, StoreError> {
    let pattern = rule.object_pattern.as_deref().unwrap_or_default();
    let template = MemberKey::parse(&rule.member_key);
    let add = Script::new(CHECK_AND_ADD);
    let mut added = 0;
    let mut cursor = 0u64;
    loop {
        let (next, page): (u64, Vec<Vec<u8>>) = store
            .retry("SCAN objects", |mut conn| async move {
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(count)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let candidates: Vec<(&[u8], &[u8])> = page
            .iter()
            .filter_map(|key| template.member(key).map(|m| (key.as_slice(), m)))
            .filter(|(key, _)| key != &rule.index.as_bytes())
            .collect();
        if !candidates.is_empty() {
            let present: Vec<bool> = store
                .retry("SISMEMBER chunk", |mut conn| {
                    let mut pipe = redis::pipe();
                    for (_, member) in &candidates {
                        pipe.cmd("SISMEMBER").arg(&rule.index).arg(*member);
                    }
                    async move { pipe.query_async(&mut conn).await }
                })
                .await?;
            let missing: Vec<&(&[u8], &[u8])> = candidates
                .iter()
                .zip(present)
                .filter(|(_, p)| !p)
                .map(|(c, _)| c)
                .collect();
            if dry_run {
                added += missing.len() as u64;
            } else if !missing.is_empty() {
                let hash = add.get_hash().to_owned();
                let replies: Vec<i64> = store
                    .retry("reindex", |mut conn| {
                        let mut pipe = redis::pipe();
                        for (object, member) in &missing {
                            pipe.cmd("EVALSHA")
                                .arg(&hash)
                                .arg(2)
                                .arg(&rule.index)
                                .arg(*object)
                                .arg(*member);
                        }
                        let script = add.clone();
                        async move { with_script(&mut conn, &script, &pipe).await }
                    })
                    .await?;
                added += replies.iter().filter(|r| **r == 1).count() as u64;
            }
        }
        cursor = next;
        if cursor == 0 {
            return Ok(added);
        }
    }
}

/// Deletes cache keys whose ticker is no longer in the watchlist. Returns how many (dry: how
/// many would be). A ticker added to the watchlist meanwhile loses at most one cached value,
/// which the next warming run writes again.
async fn prune_unwatched(store: &Store, count: u32, dry_run: bool) -> Result<u64, StoreError> {
    // The watched tickers (normalised as the warming jobs do), as 8-byte hashes: a
    // 100,000-member watchlist costs a few MB.
    let hasher = RandomState::new();
    let mut watched = HashSet::new();
    let mut reader = WatchlistReader::new(store.clone(), count, None);
    while let Some(batch) = reader.next_batch(count as usize).await? {
        watched.extend(batch.iter().map(|t| hasher.hash_one(t.as_str())));
    }
    let mut pruned = 0;
    let mut cursor = 0u64;
    loop {
        let (next, page): (u64, Vec<Vec<u8>>) = store
            .retry("SCAN cache", |mut conn| async move {
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(keys::CACHE_PATTERN)
                    .arg("COUNT")
                    .arg(count)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let unwatched: Vec<&Vec<u8>> = page
            .iter()
            .filter(|key| {
                keys::parse_cache(key)
                    .is_some_and(|(_, t)| !watched.contains(&hasher.hash_one(t.as_str())))
            })
            .collect();
        if dry_run {
            pruned += unwatched.len() as u64;
        } else if !unwatched.is_empty() {
            let deleted: i64 = store
                .retry("UNLINK unwatched", |mut conn| {
                    let keys = unwatched.clone();
                    async move { redis::cmd("UNLINK").arg(keys).query_async(&mut conn).await }
                })
                .await?;
            pruned += deleted as u64;
        }
        cursor = next;
        if cursor == 0 {
            return Ok(pruned);
        }
    }
}
