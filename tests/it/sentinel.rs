//! Redis under Sentinel: three sentinels, a primary and two replicas started by the test. Every
//! job, `status` and `check-config --connect` find the primary through the sentinels; a daemon
//! follows a `SENTINEL FAILOVER` and a killed primary by itself.

use crate::support;

use std::time::Duration;

use redis::AsyncCommands;
use support::{SentinelAuth, Sentinels, eventually, fcw, free_port, run, summary};

fn on(sentinels: &Sentinels, args: &[&str]) -> std::process::Command {
    let mut cmd = fcw();
    cmd.args(args)
        .envs(sentinels.env())
        .envs(support::REPLAY)
        .env("FCW_INTEGRITY__GRACE", "0s")
        .env("FCW_LOG__FORMAT", "json");
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_status_and_check_config_go_through_the_sentinels() {
    // The data nodes take an ACL user; the sentinels a password of their own.
    let sentinels = Sentinels::start(SentinelAuth {
        data: Some(("warmer", "data-secret")),
        sentinel_password: Some("sentinel-secret"),
        tls: None,
    })
    .await;
    let mut c = sentinels.conn().await;
    let _: () = c
        .sadd("finance:watchlist", &["AAPL", "MSFT", "QQQ"])
        .await
        .unwrap();
    let _: () = c
        .sadd("finance:positions:index", &["1", "2"])
        .await
        .unwrap();
    let _: () = c.set("finance:position:1", "{}").await.unwrap();

    let (code, _, err) = run(&mut on(&sentinels, &["once", "all"]));
    assert_eq!(code, Some(0), "{err}");
    for job in ["stock", "options", "earnings", "integrity"] {
        assert_eq!(summary(&err, job)["outcome"], "ok", "{job}: {err}");
    }
    for key in [
        "finance:cache:stock:AAPL",
        "finance:cache:options:MSFT",
        "finance:cache:earnings:QQQ",
    ] {
        let exists: bool = c.exists(key).await.unwrap();
        assert!(exists, "{key} written on the primary");
    }
    let index: Vec<String> = c.smembers("finance:positions:index").await.unwrap();
    assert_eq!(index, ["1"], "the orphan is repaired, the live entry kept");
    assert!(
        !err.contains("data-secret") && !err.contains("sentinel-secret"),
        "no password in the logs:\n{err}"
    );

    // A warm request, served by a daemon that runs nothing else.
    let _: () = c.sadd("finance:watchlist", "IBM").await.unwrap();
    let mut daemon = tokio::process::Command::from(on(&sentinels, &["run"]));
    daemon
        .envs(support::START_UP_RUNS_ONLY)
        .envs(support::NO_START_UP_RUNS)
        .env("FCW_SERVER__LISTEN", "");
    let (mut child, _lines) = support::spawn_with_lines(daemon);
    let _: String = c
        .xadd("finance:warmer:requests", "*", &[("ticker", "IBM")])
        .await
        .unwrap();
    eventually(20, "IBM warmed on request", || {
        let mut c = c.clone();
        let keys = ["stock", "options", "earnings"].map(|k| format!("finance:cache:{k}:IBM"));
        async move { (c.exists::<_, usize>(&keys).await.ok()? == 3).then_some(()) }
    })
    .await;
    support::signal(child.id().unwrap(), "-TERM");
    assert_eq!(child.wait().await.unwrap().code(), Some(0));

    let (code, out, err) = run(&mut on(&sentinels, &["status"]));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("fcwmaster"),
        "status names the sentinel set:\n{out}"
    );
    let (code, out, err) = run(&mut on(&sentinels, &["check-config", "--connect"]));
    assert_eq!(code, Some(0), "{out}{err}");

    // The sentinels' password is theirs: without it they refuse, and the message says so
    // without showing either password.
    let mut wrong = on(&sentinels, &["check-config", "--connect"]);
    wrong.env("FCW_REDIS__SENTINEL__SENTINEL_PASSWORD", "not-it");
    let (code, out, err) = run(&mut wrong);
    assert_ne!(code, Some(0), "{out}{err}");
    let said = format!("{out}{err}");
    assert!(said.contains("fcwmaster"), "{said}");
    assert!(
        !said.contains("not-it") && !said.contains("data-secret"),
        "{said}"
    );
}

