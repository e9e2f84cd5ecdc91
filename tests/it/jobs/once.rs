//! One run at a time (`once`): what it writes and skips, its failures, locks, shards and
//! signals.

use super::*;

#[tokio::test]
async fn once_stock_writes_valid_values_with_the_policy_ttl_and_counts_what_it_skipped() {
    let server = redis().await;
    watchlist(
        &server,
        &[
            b"AAPL",
            b"BABA",
            b" aapl ",
            b"NONEXIST",
            b"not a ticker",
            b"../etc/passwd",
            b"\xff\xfe",
        ],
    )
    .await;
    let upstream = yahoo(recorded("yahoo/quote_AAPL_BABA_multi_symbol.json")).await;
    let (code, _, err) = support::run(&mut once(
        &server,
        &upstream,
        &["stock", "--at", MID_SESSION],
    ));
    assert_eq!(code, Some(0), "{err}");
    let s = summary(&err, "stock");
    assert_eq!(s["outcome"], "ok");
    assert_eq!(
        (
            s["seen"].as_u64(),
            s["invalid"].as_u64(),
            s["duplicates"].as_u64()
        ),
        (Some(7), Some(3), Some(1))
    );
    assert_eq!(
        (
            s["fetched"].as_u64(),
            s["written"].as_u64(),
            s["unknown"].as_u64(),
            s["failed"].as_u64()
        ),
        (Some(3), Some(2), Some(1), Some(0))
    );
    assert_eq!(
        s["upstream_requests"].as_u64(),
        Some(3),
        "cookie, crumb, one batched quote"
    );
    // Each invalid member is logged once, escaped.
    let invalid = log_lines(&err, "invalid watchlist member skipped");
    assert_eq!(invalid.len(), 3);
    assert!(
        invalid.iter().any(|l| l["member"] == "\u{fffd}\u{fffd}"),
        "{invalid:?}"
    );

    let mut c = conn(&server).await;
    for (symbol, price) in [("AAPL", 244.6), ("BABA", 124.73)] {
        let key = format!("finance:cache:stock:{symbol}");
        let raw: String = c.get(&key).await.unwrap();
        let value: serde_json::Value = serde_json::from_str(&raw).unwrap();
        assert_schema("stock", &value);
        assert_eq!(value["price"], price);
        assert_ttl(&mut c, &key, 600, "mid-session").await;
    }
    let keys: Vec<String> = c.keys("finance:cache:*").await.unwrap();
    assert_eq!(
        keys.len(),
        2,
        "nothing for unknown or invalid members: {keys:?}"
    );
}

#[tokio::test]
async fn a_failing_upstream_leaves_the_previous_value_untouched() {
    let server = redis().await;
    watchlist(&server, &[b"AAPL", b"MSFT"]).await;
    let mut c = conn(&server).await;
    let _: () = c
        .set_ex("finance:cache:stock:AAPL", "previous good value", 5000)
        .await
        .unwrap();
    for (answer, code) in [
        (ResponseTemplate::new(500), 1),
        (
            ResponseTemplate::new(200).set_body_raw("<html>oops</html>", "text/html"),
            1,
        ),
        (
            ResponseTemplate::new(200).set_body_raw(
                &fixture("yahoo/quote_AAPL_2026-10.json")[..500],
                "application/json",
            ),
            1,
        ),
        // A valid answer, but for another symbol than asked: nothing matches, nothing written.
        (recorded("yahoo/quote_QQQ_etf.json"), 0),
    ] {
        let upstream = yahoo(answer.clone()).await;
        // An HTML page from the quote endpoint sends the batch to the chart, which answers
        // the same way.
        wiremock::Mock::given(wiremock::matchers::path_regex("^/v8/finance/chart/"))
            .respond_with(answer)
            .mount(&upstream)
            .await;
        let (exit, _, err) = support::run(&mut once(&server, &upstream, &["stock", "--force"]));
        assert_eq!(exit, Some(code), "{err}");
        let value: String = c.get("finance:cache:stock:AAPL").await.unwrap();
        assert_eq!(value, "previous good value");
        let ttl: i64 = c.ttl("finance:cache:stock:AAPL").await.unwrap();
        assert!(ttl > 4900, "TTL untouched: {ttl}");
        let exists: bool = c.exists("finance:cache:stock:MSFT").await.unwrap();
        assert!(!exists);
        if code == 1 {
            let s = summary(&err, "stock");
            assert_eq!(
                (s["outcome"].as_str(), s["failed"].as_u64()),
                (Some("failed"), Some(2))
            );
            assert!(
                s["reason"]
                    .as_str()
                    .unwrap()
                    .contains("2 of 2 fetched tickers failed"),
                "{s}"
            );
        }
    }
}

