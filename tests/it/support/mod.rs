//! Helpers shared by the integration tests: the binary under test, throwaway `redis-server`s
//! (the library's own `LocalRedis`, so tests and `demo` start servers the same way), and TLS
//! material generated per test.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use finance_cache_warmer::local_redis::{LocalRedis, LocalRedisOptions, TlsFiles};

/// The binary, with a clean environment: no `FCW_*` variable of the machine leaks in.
pub fn fcw() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_finance-cache-warmer"));
    cmd.env_clear();
    for (var, value) in std::env::vars_os() {
        let name = var.to_string_lossy();
        // LD_PRELOAD and FAKETIME*: `.ci/at-instants` runs the suite on a shifted clock.
        if matches!(&*name, "PATH" | "HOME" | "TMPDIR" | "LD_PRELOAD")
            || name.starts_with("FAKETIME")
        {
            cmd.env(var, value);
        }
    }
    cmd
}

/// Every data kind from the replay provider: recorded answers, no upstream.
pub const REPLAY: [(&str, &str); 3] = [
    ("FCW_PROVIDER__STOCK", "replay"),
    ("FCW_PROVIDER__OPTIONS", "replay"),
    ("FCW_PROVIDER__EARNINGS", "replay"),
];

/// Every job scheduled only at midnight New York on 29 February (next in 2028): a daemon under
/// test makes its start-up runs and no scheduled one, whatever the hour the suite runs at (the
/// defaults fire every 5 and 15 minutes and at 08:00, and a tick would add runs to count).
/// Values may then live until the next 29 February, so `ttl.earnings_max` allows four years.
pub const START_UP_RUNS_ONLY: [(&str, &str); 5] = [
    ("FCW_JOBS__STOCK__SCHEDULE", "0 0 0 29 2 *"),
    ("FCW_JOBS__OPTIONS__SCHEDULE", "0 0 0 29 2 *"),
    ("FCW_JOBS__EARNINGS__SCHEDULE", "0 0 0 29 2 *"),
    ("FCW_JOBS__INTEGRITY__SCHEDULE", "0 0 0 29 2 *"),
    ("FCW_TTL__EARNINGS_MAX", "1500d"),
];

/// Sends `which` (`-TERM`, `-STOP`, ...) to `pid` with kill(1), and checks it was delivered.
pub fn signal(pid: u32, which: &str) {
    let sent = Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "kill {which} {pid}");
}

/// Runs a command to completion and returns its output (stdout and stderr as text).
pub fn run(cmd: &mut Command) -> (Option<i32>, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("the binary runs");
    (
        status.code(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// A TCP port on loopback that nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Makes `finance:watchlist` on `server` hold exactly `members`.
pub async fn watchlist(server: &LocalRedis, members: &[&[u8]]) {
    use redis::AsyncCommands;
    let mut c = conn(server).await;
    let _: () = c.del("finance:watchlist").await.unwrap();
    let _: () = c.sadd("finance:watchlist", members).await.unwrap();
}

/// A private `redis-server` on a free port, killed when dropped.
pub async fn redis() -> LocalRedis {
    redis_with(LocalRedisOptions::default()).await
}

pub async fn redis_with(options: LocalRedisOptions) -> LocalRedis {
    LocalRedis::start(options)
        .await
        .expect("redis-server starts (is it installed?)")
}

/// A CA and a server certificate for `localhost` signed by it, written as PEM files in `dir`.
pub fn tls_files(dir: &Path) -> TlsFiles {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "finance-cache-warmer test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let write = |name: &str, pem: String| -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    TlsFiles {
        cert: write("server.pem", server_cert.pem()),
        key: write("server.key", server_key.serialize_pem()),
        ca: write("ca.pem", ca_cert.pem()),
    }
}

/// Whether the installed `redis-server` was built with TLS: a build without it rejects the
/// `tls-port` directive; one with it gets as far as the deliberately unknown directive after it.
pub fn redis_has_tls() -> bool {
    Command::new("redis-server")
        .args(["--port", "0", "--tls-port", "0", "--fcw-probe", "x"])
        .output()
        .map(|o| !String::from_utf8_lossy(&o.stdout).contains("'tls-port"))
        .unwrap_or(false)
}

/// A recorded response body from `tests/fixtures/`, byte for byte.
pub fn fixture(path: &str) -> Vec<u8> {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// Asserts that `value` matches `schemas/<kind>.schema.json`, formats included.
pub fn assert_schema(kind: &str, value: &serde_json::Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("schemas/{kind}.schema.json"));
    let schema: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{kind} value does not match its schema: {errors:?}\n{value}"
    );
}

/// The JSON log lines in `stderr` whose message is `message`.
pub fn log_lines(stderr: &str, message: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == message)
        .collect()
}

