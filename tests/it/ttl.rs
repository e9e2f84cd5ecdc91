//! The TTL policy at chosen instants and, as properties, at any instant from 2000 to 2035; and
//! what `once --at` writes in each market state.

use crate::support;

use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::America::New_York;
use finance_cache_warmer::calendar::Calendar;
use finance_cache_warmer::config::Settings;
use finance_cache_warmer::startup;
use finance_cache_warmer::ttl::{Limit, QuoteKind, TtlPolicy};
use proptest::prelude::*;
use redis::AsyncCommands;
use support::{assert_ttl, conn, fcw, redis, run, summary};

fn policy() -> TtlPolicy {
    startup::ttl_policy(&Settings::defaults().unwrap().ttl)
}

fn ny(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
    New_York
        .with_ymd_and_hms(y, m, d, h, min, s)
        .unwrap()
        .with_timezone(&Utc)
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

#[test]
fn quotes_follow_the_session() {
    let (cal, p) = (Calendar::nyse(), policy());
    // Mid-session: the `open` cap.
    let t = p
        .quote(QuoteKind::Stock, &cal, ny(2026, 11, 24, 11, 0, 0))
        .1;
    assert_eq!((t.secs(), t.limit), (600, Limit::Policy));
    // Five minutes before the close: never past the close.
    let t = p
        .quote(QuoteKind::Stock, &cal, ny(2026, 11, 24, 15, 55, 0))
        .1;
    assert_eq!((t.secs(), t.limit), (300, Limit::Boundary));
    // Twenty seconds before the close: raised to `min`.
    let t = p
        .quote(QuoteKind::Stock, &cal, ny(2026, 11, 24, 15, 59, 40))
        .1;
    assert_eq!((t.secs(), t.limit), (60, Limit::Floor));
    // Before the early close after Thanksgiving.
    let t = p
        .quote(QuoteKind::Stock, &cal, ny(2026, 11, 27, 12, 50, 0))
        .1;
    assert_eq!(t.secs(), 600);
    // Closed at 09:00: capped by the open at 09:30, not the 1 h `closed` TTL.
    let t = p.quote(QuoteKind::Stock, &cal, ny(2026, 11, 24, 9, 0, 0)).1;
    assert_eq!((t.secs(), t.limit), (1800, Limit::Boundary));
    // Closed overnight: the `closed` cap.
    let t = p
        .quote(QuoteKind::Stock, &cal, ny(2026, 11, 24, 20, 0, 0))
        .1;
    assert_eq!((t.secs(), t.limit), (3600, Limit::Policy));
    // The options overrides apply to options only.
    let mut s = Settings::defaults().unwrap();
    s.ttl.options.open = Some("2m".parse().unwrap());
    let p = startup::ttl_policy(&s.ttl);
    assert_eq!(
        p.quote(QuoteKind::Options, &cal, ny(2026, 11, 24, 11, 0, 0))
            .1
            .secs(),
        120
    );
    assert_eq!(
        p.quote(QuoteKind::Stock, &cal, ny(2026, 11, 24, 11, 0, 0))
            .1
            .secs(),
        600
    );
}

#[test]
fn earnings_live_until_the_start_of_the_earnings_day() {
    let (cal, p) = (Calendar::nyse(), policy());
    let d = Some(date("2026-12-10"));
    // 23:59 New York the day before: one minute left, raised to the 1 h minimum.
    let t = p.earnings.ttl(&cal, ny(2026, 12, 9, 23, 59, 0), d);
    assert_eq!((t.secs(), t.limit), (3600, Limit::Floor));
    // 00:00 on the day: today, so 1 h.
    assert_eq!(
        p.earnings.ttl(&cal, ny(2026, 12, 10, 0, 0, 0), d).secs(),
        3600
    );
    // A past date: 1 h.
    assert_eq!(
        p.earnings.ttl(&cal, ny(2026, 12, 20, 12, 0, 0), d).secs(),
        3600
    );
    // Three days before at noon: exactly until midnight New York starting the 10th.
    let t = p.earnings.ttl(&cal, ny(2026, 12, 7, 12, 0, 0), d);
    assert_eq!(
        (t.secs(), t.limit),
        (2 * 86_400 + 12 * 3600, Limit::Boundary)
    );
    // The evening before, in UTC already the 10th: New York's date counts, not UTC's.
    let t = p.earnings.ttl(
        &cal,
        Utc.with_ymd_and_hms(2026, 12, 10, 2, 0, 0).unwrap(),
        d,
    );
    assert_eq!(t.secs(), 3 * 3600);
    // Far away: capped at 60 days.
    let t = p
        .earnings
        .ttl(&cal, ny(2026, 12, 1, 0, 0, 0), Some(date("2027-06-01")));
    assert_eq!((t.secs(), t.limit), (60 * 86_400, Limit::Policy));
    // Unknown date: 24 h.
    assert_eq!(
        p.earnings.ttl(&cal, ny(2026, 12, 1, 0, 0, 0), None).secs(),
        86_400
    );
    // Across the spring DST change the day before is 23 hours long.
    let t = p
        .earnings
        .ttl(&cal, ny(2027, 3, 14, 0, 0, 0), Some(date("2027-03-15")));
    assert_eq!(t.secs(), 23 * 3600);
}

fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
    let first = Utc
        .with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .unwrap()
        .timestamp();
    let last = Utc
        .with_ymd_and_hms(2035, 12, 31, 0, 0, 0)
        .unwrap()
        .timestamp();
    (first..last).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn earnings_ttls_stay_in_bounds_and_end_by_the_event(at in any_instant(), days_ahead in -30i64..120) {
        let (cal, p) = (Calendar::nyse(), policy());
        let today = at.with_timezone(&New_York).date_naive();
        let event = today + chrono::Duration::days(days_ahead);
        let t = p.earnings.ttl(&cal, at, Some(event));
        prop_assert!(t.duration >= p.earnings.min && t.duration <= p.earnings.max);
        let start = cal.start_of_day(event);
        if t.limit != Limit::Floor {
            prop_assert!(at + t.duration <= start);
        }
        if days_ahead <= 0 {
            prop_assert_eq!(t.duration, p.earnings.min);
        }
        if t.limit == Limit::Boundary {
            prop_assert!(start - (at + t.duration) < chrono::Duration::seconds(1));
        }
    }
}

