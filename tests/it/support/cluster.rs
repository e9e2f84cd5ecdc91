//! A Redis Cluster of private servers, and the paused-run check shared by the single-server and
//! cluster tests.

use std::process::Command;

use finance_cache_warmer::local_redis::{LocalRedis, LocalRedisOptions};

use super::binary::{fcw, signal, summary};
use super::servers::{eventually, redis_with};
use super::upstream::{RecordedQuotes, yahoo};

/// A Redis Cluster on loopback: 3 primaries and 3 replicas, each a private `redis-server`.
pub struct Cluster {
    pub nodes: Vec<LocalRedis>,
}

impl Cluster {
    pub async fn start() -> Cluster {
        let mut nodes = Vec::new();
        for _ in 0..6 {
            nodes.push(
                redis_with(LocalRedisOptions {
                    extra_args: [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                    ]
                    .map(String::from)
                    .to_vec(),
                    ..LocalRedisOptions::default()
                })
                .await,
            );
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stdout)
        );
        let cluster = Cluster { nodes };
        cluster.wait_until_ok().await;
        cluster
    }

    /// Waits until every node sees all 16384 slots served.
    pub async fn wait_until_ok(&self) {
        for node in &self.nodes {
            let port = node.port().to_string();
            eventually(30, "cluster_state:ok", || {
                let port = port.clone();
                async move {
                    let out = Command::new("redis-cli")
                        .args(["-p", &port, "cluster", "info"])
                        .output()
                        .ok()?;
                    let info = String::from_utf8_lossy(&out.stdout).into_owned();
                    (info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384"))
                        .then_some(())
                }
            })
            .await;
        }
    }

    /// `redis.cluster_nodes`, comma-separated.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.url())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A cluster connection for arranging and inspecting data.
    pub async fn conn(&self) -> redis::cluster_async::ClusterConnection {
        redis::cluster::ClusterClient::new(self.nodes.iter().map(|n| n.url()).collect::<Vec<_>>())
            .unwrap()
            .get_async_connection()
            .await
            .unwrap()
    }

    /// The ports of the nodes that are replicas now.
    pub fn replicas(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| {
                let out = Command::new("redis-cli")
                    .args(["-p", &n.port().to_string(), "role"])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).starts_with("slave")
            })
            .map(LocalRedis::port)
            .collect()
    }
}

/// A `once stock` run (A) that fetched from a slow Yahoo, is paused (SIGSTOP) until its lock
/// has expired, and wakes after another run (B, the replay provider) took the lock and wrote:
/// A writes nothing, not even its run record, and fails. `target` is `FCW_REDIS__URL` or
/// `FCW_REDIS__CLUSTER_NODES`; `c` reads the keys.
pub async fn a_run_paused_past_its_lock_writes_nothing<C>(target: (&str, String), mut c: C)
where
    C: redis::aio::ConnectionLike + Send + Sync,
{
    use redis::AsyncCommands;
    let _: () = c.sadd("finance:watchlist", "AAPL").await.unwrap();
    let upstream = yahoo(RecordedQuotes::new(std::time::Duration::from_secs(2))).await;
    let run = |provider: &str| {
        let mut cmd = tokio::process::Command::from(fcw());
        cmd.args(["once", "stock", "--force"])
            .env(target.0, &target.1)
            .env("FCW_PROVIDER__STOCK", provider)
            .env("FCW_PROVIDER__YAHOO__BASE_URL", upstream.uri())
            .env(
                "FCW_PROVIDER__YAHOO__COOKIE_URL",
                format!("{}/cookie", upstream.uri()),
            )
            .env("FCW_SCHEDULER__LOCK_TTL", "3s")
            .env("FCW_LOG__FORMAT", "json")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        cmd
    };
    let a = run("yahoo").spawn().unwrap();
    let a_pid = a.id().unwrap();
    eventually(10, "A's quote request", || async {
        let asked = upstream.received_requests().await.unwrap_or_default();
        asked
            .iter()
            .any(|r| r.url.path() == "/v7/finance/quote")
            .then_some(())
    })
    .await;
    signal(a_pid, "-STOP");
    // Polled with a deadline: the lock's TTL is what has to pass.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while c.exists::<_, bool>("finance:lock:job:stock").await.unwrap() {
        assert!(
            std::time::Instant::now() < deadline,
            "A's lock never expired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let b = run("replay").output().await.unwrap();
    let b_err = String::from_utf8_lossy(&b.stderr);
    assert_eq!(b.status.code(), Some(0), "{b_err}");
    let b_run = summary(&b_err, "stock")["run_id"].clone();
    signal(a_pid, "-CONT");
    let a = a.wait_with_output().await.unwrap();
    let a_err = String::from_utf8_lossy(&a.stderr);
    assert_eq!(a.status.code(), Some(1), "{a_err}");
    let s = summary(&a_err, "stock");
    assert!(
        s["reason"].as_str().unwrap().contains("lost the job lock"),
        "{s}"
    );
    let value: String = c.get("finance:cache:stock:AAPL").await.unwrap();
    let value: serde_json::Value = serde_json::from_str(&value).unwrap();
    assert_eq!(value["source"], "replay", "B's newer value stands");
    let recorded: String = c.hget("finance:warmer:run:stock", "run_id").await.unwrap();
    assert_eq!(
        serde_json::Value::from(recorded),
        b_run,
        "B's run record stands"
    );
}
