//! Throwaway `redis-server`s (the library's own `LocalRedis`, so tests and `demo` start servers
//! the same way), TLS material made per test, connections, and waiting with a deadline.

use std::path::{Path, PathBuf};
use std::process::Command;

use finance_cache_warmer::local_redis::{LocalRedis, LocalRedisOptions, TlsFiles};

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
    // Both names: a client given `localhost`, and one given the address Sentinel reports.
    let server_cert = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
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