#[tokio::test]
async fn only_one_way_to_reach_redis_is_accepted() {
    for (env, named) in [
        (
            vec![
                ("FCW_REDIS__URL", "redis://127.0.0.1:1/0"),
                ("FCW_REDIS__SENTINEL__NODES", "redis://127.0.0.1:2"),
                ("FCW_REDIS__SENTINEL__MASTER_NAME", "m"),
            ],
            "redis.sentinel.nodes: redis.url is set too",
        ),
        (
            vec![
                ("FCW_REDIS__CLUSTER_NODES", "redis://127.0.0.1:1"),
                ("FCW_REDIS__SENTINEL__NODES", "redis://127.0.0.1:2"),
                ("FCW_REDIS__SENTINEL__MASTER_NAME", "m"),
            ],
            "redis.sentinel.nodes: redis.cluster_nodes is set too",
        ),
        (
            vec![
                ("FCW_REDIS__URL", "redis://127.0.0.1:1/0"),
                ("FCW_REDIS__CLUSTER_NODES", "redis://127.0.0.1:1"),
            ],
            "redis.cluster_nodes: redis.url is set too",
        ),
        (
            vec![("FCW_REDIS__SENTINEL__NODES", "redis://127.0.0.1:2")],
            "redis.sentinel.master_name: empty",
        ),
    ] {
        let (code, out, err) = run(fcw().arg("check-config").envs(env.clone()));
        assert_eq!(code, Some(2), "{env:?}: {out}{err}");
        assert!(format!("{out}{err}").contains(named), "{env:?}: {out}{err}");
    }
}

/// Starts `run` with every job every second, and a task collecting its stderr lines.
fn daemon(
    sentinels: &Sentinels,
    listen: u16,
) -> (
    tokio::process::Child,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let mut cmd = tokio::process::Command::from(on(sentinels, &["run"]));
    for job in ["STOCK", "OPTIONS", "EARNINGS", "INTEGRITY"] {
        cmd.env(format!("FCW_JOBS__{job}__SCHEDULE"), "* * * * * *");
    }
    for job in ["STOCK", "OPTIONS", "EARNINGS"] {
        // Every run fetches again, so every run writes to the primary of the moment.
        cmd.env(format!("FCW_JOBS__{job}__REFRESH_AHEAD"), "1");
    }
    // A lock released just before the primary died may come back with the promoted replica
    // (its DEL not replicated yet) and hold its job off until it expires: short locks keep
    // that within the test's wait.
    cmd.env("FCW_SERVER__LISTEN", format!("127.0.0.1:{listen}"))
        .env("FCW_SCHEDULER__LOCK_TTL", "5s")
        .env("FCW_LOG__LEVEL", "info,finance_cache_warmer::store=debug");
    support::spawn_with_lines(cmd)
}

