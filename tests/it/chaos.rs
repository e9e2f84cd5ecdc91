//! Faults survived: a misbehaving upstream, a stuck Redis, signals at random moments, and keys of
//! another type where cached values belong. After each, every cache key holds either its
//! previous value or a new valid one, never garbage.

use crate::support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use support::{
    Chaos, ChaosUpstream, RecordedQuotes, conn, fcw, mount_yahoo_session, redis, summary,
    watch_process,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer};

/// A TTL policy that gives every stock key one hour at any instant.
const HOUR_AT_ANY_INSTANT: [(&str, &str); 3] = [
    ("FCW_TTL__OPEN", "1h"),
    ("FCW_TTL__CLOSED", "1h"),
    ("FCW_TTL__MIN", "1h"),
];

fn yahoo_env(upstream: &str) -> Vec<(&'static str, String)> {
    vec![
        ("FCW_PROVIDER__YAHOO__BASE_URL", upstream.to_owned()),
        (
            "FCW_PROVIDER__YAHOO__COOKIE_URL",
            format!("{upstream}/cookie"),
        ),
        ("FCW_PROVIDER__YAHOO__REQUESTS_PER_SECOND", "0".into()),
        ("FCW_LOG__FORMAT", "json".into()),
        ("FCW_SERVER__LISTEN", String::new()),
    ]
}

/// Every stock key holds its previous value or a valid new value for its own ticker.
async fn assert_previous_or_valid(
    c: &mut redis::aio::MultiplexedConnection,
    tickers: &[String],
) -> usize {
    let mut fresh = 0;
    for t in tickers {
        let value: String = c.get(format!("finance:cache:stock:{t}")).await.unwrap();
        if value == format!("previous {t}") {
            continue;
        }
        let parsed: serde_json::Value =
            serde_json::from_str(&value).unwrap_or_else(|e| panic!("{t}: garbage {value:?}: {e}"));
        support::assert_schema("stock", &parsed);
        assert_eq!(parsed["symbol"], t.as_str());
        fresh += 1;
    }
    fresh
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_chaos_never_leaves_garbage_and_the_defences_engage() {
    let server = redis().await;
    let mut c = conn(&server).await;
    let tickers: Vec<String> = (0..30).map(|i| format!("T{i:02}")).collect();
    let _: () = c.sadd("finance:watchlist", &tickers).await.unwrap();
    // Seeded below the policy's one hour, they outlive the test and are due at every run.
    for t in &tickers {
        let _: () = c
            .set_ex(
                format!("finance:cache:stock:{t}"),
                format!("previous {t}"),
                3000,
            )
            .await
            .unwrap();
    }
    use Chaos::*;
    let upstream = ChaosUpstream::start(vec![
        Fine,
        ServerError,
        ServerError,
        ServerError,
        Reset,
        Fine,
        TooManyRequests,
        Fine,
        Hang,
        Truncated,
        WrongContentType,
        OtherSymbols,
        Huge,
        Fine,
    ])
    .await;
    let mut cmd = tokio::process::Command::from(fcw());
    cmd.arg("run")
        .envs(yahoo_env(&upstream.uri))
        .env("FCW_REDIS__URL", server.url())
        .env("FCW_JOBS__STOCK__SCHEDULE", "* * * * * *")
        // Every key is due at every run whatever the market is doing: the policy gives one hour
        // open or closed (min = open = closed, so no session boundary shortens it), and
        // refresh-ahead 1 refreshes any key with less than that left. The upstream is asked
        // every second, which is what this test is about.
        .envs(HOUR_AT_ANY_INSTANT)
        .env("FCW_JOBS__STOCK__REFRESH_AHEAD", "1")
        .env("FCW_JOBS__OPTIONS__ENABLED", "false")
        .env("FCW_JOBS__EARNINGS__ENABLED", "false")
        .env("FCW_JOBS__INTEGRITY__ENABLED", "false")
        .env("FCW_PROVIDER__TIMEOUT", "1s")
        .env("FCW_PROVIDER__MAX_RETRIES", "2")
        .env("FCW_PROVIDER__BREAKER_FAILURES", "3")
        .env("FCW_PROVIDER__BREAKER_COOLDOWN", "1s")
        .env("FCW_PROVIDER__YAHOO__QUOTE_BATCH", "5")
        .env("FCW_PROVIDER__YAHOO__MAX_CONCURRENCY", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let usage = tokio::spawn(watch_process(child.id().unwrap()));
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    // Run until the breaker has opened and closed again and the Huge answer came and went.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await
        else {
            continue;
        };
        seen.push(line);
        let text = seen.join("\n");
        let huge_done = upstream
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, m, _)| *m == Huge)
            .count()
            >= 1
            && upstream.log.lock().unwrap().len() > 14;
        if text.contains("circuit breaker opened")
            && text.contains("circuit breaker closed")
            && huge_done
        {
            break;
        }
    }
    support::signal(child.id().unwrap(), "-TERM");
    assert_eq!(child.wait().await.unwrap().code(), Some(0));
    let usage = usage.await.unwrap();
    let text = seen.join("\n");
    assert!(
        text.contains("circuit breaker opened after repeated failures"),
        "{text}"
    );
    assert!(text.contains("circuit breaker closed"), "{text}");
    assert!(!text.contains("panicked"), "{text}");

    let fresh = assert_previous_or_valid(&mut c, &tickers).await;
    assert!(fresh > 0, "some tickers got new values");
    // Retry-After: 1 was honoured: nothing went to the endpoint that answered 429 for a second
    // (a refused quote endpoint hands its batch to the chart endpoint at once).
    let log = upstream.log.lock().unwrap().clone();
    for (i, (at, mode, path)) in log.iter().enumerate() {
        if *mode == TooManyRequests
            && let Some((next, _, _)) = log[i + 1..].iter().find(|(_, _, p)| p == path)
        {
            assert!(
                *next - *at >= Duration::from_millis(950),
                "{path} asked again {:?} after a 429",
                *next - *at
            );
        }
    }
    assert!(log.iter().any(|(_, m, _)| *m == TooManyRequests));
    // The 50 MB answer was cut at provider.max_body (8 MiB), never held whole.
    assert!(usage.peak_kib < 80 * 1024, "peak {} KiB", usage.peak_kib);
}