#[test]
fn jitter_is_stable_per_key_and_day_and_varies_across_keys() {
    use finance_cache_warmer::ttl::jitter_seed;
    let at = ny(2026, 11, 24, 20, 0, 0);
    let later = ny(2026, 11, 24, 20, 30, 0);
    assert_eq!(
        jitter_seed("finance:cache:stock:AAPL", at),
        jitter_seed("finance:cache:stock:AAPL", later)
    );
    let t = policy().quote(QuoteKind::Stock, &Calendar::nyse(), at).1;
    let spread: std::collections::BTreeSet<Duration> = ["AAPL", "MSFT", "GOOG", "AMZN", "QQQ"]
        .iter()
        .map(|s| t.jittered(0.1, jitter_seed(&format!("finance:cache:stock:{s}"), at)))
        .collect();
    assert!(spread.len() > 1, "{spread:?}");
}

#[test]
fn calendar_command_prints_json_lines_and_a_table() {
    let (code, out, err) = run(fcw().args([
        "calendar",
        "--from",
        "2026-11-25",
        "--to",
        "2026-11-30",
        "--json",
    ]));
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            r#"{"date":"2026-11-25","open":"2026-11-25T14:30:00Z","close":"2026-11-25T21:00:00Z","early_close":false}"#,
            r#"{"date":"2026-11-27","open":"2026-11-27T14:30:00Z","close":"2026-11-27T18:00:00Z","early_close":true}"#,
            r#"{"date":"2026-11-30","open":"2026-11-30T14:30:00Z","close":"2026-11-30T21:00:00Z","early_close":false}"#,
        ]
    );
    let (code, out, _) =
        run(fcw().args(["calendar", "--from", "2026-11-25", "--to", "2026-11-30"]));
    assert_eq!(code, Some(0));
    assert!(
        out.contains("2026-11-27  Fri  09:30 EST  13:00 EST  early close"),
        "{out}"
    );
    assert!(
        !out.contains("2026-11-26"),
        "Thanksgiving has no session: {out}"
    );
    let (code, _, err) = run(fcw().args(["calendar", "--from", "2026-13-01"]));
    assert_eq!(code, Some(2), "{err}");
}

#[test]
fn ttl_command_explains_the_configured_policy() {
    let (code, out, err) = run(fcw().args([
        "ttl",
        "--at",
        "2026-11-27T17:55:00Z",
        "--earnings-date",
        "2026-12-10",
        "--json",
    ]));
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "at": "2026-11-27T17:55:00Z", "market": "open",
            "next_open": "2026-11-30T14:30:00Z", "next_close": "2026-11-27T18:00:00Z",
            "stock_ttl_s": 300, "options_ttl_s": 300, "earnings_ttl_s": 12 * 86_400 + 11 * 3600 + 5 * 60,
        })
    );
    // The policy comes from the config: -c and FCW_* matter.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "[ttl]\nclosed = \"30m\"\n[ttl.options]\nclosed = \"15m\"\n",
    )
    .unwrap();
    let (code, out, err) =
        run(fcw()
            .arg("-c")
            .arg(&file)
            .args(["ttl", "--at", "2026-11-25T23:00:00Z", "--json"]));
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (
            v["market"].as_str(),
            v["stock_ttl_s"].as_u64(),
            v["options_ttl_s"].as_u64()
        ),
        (Some("closed"), Some(1800), Some(900))
    );
    assert_eq!(v["earnings_ttl_s"], 86_400);
    // The text form says why.
    let (code, out, _) = run(fcw().args(["ttl", "--at", "2026-11-25T23:00:00Z"]));
    assert_eq!(code, Some(0));
    assert!(out.contains("market:      closed"), "{out}");
    assert!(out.contains("3600 s  capped by ttl.closed (1h)"), "{out}");
    assert!(
        out.contains("next_open:   2026-11-27T14:30:00Z (Fri 2026-11-27 09:30 EST)"),
        "{out}"
    );
}

