//! Where a benchmark runs: one private `redis-server`, or, with `BENCH_CLUSTER=1`, a Redis
//! Cluster.

use std::process::Command;

use finance_cache_warmer::local_redis::LocalRedis;

use crate::support::{Cluster, conn, redis};

/// Where a benchmark runs: one private `redis-server`, or, with `BENCH_CLUSTER=1`, a cluster.
pub enum Target {
    Single(Box<LocalRedis>),
    Cluster(Cluster),
}

impl Target {
    pub async fn start() -> Target {
        if std::env::var("BENCH_CLUSTER").is_ok_and(|v| v == "1") {
            Target::Cluster(Cluster::start().await)
        } else {
            Target::Single(Box::new(redis().await))
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Target::Single(_) => "single redis-server",
            Target::Cluster(_) => "Redis Cluster, 3 primaries + 3 replicas",
        }
    }

    /// The variable that points the daemon at this target.
    pub fn env(&self) -> (&'static str, String) {
        match self {
            Target::Single(s) => ("FCW_REDIS__URL", s.url()),
            Target::Cluster(c) => ("FCW_REDIS__CLUSTER_NODES", c.urls()),
        }
    }

    /// Runs `cmds` (single-key commands), all at once.
    pub async fn run_all(&self, cmds: Vec<redis::Cmd>) {
        match self {
            Target::Single(s) => {
                let mut c = conn(s).await;
                let mut pipe = redis::pipe();
                for cmd in cmds {
                    pipe.add_command(cmd).ignore();
                }
                let _: () = pipe.query_async(&mut c).await.unwrap();
            }
            Target::Cluster(cluster) => {
                let c = cluster.conn().await;
                futures_util::future::try_join_all(cmds.into_iter().map(|cmd| {
                    let mut c = c.clone();
                    async move { cmd.query_async::<redis::Value>(&mut c).await }
                }))
                .await
                .unwrap();
            }
        }
    }

    /// Keys stored, over every primary.
    pub async fn dbsize(&self) -> usize {
        let ports: Vec<u16> = match self {
            Target::Single(s) => vec![s.port()],
            Target::Cluster(c) => {
                let replicas = c.replicas();
                c.nodes
                    .iter()
                    .map(LocalRedis::port)
                    .filter(|p| !replicas.contains(p))
                    .collect()
            }
        };
        ports
            .iter()
            .map(|p| {
                let out = Command::new("redis-cli")
                    .args(["-p", &p.to_string(), "dbsize"])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse::<usize>()
                    .unwrap_or(0)
            })
            .sum()
    }

    /// `redis-benchmark` arguments that reach this target.
    pub fn benchmark_args(&self) -> Vec<String> {
        match self {
            Target::Single(s) => vec!["-p".into(), s.port().to_string()],
            Target::Cluster(c) => vec![
                "--cluster".into(),
                "-p".into(),
                c.nodes[0].port().to_string(),
            ],
        }
    }
}