#[tokio::test]
async fn a_stuck_redis_fails_the_run_within_its_timeout_and_the_daemon_carries_on() {
    let server = redis().await;
    let mut c = conn(&server).await;
    let _: () = c.sadd("finance:watchlist", &["AAPL", "QQQ"]).await.unwrap();
    let mut cmd = tokio::process::Command::from(fcw());
    cmd.arg("run")
        .env("FCW_REDIS__URL", server.url())
        .env("FCW_REDIS__RESPONSE_TIMEOUT", "500ms")
        .env("FCW_PROVIDER__STOCK", "replay")
        .env("FCW_JOBS__STOCK__SCHEDULE", "* * * * * *")
        .env("FCW_JOBS__STOCK__REFRESH_AHEAD", "1")
        .env("FCW_JOBS__STOCK__TIMEOUT", "10s")
        // A lock whose SET or release got no answer must not hold the job up this long.
        .env("FCW_SCHEDULER__LOCK_TTL", "10m")
        .env("FCW_JOBS__OPTIONS__ENABLED", "false")
        .env("FCW_JOBS__EARNINGS__ENABLED", "false")
        .env("FCW_JOBS__INTEGRITY__ENABLED", "false")
        .env("FCW_LOG__FORMAT", "json")
        .env("FCW_SERVER__LISTEN", "")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut next_summary = async || loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("a log line")
            .unwrap()
            .unwrap();

        if line.contains("\"run finished\"") {
            return serde_json::from_str::<serde_json::Value>(&line).unwrap();
        }
    };
    assert_eq!(next_summary().await["outcome"], "ok");
    server.pause();
    let failed = loop {
        let s = next_summary().await;
        if s["outcome"] == "failed" {
            break s;
        }
    };
    // The reply timeout fired, well within the job's own 10 s timeout.
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("timed out"),
        "{failed}"
    );
    assert!(failed["duration_ms"].as_u64().unwrap() < 10_000, "{failed}");
    server.resume();
    // Every summary line comes within 20 s, and a run skipped for the lock says so: only
    // runs that failed may come before the first good one.
    loop {
        let outcome = next_summary().await["outcome"].clone();
        if outcome == "ok" {
            break;
        }
        assert_eq!(outcome, "failed", "no run waits for a lock of its own");
    }
    support::signal(child.id().unwrap(), "-TERM");
    assert_eq!(child.wait().await.unwrap().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_at_random_moments_never_leaves_a_half_written_batch() {
    let server = redis().await;
    let mut c = conn(&server).await;
    let tickers: Vec<String> = (0..40).map(|i| format!("S{i:02}")).collect();
    let _: () = c.sadd("finance:watchlist", &tickers).await.unwrap();
    let upstream = support::yahoo(RecordedQuotes::new(Duration::from_millis(150))).await;
    let mut rng = fastrand::Rng::with_seed(7);
    for round in 0..20 {
        let _: () = redis::cmd("FLUSHDB").query_async(&mut c).await.unwrap();
        let _: () = c.sadd("finance:watchlist", &tickers).await.unwrap();
        let mut cmd = tokio::process::Command::from(fcw());
        cmd.args(["once", "stock"])
            .envs(yahoo_env(&upstream.uri()))
            .env("FCW_REDIS__URL", server.url())
            .env("FCW_SCHEDULER__BATCH_SIZE", "10")
            .env("FCW_SCHEDULER__SHUTDOWN_GRACE", "1s")
            .env("FCW_PROVIDER__YAHOO__QUOTE_BATCH", "5")
            .env("FCW_PROVIDER__YAHOO__MAX_CONCURRENCY", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = cmd.spawn().unwrap();
        tokio::time::sleep(Duration::from_millis(rng.u64(0..1200))).await;
        let signalled = Instant::now();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().unwrap().to_string()])
            .status();
        let output = child.wait_with_output().await.unwrap();
        let took = signalled.elapsed();
        let err = String::from_utf8_lossy(&output.stderr);
        // A signal that lands before the handlers are installed (the first milliseconds) ends
        // the process the default way, before it has written anything.
        use std::os::unix::process::ExitStatusExt;
        let by_signal = output.status.signal() == Some(15);
        assert!(
            matches!(output.status.code(), Some(0 | 143)) || by_signal,
            "round {round}: {:?}\n{err}",
            output.status
        );
        assert!(
            took < Duration::from_secs(3),
            "round {round}: exited {took:?} after SIGTERM"
        );
        let keys: Vec<String> = c.keys("finance:cache:stock:*").await.unwrap();
        assert_eq!(
            keys.len() % 10,
            0,
            "round {round}: {} keys is not whole batches of 10",
            keys.len()
        );
        if output.status.code() == Some(0) {
            assert_eq!(keys.len(), 40, "a run that finished wrote everything");
            assert_eq!(summary(&err, "stock")["written"].as_u64(), Some(40));
        }
    }
}

