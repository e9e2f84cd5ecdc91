//! The cache's promise, watched from the reader's side: under a running daemon no key lapses
//! between runs and no value grows older than a period plus a timeout; a moved earnings date
//! reaches the cache at the first daily run; jitter does not make fresh keys due.

use crate::support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use support::{conn, fcw, free_port, redis, run, summary};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn fetched_at(value: &str) -> DateTime<Utc> {
    let v: serde_json::Value = serde_json::from_str(value).unwrap();
    v["fetched_at"].as_str().unwrap().parse().unwrap()
}

/// The defaults' schedule (every 5 min, 4 min timeout, 10 min TTL) scaled down: every 4 s, a
/// 2 s timeout and an 8 s TTL in every market state, `refresh_ahead` left at its 0.5. A key
/// then keeps about half its TTL at each tick, the case that used to be judged fresh and left
/// to lapse before the run after.
const PERIOD: Duration = Duration::from_secs(4);
const TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::test]
async fn a_key_polled_every_10ms_is_never_missing_nor_older_than_a_period_and_a_timeout() {
    let server = redis().await;
    let mut c = conn(&server).await;
    let _: () = c.sadd("finance:watchlist", &["AAPL", "QQQ"]).await.unwrap();
    let mut cmd = tokio::process::Command::from(fcw());
    cmd.arg("run")
        .env("FCW_REDIS__URL", server.url())
        .env("FCW_SERVER__LISTEN", format!("127.0.0.1:{}", free_port()))
        .envs(support::REPLAY)
        .envs(support::START_UP_RUNS_ONLY)
        .envs([
            ("FCW_TTL__OPEN", "8s"),
            ("FCW_TTL__CLOSED", "8s"),
            ("FCW_TTL__MIN", "8s"),
        ]);
    for job in ["STOCK", "OPTIONS"] {
        // First written by a tick, as in the steady state: a start-up run just before a tick
        // writes values that tick may keep for one more period.
        cmd.env(format!("FCW_JOBS__{job}__SCHEDULE"), "*/4 * * * * *")
            .env(format!("FCW_JOBS__{job}__TIMEOUT"), "2s")
            .env(format!("FCW_JOBS__{job}__RUN_ON_START"), "false");
    }
    let mut daemon = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let keys = [
        "finance:cache:stock:AAPL",
        "finance:cache:stock:QQQ",
        "finance:cache:options:AAPL",
        "finance:cache:options:QQQ",
    ];
    support::eventually(30, "the first tick to write every key", || async {
        let n: usize = conn(&server).await.exists(&keys).await.unwrap();
        (n == keys.len()).then_some(())
    })
    .await;

    let (mut polls, mut oldest, mut refetched) = (0u32, Duration::ZERO, 0u32);
    let mut last_seen: Option<DateTime<Utc>> = None;
    let watch_until = Instant::now() + PERIOD * 6;
    while Instant::now() < watch_until {
        let values: Vec<Option<String>> = c.mget(&keys).await.unwrap();
        let now = Utc::now();
        for (key, value) in keys.iter().zip(&values) {
            let value = value
                .as_deref()
                .unwrap_or_else(|| panic!("{key} missing at poll {polls} ({now})"));
            let age = (now - fetched_at(value)).to_std().unwrap_or_default();
            oldest = oldest.max(age);
        }
        let stamp = fetched_at(values[0].as_deref().unwrap());
        refetched += u32::from(last_seen.is_some_and(|seen| seen != stamp));
        last_seen = Some(stamp);
        polls += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("{polls} polls, {refetched} refetches, oldest value read {oldest:?}");
    assert!(
        daemon.try_wait().unwrap().is_none(),
        "the daemon still runs"
    );
    assert!(polls > 500, "{polls} polls");
    assert!(
        refetched >= 5,
        "every run refetches a key due before the next one: {refetched} refetches in 6 periods"
    );
    assert!(
        oldest <= PERIOD + TIMEOUT,
        "the oldest value read was {oldest:?} old"
    );
}

/// Yahoo's recorded calendar events for `symbol`, served as the answer for AAPL.
async fn answer_aapl_with(upstream: &MockServer, symbol: &str) {
    upstream.reset().await;
    support::mount_yahoo_session(upstream).await;
    Mock::given(path("/v10/finance/quoteSummary/AAPL"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            support::fixture(&format!("yahoo/quoteSummary_calendarEvents_{symbol}.json")),
            "application/json",
        ))
        .mount(upstream)
        .await;
}

#[tokio::test]
async fn a_moved_earnings_date_reaches_the_cache_at_the_next_daily_run() {
    let server = redis().await;
    let mut c = conn(&server).await;
    let _: () = c.sadd("finance:watchlist", "AAPL").await.unwrap();
    let upstream = MockServer::start().await;
    let once = |at: &str| {
        let mut cmd = fcw();
        cmd.args(["once", "earnings", "--at", at])
            .env("FCW_REDIS__URL", server.url())
            .env("FCW_PROVIDER__YAHOO__BASE_URL", upstream.uri())
            .env(
                "FCW_PROVIDER__YAHOO__COOKIE_URL",
                format!("{}/cookie", upstream.uri()),
            )
            .env("FCW_PROVIDER__YAHOO__REQUESTS_PER_SECOND", "0")
            .env("FCW_LOG__FORMAT", "json")
            .env("FCW_SERVER__LISTEN", "");
        let (code, _, err) = run(&mut cmd);
        assert_eq!(code, Some(0), "{err}");
        summary(&err, "earnings")
    };
    let key = "finance:cache:earnings:AAPL";
    let date = |value: &str| {
        serde_json::from_str::<serde_json::Value>(value).unwrap()["earnings_date"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // Monday 14 April 2025, 08:00 New York: AAPL's recorded date is 30 April, 16 days away.
    answer_aapl_with(&upstream, "AAPL").await;
    once("2025-04-14T12:00:00Z");
    let first: String = c.get(key).await.unwrap();
    assert_eq!(date(&first), "2025-04-30");
    // The company moves it to 23 April (the recorded GOOG calendar, answered for AAPL). A run
    // the same day keeps the value it fetched minutes ago: earnings are refetched daily.
    answer_aapl_with(&upstream, "GOOG").await;
    let s = once("2025-04-14T12:05:00Z");
    assert_eq!(s["skipped_fresh"].as_u64(), Some(1), "{s}");
    // A day later (the value fetched 24 h ago; its TTL, to the old date, has days left) the
    // daily run refetches it and the new date is cached.
    let mut aged: serde_json::Value = serde_json::from_str(&first).unwrap();
    aged["fetched_at"] = (fetched_at(&first) - chrono::Duration::days(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        .into();
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(aged.to_string())
        .arg("KEEPTTL")
        .query_async(&mut c)
        .await
        .unwrap();
    let s = once("2025-04-15T12:00:00Z");
    assert_eq!(s["written"].as_u64(), Some(1), "{s}");
    let moved: String = c.get(key).await.unwrap();
    assert_eq!(date(&moved), "2025-04-23");
    let ttl: i64 = c.ttl(key).await.unwrap();
    assert!(
        (7 * 86_400 + 16 * 3600 - 5..=7 * 86_400 + 16 * 3600).contains(&ttl),
        "lives until the new date's day starts: {ttl}"
    );
}

#[tokio::test]
async fn jitter_above_one_minus_refresh_ahead_leaves_fresh_keys_alone() {
    let server = redis().await;
    let mut c = conn(&server).await;
    let tickers: Vec<String> = ('A'..='Z')
        .flat_map(|a| ['A', 'B'].map(|b| format!("{a}{b}")))
        .take(40)
        .collect();
    let _: () = c.sadd("finance:watchlist", &tickers).await.unwrap();
    let once = || {
        let mut cmd = fcw();
        // 22:00 New York, closed: a 1 h TTL, shortened by up to 90 % per key.
        cmd.args(["once", "stock", "--at", "2026-12-03T03:00:00Z"])
            .env("FCW_REDIS__URL", server.url())
            .envs(support::REPLAY)
            .env("FCW_TTL__JITTER", "0.9")
            .env("FCW_LOG__FORMAT", "json")
            .env("FCW_SERVER__LISTEN", "");
        let (code, _, err) = run(&mut cmd);
        assert_eq!(code, Some(0), "{err}");
        summary(&err, "stock")
    };
    assert_eq!(once()["written"].as_u64(), Some(40));
    let ttls: Vec<i64> = {
        let mut p = redis::pipe();
        for t in &tickers {
            p.ttl(format!("finance:cache:stock:{t}"));
        }
        p.query_async(&mut c).await.unwrap()
    };
    assert!(
        ttls.iter().any(|&t| t < 1800),
        "some keys were written with under half the policy's hour: {ttls:?}"
    );
    let s = once();
    assert_eq!(
        (s["skipped_fresh"].as_u64(), s["written"].as_u64()),
        (Some(40), Some(0)),
        "judged against the TTL each key was written with: {s}"
    );
}