#[tokio::test]
async fn refresh_ahead_skips_fresh_keys_and_force_fetches_them() {
    let server = redis().await;
    watchlist(&server, &[b"AAPL", b"BABA"]).await;
    let upstream = yahoo(recorded("yahoo/quote_AAPL_BABA_multi_symbol.json")).await;
    let run = |at: &str, extra: &[&str]| {
        let mut args = vec!["stock", "--at", at];
        args.extend_from_slice(extra);
        support::run(&mut once(&server, &upstream, &args))
    };
    // Mid-session a key gets 600 s, and is fresh while more than half of that is left.
    let (code, _, err) = run(MID_SESSION, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(quote_requests(&upstream).await, 1);
    let (code, _, err) = run(MID_SESSION, &[]);
    assert_eq!(code, Some(0), "{err}");
    let s = summary(&err, "stock");
    assert_eq!(
        (
            s["skipped_fresh"].as_u64(),
            s["fetched"].as_u64(),
            s["upstream_requests"].as_u64()
        ),
        (Some(2), Some(0), Some(0))
    );
    assert_eq!(
        quote_requests(&upstream).await,
        1,
        "no upstream call for fresh keys"
    );
    // A key close to expiry is refreshed.
    let mut c = conn(&server).await;
    let _: () = c.expire("finance:cache:stock:BABA", 5).await.unwrap();
    let (_, _, err) = run(MID_SESSION, &[]);
    let s = summary(&err, "stock");
    assert_eq!(
        (
            s["skipped_fresh"].as_u64(),
            s["fetched"].as_u64(),
            s["written"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    // Freshness is judged by the policy at the run's instant: once the market has closed a
    // key gets 3600 s, so the session's 600 s keys are under half of it and due.
    let (_, _, err) = run(OVERNIGHT, &[]);
    let s = summary(&err, "stock");
    assert_eq!(
        (s["skipped_fresh"].as_u64(), s["fetched"].as_u64()),
        (Some(0), Some(2)),
        "{s}"
    );
    assert_ttl(&mut c, "finance:cache:stock:AAPL", 3600, "overnight").await;
    let (_, _, err) = run(OVERNIGHT, &["--force"]);
    assert_eq!(summary(&err, "stock")["fetched"].as_u64(), Some(2));
}

#[tokio::test]
async fn two_concurrent_once_runs_do_one_run_between_them() {
    let server = redis().await;
    watchlist(&server, &[b"AAPL", b"BABA"]).await;
    let upstream = yahoo(
        recorded("yahoo/quote_AAPL_BABA_multi_symbol.json").set_delay(Duration::from_secs(2)),
    )
    .await;
    let spawn = || {
        let mut cmd =
            tokio::process::Command::from(once(&server, &upstream, &["stock", "--force"]));
        cmd.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = tokio::join!(a.wait_with_output(), b.wait_with_output());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        (a.status.code(), b.status.code()),
        (Some(0), Some(0)),
        "a skipped run exits 0"
    );
    let outcomes: Vec<String> = [&a, &b]
        .iter()
        .map(|o| {
            summary(&String::from_utf8_lossy(&o.stderr), "stock")["outcome"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let mut sorted = outcomes.clone();
    sorted.sort();
    assert_eq!(sorted, ["ok", "skipped_lock"], "{outcomes:?}");
    assert_eq!(
        quote_requests(&upstream).await,
        1,
        "the upstream was asked once"
    );
    let lock: Option<String> = conn(&server)
        .await
        .get("finance:lock:job:stock")
        .await
        .unwrap();
    assert_eq!(lock, None, "the lock was released");
}

#[tokio::test]
async fn sigterm_during_a_slow_run_exits_143_within_the_grace_and_writes_whole_batches_only() {
    for (delay, grace, expect_keys) in [
        // The batch in flight cannot finish within the grace: abandoned, nothing written.
        (Duration::from_secs(10), "1s", 0usize),
        // It can: that batch is written whole, the next batch never starts.
        (Duration::from_millis(1500), "5s", 2),
    ] {
        let server = redis().await;
        watchlist(&server, &[b"AAPL", b"BABA", b"MSFT", b"QQQ"]).await;
        let upstream = yahoo(RecordedQuotes::new(delay)).await;
        let mut cmd = tokio::process::Command::from(once(&server, &upstream, &["stock"]));
        // One request at a time: fetches stream across batches as far as the provider's
        // concurrency goes, and the signal must find exactly one batch in flight.
        cmd.env("FCW_SCHEDULER__SHUTDOWN_GRACE", grace)
            .env("FCW_SCHEDULER__BATCH_SIZE", "2")
            .env("FCW_PROVIDER__YAHOO__QUOTE_BATCH", "2")
            .env("FCW_PROVIDER__YAHOO__MAX_CONCURRENCY", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = cmd.spawn().unwrap();
        eventually(10, "the first quote request", || async {
            (quote_requests(&upstream).await > 0).then_some(())
        })
        .await;
        let signalled = Instant::now();
        support::signal(child.id().unwrap(), "-TERM");
        let output = child.wait_with_output().await.unwrap();
        let took = signalled.elapsed();
        let err = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(143), "{err}");
        assert!(
            took < Duration::from_secs(4)
                + grace
                    .trim_end_matches('s')
                    .parse::<u64>()
                    .map(Duration::from_secs)
                    .unwrap(),
            "took {took:?}"
        );
        let keys: Vec<String> = conn(&server)
            .await
            .keys("finance:cache:stock:*")
            .await
            .unwrap();
        assert_eq!(keys.len(), expect_keys, "{keys:?}\n{err}");
        assert_eq!(
            quote_requests(&upstream).await,
            1,
            "no batch started after the signal"
        );
        let lock: Option<String> = conn(&server)
            .await
            .get("finance:lock:job:stock")
            .await
            .unwrap();
        assert_eq!(lock, None, "the lock was released");
    }
}

#[tokio::test]
async fn once_exits_3_when_redis_is_down_at_start() {
    let mut server = redis().await;
    let upstream = yahoo(recorded("yahoo/quote_AAPL_BABA_multi_symbol.json")).await;
    server.stop();
    let (code, _, err) = support::run(&mut once(&server, &upstream, &["stock"]));
    assert_eq!(code, Some(3), "{err}");
    assert_eq!(quote_requests(&upstream).await, 0);
}

#[tokio::test]
async fn shards_cover_every_ticker_exactly_once() {
    let server = redis().await;
    let symbols: Vec<String> = (0..40).map(|i| format!("T{i:03}")).collect();
    let members: Vec<&[u8]> = symbols.iter().map(|s| s.as_bytes()).collect();
    watchlist(&server, &members).await;
    let upstream = MockServer::start().await; // unused: replay serves every ticker
    let mut total = 0;
    for index in 0..4u32 {
        let shard = Shard::new(index, 4).unwrap();
        let expected = symbols
            .iter()
            .filter(|s| shard.contains(&s.parse::<Ticker>().unwrap()))
            .count() as u64;
        let mut cmd = once(&server, &upstream, &["stock"]);
        cmd.env("FCW_PROVIDER__STOCK", "replay");
        // Half the shards by --shard, half as a Kubernetes Indexed Job would run them.
        if index % 2 == 0 {
            cmd.args(["--shard", &format!("{index}/4")]);
        } else {
            cmd.args(["--shards", "4"])
                .env("JOB_COMPLETION_INDEX", index.to_string());
        }
        let (code, _, err) = support::run(&mut cmd);
        assert_eq!(code, Some(0), "{err}");
        let s = summary(&err, "stock");
        assert_eq!(s["written"].as_u64(), Some(expected), "shard {shard}");
        assert_eq!(s["span"]["shard"], shard.to_string());
        total += expected;
    }
    assert_eq!(total, 40);
    let keys: Vec<String> = conn(&server)
        .await
        .keys("finance:cache:stock:*")
        .await
        .unwrap();
    assert_eq!(keys.len(), 40);
    // --shards needs the index.
    let (code, _, err) = support::run(
        once(&server, &upstream, &["stock", "--shards", "4"]).env_remove("JOB_COMPLETION_INDEX"),
    );
    assert_eq!(code, Some(2), "{err}");
}

#[tokio::test]
async fn earnings_refresh_ahead_judges_a_key_by_the_ttl_its_cached_date_would_get_now() {
    let server = redis().await;
    watchlist(&server, &[b"AAPL", b"QQQ", b"GOOG"]).await;
    let upstream = MockServer::start().await;
    let run = |args: &[&str]| {
        let mut cmd = once(&server, &upstream, args);
        cmd.env("FCW_PROVIDER__EARNINGS", "replay");
        support::run(&mut cmd)
    };
    let (code, _, err) = run(&["earnings", "--at", MID_SESSION]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(summary(&err, "earnings")["written"].as_u64(), Some(3));
    let mut c = conn(&server).await;
    // QQQ has no earnings (24 h). AAPL's recorded date, 2025-04-30, is past (the policy's 1 h),
    // but the key must outlive the next run: Thursday 08:00 New York plus its 30 m timeout.
    assert_ttl(
        &mut c,
        "finance:cache:earnings:QQQ",
        86_400,
        "no known date",
    )
    .await;
    assert_ttl(
        &mut c,
        "finance:cache:earnings:AAPL",
        21 * 3600 + 30 * 60 + 1,
        "a past date, until the next run has rewritten it",
    )
    .await;
    // An unreadable cached value is refreshed whatever its TTL.
    let _: () = c
        .set_ex("finance:cache:earnings:GOOG", "{garbage", 86_400)
        .await
        .unwrap();
    let (_, _, err) = run(&["earnings", "--at", MID_SESSION]);
    let s = summary(&err, "earnings");
    assert_eq!(
        (s["skipped_fresh"].as_u64(), s["written"].as_u64()),
        (Some(2), Some(1)),
        "{s}"
    );
    let goog: String = c.get("finance:cache:earnings:GOOG").await.unwrap();
    assert_schema("earnings", &serde_json::from_str(&goog).unwrap());
    // Under half of the 24 h the date-less QQQ would get now, and gone before the next run:
    // refreshed.
    let _: () = c
        .expire("finance:cache:earnings:QQQ", 40_000)
        .await
        .unwrap();
    let (_, _, err) = run(&["earnings", "--at", MID_SESSION]);
    assert_eq!(summary(&err, "earnings")["written"].as_u64(), Some(1));
    // Friday 2025-04-18 07:00 New York, days before the recorded dates (AAPL 2025-04-30, GOOG
    // 2025-04-23): a key lives until the start of its day, so the other two keys are under half
    // of that and due; QQQ, with no date, outlives the 08:00 run and stays.
    let (_, _, err) = run(&["earnings", "--at", "2025-04-18T11:00:00Z"]);
    let s = summary(&err, "earnings");
    assert_eq!(
        (s["skipped_fresh"].as_u64(), s["written"].as_u64()),
        (Some(1), Some(2)),
        "{s}"
    );
    assert_ttl(
        &mut c,
        "finance:cache:earnings:AAPL",
        11 * 86_400 + 17 * 3600,
        "until the earnings day",
    )
    .await;
}

#[tokio::test]
async fn a_lock_this_process_set_without_an_answer_is_reclaimed_but_no_other_lock_is() {
    use finance_cache_warmer::config::{RedisUrl, Settings};
    use finance_cache_warmer::store::Store;
    use finance_cache_warmer::store::{Lock, hostname};
    let server = redis().await;
    let mut settings = Settings::defaults().unwrap();
    settings.redis.url = RedisUrl::parse(&server.url()).unwrap();
    settings.redis.response_timeout = "300ms".parse().unwrap();
    let store = Store::connect(&settings.redis).await.unwrap();
    let mut c = conn(&server).await;
    let key = "finance:lock:job:stock";
    // Another container with the same hostname and pid (pid 1 in both, say): its lock stands.
    let twin = serde_json::json!({"token": "t2", "host": hostname(), "pid": std::process::id(), "since": "2026-11-26T00:00:00Z"});
    let _: () = c.set_ex(key, twin.to_string(), 60).await.unwrap();
    let ttl = Duration::from_secs(60);
    assert!(Lock::acquire(&store, key, ttl).await.unwrap().is_none());
    let value: String = c.get(key).await.unwrap();
    assert_eq!(
        value,
        twin.to_string(),
        "another process's lock is never touched"
    );
    let _: () = c.del(key).await.unwrap();
    // A SET that got no answer (the server was stuck) but was applied once it went on ...
    server.pause();
    assert!(Lock::acquire(&store, key, ttl).await.is_err());
    server.resume();
    let leftover: String = support::eventually(5, "the stuck SET to land", || async {
        conn(&server)
            .await
            .get::<_, Option<String>>(key)
            .await
            .unwrap()
    })
    .await;
    // ... is this process's own: taken back instead of idling until it expires.
    let lock = Lock::acquire(&store, key, ttl).await.unwrap();
    assert!(lock.is_some(), "the leftover is reclaimed");
    let now: String = c.get(key).await.unwrap();
    assert_ne!(now, leftover, "held under a new value");
    lock.unwrap().release().await;
}

#[tokio::test]
async fn a_write_batch_closes_at_write_batch_bytes_and_every_value_lands() {
    let server = redis().await;
    let symbols: Vec<String> = (0..40).map(|i| format!("W{i:03}")).collect();
    let members: Vec<&[u8]> = symbols.iter().map(|s| s.as_bytes()).collect();
    watchlist(&server, &members).await;
    let upstream = yahoo(RecordedQuotes::new(Duration::ZERO)).await;
    let mut c = conn(&server).await;
    // Every command into the slow log, with its arguments: the fenced write's keys say which
    // values went in which batch.
    support::log_every_command(&mut c).await;
    const LIMIT: usize = 4096;
    let (exit, _, err) = support::run(
        once(&server, &upstream, &["stock", "--force"])
            .env("FCW_SCHEDULER__WRITE_BATCH_BYTES", LIMIT.to_string()),
    );
    assert_eq!(exit, Some(0), "{err}");
    assert_eq!(summary(&err, "stock")["written"], 40, "{err}");
    let batches: Vec<Vec<String>> = support::commands_sent(&mut c)
        .await
        .into_iter()
        .filter(|args| {
            args[0].eq_ignore_ascii_case(b"EVALSHA") && args.iter().any(|a| a == b"SETEX")
        })
        .map(|args| {
            args.into_iter()
                .map(|a| String::from_utf8(a).unwrap_or_default())
                .filter(|a| a.starts_with("finance:cache:stock:"))
                .collect()
        })
        .collect();
    assert!(batches.len() > 1, "the bytes closed batches: {batches:?}");
    let mut keys = std::collections::BTreeSet::new();
    for (n, batch) in batches.iter().enumerate() {
        let mut sizes = Vec::new();
        for key in batch {
            let len: usize = c.strlen(key).await.unwrap();
            sizes.push(key.len() + len);
            keys.insert(key.clone());
        }
        let bytes: usize = sizes.iter().sum();
        // Each batch but the last closed with the value that took it to the limit.
        if n + 1 < batches.len() {
            assert!(bytes >= LIMIT, "batch {n}: {bytes} bytes {batch:?}");
        }
        assert!(
            bytes - sizes.last().unwrap() < LIMIT,
            "batch {n} went on past the limit: {sizes:?}"
        );
    }
    assert_eq!(keys.len(), 40, "every value in exactly one batch");
}