#[tokio::test]
async fn a_cache_key_of_another_type_is_overwritten_and_fails_nothing_else() {
    let server = redis().await;
    let mut c = conn(&server).await;
    let _: () = redis::pipe()
        .sadd("finance:watchlist", &["AAPL", "MSFT", "GOOG"])
        // Someone else's hash where a cached value belongs: one with no TTL, one with a long
        // one, which refresh-ahead alone would call fresh.
        .hset("finance:cache:earnings:MSFT", "next", "2027-01-28")
        .hset("finance:cache:stock:GOOG", "price", "1")
        .expire("finance:cache:stock:GOOG", 86_400)
        .query_async(&mut c)
        .await
        .unwrap();
    let (code, _, err) = support::run(
        fcw()
            .args(["once", "all"])
            .env("FCW_REDIS__URL", server.url())
            .env("FCW_LOG__FORMAT", "json")
            .envs(support::REPLAY),
    );
    assert_eq!(code, Some(0), "{err}");
    for job in ["stock", "options", "earnings"] {
        let s = summary(&err, job);
        assert_eq!(
            (s["outcome"].as_str(), s["written"].as_u64()),
            (Some("ok"), Some(3)),
            "{job}: {s}"
        );
    }
    let warned: Vec<String> = support::log_lines(
        &err,
        "a cache key holds another type than a string; it is refetched and overwritten",
    )
    .iter()
    .map(|l| l["key"].as_str().unwrap().to_owned())
    .collect();
    assert_eq!(
        warned,
        ["finance:cache:stock:GOOG", "finance:cache:earnings:MSFT"]
    );
    for key in ["finance:cache:stock:GOOG", "finance:cache:earnings:MSFT"] {
        let value: String = c.get(key).await.unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&value).unwrap();
        assert_eq!(parsed["source"], "replay", "{key}");
    }
}

#[tokio::test]
async fn a_run_paused_past_its_lock_cannot_overwrite_a_newer_value() {
    let server = redis().await;
    let c = conn(&server).await;
    support::a_run_paused_past_its_lock_writes_nothing(("FCW_REDIS__URL", server.url()), c).await;
}