/// Stock and options runs every minute with a 10 s timeout: a value written now must outlive
/// the next run (at most 71 s), which is shorter than every TTL below, so the market decides.
const MINUTELY: [(&str, &str); 4] = [
    ("FCW_JOBS__STOCK__SCHEDULE", "0 * * * * *"),
    ("FCW_JOBS__STOCK__TIMEOUT", "10s"),
    ("FCW_JOBS__OPTIONS__SCHEDULE", "0 * * * * *"),
    ("FCW_JOBS__OPTIONS__TIMEOUT", "10s"),
];

#[tokio::test]
async fn once_writes_the_ttl_of_the_market_state_at_its_instant() {
    let server = redis().await;
    let mut c = conn(&server).await;
    let _: () = c.sadd("finance:watchlist", &["AAPL", "QQQ"]).await.unwrap();
    for (at, expected, why) in [
        (
            "2026-12-02T16:00:00Z",
            600,
            "Wednesday 11:00, mid-session: ttl.open",
        ),
        (
            "2026-12-02T20:55:00Z",
            300,
            "five minutes before the 16:00 close",
        ),
        (
            "2026-12-02T14:00:00Z",
            1800,
            "09:00, half an hour before the open",
        ),
        ("2026-12-03T03:00:00Z", 3600, "overnight: ttl.closed"),
        ("2026-12-05T17:00:00Z", 3600, "a Saturday"),
        (
            "2026-12-24T17:55:00Z",
            300,
            "five minutes before the 13:00 early close",
        ),
        ("2026-12-24T18:30:00Z", 3600, "after the early close"),
        ("2026-12-25T16:00:00Z", 3600, "Christmas Day, a holiday"),
        (
            "2027-03-15T13:15:00Z",
            900,
            "the Monday after the spring DST change, when 09:30 is 13:30 UTC",
        ),
    ] {
        for job in ["stock", "options"] {
            let (code, _, err) = run(fcw()
                .args(["once", job, "--force", "--at", at])
                .env("FCW_REDIS__URL", server.url())
                .env("FCW_LOG__FORMAT", "json")
                .envs(support::REPLAY)
                .envs(MINUTELY));
            assert_eq!(code, Some(0), "{at}: {err}");
            let s = summary(&err, job);
            assert_eq!(s["written"].as_u64(), Some(2), "{at}: {s}");
            assert_eq!(
                s["span"]["at"], at,
                "the run says which instant it decided for"
            );
            for symbol in ["AAPL", "QQQ"] {
                let key = format!("finance:cache:{job}:{symbol}");
                assert_ttl(&mut c, &key, expected, &format!("{at}, {why}")).await;
                // The value is stamped with when it was fetched, not with that instant.
                let value: serde_json::Value =
                    serde_json::from_str(&c.get::<_, String>(&key).await.unwrap()).unwrap();
                let fetched_at: DateTime<Utc> =
                    value["fetched_at"].as_str().unwrap().parse().unwrap();
                let age = Utc::now() - fetched_at;
                assert!(
                    age.num_seconds().abs() < 60,
                    "{key}: fetched_at {fetched_at}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_value_outlives_the_next_run_of_its_job_whatever_the_policy_says() {
    let server = redis().await;
    let mut c = conn(&server).await;
    let _: () = c.sadd("finance:watchlist", "AAPL").await.unwrap();
    let once = |job: &str, at: &str| {
        let (code, _, err) = run(fcw()
            .args(["once", job, "--force", "--at", at])
            .env("FCW_REDIS__URL", server.url())
            .env("FCW_LOG__FORMAT", "json")
            .envs(support::REPLAY));
        assert_eq!(code, Some(0), "{err}");
    };
    // 15:55 New York: the policy says 300 s, to the close. The default schedule's next run that
    // can start after this one's 4 m timeout is at 16:00, and may take its own 4 m: the key
    // lives until 16:04:01, so no reader misses it while the 16:00 run writes.
    once("stock", "2026-12-02T20:55:00Z");
    assert_ttl(
        &mut c,
        "finance:cache:stock:AAPL",
        9 * 60 + 1,
        "until the next run",
    )
    .await;
    // Friday 08:00, the earnings job: a date in the past gets the policy's 1 h, but the next
    // weekday run is Monday 08:00, with a 30 m timeout.
    once("earnings", "2026-12-04T13:00:00Z");
    assert_ttl(
        &mut c,
        "finance:cache:earnings:AAPL",
        3 * 86_400 + 30 * 60 + 1,
        "until Monday's run",
    )
    .await;
}
