//! The report as text: a table of jobs, a table of coverage, the problems, the verdict.

use std::fmt::Write as _;
use std::io::Write;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::report::{LockHolder, Status};
use crate::jobs::JobName;

/// The report as text: a table of jobs, a table of cache coverage, and the verdict.
pub fn render(
    status: &Status,
    tz: Tz,
    now: DateTime<Utc>,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let mut text = String::new();
    let verdict = if status.healthy {
        "healthy"
    } else {
        "UNHEALTHY"
    };
    let _ = writeln!(
        text,
        "finance-cache-warmer status at {} ({}) · redis {} · {verdict}\n",
        now.format("%Y-%m-%d %H:%M:%S UTC"),
        now.with_timezone(&tz).format("%H:%M %Z"),
        status.redis,
    );
    let mut rows = vec![
        [
            "JOB",
            "HEALTH",
            "LAST RUN",
            "OUTCOME",
            "TOOK",
            "OK",
            "FAILED",
            "SKIPPED",
            "INVALID",
            "LAST SUCCESS",
            "LOCK",
            "NEXT RUNS",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    let mut notes = Vec::new();
    for j in &status.jobs {
        let health = match (j.enabled, j.healthy, &j.last_success_at) {
            (false, _, _) => "disabled",
            (true, true, _) => "ok",
            (true, false, None) => "never",
            (true, false, Some(_)) => "stale",
        };
        let count = |name: &str| {
            j.last_run
                .as_ref()
                .and_then(|r| r.counts.get(name))
                .map_or("-".to_owned(), u64::to_string)
        };
        let warming = j.job != JobName::Integrity.as_str();
        let (ok, failed, skipped, invalid) = if warming {
            (
                count("written"),
                count("failed"),
                count("skipped_fresh"),
                count("invalid"),
            )
        } else {
            ("-".into(), count("failed"), "-".into(), "-".into())
        };
        let lock = match j.locks.as_slice() {
            [] => "free".to_owned(),
            [one] => holder(one, now),
            many => format!("{} held", many.len()),
        };
        rows.push(vec![
            j.job.to_owned(),
            health.to_owned(),
            j.last_run
                .as_ref()
                .map_or("never".into(), |r| ago(now, r.started_at)),
            j.last_run
                .as_ref()
                .map_or("-".into(), |r| r.outcome.clone()),
            j.last_run
                .as_ref()
                .map_or("-".into(), |r| took(r.duration_ms)),
            ok,
            failed,
            skipped,
            invalid,
            j.last_success_at.map_or("never".into(), |t| ago(now, t)),
            lock,
            j.next_runs
                .iter()
                .take(2)
                .map(|t| t.with_timezone(&tz).format("%a %H:%M").to_string())
                .collect::<Vec<_>>()
                .join(", "),
        ]);
        if let Some(r) = &j.last_run {
            if !r.reason.is_empty() {
                notes.push(format!("{}: last run {}: {}", j.job, r.outcome, r.reason));
            }
            if !warming {
                notes.push(format!(
                    "{}: checked {}, orphans {}, removed {}, reindexed {}",
                    j.job,
                    count("checked"),
                    count("orphans"),
                    count("removed"),
                    count("reindexed")
                ));
            }
        }
        if let Some(problem) = &j.problem {
            notes.push(format!("{}: {problem}", j.job));
        }
        if j.locks.len() > 1 {
            for l in &j.locks {
                notes.push(format!("{}: {} held by {}", j.job, l.key, holder(l, now)));
            }
        }
    }
    table(&mut text, &rows, "llllrrrrrlll");
    for note in notes {
        let _ = writeln!(text, "  {note}");
    }
    let w = &status.watchlist;
    let _ = writeln!(
        text,
        "\nCache coverage of {} ({} tickers; {} members, {} invalid, {} duplicates)",
        w.key, w.tickers, w.members, w.invalid, w.duplicates
    );
    if !w.calendars.is_empty() {
        let mix: Vec<String> = w
            .calendars
            .iter()
            .map(|(m, n)| format!("{m} {n}"))
            .collect();
        let _ = writeln!(text, "Markets: {}", mix.join(", "));
    }
    let mut rows = vec![
        [
            "KIND",
            "PRESENT",
            "MISSING",
            "EXPIRING <1m",
            "TTL <1m",
            "1m-10m",
            "10m-1h",
            "1h-1d",
            ">1d",
            "NONE",
            "FIRST MISSING",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for c in &status.coverage {
        let h = &c.ttl_histogram;
        let mut row = vec![c.kind.to_string()];
        row.extend(
            [
                c.present,
                c.missing,
                c.expiring_within_1m,
                h.under_1m,
                h.m1_to_m10,
                h.m10_to_h1,
                h.h1_to_d1,
                h.over_1d,
                h.no_expiry,
            ]
            .map(|n| n.to_string()),
        );
        row.push(if c.missing_tickers.is_empty() {
            "-".into()
        } else {
            c.missing_tickers.join(", ")
        });
        rows.push(row);
    }
    table(&mut text, &rows, "lrrrrrrrrrl");
    for c in &status.coverage {
        if let Some(problem) = &c.problem {
            let _ = writeln!(text, "  {}: {problem}", c.kind);
        }
    }
    if let Some(r) = &status.requests {
        let count = |n: Option<u64>| n.map_or("?".to_owned(), |n| n.to_string());
        let _ = match r.consumers {
            None => writeln!(
                text,
                "\nWarm requests ({}, group {}): no group yet (no daemon has served requests)",
                r.stream, r.group
            ),
            Some(consumers) => writeln!(
                text,
                "\nWarm requests ({}, group {}): {consumers} consumers, {} pending, {} waiting",
                r.stream,
                r.group,
                count(r.pending),
                count(r.waiting)
            ),
        };
    }
    out.write_all(text.as_bytes())
}

/// Aligned columns, two spaces apart; `align` has an `l` or `r` per column.
pub(super) fn table(text: &mut String, rows: &[Vec<String>], align: &str) {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for ((cell, width), a) in row.iter().zip(&widths).zip(align.chars()) {
            if a == 'r' {
                let _ = write!(line, "{cell:>width$}  ");
            } else {
                let _ = write!(line, "{cell:<width$}  ");
            }
        }
        let _ = writeln!(text, "{}", line.trim_end());
    }
}

pub(super) fn holder(lock: &LockHolder, now: DateTime<Utc>) -> String {
    let since = lock
        .since
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| format!(" for {}", span(now - t.with_timezone(&Utc))))
        .unwrap_or_default();
    format!(
        "{}:{}{since}",
        lock.host.as_deref().unwrap_or("?"),
        lock.pid.map_or("?".into(), |p| p.to_string())
    )
}

pub(super) fn ago(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    format!("{} ago", span(now - t))
}

pub(super) fn took(ms: u64) -> String {
    if ms < 10_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        span(chrono::Duration::milliseconds(ms as i64))
    }
}

/// A duration in its largest two units: `42s`, `5m 03s`, `3h 12m`, `2d 4h`.
pub(super) fn span(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::status::gather::healthy_until;
    use crate::status::report::TtlHistogram;

    #[test]
    fn spans_read_at_a_glance() {
        let secs = chrono::Duration::seconds;
        assert_eq!(span(secs(42)), "42s");
        assert_eq!(span(secs(303)), "5m 03s");
        assert_eq!(span(secs(3 * 3600 + 12 * 60)), "3h 12m");
        assert_eq!(span(secs(2 * 86_400 + 4 * 3600 + 5)), "2d 4h");
        assert_eq!(span(secs(-5)), "0s");
        assert_eq!(took(1234), "1.2s");
        assert_eq!(took(61_000), "1m 01s");
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_job_stays_healthy_for_two_fire_times_plus_its_timeout() {
        let settings = Settings::defaults().unwrap();
        let ny = chrono_tz::America::New_York;
        // Every 5 minutes, 4 minute timeout: a success at 10:01 is good until 10:10 + 4m.
        assert_eq!(
            healthy_until(&settings.jobs.stock, ny, utc("2026-11-24T15:01:00Z")),
            Some(utc("2026-11-24T15:14:00Z"))
        );
        // Weekdays at 08:00 New York, 30 minute timeout: Friday's success lasts the weekend,
        // until Tuesday's run has had its time.
        assert_eq!(
            healthy_until(&settings.jobs.earnings, ny, utc("2026-11-20T13:00:30Z")),
            Some(utc("2026-11-24T13:30:00Z"))
        );
    }

    #[test]
    fn ttl_histogram_buckets_by_remaining_time() {
        let mut h = TtlHistogram::default();
        for ms in [
            -1, 0, 59_999, 60_000, 599_999, 600_000, 3_600_000, 86_399_999, 86_400_000,
        ] {
            h.add(ms);
        }
        assert_eq!(
            (
                h.no_expiry,
                h.under_1m,
                h.m1_to_m10,
                h.m10_to_h1,
                h.h1_to_d1,
                h.over_1d
            ),
            (1, 2, 2, 1, 2, 1)
        );
    }
}
