//! The `integrity` job: removes index entries whose object is gone, without ever removing a
//! live one, while the app keeps writing.
//!
//! On a single server each page of an index is one script call that runs the `SSCAN` and the
//! `EXISTS` of each member's object on the server and returns only the members whose object is
//! missing; on a cluster, where the index and its objects live on different nodes, the index is
//! walked with `SSCAN` and each page's objects checked with one pipelined `EXISTS` round trip.
//! A member whose object is missing becomes a suspect. It is removed only once its object has
//! been missing for `grace` since it was first seen missing (a writer may add the index entry a
//! moment before the object), and only by a script that re-checks `EXISTS` and `SREM`s
//! atomically, so a member whose object appeared meanwhile stays. Suspects from every index
//! share one queue, so a run costs its scan plus one grace, however many indexes; the queue is
//! capped, so memory stays bounded on a 1,000,000-member index.
//!
//! SSCAN returns every member present for the whole scan at least once (maybe twice: removal
//! is idempotent); members added during the scan may be missed and are checked by the next run.
//!
//! `reindex` is the mirror image: an object (a key of the rule's `object_type`) missing from its
//! index is re-added only if it still exists, still unindexed, a grace after it was first seen
//! (a writer removes the id from the index a moment before deleting the object).

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::config::{IntegrityRule, IntegritySettings, OBJECT_TYPES};
use crate::jobs::job::{Job, JobError, JobName, RunContext, RunReport};
use crate::keys::{self, MemberKey};
use crate::metrics;
use crate::store::{IndexEntry, KeyScan, PageMembers, SetChange, Store, StoreError};
use crate::watchlist::{WatchlistReader, escape};

/// Suspects held at once. When the queue is full the scan waits for the oldest to age out, so
/// memory is bounded by this (and one page more), not by the size of the index or the number of
/// orphans.
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

/// A member seen without its object, or (reindex) an object seen without its member.
struct Suspect {
    rule: usize,
    index: Arc<[u8]>,
    member: Vec<u8>,
    object: Vec<u8>,
    seen_missing: Instant,
}

/// The suspects waiting out the grace, oldest first, and what repairing them did.
struct Sweeper<'a> {
    store: &'a Store,
    grace: Duration,
    dry_run: bool,
    chunk: usize,
    queue: VecDeque<Suspect>,
    /// What becomes of a suspect that is still one after the grace: its member is removed (its
    /// object is still missing) or re-added (its object still exists, still unindexed).
    repair: SetChange,
}

