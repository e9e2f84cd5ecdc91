//! The daemon (`run`): runs on start, overlapping ticks, a Redis restart.

use super::*;

/// Starts `run` and returns the child with a task collecting its stderr lines.
fn daemon(
    redis: &LocalRedis,
    upstream: &MockServer,
    extra: &[(&str, &str)],
) -> (
    tokio::process::Child,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let mut cmd = tokio::process::Command::from(fcw());
    cmd.arg("run");
    for (k, v) in env(redis, upstream) {
        cmd.env(k, v);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    support::spawn_with_lines(cmd)
}

/// Waits for a log line containing all of `needles`, keeping every line seen in `seen`.
async fn wait_for_line(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: &mut Vec<String>,
    needles: &[&str],
    secs: u64,
) {
    let found = tokio::time::timeout(Duration::from_secs(secs), async {
        while let Some(line) = rx.recv().await {
            let hit = needles.iter().all(|n| line.contains(n));
            seen.push(line);
            if hit {
                return;
            }
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "no line with {needles:?} within {secs}s; saw:\n{}",
        seen.join("\n")
    );
}

#[tokio::test]
async fn the_daemon_survives_a_redis_restart_and_the_next_run_succeeds() {
    let mut server = redis().await;
    watchlist(&server, &[b"AAPL", b"QQQ"]).await;
    let upstream = MockServer::start().await;
    let every_second = "* * * * * *";
    let (mut child, mut rx) = daemon(
        &server,
        &upstream,
        &[
            ("FCW_PROVIDER__STOCK", "replay"),
            ("FCW_JOBS__STOCK__SCHEDULE", every_second),
            ("FCW_JOBS__STOCK__REFRESH_AHEAD", "1"),
            ("FCW_JOBS__OPTIONS__ENABLED", "false"),
            ("FCW_JOBS__EARNINGS__ENABLED", "false"),
            ("FCW_JOBS__INTEGRITY__ENABLED", "false"),
        ],
    );
    let mut seen = Vec::new();
    wait_for_line(
        &mut rx,
        &mut seen,
        &["run finished", "\"outcome\":\"ok\"", "\"written\":2"],
        15,
    )
    .await;
    // Killed in the middle of the daemon's cycle, back 5 s later (the outage is the scenario).
    server.stop();
    let back_at = tokio::time::Instant::now() + Duration::from_secs(5);
    wait_for_line(
        &mut rx,
        &mut seen,
        &["run finished", "\"outcome\":\"failed\""],
        15,
    )
    .await;
    wait_for_line(
        &mut rx,
        &mut seen,
        &["run finished", "\"outcome\":\"failed\""],
        15,
    )
    .await;
    tokio::time::sleep_until(back_at).await;
    server.restart().await.unwrap();
    watchlist(&server, &[b"AAPL", b"QQQ"]).await;
    wait_for_line(
        &mut rx,
        &mut seen,
        &["run finished", "\"outcome\":\"ok\"", "\"written\":2"],
        20,
    )
    .await;
    let exists: bool = conn(&server)
        .await
        .exists("finance:cache:stock:QQQ")
        .await
        .unwrap();
    assert!(exists);
    let outage_logged = seen
        .iter()
        .filter(|l| l.contains("Redis is unreachable"))
        .count();
    assert_eq!(
        outage_logged,
        1,
        "the outage is logged once:\n{}",
        seen.join("\n")
    );
    assert!(seen.iter().any(|l| l.contains("Redis is reachable again")));
    assert!(!seen.iter().any(|l| l.contains("panicked")));
    support::signal(child.id().unwrap(), "-TERM");
    assert_eq!(child.wait().await.unwrap().code(), Some(0));
}

#[tokio::test]
async fn the_daemon_runs_on_start_and_skips_ticks_that_overlap_a_run() {
    let server = redis().await;
    watchlist(&server, &[b"AAPL", b"BABA"]).await;
    let upstream = yahoo(
        recorded("yahoo/quote_AAPL_BABA_multi_symbol.json").set_delay(Duration::from_millis(2500)),
    )
    .await;
    let (mut child, mut rx) = daemon(
        &server,
        &upstream,
        &[
            ("FCW_JOBS__STOCK__SCHEDULE", "* * * * * *"),
            // Only a missing key is due: the runs after the first never ask the upstream,
            // whatever the market does meanwhile (a close would shorten the policy's TTL).
            ("FCW_JOBS__STOCK__REFRESH_AHEAD", "0"),
            ("FCW_JOBS__OPTIONS__ENABLED", "false"),
            ("FCW_JOBS__EARNINGS__ENABLED", "false"),
            ("FCW_JOBS__INTEGRITY__ENABLED", "false"),
        ],
    );
    let mut seen = Vec::new();
    // The start-up run is slow; the ticks during it are skipped, not stacked.
    wait_for_line(&mut rx, &mut seen, &["the previous run is still going"], 10).await;
    wait_for_line(
        &mut rx,
        &mut seen,
        &["run finished", "\"outcome\":\"ok\""],
        10,
    )
    .await;
    let started = seen.iter().filter(|l| l.contains("run finished")).count();
    assert_eq!(started, 1);
    assert_eq!(
        quote_requests(&upstream).await,
        1,
        "overlapping ticks did not start runs"
    );
    support::signal(child.id().unwrap(), "-INT");
    assert_eq!(
        child.wait().await.unwrap().code(),
        Some(0),
        "run exits 0 after SIGINT too"
    );
}
