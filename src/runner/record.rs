//! Run records: each job's last run and last success, kept in Redis so that `status` can tell,
//! from any machine and with no daemon running, how the jobs are doing (a CronJob leaves nothing
//! else behind).
//!
//! One hash per job, `finance:warmer:run:{job}`, overwritten field by field by every run that
//! took the lock: bounded, never a growing list. A sharded run writes the same hash and names its
//! shard. Writing is best effort: a run whose record cannot be written still counts.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

use crate::jobs::JobName;
use crate::keys;
use crate::store::{Fence, Fenced, Store, StoreError};

/// A job's last recorded run, as `status --json` shows it under `last_run`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub run_id: String,
    #[serde(serialize_with = "serialize_ms")]
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    /// `ok`, `failed` or `interrupted` (runs skipped for the lock are not recorded).
    pub outcome: String,
    /// Why it failed; empty otherwise.
    pub reason: String,
    pub host: String,
    pub pid: u32,
    /// `I/N` for a sharded run.
    pub shard: Option<String>,
    /// The summary line's counts (`seen`, `written`, `failed`, `checked`, ...).
    pub counts: BTreeMap<String, u64>,
}

/// What the hash holds: the last run, and when a run last succeeded.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub last_run: Option<RunRecord>,
    pub last_success_at: Option<DateTime<Utc>>,
}

impl RunRecord {
    /// Writes the record with one `HSET` through the run's lock `fence`, so a run that lost its
    /// lock never overwrites the record of the run that took it; a successful run also sets
    /// `last_success_at`. Best effort: a run whose record cannot be written still counts.
    pub async fn save(&self, fence: &Fence, job: JobName) {
        let finished_at = self.started_at + chrono::Duration::milliseconds(self.duration_ms as i64);
        let mut pairs: Vec<(&str, String)> = vec![
            ("run_id", self.run_id.clone()),
            ("started_at", rfc3339_ms(self.started_at)),
            ("duration_ms", self.duration_ms.to_string()),
            ("outcome", self.outcome.clone()),
            ("reason", self.reason.clone()),
            ("host", self.host.clone()),
            ("pid", self.pid.to_string()),
            ("shard", self.shard.clone().unwrap_or_default()),
        ];
        pairs.extend(
            self.counts
                .iter()
                .map(|(name, n)| (name.as_str(), n.to_string())),
        );
        if self.outcome == "ok" {
            pairs.push(("last_success_at", rfc3339_ms(finished_at)));
        }
        let fields: Vec<Vec<u8>> = pairs
            .into_iter()
            .flat_map(|(name, value)| [name.as_bytes().to_vec(), value.into_bytes()])
            .collect();
        let record = [(keys::run_record(job.as_str()), fields)];
        // One attempt: after a failed run Redis is often the reason, and the record is not
        // worth holding up the exit for.
        match fence.apply("HSET run record", 0, "HSET", &record).await {
            Ok(Fenced::Written) => {}
            Ok(Fenced::LockLost) => {
                tracing::info!(job = %job, "not recording the run: another run holds the job lock now");
            }
            Err(e) if fence.store().is_up() => {
                tracing::warn!(job = %job, error = %e, "could not record the run for `status`")
            }
            Err(_) => {}
        }
    }
}

/// Reads `job`'s record (`HGETALL`). Fields it cannot read are left out rather than failing
/// `status`: the hash may have been written by another version.
pub async fn load(store: &Store, job: JobName) -> Result<JobRecord, StoreError> {
    let key = keys::run_record(job.as_str());
    let fields = store.hash("HGETALL run record", &key).await?;
    let time = |name: &str| {
        fields
            .get(name)
            .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let text = |name: &str| fields.get(name).cloned().unwrap_or_default();
    let number = |name: &str| fields.get(name).and_then(|v| v.parse::<u64>().ok());
    let last_run = time("started_at").map(|started_at| RunRecord {
        run_id: text("run_id"),
        started_at,
        duration_ms: number("duration_ms").unwrap_or(0),
        outcome: text("outcome"),
        reason: text("reason"),
        host: text("host"),
        pid: number("pid").unwrap_or(0) as u32,
        shard: fields.get("shard").filter(|s| !s.is_empty()).cloned(),
        counts: crate::jobs::RunReport::default()
            .counts()
            .into_iter()
            .filter_map(|(name, _)| Some((name.to_owned(), number(name)?)))
            .collect(),
    });
    Ok(JobRecord {
        last_run,
        last_success_at: time("last_success_at"),
    })
}

/// Milliseconds matter here: runs of a few hundred milliseconds are common.
pub fn rfc3339_ms(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn serialize_ms<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339_ms(*t))
}