impl<'a> Sweeper<'a> {
    fn new(
        settings: &IntegritySettings,
        store: &'a Store,
        dry_run: bool,
        repair: SetChange,
    ) -> Sweeper<'a> {
        Sweeper {
            store,
            grace: settings.grace.get(),
            dry_run,
            chunk: settings.scan_count as usize,
            queue: VecDeque::new(),
            repair,
        }
    }
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
    /// Repairs (or, dry, counts) suspects that have been suspects for the whole grace, one chunk
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
            let repaired = self.repair_aged(&batch).await?;
            for (suspect, done) in batch.iter().zip(repaired) {
                let report = &mut reports[suspect.rule];
                match self.repair {
                    SetChange::Remove => report.removed += u64::from(done),
                    SetChange::Add => report.reindexed += u64::from(done),
                }
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

    /// Repairs the aged suspects that still are ones (dry: only says which). On a single
    /// server the script re-checks and repairs atomically; on a cluster the index and the object
    /// may live on different nodes, where no script can touch both, so it re-checks with
    /// `EXISTS` and then `SREM`s (or `SADD`s). The race left there: an object written (or
    /// deleted) in the round trip between the two is missed and its member removed (or re-added)
    /// all the same; the next run repairs a re-added one, not a removed one. A writer that adds
    /// the object before the index entry and removes the entry before the object, and does not
    /// reuse ids, never meets it; the others are covered by the grace only.
    async fn repair_aged(&self, aged: &[Suspect]) -> Result<Vec<bool>, StoreError> {
        let entries: Vec<IndexEntry<'_>> = aged
            .iter()
            .map(|s| IndexEntry {
                index: &s.index,
                member: &s.member,
                object: &s.object,
            })
            .collect();
        if !self.dry_run && !self.store.is_cluster() {
            return self
                .store
                .change_members_guarded(self.repair, &entries)
                .await;
        }
        let objects: Vec<&[u8]> = aged.iter().map(|s| s.object.as_slice()).collect();
        let wanted = self.repair == SetChange::Add;
        let still: Vec<bool> = self
            .store
            .exists_each("EXISTS chunk", &objects)
            .await?
            .into_iter()
            .map(|e| e == wanted)
            .collect();
        if self.dry_run {
            return Ok(still);
        }
        let due: Vec<IndexEntry<'_>> = entries
            .into_iter()
            .zip(&still)
            .filter(|(_, s)| **s)
            .map(|(e, _)| e)
            .collect();
        let mut changed = self
            .store
            .change_members(self.repair, &due)
            .await?
            .into_iter();
        Ok(still
            .iter()
            .map(|s| *s && changed.next() == Some(true))
            .collect())
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
        let mut sweeper = Sweeper::new(settings, store, dry_run, SetChange::Remove);
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
        let mut reindexer = Sweeper::new(settings, store, dry_run, SetChange::Add);
        for (n, rule) in rules.iter().enumerate() {
            if rule.reindex && reports[n].error.is_none() && !report.interrupted {
                let rule_started = Instant::now();
                reindex(store, n, rule, &mut reindexer, &mut reports).await?;
                reports[n].duration += rule_started.elapsed();
            }
        }
        reindexer.sweep(&mut reports, Sweep::All).await?;
        let pruned = if settings.prune_unwatched && !report.interrupted {
            prune_unwatched(store, settings, dry_run).await?
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
            metrics::integrity_rule(&rule.index, r.checked, r.orphans, r.removed, r.reindexed);
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
        // Index names only (members are walked per index below), so this stays small.
        let mut scan = KeyScan::new(store, &rule.index, Some("set"), count).await?;
        let mut found = Vec::new();
        while let Some(page) = scan.next_page().await? {
            found.extend(page);
        }
        found
    } else {
        match store.key_type("TYPE index", &rule.index).await?.as_str() {
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
        if store.is_cluster() {
            scan_index_pipelined(ctx, n, &index, &template, sweeper, reports).await?;
        } else {
            scan_index_scripted(ctx, n, &index, &template, sweeper, reports).await?;
        }
        reports[n].indexes += 1;
    }
    Ok(())
}

/// Walks one index on a single server: each page is one script call that scans it and checks
/// its members' objects on the server, answering with the missing members only. A page is at
/// most [`SCRIPT_PAGE_MAX`](crate::store::SCRIPT_PAGE_MAX) members, below
/// `integrity.scan_count` if need be, so that no call blocks the server for long.
async fn scan_index_scripted(
    ctx: &RunContext,
    n: usize,
    index: &Arc<[u8]>,
    template: &MemberKey,
    sweeper: &mut Sweeper<'_>,
    reports: &mut [RuleReport],
) -> Result<(), StoreError> {
    let store = &ctx.shared.store;
    let count = ctx.shared.settings.integrity.scan_count;
    let mut page = store
        .scan_missing("SSCAN+EXISTS script", index, 0, count, template)
        .await?;
    loop {
        let missing = match page.members {
            PageMembers::Missing(missing) => missing,
            // A compact set handed back whole, too big for one call: checked from here.
            PageMembers::Unchecked(members) => {
                let objects: Vec<Vec<u8>> = members.iter().map(|m| template.key(m)).collect();
                let exists = store.exists_each("EXISTS chunk", &objects).await?;
                members
                    .into_iter()
                    .zip(exists)
                    .filter(|(_, exists)| !exists)
                    .map(|(m, _)| m)
                    .collect()
            }
        };
        reports[n].checked += page.held;
        ctx.progress.advance(page.held, 0);
        let now = Instant::now();
        for member in missing {
            let object = template.key(&member);
            suspect(sweeper, reports, n, index, member, object, now);
        }
        if page.next == 0 {
            sweeper.sweep(reports, Sweep::FullChunks).await?;
            sweeper.sweep(reports, Sweep::Room).await?;
            return Ok(());
        }
        // The next page is checked while aged suspects are removed: the server runs both
        // back to back, and neither waits for the daemon's side of the other. The queue may
        // pass its cap by this one page.
        let (swept, following) = tokio::join!(
            async {
                sweeper.sweep(reports, Sweep::FullChunks).await?;
                sweeper.sweep(reports, Sweep::Room).await
            },
            store.scan_missing("SSCAN+EXISTS script", index, page.next, count, template)
        );
        swept?;
        page = following?;
    }
}

/// Walks one index on a cluster, where no script can see the index and the objects at once:
/// `SSCAN` pages, each page's objects checked with pipelined `EXISTS` while the next is read.
async fn scan_index_pipelined(
    ctx: &RunContext,
    n: usize,
    index: &Arc<[u8]>,
    template: &MemberKey,
    sweeper: &mut Sweeper<'_>,
    reports: &mut [RuleReport],
) -> Result<(), StoreError> {
    let store = &ctx.shared.store;
    let count = ctx.shared.settings.integrity.scan_count;
    let mut page = store.sscan("SSCAN index", index, 0, count).await?;
    loop {
        let (next, members) = page;
        let objects: Vec<Vec<u8>> = members.iter().map(|m| template.key(m)).collect();
        // The next page is read while this one's objects are checked.
        let (exists, following) = if next == 0 {
            (store.exists_each("EXISTS chunk", &objects).await?, None)
        } else {
            let (exists, following) = tokio::join!(
                store.exists_each("EXISTS chunk", &objects),
                store.sscan("SSCAN index", index, next, count)
            );
            (exists?, Some(following?))
        };
        reports[n].checked += members.len() as u64;
        ctx.progress.advance(members.len() as u64, 0);
        let now = Instant::now();
        for ((member, object), exists) in members.into_iter().zip(objects).zip(exists) {
            if !exists {
                suspect(sweeper, reports, n, index, member, object, now);
            }
        }
        sweeper.sweep(reports, Sweep::FullChunks).await?;
        sweeper.sweep(reports, Sweep::Room).await?;
        match following {
            Some(following) => page = following,
            None => return Ok(()),
        }
    }
}

/// Counts `member` of `index` as an orphan and queues it for the sweeper.
fn suspect(
    sweeper: &mut Sweeper<'_>,
    reports: &mut [RuleReport],
    n: usize,
    index: &Arc<[u8]>,
    member: Vec<u8>,
    object: Vec<u8>,
    seen_missing: Instant,
) {
    reports[n].orphans += 1;
    tracing::debug!(index = %escape(index), member = %escape(&member), "object missing; member is a suspect");
    sweeper.queue.push_back(Suspect {
        rule: n,
        index: index.clone(),
        member,
        object,
        seen_missing,
    });
}

/// Queues objects of the rule's type that are missing from its index, for `sweeper` to re-add
/// once they have stayed so for the grace.
async fn reindex(
    store: &Store,
    n: usize,
    rule: &IntegrityRule,
    sweeper: &mut Sweeper<'_>,
    reports: &mut [RuleReport],
) -> Result<(), StoreError> {
    let pattern = rule.object_pattern.as_deref().unwrap_or_default();
    let template = MemberKey::parse(&rule.member_key);
    let index: Arc<[u8]> = rule.index.as_bytes().into();
    // `SCAN ... TYPE` wants a name that lives as long as the scan: the validated one's twin.
    let object_type = OBJECT_TYPES.into_iter().find(|t| *t == rule.object_type());
    let mut scan = KeyScan::new(store, pattern, object_type, sweeper.chunk as u32).await?;
    while let Some(page) = scan.next_page().await? {
        let candidates: Vec<(Vec<u8>, Vec<u8>)> = page
            .into_iter()
            .filter(|key| key.as_slice() != rule.index.as_bytes())
            .filter_map(|key| Some((template.member(&key)?.to_vec(), key)))
            .collect();
        let members: Vec<&[u8]> = candidates.iter().map(|(m, _)| m.as_slice()).collect();
        let present = store
            .is_member_each("SISMEMBER chunk", rule.index.as_bytes(), &members)
            .await?;
        let now = Instant::now();
        for ((member, object), present) in candidates.into_iter().zip(present) {
            if !present {
                tracing::debug!(index = %rule.index, member = %escape(&member), "object missing from its index; re-added after the grace if it still exists");
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
    }
    Ok(())
}

/// Deletes cache keys whose ticker is no longer in the watchlist. Returns how many (dry: how
/// many would be). A ticker added to the watchlist meanwhile loses at most one cached value,
/// which the next warming run writes again. Skipped, with a warning, when the watchlist holds no
/// valid ticker (missing, emptied while the app rewrites it, the wrong key) or when more than
/// `prune_max_fraction` of the cache keys would go: both look like a mistake, not like tickers
/// that left the watchlist.
async fn prune_unwatched(
    store: &Store,
    settings: &IntegritySettings,
    dry_run: bool,
) -> Result<u64, StoreError> {
    let count = settings.scan_count;
    // The watched tickers (normalised as the warming jobs do), as 8-byte hashes: a
    // 100,000-member watchlist costs a few MB.
    let hasher = RandomState::new();
    let mut watched = HashSet::new();
    let mut reader = WatchlistReader::new(store.clone(), count, None);
    while let Some(batch) = reader.next_batch(count as usize).await? {
        watched.extend(batch.iter().map(|t| hasher.hash_one(t.as_str())));
    }
    if watched.is_empty() {
        tracing::warn!(
            watchlist = keys::WATCHLIST,
            "not pruning: the watchlist holds no valid ticker, and pruning would delete every cached value"
        );
        return Ok(0);
    }
    let unwatched = |key: &[u8]| {
        keys::parse_cache(key).is_some_and(|(_, t)| !watched.contains(&hasher.hash_one(t.as_str())))
    };
    // A first pass only counts, so a prune that would go too far deletes nothing.
    let (mut total, mut doomed) = (0u64, 0u64);
    let mut scan = KeyScan::new(store, keys::CACHE_PATTERN, None, count).await?;
    while let Some(page) = scan.next_page().await? {
        total += page.len() as u64;
        doomed += page.iter().filter(|key| unwatched(key)).count() as u64;
    }
    if doomed as f64 > settings.prune_max_fraction * total as f64 {
        tracing::warn!(
            would_delete = doomed,
            cache_keys = total,
            limit = settings.prune_max_fraction,
            "not pruning: it would delete more than integrity.prune_max_fraction of the cache keys"
        );
        return Ok(0);
    }
    if dry_run {
        return Ok(doomed);
    }
    let mut pruned = 0;
    let mut scan = KeyScan::new(store, keys::CACHE_PATTERN, None, count).await?;
    while let Some(page) = scan.next_page().await? {
        let doomed: Vec<&Vec<u8>> = page.iter().filter(|key| unwatched(key)).collect();
        pruned += store.unlink_each("UNLINK unwatched", &doomed).await?;
    }
    Ok(pruned)
}
