//! Flags an operator can trust and signals honoured at every stage: flags that do not apply are
//! usage errors, disabled jobs stay disabled, log fields are plain values, SIGHUP does not kill,
//! and a Redis that accepts connections and never answers cannot hold a command past its bound.

use crate::support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use support::{conn, fcw, redis, run};
use tokio::io::{AsyncBufReadExt, BufReader};
use wiremock::ResponseTemplate;

use finance_cache_warmer::local_redis::LocalRedis;

fn once(server: &LocalRedis, args: &[&str]) -> (Option<i32>, String, String) {
    run(fcw()
        .arg("once")
        .args(args)
        .env("FCW_REDIS__URL", server.url())
        .envs(support::REPLAY)
        .env("FCW_LOG__FORMAT", "json")
        .env("FCW_SERVER__LISTEN", ""))
}

#[tokio::test]
async fn flags_that_do_not_apply_are_usage_errors_and_write_nothing() {
    let server = redis().await;
    let mut c = conn(&server).await;
    let _: () = c.sadd("finance:watchlist", "AAPL").await.unwrap();
    for (args, says) in [
        (
            &["stock", "--dry-run"][..],
            "once stock: --dry-run applies to `once integrity` only",
        ),
        (
            &["all", "--dry-run"],
            "--dry-run applies to `once integrity`",
        ),
        (
            &["integrity", "--force"],
            "once integrity: --force, --shard and --shards apply to the warming jobs only",
        ),
        (
            &["integrity", "--shard", "0/2"],
            "apply to the warming jobs",
        ),
        (
            &["all", "--shard", "0/2"],
            "once all: --shard and --shards split one warming job",
        ),
        (
            &["stock", "--shards", "4"],
            "--shards takes the shard index from JOB_COMPLETION_INDEX, which is not set",
        ),
    ] {
        let (code, _, err) = once(&server, args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let size: usize = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert_eq!(size, 1, "nothing but the watchlist");
    let (code, _, err) =
        run(fcw().args(["calendar", "--from", "2026-12-10", "--to", "2026-12-01"]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("calendar: --from is after --to"), "{err}");
}

#[tokio::test]
async fn a_disabled_job_runs_only_when_asked_by_name_and_flag() {
    let server = redis().await;
    let mut c = conn(&server).await;
    let _: () = c.sadd("finance:watchlist", "AAPL").await.unwrap();
    let disabled = |args: &[&str]| {
        run(fcw()
            .arg("once")
            .args(args)
            .env("FCW_REDIS__URL", server.url())
            .envs(support::REPLAY)
            .env("FCW_JOBS__OPTIONS__ENABLED", "false")
            .env("FCW_LOG__FORMAT", "json")
            .env("FCW_SERVER__LISTEN", ""))
    };
    let key = "finance:cache:options:AAPL";
    let (code, _, err) = disabled(&["options"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("jobs.options.enabled = false; pass --even-if-disabled"),
        "{err}"
    );
    let (code, _, err) = disabled(&["all"]);
    assert_eq!(code, Some(0), "{err}");
    let runs: Vec<String> = support::log_lines(&err, "run finished")
        .iter()
        .map(|l| l["job"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(runs, ["stock", "earnings", "integrity"], "{err}");
    assert_eq!(
        support::log_lines(&err, "skipped: jobs.options.enabled = false").len(),
        1,
        "{err}"
    );
    assert!(!c.exists::<_, bool>(key).await.unwrap());
    let (code, _, err) = disabled(&["options", "--even-if-disabled"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(c.exists::<_, bool>(key).await.unwrap());
}

/// The daemon on replayed data with JSON logs, its stderr lines sent to the returned channel.
fn daemon(
    server: &LocalRedis,
    env: &[(&str, &str)],
) -> (
    tokio::process::Child,
    tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
) {
    let mut cmd = tokio::process::Command::from(fcw());
    cmd.arg("run")
        .env("FCW_REDIS__URL", server.url())
        .envs(support::REPLAY)
        .envs(support::START_UP_RUNS_ONLY)
        .env("FCW_LOG__FORMAT", "json")
        .env("FCW_SERVER__LISTEN", "")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = tx.send(v);
            }
        }
    });
    (child, rx)
}

/// The next log line whose message is `message`.
async fn line(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
    message: &str,
) -> serde_json::Value {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let v = rx.recv().await.expect("the daemon's log goes on");
            if v["message"] == message {
                return v;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {message:?} line within 20 s"))
}

/// Waits until `pid` has a handler for signal `number` (its SigCgt mask in /proc): a signal sent
/// before that would take the default action instead of the program's.
async fn handles_signal(pid: u32, number: u32) {
    support::eventually(10, "the signal handler", || async move {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let mask = status.lines().find_map(|l| l.strip_prefix("SigCgt:"))?;
        let mask = u64::from_str_radix(mask.trim(), 16).ok()?;
        (mask & (1 << (number - 1)) != 0).then_some(())
    })
    .await
}

/// Waits for the child to exit, at most `bound`; its exit code.
async fn exits_within(child: &mut tokio::process::Child, bound: Duration) -> Option<i32> {
    let status = tokio::time::timeout(bound, child.wait())
        .await
        .unwrap_or_else(|_| panic!("still running {bound:?} after the signal"))
        .unwrap();
    status.code()
}

#[tokio::test]
async fn sighup_is_logged_and_ignored_and_log_fields_are_plain_values() {
    let server = redis().await;
    let (mut child, mut rx) = daemon(&server, &[]);
    let started = line(&mut rx, "daemon started").await;
    assert_eq!(started["version"], env!("CARGO_PKG_VERSION"), "{started}");
    assert!(
        started["config"].as_str().unwrap().contains("none"),
        "{started}"
    );
    let scheduled = line(&mut rx, "scheduled").await;
    let next = scheduled["next"].as_str().unwrap();
    assert!(
        next.parse::<chrono::DateTime<chrono::Utc>>().is_ok() && next.ends_with('Z'),
        "{scheduled}"
    );
    let pid = child.id().unwrap();
    handles_signal(pid, 1).await;
    support::signal(pid, "-HUP");
    let hup = line(
        &mut rx,
        "SIGHUP received: the configuration is not reloaded; restart the process to apply changes",
    )
    .await;
    assert_eq!(hup["level"], "WARN");
    assert!(child.try_wait().unwrap().is_none(), "still running");
    support::signal(pid, "-TERM");
    let stopped = line(&mut rx, "daemon stopped").await;
    assert_eq!(stopped["signal"], "SIGTERM");
    assert_eq!(
        exits_within(&mut child, Duration::from_secs(10)).await,
        Some(0)
    );
}

/// A Redis that accepts connections and never answers: a paused `redis-server` (the kernel
/// still completes the TCP handshake).
async fn hung_redis() -> LocalRedis {
    let server = redis().await;
    support::watchlist(&server, &[b"AAPL"]).await;
    server.pause();
    server
}

#[tokio::test]
async fn once_and_status_give_up_on_a_hung_redis_after_the_connect_timeout() {
    let server = hung_redis().await;
    for args in [
        &["once", "stock"][..],
        &["status"],
        &["check-config", "--connect"],
    ] {
        let begun = Instant::now();
        let (code, _, err) = run(fcw()
            .args(args)
            .env("FCW_REDIS__URL", server.url())
            .env("FCW_REDIS__CONNECT_TIMEOUT", "1s")
            .env("FCW_LOG__FORMAT", "json"));
        assert_eq!(code, Some(3), "{args:?}: {err}");
        assert!(
            err.contains("no answer within 1s (redis.connect_timeout)"),
            "{args:?}: {err}"
        );
        // Well under the 10 s response timeout the commands themselves would wait.
        assert!(begun.elapsed() < Duration::from_secs(5), "{args:?}");
    }
    server.resume();
}

#[tokio::test]
async fn a_signal_while_connecting_to_a_hung_redis_ends_once_and_status_at_once() {
    let server = hung_redis().await;
    for (args, signal, code) in [
        (&["once", "stock"][..], ("-TERM", 15), 143),
        (&["status"], ("-INT", 2), 130),
    ] {
        let mut child = tokio::process::Command::from(fcw())
            .args(args)
            .env("FCW_REDIS__URL", server.url())
            .env("FCW_REDIS__CONNECT_TIMEOUT", "60s")
            .env("FCW_LOG__FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        handles_signal(pid, signal.1).await;
        support::signal(pid, signal.0);
        assert_eq!(
            exits_within(&mut child, Duration::from_secs(5)).await,
            Some(code),
            "{args:?}"
        );
    }
    server.resume();
}

#[tokio::test]
async fn the_daemon_stops_within_its_grace_even_with_redis_hung_mid_run() {
    let server = redis().await;
    support::watchlist(&server, &[b"AAPL"]).await;
    let (mut child, mut rx) = daemon(
        &server,
        &[
            ("FCW_SCHEDULER__SHUTDOWN_GRACE", "2s"),
            ("FCW_JOBS__STOCK__SCHEDULE", "* * * * * *"),
            ("FCW_JOBS__STOCK__REFRESH_AHEAD", "1"),
        ],
    );
    line(&mut rx, "run finished").await;
    server.pause();
    // Runs now hang on Redis (10 s response timeout, retried).
    let pid = child.id().unwrap();
    support::signal(pid, "-TERM");
    // The grace, plus the small margin for records and locks; never the minute a hung Redis
    // would otherwise take.
    let code = exits_within(&mut child, Duration::from_secs(2 + 5 + 2)).await;
    assert!(matches!(code, Some(0 | 143)), "{code:?}");
    server.resume();
}

#[tokio::test]
async fn a_second_signal_ends_a_stopping_process_at_once() {
    let server = redis().await;
    support::watchlist(&server, &[b"AAPL"]).await;
    // An upstream that answers after a minute: the run's batch is in flight when asked to stop.
    let upstream = support::yahoo(
        ResponseTemplate::new(200)
            .set_body_raw(
                support::fixture("yahoo/quote_AAPL_2026-10.json"),
                "application/json",
            )
            .set_delay(Duration::from_secs(60)),
    )
    .await;
    let mut child = tokio::process::Command::from(fcw())
        .args(["once", "stock"])
        .env("FCW_REDIS__URL", server.url())
        .env("FCW_PROVIDER__YAHOO__BASE_URL", upstream.uri())
        .env(
            "FCW_PROVIDER__YAHOO__COOKIE_URL",
            format!("{}/cookie", upstream.uri()),
        )
        .env("FCW_SCHEDULER__SHUTDOWN_GRACE", "20s")
        .env("FCW_LOG__FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    support::eventually(20, "the quote request", || async {
        let requests = upstream.received_requests().await.unwrap_or_default();
        requests
            .iter()
            .any(|r| r.url.path() == "/v7/finance/quote")
            .then_some(())
    })
    .await;
    let pid = child.id().unwrap();
    support::signal(pid, "-INT");
    // Stopping: the batch in flight has the 20 s grace. A second Ctrl-C does not wait for it.
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("SIGINT received; stopping") {
                return;
            }
        }
    })
    .await
    .expect("the first signal is taken");
    support::signal(pid, "-INT");
    assert_eq!(
        exits_within(&mut child, Duration::from_secs(5)).await,
        Some(130)
    );
}

#[test]
fn journald_gets_each_lines_priority_when_stderr_is_the_journal() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    // Redis refuses (nobody listens on port 1): an info line or two, then the error.
    let stderr_of = |journal_stream: Option<&dyn Fn(&std::fs::File) -> String>| {
        let path = dir.path().join("stderr");
        let file = std::fs::File::create(&path).unwrap();
        let mut cmd = fcw();
        cmd.args(["once", "stock"])
            .env("FCW_REDIS__URL", "redis://127.0.0.1:1/0")
            .env("FCW_REDIS__CONNECT_TIMEOUT", "1s")
            .env("FCW_LOG__FORMAT", "json");
        if let Some(stream) = journal_stream {
            cmd.env("JOURNAL_STREAM", stream(&file));
        }
        let status = cmd.stderr(file).stdout(Stdio::null()).status().unwrap();
        assert_eq!(status.code(), Some(3));
        std::fs::read_to_string(&path).unwrap()
    };
    // As systemd sets it: the device and inode of the stream stderr is.
    let this = |f: &std::fs::File| {
        let m = f.metadata().unwrap();
        format!("{}:{}", m.dev(), m.ino())
    };
    let journal = stderr_of(Some(&this));
    let last = journal.lines().last().unwrap();
    assert!(last.starts_with("<3>{"), "{journal}");
    assert!(
        journal
            .lines()
            .all(|l| ["<3>{", "<4>{", "<6>{"].iter().any(|p| l.starts_with(p))),
        "{journal}"
    );
    // stderr redirected away from the journal (another stream), or no journal at all: plain.
    for plain in [stderr_of(Some(&|_| "1:2".into())), stderr_of(None)] {
        assert!(plain.lines().all(|l| l.starts_with('{')), "{plain}");
    }
}

#[tokio::test]
async fn a_shutdown_grace_the_stop_timeouts_would_cut_short_is_warned_about() {
    let server = redis().await;
    let (code, _, err) = run(fcw()
        .args(["once", "stock"])
        .env("FCW_REDIS__URL", server.url())
        .envs(support::REPLAY)
        .env("FCW_SCHEDULER__SHUTDOWN_GRACE", "45s")
        .env("FCW_LOG__FORMAT", "json"));
    assert_eq!(code, Some(0), "{err}");
    let warned = support::log_lines(
        &err,
        "scheduler.shutdown_grace is above 30s, the stop timeout of the shipped unit and Kubernetes' default: a stopping process may be killed before its runs end",
    );
    assert_eq!(warned.len(), 1, "{err}");
    assert_eq!(warned[0]["shutdown_grace"], "45s");
    let (_, _, err) = once(&server, &["stock"]);
    assert!(
        !err.contains("shutdown_grace"),
        "the default 20s is fine: {err}"
    );
}
