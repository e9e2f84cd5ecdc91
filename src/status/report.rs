//! The report `status` prints and `status --json` serialises: per job, the watchlist, coverage.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::keys::CacheKind;
use crate::runner::record::RunRecord;

/// Fire times listed per job.
pub(super) const NEXT_RUNS: usize = 3;
/// Missing tickers named per cache kind (the alphabetically first ones).
pub(super) const MISSING_NAMED: usize = 5;
/// "Expiring soon": the app may find these gone before the next run.
pub(super) const EXPIRING_SOON_MS: i64 = 60_000;

/// The whole report, as `status --json` prints it.
#[derive(Debug, Serialize)]
pub struct Status {
    pub generated_at: String,
    pub redis: String,
    /// Every enabled job succeeded recently enough and every enabled kind covers at least
    /// `status.min_coverage` of the watchlist; `status` exits 0 exactly when this holds.
    pub healthy: bool,
    pub jobs: Vec<JobStatus>,
    pub watchlist: WatchlistSummary,
    pub coverage: Vec<Coverage>,
    /// The warm-request stream's consumer group, when `requests.enabled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<RequestsSummary>,
}

/// The warm-request stream as `status` shows it. The counts are `null` until a daemon has made
/// the group.
#[derive(Debug, Serialize)]
pub struct RequestsSummary {
    pub stream: &'static str,
    pub group: String,
    pub consumers: Option<u64>,
    /// Read by a consumer and not acknowledged yet.
    pub pending: Option<u64>,
    /// Not read by any consumer yet (`null` as well from a server before Redis 7).
    pub waiting: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct JobStatus {
    pub job: &'static str,
    pub enabled: bool,
    pub schedule: String,
    pub healthy: bool,
    /// Why it is not healthy.
    pub problem: Option<String>,
    pub last_run: Option<RunRecord>,
    /// RFC 3339, as recorded (milliseconds).
    pub last_success_at: Option<DateTime<Utc>>,
    /// When the job turns unhealthy if no run succeeds before.
    pub healthy_until: Option<DateTime<Utc>>,
    /// Who holds the job's lock (or its shards' locks) now.
    pub locks: Vec<LockHolder>,
    pub next_runs: Vec<DateTime<Utc>>,
}

/// A held job lock: its key and the holder's own account of itself.
#[derive(Debug, Serialize)]
pub struct LockHolder {
    pub key: String,
    pub host: Option<String>,
    pub pid: Option<u32>,
    pub since: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct WatchlistSummary {
    pub key: &'static str,
    /// Members read, including invalid ones and duplicates.
    pub members: u64,
    /// Distinct valid tickers: what coverage is counted against.
    pub tickers: u64,
    pub invalid: u64,
    pub duplicates: u64,
    /// Tickers by the market whose clock they follow, by the symbol rules and
    /// `markets.tickers`; those the rules do not place count as XNYS (the stock job may still
    /// place some by the provider's metadata).
    pub calendars: BTreeMap<String, u64>,
}

/// How much of the watchlist one kind of cache key covers.
#[derive(Debug, Serialize)]
pub struct Coverage {
    pub kind: CacheKind,
    /// Why this kind is not healthy: too little of the watchlist cached.
    pub problem: Option<String>,
    pub present: u64,
    pub missing: u64,
    pub expiring_within_1m: u64,
    pub ttl_histogram: TtlHistogram,
    /// The alphabetically first missing tickers.
    pub missing_tickers: Vec<String>,
}

/// Present keys by remaining TTL.
#[derive(Debug, Default, Serialize)]
pub struct TtlHistogram {
    pub under_1m: u64,
    #[serde(rename = "1m_to_10m")]
    pub m1_to_m10: u64,
    #[serde(rename = "10m_to_1h")]
    pub m10_to_h1: u64,
    #[serde(rename = "1h_to_1d")]
    pub h1_to_d1: u64,
    pub over_1d: u64,
    /// Keys without an expiry: not written by this daemon (it always sets one).
    pub no_expiry: u64,
}

impl TtlHistogram {
    pub(super) fn add(&mut self, pttl_ms: i64) {
        let slot = match pttl_ms {
            -1 => &mut self.no_expiry,
            i64::MIN..60_000 => &mut self.under_1m,
            60_000..600_000 => &mut self.m1_to_m10,
            600_000..3_600_000 => &mut self.m10_to_h1,
            3_600_000..86_400_000 => &mut self.h1_to_d1,
            _ => &mut self.over_1d,
        };
        *slot += 1;
    }
}
