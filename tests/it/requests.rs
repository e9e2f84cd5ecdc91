//! Warm requests on `finance:warmer:requests`: a ticker the app adds is warmed in every kind at
//! once; garbage, unwatched and repeated requests are acknowledged and cost nothing; entries a
//! dead consumer left pending are claimed; the stream is trimmed; a Redis that comes back empty
//! gets its group again.

use crate::support;

use finance_cache_warmer::local_redis::{LocalRedis, LocalRedisOptions};
use redis::AsyncCommands;
use support::{conn, eventually, fcw, free_port, readme_acl, redis, redis_with, run};

const STREAM: &str = "finance:warmer:requests";
const GROUP: &str = "finance-cache-warmer";
const PASSWORD: &str = "requests-secret";

/// `run` on `server` with the replay provider and only the start-up runs, as the
/// least-privilege user of docs/redis.md; its stderr lines.
fn daemon(
    server: &LocalRedis,
    listen: u16,
    extra: &[(&str, &str)],
) -> (
    tokio::process::Child,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    least_privilege_user(server);
    let url = format!("redis://warmer:{PASSWORD}@127.0.0.1:{}/0", server.port());
    let mut cmd = tokio::process::Command::from(fcw());
    cmd.arg("run")
        .env("FCW_REDIS__URL", url)
        .envs(support::REPLAY)
        .envs(support::START_UP_RUNS_ONLY)
        .env("FCW_LOG__FORMAT", "json")
        .env("FCW_SERVER__LISTEN", format!("127.0.0.1:{listen}"))
        .envs(extra.iter().copied());
    support::spawn_with_lines(cmd)
}

/// The user of docs/redis.md, with [`PASSWORD`], on `server`.
fn least_privilege_user(server: &LocalRedis) {
    let made = std::process::Command::new("redis-cli")
        .args(["-p", &server.port().to_string(), "acl"])
        .args(readme_acl(PASSWORD))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&made.stdout).trim(), "OK");
}

fn kinds(ticker: &str) -> [String; 3] {
    ["stock", "options", "earnings"].map(|k| format!("finance:cache:{k}:{ticker}"))
}

/// Waits until every key of `ticker` exists.
async fn warmed(c: &redis::aio::MultiplexedConnection, ticker: &str) {
    eventually(15, &format!("{ticker} warmed in every kind"), || {
        let mut c = c.clone();
        let keys = kinds(ticker);
        async move {
            let n: usize = c.exists(&keys[..]).await.ok()?;
            (n == 3).then_some(())
        }
    })
    .await;
}

/// Waits until the group has delivered `last` and nothing is pending.
async fn all_acknowledged(c: &redis::aio::MultiplexedConnection, last: &str) {
    eventually(15, "every request acknowledged", || {
        let mut c = c.clone();
        async move {
            let groups: redis::streams::StreamInfoGroupsReply =
                c.xinfo_groups(STREAM).await.ok()?;
            let group = groups.groups.into_iter().find(|g| g.name == GROUP)?;
            (group.last_delivered_id == last && group.pending == 0).then_some(())
        }
    })
    .await;
}

async fn request(c: &mut redis::aio::MultiplexedConnection, fields: &[(&str, &str)]) -> String {
    c.xadd(STREAM, "*", fields).await.unwrap()
}