/// `once stock` on the Redis at `url` against a Yahoo `upstream`, two tickers per batch.
fn once_stock(url: &str, upstream: &MockServer) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::from(fcw());
    cmd.args(["once", "stock", "--force"])
        .envs(yahoo_env(&upstream.uri()))
        .env("FCW_REDIS__URL", url)
        .env("FCW_SCHEDULER__BATCH_SIZE", "2")
        .env("FCW_PROVIDER__YAHOO__QUOTE_BATCH", "2")
        .env("FCW_PROVIDER__MAX_RETRIES", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

#[tokio::test]
async fn a_run_that_times_out_still_reports_and_records_what_it_wrote() {
    let server = redis().await;
    let mut c = conn(&server).await;
    let _: () = c
        .sadd("finance:watchlist", &["S1", "S2", "S3", "S4"])
        .await
        .unwrap();
    // The first batch is answered at once, the second never in time.
    let upstream = MockServer::start().await;
    mount_yahoo_session(&upstream).await;
    Mock::given(path("/v7/finance/quote"))
        .respond_with(RecordedQuotes::new(Duration::ZERO))
        .up_to_n_times(1)
        .mount(&upstream)
        .await;
    Mock::given(path("/v7/finance/quote"))
        .respond_with(RecordedQuotes::new(Duration::from_secs(30)))
        .mount(&upstream)
        .await;
    let output = once_stock(&server.url(), &upstream)
        .env("FCW_JOBS__STOCK__TIMEOUT", "2s")
        .env("FCW_PROVIDER__TIMEOUT", "20s")
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    let s = summary(&err, "stock");
    assert_eq!(
        (s["reason"].as_str(), s["written"].as_u64()),
        (Some("timed out after 2s"), Some(2)),
        "{s}"
    );
    let keys: Vec<String> = c.keys("finance:cache:stock:*").await.unwrap();
    assert_eq!(keys.len(), 2, "what the summary says landed: {keys:?}");
    let recorded: u64 = c.hget("finance:warmer:run:stock", "written").await.unwrap();
    assert_eq!(recorded, 2, "the run record too");
}

#[tokio::test]
async fn a_write_handed_to_redis_before_the_grace_ran_out_is_not_called_unwritten() {
    let server = redis().await;
    let mut c = conn(&server).await;
    let _: () = c.sadd("finance:watchlist", &["S1", "S2"]).await.unwrap();
    let upstream = support::yahoo(RecordedQuotes::new(Duration::from_millis(500))).await;
    // A first run loads the write's script into Redis (EVALSHA finds it), then its keys go.
    let first = once_stock(&server.url(), &upstream).output().await.unwrap();
    assert_eq!(first.status.code(), Some(0));
    let _: () = c
        .del(&["finance:cache:stock:S1", "finance:cache:stock:S2"])
        .await
        .unwrap();
    let asked_before = upstream.received_requests().await.unwrap().len();
    let child = once_stock(&server.url(), &upstream)
        .env("FCW_SCHEDULER__SHUTDOWN_GRACE", "1s")
        .env("FCW_REDIS__RESPONSE_TIMEOUT", "1s")
        .spawn()
        .unwrap();
    support::eventually(10, "the quote request", || async {
        let asked = upstream.received_requests().await.unwrap_or_default();
        asked[asked_before.min(asked.len())..]
            .iter()
            .any(|r| r.url.path() == "/v7/finance/quote")
            .then_some(())
    })
    .await;
    // Redis freezes before the answer comes back, so the batch's write goes out and waits in
    // the frozen server's socket (its receive queue, as `ss` shows it, fills).
    server.pause();
    let port = format!("sport = :{}", server.port());
    support::eventually(10, "the write to reach the frozen server", || {
        let port = port.clone();
        async move {
            let out = std::process::Command::new("ss")
                .args(["-tnH", "state", "established", &port])
                .output()
                .ok()?;
            let waiting = String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.split_whitespace().next().is_some_and(|q| q != "0"));
            waiting.then_some(())
        }
    })
    .await;
    support::signal(child.id().unwrap(), "-TERM");
    let output = child.wait_with_output().await.unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(143), "{err}");
    let abandoned = err
        .lines()
        .find(|l| l.contains("abandoned"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        abandoned.contains("a batch write already handed to Redis may still land")
            && !abandoned.contains("unwritten"),
        "{abandoned}"
    );
    // And it does land once the server goes on.
    server.resume();
    support::eventually(10, "the handed-over write", || async {
        let keys: Vec<String> = conn(&server)
            .await
            .keys("finance:cache:stock:*")
            .await
            .unwrap();
        (keys.len() == 2).then_some(())
    })
    .await;
}