/// The one "run finished" summary of a `once` run for `job`.
pub fn summary(stderr: &str, job: &str) -> serde_json::Value {
    let mut found: Vec<_> = log_lines(stderr, "run finished")
        .into_iter()
        .filter(|v| v["job"] == job)
        .collect();
    assert_eq!(found.len(), 1, "one summary for {job} in:\n{stderr}");
    found.remove(0)
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Asserts that `key` lives `expected` seconds, less the few that passed since it was written.
pub async fn assert_ttl(
    c: &mut redis::aio::MultiplexedConnection,
    key: &str,
    expected: i64,
    why: &str,
) {
    use redis::AsyncCommands;
    let ttl: i64 = c.ttl(key).await.unwrap();
    assert!(
        ttl <= expected && ttl >= expected - 5,
        "{key}: TTL {ttl}, expected {expected} ({why})"
    );
}

/// A plain connection to a test server, for arranging and inspecting data.
pub async fn conn(server: &LocalRedis) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Answers a Yahoo v7 quote request for whatever symbols it asks: the recorded AAPL quote
/// (`tests/fixtures/yahoo/quote_AAPL_2026-10.json`) relabelled per symbol, so any watchlist gets
/// answers in exactly the recorded shape. The entry is serialised once, so the server side of a
/// benchmark costs little.
pub struct RecordedQuotes {
    /// The recorded entry as JSON, split around its symbol.
    before: String,
    after: String,
    delay: std::time::Duration,
}

impl RecordedQuotes {
    pub fn new(delay: std::time::Duration) -> RecordedQuotes {
        let recorded: serde_json::Value =
            serde_json::from_slice(&fixture("yahoo/quote_AAPL_2026-10.json")).unwrap();
        let mut entry = recorded["quoteResponse"]["result"][0].clone();
        entry["symbol"] = "\u{1}SYMBOL\u{1}".into();
        let text = serde_json::to_string(&entry).unwrap();
        let (before, after) = text.split_once("\\u0001SYMBOL\\u0001").unwrap();
        RecordedQuotes {
            before: before.to_owned(),
            after: after.to_owned(),
            delay,
        }
    }
}

impl RecordedQuotes {
    /// The answer for `symbols` (comma-separated), in the recorded shape.
    pub fn body_for(&self, symbols: &str) -> String {
        let entries: Vec<String> = symbols
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| format!("{}{}{}", self.before, s, self.after))
            .collect();
        format!(
            r#"{{"quoteResponse":{{"result":[{}],"error":null}}}}"#,
            entries.join(",")
        )
    }
}

impl wiremock::Respond for RecordedQuotes {
    fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
        let symbols = request
            .url
            .query_pairs()
            .find(|(k, _)| k == "symbols")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let body = self.body_for(&symbols);
        wiremock::ResponseTemplate::new(200)
            .set_body_raw(body, "application/json")
            .set_delay(self.delay)
    }
}