async fn metric(listen: u16, series: &str) -> f64 {
    let text = reqwest::get(format!("http://127.0.0.1:{listen}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requested_ticker_is_warmed_at_once_and_garbage_costs_nothing() {
    let server = redis().await;
    let mut c = conn(&server).await;
    let _: () = c.sadd("finance:watchlist", "AAPL").await.unwrap();
    let listen = free_port();
    let (mut child, mut rx) = daemon(&server, listen, &[]);
    warmed(&c, "AAPL").await;

    // The app adds a ticker to the watchlist and asks for it: warmed long before any schedule.
    let _: () = c.sadd("finance:watchlist", "MSFT").await.unwrap();
    request(&mut c, &[("ticker", "MSFT")]).await;
    warmed(&c, "MSFT").await;

    // Garbage and a ticker nobody watches are acknowledged and fetch nothing.
    request(&mut c, &[("ticker", "not a ticker!")]).await;
    request(&mut c, &[("symbol", "IBM")]).await;
    let last = request(&mut c, &[("ticker", "IBM")]).await;
    all_acknowledged(&c, &last).await;
    let ibm: usize = c.exists(&kinds("IBM")[..]).await.unwrap();
    assert_eq!(ibm, 0, "an unwatched ticker is not fetched");

    // Asked again while its keys are fresh, MSFT is not fetched again (refresh-ahead).
    let before: Vec<Option<Vec<u8>>> = c.mget(&kinds("MSFT")[..]).await.unwrap();
    let last = request(&mut c, &[("ticker", " msft ")]).await;
    all_acknowledged(&c, &last).await;
    let after: Vec<Option<Vec<u8>>> = c.mget(&kinds("MSFT")[..]).await.unwrap();
    assert_eq!(before, after, "fresh keys are left as they are");

    // `status` shows the group: this daemon, nothing pending, nothing waiting.
    let (code, out, err) = run(fcw()
        .args(["status", "--json"])
        .env("FCW_REDIS__URL", server.url())
        .envs(support::START_UP_RUNS_ONLY));
    assert!(code.is_some(), "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    support::assert_schema("status", &report);
    let group = &report["requests"];
    assert_eq!(group["consumers"], 1, "{group}");
    assert_eq!(group["pending"], 0, "{group}");
    assert_eq!(group["waiting"], 0, "{group}");

    // Counted once acknowledged: the last acknowledgement may be a moment ahead of its count.
    eventually(15, "both watched requests counted as warmed", || async {
        (metric(listen, "fcw_requests_total{outcome=\"warmed\"}").await == 2.0).then_some(())
    })
    .await;
    assert_eq!(
        metric(listen, "fcw_requests_total{outcome=\"invalid\"}").await,
        2.0
    );
    assert_eq!(
        metric(listen, "fcw_requests_total{outcome=\"unwatched\"}").await,
        1.0
    );
    assert_eq!(
        metric(listen, "fcw_request_latency_seconds_count").await,
        2.0
    );
    support::signal(child.id().unwrap(), "-TERM");
    assert_eq!(child.wait().await.unwrap().code(), Some(0));
    let mut lines = Vec::new();
    while let Ok(line) = rx.try_recv() {
        lines.push(line);
    }
    let text = lines.join("\n");
    assert!(text.contains("invalid warm request skipped"), "{text}");
    assert!(
        text.contains("warm request without a ticker field"),
        "{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_consumers_requests_are_claimed_and_the_stream_is_trimmed() {
    // Small stream nodes, so `MAXLEN ~` has whole nodes to drop at this size.
    let server = redis_with(LocalRedisOptions {
        extra_args: ["--stream-node-max-entries", "10"]
            .map(String::from)
            .to_vec(),
        ..LocalRedisOptions::default()
    })
    .await;
    let mut c = conn(&server).await;
    let _: () = c
        .sadd("finance:watchlist", &["AAPL", "MSFT"])
        .await
        .unwrap();
    let _: () = c.xgroup_create_mkstream(STREAM, GROUP, "0").await.unwrap();
    let id = request(&mut c, &[("ticker", "MSFT")]).await;
    // A replica read it and died before acknowledging it, ten minutes ago.
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg(&[
            "GROUP", GROUP, "dead-1", "COUNT", "1", "STREAMS", STREAM, ">",
        ])
        .query_async(&mut c)
        .await
        .unwrap();
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(&[STREAM, GROUP, "dead-1", "0", &id, "IDLE", "600000"])
        .query_async(&mut c)
        .await
        .unwrap();
    let listen = free_port();
    let mut settings = vec![
        ("FCW_REQUESTS__CLAIM_AFTER", "5m"),
        ("FCW_REQUESTS__MAX_LEN", "10"),
    ];
    // Only the claimed request warms MSFT.
    settings.extend(support::NO_START_UP_RUNS);
    let (mut child, _rx) = daemon(&server, listen, &settings);
    warmed(&c, "MSFT").await;
    // The keys are written before the entry is acknowledged, so the acknowledgement may follow.
    eventually(15, "the claimed entry acknowledged", || {
        let mut c = c.clone();
        async move {
            let pending: redis::streams::StreamPendingReply =
                c.xpending(STREAM, GROUP).await.ok()?;
            (pending.count() == 0).then_some(())
        }
    })
    .await;

    let mut last = String::new();
    for _ in 0..100 {
        last = request(&mut c, &[("ticker", "AAPL")]).await;
    }
    all_acknowledged(&c, &last).await;
    warmed(&c, "AAPL").await;
    let len: usize = c.xlen(STREAM).await.unwrap();
    assert!(
        len <= 20,
        "trimmed to about requests.max_len: {len} entries"
    );
    support::signal(child.id().unwrap(), "-TERM");
    assert_eq!(child.wait().await.unwrap().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_comes_back_empty_requests_are_served_again() {
    let mut server = redis().await;
    let listen = free_port();
    let (mut child, _rx) = daemon(&server, listen, &[]);
    let mut c = conn(&server).await;
    let _: () = c.sadd("finance:watchlist", "MSFT").await.unwrap();
    request(&mut c, &[("ticker", "MSFT")]).await;
    warmed(&c, "MSFT").await;

    server.restart().await.unwrap();
    least_privilege_user(&server);
    let mut c = conn(&server).await;
    let _: () = c.sadd("finance:watchlist", "IBM").await.unwrap();
    request(&mut c, &[("ticker", "IBM")]).await;
    warmed(&c, "IBM").await;
    support::signal(child.id().unwrap(), "-TERM");
    assert_eq!(child.wait().await.unwrap().code(), Some(0));
}

#[tokio::test]
async fn status_says_when_no_daemon_has_made_the_group() {
    let server = redis().await;
    let (_, out, err) = run(fcw().arg("status").env("FCW_REDIS__URL", server.url()));
    assert!(
        out.contains("no group yet (no daemon has served requests)"),
        "{out}{err}"
    );
    let (_, out, _) = run(fcw()
        .args(["status", "--json"])
        .env("FCW_REDIS__URL", server.url()));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    support::assert_schema("status", &report);
    assert_eq!(report["requests"]["consumers"], serde_json::Value::Null);
}

#[test]
fn request_settings_are_checked() {
    for (key, value, said) in [
        (
            "FCW_REQUESTS__POLL_INTERVAL",
            "0s",
            "requests.poll_interval: must be greater than zero",
        ),
        (
            "FCW_REQUESTS__POLL_INTERVAL",
            "1m",
            "requests.poll_interval: 1m is more than 10s",
        ),
        (
            "FCW_REQUESTS__CLAIM_AFTER",
            "1s",
            "requests.claim_after: 1s is less than 5s",
        ),
        (
            "FCW_REQUESTS__GROUP",
            " ",
            "requests.group: must not be empty",
        ),
        (
            "FCW_REQUESTS__MAX_LEN",
            "0",
            "requests.max_len: must be at least 1",
        ),
    ] {
        let (code, out, err) = run(fcw().arg("check-config").env(key, value));
        assert_eq!(code, Some(2), "{key}={value}: {out}{err}");
        assert!(err.contains(said), "{key}={value}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_keyspace_notifications_an_added_ticker_is_warmed_unasked() {
    let server = redis_with(LocalRedisOptions {
        extra_args: ["--notify-keyspace-events", "Ks"]
            .map(String::from)
            .to_vec(),
        ..LocalRedisOptions::default()
    })
    .await;
    let mut c = conn(&server).await;
    let _: () = c.sadd("finance:watchlist", "AAPL").await.unwrap();
    let listen = free_port();
    let (mut child, mut rx) = daemon(
        &server,
        listen,
        &[("FCW_REQUESTS__KEYSPACE_NOTIFICATIONS", "true")],
    );
    // What docs/redis.md adds to the user for this.
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "warmer",
            "+subscribe",
            "&__keyspace@0__:finance:watchlist",
        ])
        .query_async(&mut c)
        .await
        .unwrap();
    warmed(&c, "AAPL").await;
    let mut seen = Vec::new();
    let following = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        while let Some(line) = rx.recv().await {
            let hit = line.contains("following the watchlist's keyspace notifications");
            seen.push(line);
            if hit {
                return;
            }
        }
    })
    .await;
    assert!(following.is_ok(), "{}", seen.join("\n"));

    // Added without a request: noticed and warmed, every kind.
    let _: () = c.sadd("finance:watchlist", &["MSFT", "IBM"]).await.unwrap();
    warmed(&c, "MSFT").await;
    warmed(&c, "IBM").await;
    eventually(10, "the additions counted", || async {
        (metric(listen, "fcw_requests_total{outcome=\"noticed\"}").await == 2.0).then_some(())
    })
    .await;
    support::signal(child.id().unwrap(), "-TERM");
    assert_eq!(child.wait().await.unwrap().code(), Some(0));
}
