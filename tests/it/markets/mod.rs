//! Every market's clock: the shipped sessions against `exchange_calendars` (and the files
//! against the generator pinned to it), the rule-based markets (24/7, the FX week), the TTL
//! policy's properties on each market, which market each recorded instrument lands on, and the
//! warm jobs writing each market's TTLs end to end.

mod commands;
mod mapping;
mod rules;
mod sessions;
mod source;
mod ttl;
mod warm;

use chrono::NaiveDate;
use finance_cache_warmer::calendar::Calendar;
use sha2::{Digest, Sha256};

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// The expanded schedule's fingerprint as the generator writes it in a file's `check` line:
/// the session count and the SHA-256 of `<date>,<open>,<break start>,<break end>,<close>\n` per
/// session, instants in UTC as `YYYY-MM-DDTHH:MMZ` (empty when there is no break). Also the
/// first sessions' lines, to show when the fingerprint differs.
fn fingerprint(cal: &Calendar, from: NaiveDate, to: NaiveDate) -> (usize, String, Vec<String>) {
    let utc = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or(String::new(), |t| t.format("%Y-%m-%dT%H:%MZ").to_string())
    };
    let mut hash = Sha256::new();
    let mut count = 0;
    let mut head = Vec::new();
    for s in cal.sessions(from, to) {
        let line = format!(
            "{},{},{},{},{}\n",
            s.date,
            utc(Some(s.open)),
            utc(s.break_start),
            utc(s.break_end),
            utc(Some(s.close))
        );
        if head.len() < 3 {
            head.push(line.clone());
        }
        hash.update(line.as_bytes());
        count += 1;
    }
    let hex = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    (count, hex, head)
}
