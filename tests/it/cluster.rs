//! Every job on a Redis Cluster of 3 primaries and 3 replicas started by the test: batches split
//! per slot, SCAN covering every primary, locks, and a failover in the middle of a run.

use crate::support;

use std::process::Stdio;
use std::time::Duration;

use redis::AsyncCommands;
use support::{Cluster, RecordedQuotes, eventually, fcw, summary};

fn once(cluster: &Cluster, args: &[&str]) -> std::process::Command {
    let mut cmd = on(cluster);
    cmd.arg("once").args(args);
    cmd
}

/// The binary on `cluster`, every job on the replay provider.
fn on(cluster: &Cluster) -> std::process::Command {
    let mut cmd = fcw();
    cmd.env("FCW_REDIS__CLUSTER_NODES", cluster.urls())
        .envs(support::REPLAY)
        .env("FCW_INTEGRITY__GRACE", "0s")
        .env("FCW_INTEGRITY__PRUNE_UNWATCHED", "true")
        .env("FCW_LOG__FORMAT", "json");
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_runs_on_a_cluster() {
    let cluster = Cluster::start().await;
    let mut c = cluster.conn().await;
    let tickers: Vec<String> = (0..60).map(|i| format!("C{i:03}")).collect();
    let _: () = c.sadd("finance:watchlist", &tickers).await.unwrap();
    // Positions and invitations spread over every primary; every third object is gone.
    let ids: Vec<String> = (0..90).map(|i| i.to_string()).collect();
    let _: () = c.sadd("finance:positions:index", &ids).await.unwrap();
    for id in ids.iter().filter(|i| i.parse::<u32>().unwrap() % 3 != 0) {
        let _: () = c.set(format!("finance:position:{id}"), "{}").await.unwrap();
    }
    let inviters: Vec<String> = (0..30).map(|i| format!("auth:inviter:user{i}")).collect();
    for (n, inviter) in inviters.iter().enumerate() {
        let _: () = c
            .sadd(inviter, &[format!("live{n}"), format!("gone{n}")])
            .await
            .unwrap();
        let _: () = c
            .set(format!("auth:invitation:live{n}"), "{}")
            .await
            .unwrap();
    }
    let _: () = c.set("finance:cache:stock:UNWATCHED", "{}").await.unwrap();
    // A key of another type where a cached value belongs is overwritten, failing nothing else.
    let _: () = c
        .hset("finance:cache:earnings:C007", "next", "2027-01-28")
        .await
        .unwrap();

    let (code, _, err) = support::run(&mut once(&cluster, &["all"]));
    assert_eq!(code, Some(0), "{err}");
    for job in ["stock", "options", "earnings"] {
        assert_eq!(summary(&err, job)["written"].as_u64(), Some(60), "{job}");
    }
    for t in &tickers {
        for kind in ["stock", "options", "earnings"] {
            let ttl: i64 = c.ttl(format!("finance:cache:{kind}:{t}")).await.unwrap();
            assert!(ttl > 0, "finance:cache:{kind}:{t}");
        }
    }
    let integrity = summary(&err, "integrity");
    assert_eq!(
        (
            integrity["orphans"].as_u64(),
            integrity["removed"].as_u64(),
            integrity["pruned"].as_u64()
        ),
        (Some(60), Some(60), Some(1)),
        "{integrity}"
    );
    let rules = support::log_lines(&err, "integrity rule finished");
    let inviter_rule = rules
        .iter()
        .find(|r| r["rule"] == "auth:inviter:*")
        .unwrap();
    assert_eq!(
        inviter_rule["indexes"].as_u64(),
        Some(30),
        "SCAN found the sets on every primary"
    );
    let positions: usize = c.scard("finance:positions:index").await.unwrap();
    assert_eq!(positions, 60);
    // `status` reads the run records and the coverage across the primaries.
    let (code, out, err) = support::run(on(&cluster).args(["status", "--json"]));
    assert_eq!(code, Some(0), "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    for kind in report["coverage"].as_array().unwrap() {
        assert_eq!(
            (kind["present"].as_u64(), kind["missing"].as_u64()),
            (Some(60), Some(0)),
            "{kind}"
        );
    }
    for (n, inviter) in inviters.iter().enumerate() {
        let left: Vec<String> = c.smembers(inviter).await.unwrap();
        assert_eq!(left, [format!("live{n}")]);
    }

    // Locks work on a cluster: of two concurrent runs, one skips.
    let spawn = || {
        tokio::process::Command::from(once(&cluster, &["stock", "--force"]))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = tokio::join!(spawn().wait_with_output(), spawn().wait_with_output());
    let outcomes: Vec<String> = [a.unwrap(), b.unwrap()]
        .iter()
        .map(|o| {
            summary(&String::from_utf8_lossy(&o.stderr), "stock")["outcome"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(outcomes.contains(&"ok".to_owned()), "{outcomes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_in_the_middle_of_a_run_is_survived() {
    let cluster = Cluster::start().await;
    let mut c = cluster.conn().await;
    let tickers: Vec<String> = (0..40).map(|i| format!("F{i:03}")).collect();
    let _: () = c.sadd("finance:watchlist", &tickers).await.unwrap();
    let upstream = support::yahoo(RecordedQuotes::new(Duration::from_millis(1500))).await;
    let mut cmd = once(&cluster, &["stock"]);
    cmd.env("FCW_PROVIDER__STOCK", "yahoo")
        .env("FCW_PROVIDER__YAHOO__BASE_URL", upstream.uri())
        .env(
            "FCW_PROVIDER__YAHOO__COOKIE_URL",
            format!("{}/cookie", upstream.uri()),
        )
        .env("FCW_PROVIDER__YAHOO__REQUESTS_PER_SECOND", "0")
        .env("FCW_PROVIDER__YAHOO__QUOTE_BATCH", "10")
        .env("FCW_PROVIDER__YAHOO__MAX_CONCURRENCY", "1")
        .env("FCW_SCHEDULER__BATCH_SIZE", "10");
    let child = tokio::process::Command::from(cmd)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually(20, "the first quote request", || async {
        let seen = upstream.received_requests().await.unwrap_or_default();
        seen.iter()
            .any(|r| r.url.path() == "/v7/finance/quote")
            .then_some(())
    })
    .await;
    // Every replica takes over from its primary while the run is fetching and writing.
    for port in cluster.replicas() {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string(), "cluster", "failover"])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("OK"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let output = child.wait_with_output().await.unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{err}");
    assert_eq!(
        summary(&err, "stock")["written"].as_u64(),
        Some(40),
        "{err}"
    );
    cluster.wait_until_ok().await;
    for t in &tickers {
        let ttl: i64 = c.ttl(format!("finance:cache:stock:{t}")).await.unwrap();
        assert!(ttl > 0, "finance:cache:stock:{t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_paused_past_its_lock_cannot_overwrite_a_newer_value_on_a_cluster() {
    let cluster = Cluster::start().await;
    let c = cluster.conn().await;
    support::a_run_paused_past_its_lock_writes_nothing(
        ("FCW_REDIS__CLUSTER_NODES", cluster.urls()),
        c,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_request_is_served_on_a_cluster() {
    let cluster = Cluster::start().await;
    let mut c = cluster.conn().await;
    let _: () = c.sadd("finance:watchlist", "MSFT").await.unwrap();
    let mut daemon = tokio::process::Command::from(on(&cluster));
    daemon
        .arg("run")
        .envs(support::START_UP_RUNS_ONLY)
        .envs(support::NO_START_UP_RUNS)
        .env("FCW_SERVER__LISTEN", "");
    let (mut child, _lines) = support::spawn_with_lines(daemon);
    let _: String = c
        .xadd("finance:warmer:requests", "*", &[("ticker", "MSFT")])
        .await
        .unwrap();
    let keys = ["stock", "options", "earnings"].map(|k| format!("finance:cache:{k}:MSFT"));
    for key in keys {
        eventually(20, &format!("{key} on the cluster"), || {
            let mut c = c.clone();
            let key = key.clone();
            async move { c.exists::<_, bool>(&key).await.ok()?.then_some(()) }
        })
        .await;
    }
    support::signal(child.id().unwrap(), "-TERM");
    assert_eq!(child.wait().await.unwrap().code(), Some(0));
}
