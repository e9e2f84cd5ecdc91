//! Cron schedules, read in the exchange's time zone, and their next fire times.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The first fire time of `cron` strictly after `after`, computed in `tz`.
pub fn next_fire(
    cron: &croner::Cron,
    tz: chrono_tz::Tz,
    after: chrono::DateTime<chrono::Utc>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    cron.find_next_occurrence(&after.with_timezone(&tz), false)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// How far ahead [`Schedule::longest_gap_over`] looks: over a year, so a yearly pattern shows.
const GAP_SCAN_DAYS: i64 = 400;
/// Its probes at most, so a short limit cannot make start-up slow.
const GAP_SCAN_PROBES: i32 = 2_000;

/// A 6-field cron expression with seconds (`sec min hour dom month dow`), checked when loaded.
#[derive(Clone)]
pub struct Schedule {
    text: String,
    cron: croner::Cron,
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Self, String> {
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Required)
            .build()
            .parse(text)
            .map_err(|e| format!("invalid cron expression {text:?} (6 fields with seconds, e.g. \"0 */5 * * * *\"): {e}"))?;
        // A date that never comes (30 February) parses; a job on it would never run, and its
        // loop would end, so the daemon's heartbeats would stop and it would be restarted in a
        // loop. Without a year field, an expression that fires once fires again every 4 years.
        if next_fire(&cron, chrono_tz::UTC, chrono::Utc::now()).is_none() {
            return Err(format!(
                "the cron expression {text:?} never fires (a date that does not exist?)"
            ));
        }
        Ok(Schedule {
            text: text.to_owned(),
            cron,
        })
    }

    pub fn cron(&self) -> &croner::Cron {
        &self.cron
    }

    /// The longest wait for a run from `from` on (to the first fire time, or between two), if
    /// one is longer than `limit`. Probes the next 400 days at half the limit apart, so every
    /// such wait holds a probe, and measures it from the fire times around that probe: a few
    /// dozen steps, where walking every fire time of an every-second schedule would take long.
    pub fn longest_gap_over(
        &self,
        tz: chrono_tz::Tz,
        from: chrono::DateTime<chrono::Utc>,
        limit: chrono::Duration,
    ) -> Option<chrono::Duration> {
        let step = (limit / 2).max(chrono::Duration::days(GAP_SCAN_DAYS) / GAP_SCAN_PROBES);
        let end = from + chrono::Duration::days(GAP_SCAN_DAYS);
        let mut longest = None;
        let mut probe = from;
        while probe <= end {
            let local = probe.with_timezone(&tz);
            let next = self.cron.find_next_occurrence(&local, false).ok()?;
            let previous = self
                .cron
                .find_previous_occurrence(&local, true)
                .map_or(from, |p| p.with_timezone(&chrono::Utc).max(from));
            let gap = next.with_timezone(&chrono::Utc) - previous;
            if gap > limit && longest.is_none_or(|l| gap > l) {
                longest = Some(gap);
            }
            probe += step;
        }
        longest
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?})", self.text)
    }
}

impl Serialize for Schedule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Schedule::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}
