//! Redis under Sentinel on loopback: a primary, two replicas and three `redis-server --sentinel`,
//! all private to the test, so it can fail the primary over or kill it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use finance_cache_warmer::local_redis::{LocalRedis, LocalRedisOptions, TlsFiles};

use super::data::readme_acl;
use super::servers::{eventually, free_port, redis_with};

/// The name the sentinels monitor.
pub const MASTER: &str = "fcwmaster";

/// Credentials, when the test wants them: the data nodes' ACL user and password, and the
/// sentinels' own password (another one, as in most deployments); and TLS for every node.
#[derive(Clone, Default)]
pub struct SentinelAuth {
    pub data: Option<(&'static str, &'static str)>,
    pub sentinel_password: Option<&'static str>,
    pub tls: Option<TlsFiles>,
}

pub struct Sentinels {
    pub nodes: Vec<LocalRedis>,
    sentinels: Vec<(u16, Child)>,
    dir: PathBuf,
    auth: SentinelAuth,
}

impl Sentinels {
    pub async fn start(auth: SentinelAuth) -> Sentinels {
        let data_args = |primary: Option<u16>| {
            let mut args: Vec<String> = Vec::new();
            if let Some((_, password)) = auth.data {
                // The sentinels and the replicas use the default user; the daemon its own,
                // made on every node below (ACL users are not replicated).
                args.extend(
                    ["--requirepass", password, "--masterauth", password].map(String::from),
                );
            }
            if let Some(port) = primary {
                args.extend(["--replicaof".into(), "127.0.0.1".into(), port.to_string()]);
            }
            if auth.tls.is_some() {
                args.extend(["--tls-replication".into(), "yes".into()]);
            }
            args
        };
        let primary = redis_with(LocalRedisOptions {
            extra_args: data_args(None),
            tls: auth.tls.clone(),
            ..LocalRedisOptions::default()
        })
        .await;
        let mut nodes = vec![primary];
        for _ in 0..2 {
            let port = nodes[0].port();
            nodes.push(
                redis_with(LocalRedisOptions {
                    extra_args: data_args(Some(port)),
                    tls: auth.tls.clone(),
                    ..LocalRedisOptions::default()
                })
                .await,
            );
        }
        if let Some((user, password)) = auth.data {
            // The least-privilege user of docs/redis.md, on every node: any may become primary.
            let mut acl = readme_acl(password);
            assert_eq!(acl[0].to_ascii_lowercase(), "setuser");
            acl[1] = user.to_owned();
            for node in &nodes {
                let port = node.port().to_string();
                let made = lines(
                    Command::new("redis-cli")
                        .args(tls_args(&auth.tls))
                        .args(["-p", &port, "--no-auth-warning", "-a", password, "acl"])
                        .args(&acl),
                );
                assert_eq!(made, ["OK"], "ACL SETUSER");
            }
        }
        let dir = std::env::temp_dir().join(format!(
            "fcw-sentinel-{}-{}",
            std::process::id(),
            nodes[0].port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut sentinels = Vec::new();
        for i in 0..3 {
            let port = free_port();
            let listen = match &auth.tls {
                Some(tls) => format!(
                    "port 0\ntls-port {port}\ntls-cert-file {}\ntls-key-file {}\n\
                     tls-ca-cert-file {}\ntls-auth-clients no\ntls-replication yes\n",
                    tls.cert.display(),
                    tls.key.display(),
                    tls.ca.display()
                ),
                None => format!("port {port}\n"),
            };
            let mut conf = format!(
                "{listen}bind 127.0.0.1\ndir {dir}\nlogfile {dir}/sentinel-{i}.log\n\
                 sentinel monitor {MASTER} 127.0.0.1 {primary} 2\n\
                 sentinel down-after-milliseconds {MASTER} 1000\n\
                 sentinel failover-timeout {MASTER} 4000\n\
                 sentinel parallel-syncs {MASTER} 2\n",
                dir = dir.display(),
                primary = nodes[0].port(),
            );
            if let Some((_, password)) = auth.data {
                conf.push_str(&format!("sentinel auth-pass {MASTER} {password}\n"));
            }
            if let Some(password) = auth.sentinel_password {
                conf.push_str(&format!(
                    "requirepass {password}\nsentinel sentinel-pass {password}\n"
                ));
            }
            let path = dir.join(format!("sentinel-{i}.conf"));
            std::fs::write(&path, conf).unwrap();
            let child = Command::new("redis-server")
                .arg(&path)
                .arg("--sentinel")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server --sentinel starts");
            sentinels.push((port, child));
        }
        let set = Sentinels {
            nodes,
            sentinels,
            dir,
            auth,
        };
        // Every sentinel sees the primary, both replicas and the two other sentinels, so a
        // killed primary reaches the quorum.
        for (port, _) in &set.sentinels {
            eventually(30, "a sentinel that knows its peers", || async {
                let fields = set.sentinel_cli(*port, &["sentinel", "master", MASTER]);
                let field = |name: &str| {
                    let at = fields.iter().position(|f| f == name)?;
                    fields.get(at + 1).cloned()
                };
                (field("num-slaves").as_deref() == Some("2")
                    && field("num-other-sentinels").as_deref() == Some("2"))
                .then_some(())
            })
            .await;
        }
        set
    }

    /// `redis.sentinel.nodes`, comma-separated.
    pub fn urls(&self) -> String {
        self.sentinels
            .iter()
            .map(|(port, _)| match self.auth.tls {
                Some(_) => format!("rediss://127.0.0.1:{port}"),
                None => format!("redis://127.0.0.1:{port}"),
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The variables that point the daemon at these sentinels (credentials included).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("FCW_REDIS__SENTINEL__MASTER_NAME", MASTER.to_owned()),
            ("FCW_REDIS__SENTINEL__NODES", self.urls()),
        ];
        if let Some((user, password)) = self.auth.data {
            env.push(("FCW_REDIS__SENTINEL__USERNAME", user.to_owned()));
            env.push(("FCW_REDIS__PASSWORD", password.to_owned()));
        }
        if let Some(password) = self.auth.sentinel_password {
            env.push((
                "FCW_REDIS__SENTINEL__SENTINEL_PASSWORD",
                password.to_owned(),
            ));
        }
        if let Some(tls) = &self.auth.tls {
            env.push(("FCW_REDIS__SENTINEL__TLS", "true".to_owned()));
            env.push(("FCW_REDIS__CA_FILE", tls.ca.display().to_string()));
        }
        env
    }

    /// The port of the primary the sentinels name now.
    pub fn primary_port(&self) -> u16 {
        let (port, _) = &self.sentinels[0];
        let addr = self.sentinel_cli(*port, &["sentinel", "get-master-addr-by-name", MASTER]);
        addr[1].parse().expect("a port")
    }

    /// The node serving as primary now.
    pub fn primary_mut(&mut self) -> &mut LocalRedis {
        let port = self.primary_port();
        self.nodes.iter_mut().find(|n| n.port() == port).unwrap()
    }

    /// A connection to the primary of the moment, for arranging and inspecting data.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        let scheme = if self.auth.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        // The default user: the daemon's may not write the watchlist.
        let password = self.auth.data.map(|(_, p)| p).unwrap_or_default();
        let url = format!("{scheme}://:{password}@127.0.0.1:{}/0", self.primary_port());
        let client = match &self.auth.tls {
            Some(tls) => redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(std::fs::read(&tls.ca).unwrap()),
                },
            ),
            None => redis::Client::open(url),
        };
        client
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Fails the primary over (`SENTINEL FAILOVER`) and waits until a replica has taken its
    /// place and answers as primary. Returns the new primary's port.
    pub async fn failover(&self) -> u16 {
        let old = self.primary_port();
        let (port, _) = &self.sentinels[0];
        let said = self.sentinel_cli(*port, &["sentinel", "failover", MASTER]);
        assert_eq!(said, ["OK"], "SENTINEL FAILOVER");
        self.wait_for_new_primary(old).await
    }

    /// Waits until the failover away from `old` is over: every sentinel names the same other
    /// primary, none has a failover in progress, the new primary answers as one, and `old`,
    /// if it still runs, has been demoted to its replica.
    pub async fn wait_for_new_primary(&self, old: u16) -> u16 {
        eventually(60, "a finished failover", || async {
            let mut named = Vec::new();
            for (port, _) in &self.sentinels {
                let fields = self.sentinel_cli(*port, &["sentinel", "master", MASTER]);
                let field = |name: &str| {
                    let at = fields.iter().position(|f| f == name)?;
                    fields.get(at + 1).cloned()
                };
                if field("flags").as_deref() != Some("master") {
                    return None;
                }
                named.push(field("port")?.parse::<u16>().ok()?);
            }
            let port = named[0];
            if port == old || named.iter().any(|p| *p != port) {
                return None;
            }
            let role = self.data_cli(port, &["role"]);
            if role.first().map(String::as_str) != Some("master") {
                return None;
            }
            let alive = self
                .nodes
                .iter()
                .any(|n| n.port() == old && n.pid().is_some());
            let demoted = self.data_cli(old, &["role"]);
            (!alive || demoted.first().map(String::as_str) == Some("slave")).then_some(port)
        })
        .await
    }

    fn sentinel_cli(&self, port: u16, args: &[&str]) -> Vec<String> {
        let mut cmd = Command::new("redis-cli");
        cmd.args(tls_args(&self.auth.tls))
            .args(["-p", &port.to_string()]);
        if let Some(password) = self.auth.sentinel_password {
            cmd.args(["--no-auth-warning", "-a", password]);
        }
        lines(cmd.args(args))
    }

    fn data_cli(&self, port: u16, args: &[&str]) -> Vec<String> {
        let mut cmd = Command::new("redis-cli");
        cmd.args(tls_args(&self.auth.tls))
            .args(["-p", &port.to_string()]);
        if let Some((user, password)) = self.auth.data {
            cmd.args(["--no-auth-warning", "--user", user, "--pass", password]);
        }
        lines(cmd.args(args))
    }
}

/// redis-cli's arguments for a TLS node, if it is one.
fn tls_args(tls: &Option<TlsFiles>) -> Vec<String> {
    match tls {
        Some(tls) => vec![
            "--tls".into(),
            "--cacert".into(),
            tls.ca.display().to_string(),
        ],
        None => Vec::new(),
    }
}

fn lines(cmd: &mut Command) -> Vec<String> {
    let out = cmd.output().expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

impl Drop for Sentinels {
    fn drop(&mut self) {
        for (_, child) in &mut self.sentinels {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