/// Mounts Yahoo's session endpoints on `server` as recorded: `/cookie` (404, as fc.yahoo.com
/// answers) and `/v1/test/getcrumb` (tests/fixtures/yahoo/getcrumb_ok.txt).
pub async fn mount_yahoo_session(server: &wiremock::MockServer) {
    use wiremock::matchers::path;
    use wiremock::{Mock, ResponseTemplate};
    Mock::given(path("/cookie"))
        .respond_with(ResponseTemplate::new(404))
        .mount(server)
        .await;
    Mock::given(path("/v1/test/getcrumb"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(fixture("yahoo/getcrumb_ok.txt"), "text/plain"),
        )
        .mount(server)
        .await;
}

/// Yahoo's cookie and crumb endpoints as recorded, and the quote endpoint answering with
/// `quote` (whatever symbols are asked).
pub async fn yahoo(quote: impl wiremock::Respond + 'static) -> wiremock::MockServer {
    use wiremock::matchers::path;
    let server = wiremock::MockServer::start().await;
    mount_yahoo_session(&server).await;
    wiremock::Mock::given(path("/v7/finance/quote"))
        .respond_with(quote)
        .mount(&server)
        .await;
    server
}

/// What a process used, sampled from /proc until it exits.
pub struct ProcessUse {
    /// Peak resident set (VmHWM), KiB.
    pub peak_kib: u64,
    /// User plus system CPU time, milliseconds.
    pub cpu_ms: u64,
}

/// Samples `pid` every 5 ms until it exits; VmHWM and CPU time only grow, so the last reading
/// is the total.
pub async fn watch_process(pid: u32) -> ProcessUse {
    let mut usage = ProcessUse {
        peak_kib: 0,
        cpu_ms: 0,
    };
    while let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
        if let Some(kib) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        {
            usage.peak_kib = kib;
        }
        // utime and stime, in clock ticks of 10 ms, are fields 14 and 15 of /proc/PID/stat.
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            let fields: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .collect();
            if let (Some(u), Some(s)) = (fields.get(11), fields.get(12)) {
                usage.cpu_ms = (u.parse::<u64>().unwrap_or(0) + s.parse::<u64>().unwrap_or(0)) * 10;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    usage
}

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

/// How the chaos upstream answers one quote request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chaos {
    Fine,
    ServerError,
    /// 429 with `Retry-After: 1`.
    TooManyRequests,
    /// The connection is reset (RST) without an answer.
    Reset,
    /// No answer until long after the client's timeout.
    Hang,
    /// Headers promise more body than is sent before the connection closes.
    Truncated,
    /// A JSON body labelled `text/html`.
    WrongContentType,
    /// Valid JSON in the recorded shape, for other symbols than asked.
    OtherSymbols,
    /// A 50 MB body.
    Huge,
}

/// A Yahoo-like upstream that answers quote requests with `modes`, in a loop, and records when
/// each request arrived and how it was answered. Cookie and crumb requests are answered as
/// recorded. Plain HTTP/1.1, one request per connection, so it can misbehave at the socket level.
pub struct ChaosUpstream {
    pub uri: String,
    pub log: std::sync::Arc<std::sync::Mutex<Vec<(std::time::Instant, Chaos)>>>,
}

impl ChaosUpstream {
    pub async fn start(modes: Vec<Chaos>) -> ChaosUpstream {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("http://{}", listener.local_addr().unwrap());
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let quotes = std::sync::Arc::new(RecordedQuotes::new(std::time::Duration::ZERO));
        let crumb = String::from_utf8(fixture("yahoo/getcrumb_ok.txt")).unwrap();
        let (seen, next) = (
            log.clone(),
            std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        );
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (seen, next, quotes, modes, crumb) = (
                    seen.clone(),
                    next.clone(),
                    quotes.clone(),
                    modes.clone(),
                    crumb.clone(),
                );
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let respond = |status: &str, content_type: &str, body: &str| {
                        format!(
                            "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    };
                    if target.starts_with("/cookie") {
                        let _ = socket
                            .write_all(respond("404 Not Found", "text/html", "").as_bytes())
                            .await;
                        return;
                    }
                    if target.starts_with("/v1/test/getcrumb") {
                        let _ = socket
                            .write_all(respond("200 OK", "text/plain", &crumb).as_bytes())
                            .await;
                        return;
                    }
                    let symbols = url::Url::parse(&format!("http://x{target}"))
                        .ok()
                        .and_then(|u| {
                            u.query_pairs()
                                .find(|(k, _)| k == "symbols")
                                .map(|(_, v)| v.into_owned())
                        })
                        .unwrap_or_default();
                    let mode =
                        modes[next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % modes.len()];
                    seen.lock().unwrap().push((std::time::Instant::now(), mode));
                    let reply = match mode {
                        Chaos::Fine => respond("200 OK", "application/json", &quotes.body_for(&symbols)),
                        Chaos::ServerError => respond("500 Internal Server Error", "text/plain", "oops"),
                        Chaos::TooManyRequests => "HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
                                                Chaos::Reset => {
                            // A zero linger makes the close a reset; with zero it never blocks,
                            // which is what the deprecation warns about.
                            #[allow(deprecated)]
                            let _ = socket.set_linger(Some(std::time::Duration::ZERO));
                            return;
                        }
                        Chaos::Hang => {
                            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                            return;
                        }
                        Chaos::Truncated => {
                            let body = quotes.body_for(&symbols);
                            format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}", body.len(), &body[..body.len() / 3])
                        }
                        Chaos::WrongContentType => respond("200 OK", "text/html", &quotes.body_for(&symbols)),
                        Chaos::OtherSymbols => {
                            let others: Vec<String> = symbols.split(',').map(|s| format!("X{s}")).collect();
                            respond("200 OK", "application/json", &quotes.body_for(&others.join(",")))
                        }
                        Chaos::Huge => {
                                                        // No length: the body runs until the connection closes, so only a
                            // cap on what is read can stop it.
                            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n";
                            if socket.write_all(head.as_bytes()).await.is_err() {
                                return;
                            }
                            let chunk = vec![b' '; 64 * 1024];
                            for _ in 0..(50 << 20) / chunk.len() {
                                if socket.write_all(&chunk).await.is_err() {
                                    return;
                                }
                            }
                            return;
                        }
                    };
                    let _ = socket.write_all(reply.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        ChaosUpstream { uri, log }
    }
}

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