/// Waits until every job has finished a run with `"outcome":"ok"` that started at `since` or
/// later (a run's start is its summary's time less its `duration_ms`; lines logged before are
/// still queued and do not count); `seen` keeps every line for the failure message.
async fn every_job_succeeds(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: &mut Vec<String>,
    after: &str,
) {
    let since = chrono::Utc::now();
    seen.push(format!("--- {since}: {after}"));
    let jobs = ["stock", "options", "earnings", "integrity"];
    let mut ok = [false; 4];
    let started = |v: &serde_json::Value| {
        let at: chrono::DateTime<chrono::Utc> = v["timestamp"].as_str()?.parse().ok()?;
        Some(at - chrono::Duration::milliseconds(v["duration_ms"].as_i64()?))
    };
    let done = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = rx.recv().await {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["message"] == "run finished"
                && v["outcome"] == "ok"
                && started(&v).is_some_and(|at| at >= since)
                && let Some(at) = jobs.iter().position(|job| v["job"] == *job)
            {
                ok[at] = true;
            }
            seen.push(line);
            if ok.iter().all(|done| *done) {
                return;
            }
        }
    })
    .await;
    assert!(
        done.is_ok(),
        "after {after}, jobs {jobs:?} succeeded: {ok:?} within 30 s; saw:\n{}",
        seen.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_follows_a_failover_and_a_killed_primary() {
    let mut sentinels = Sentinels::start(SentinelAuth::default()).await;
    let mut c = sentinels.conn().await;
    let _: () = c.sadd("finance:watchlist", &["AAPL", "QQQ"]).await.unwrap();
    let listen = free_port();
    let ready = format!("http://127.0.0.1:{listen}/readyz");
    let (mut child, mut rx) = daemon(&sentinels, listen);
    let mut seen = Vec::new();
    every_job_succeeds(&mut rx, &mut seen, "start").await;

    // A planned failover: a replica is promoted and the old primary demoted under the runs.
    let old = sentinels.primary_port();
    let promoted = sentinels.failover().await;
    assert_ne!(promoted, old);
    every_job_succeeds(
        &mut rx,
        &mut seen,
        &format!("SENTINEL FAILOVER from {old} to {promoted}"),
    )
    .await;
    // A ticker added on the new primary is warmed there: the daemon writes where it reads.
    let mut c = sentinels.conn().await;
    let _: () = c.sadd("finance:watchlist", "MSFT").await.unwrap();
    eventually(30, "MSFT warmed on the new primary", || {
        let mut c = c.clone();
        async move {
            c.exists::<_, bool>("finance:cache:options:MSFT")
                .await
                .ok()?
                .then_some(())
        }
    })
    .await;

    // The primary dies: the sentinels agree it is down and promote a replica.
    let dead = sentinels.primary_port();
    sentinels.primary_mut().stop();
    let newest = sentinels.wait_for_new_primary(dead).await;
    every_job_succeeds(
        &mut rx,
        &mut seen,
        &format!("killing {dead}, promoted {newest}"),
    )
    .await;
    let mut c = sentinels.conn().await;
    let _: () = c.sadd("finance:watchlist", "IBM").await.unwrap();
    eventually(30, "IBM warmed on the newest primary", || {
        let mut c = c.clone();
        async move {
            c.exists::<_, bool>("finance:cache:stock:IBM")
                .await
                .ok()?
                .then_some(())
        }
    })
    .await;
    let status = eventually(30, "/readyz answering 200", || async {
        let reply = reqwest::get(&ready).await.ok()?;
        (reply.status() == 200).then_some(reply.status())
    })
    .await;
    assert_eq!(status, 200);
    assert!(
        !seen.iter().any(|l| l.contains("panicked")),
        "{}",
        seen.join("\n")
    );
    // Found at start, after the failover and after the kill, each logged once; the last one's
    // line may still be on its way (the checks above do not read the log), and a sentinel may
    // briefly have promoted another replica before the election settled.
    let found = |l: &String| l.contains("Redis primary found through Sentinel");
    let newest_found = |l: &String| found(l) && l.contains(&format!(":{newest}\""));
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while !seen.iter().any(newest_found) {
            match rx.recv().await {
                Some(line) => seen.push(line),
                None => return,
            }
        }
    })
    .await;
    assert!(
        waited.is_ok() && seen.iter().filter(|l| found(l)).count() >= 3,
        "the daemon logs each primary it follows:\n{}",
        seen.join("\n")
    );
    support::signal(child.id().unwrap(), "-TERM");
    assert_eq!(child.wait().await.unwrap().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sentinels_and_the_primary_can_be_reached_over_verified_tls() {
    if !support::redis_has_tls() {
        println!("SKIPPED: the installed redis-server has no TLS support");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sentinels = Sentinels::start(SentinelAuth {
        data: Some(("warmer", "data-secret")),
        tls: Some(support::tls_files(dir.path())),
        ..SentinelAuth::default()
    })
    .await;
    let mut c = sentinels.conn().await;
    let _: () = c.sadd("finance:watchlist", &["AAPL", "QQQ"]).await.unwrap();
    let (code, _, err) = run(&mut on(&sentinels, &["once", "all"]));
    assert_eq!(code, Some(0), "{err}");
    let exists: bool = c.exists("finance:cache:options:QQQ").await.unwrap();
    assert!(exists, "written over TLS on the primary");
    let (code, out, err) = run(&mut on(&sentinels, &["check-config", "--connect"]));
    assert_eq!(code, Some(0), "{out}{err}");
    // Without the private CA the primary's certificate is not trusted: nothing is written.
    let mut untrusted = on(&sentinels, &["once", "stock", "--force"]);
    untrusted.env_remove("FCW_REDIS__CA_FILE");
    let (code, _, err) = run(&mut untrusted);
    assert_eq!(code, Some(3), "{err}");
}
