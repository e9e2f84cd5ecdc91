//! What the cache costs Redis: `used_memory` for a watchlist of 10,000 tickers (stock, options
//! with the 3 nearest expiries, earnings), without and with gzip, and bytes per ticker.
//!
//! `cargo bench --bench memory` (BENCH_TICKERS for another size). It runs the real binary
//! (`once all --force`) on a private redis-server. Quotes and earnings come from the replay
//! provider; options from a local Yahoo upstream that answers every chain request with the
//! recorded AAPL chain (102 contracts), relabelled with the ticker and, for a dated request,
//! with the requested expiry, so each ticker caches three full expiries.

// A benchmark uses a few of the integration tests' helpers, not all of them.
#[allow(dead_code, unused_imports)]
#[path = "../tests/it/support/mod.rs"]
mod support;
#[allow(dead_code)] // not every benchmark needs every part
#[path = "support/upstream.rs"]
mod upstream;

use redis::AsyncCommands;
use support::{conn, fcw, mount_yahoo_session, redis, summary};
use upstream::RecordedChains;
use wiremock::matchers::path_regex;
use wiremock::{Mock, MockServer};

async fn used_memory(c: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(c)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Total stored bytes of the keys of `kind`.
async fn stored_bytes(
    c: &mut redis::aio::MultiplexedConnection,
    kind: &str,
    tickers: &[String],
) -> u64 {
    let mut total = 0;
    for chunk in tickers.chunks(1000) {
        let mut pipe = redis::pipe();
        for t in chunk {
            pipe.strlen(format!("finance:cache:{kind}:{t}"));
        }
        let lens: Vec<u64> = pipe.query_async(c).await.unwrap();
        total += lens.iter().sum::<u64>();
    }
    total
}

#[tokio::main]
async fn main() {
    let tickers: usize = std::env::var("BENCH_TICKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let server = redis().await;
    let mut c = conn(&server).await;
    let upstream = MockServer::start().await;
    mount_yahoo_session(&upstream).await;
    Mock::given(path_regex("^/v7/finance/options/"))
        .respond_with(RecordedChains::new(std::time::Duration::ZERO))
        .mount(&upstream)
        .await;
    let symbols: Vec<String> = (0..tickers).map(|i| format!("M{i:05}")).collect();

    println!(
        "| compress | tickers | used_memory | per ticker | stock values | options values | earnings values |"
    );
    println!("|---|---|---|---|---|---|---|");
    let once = |args: &[&str]| {
        let mut cmd = fcw();
        cmd.arg("once")
            .args(args)
            .env("FCW_REDIS__URL", server.url())
            .env("FCW_PROVIDER__STOCK", "replay")
            .env("FCW_PROVIDER__EARNINGS", "replay")
            .env("FCW_PROVIDER__OPTIONS", "yahoo")
            .env("FCW_PROVIDER__YAHOO__BASE_URL", upstream.uri())
            .env(
                "FCW_PROVIDER__YAHOO__COOKIE_URL",
                format!("{}/cookie", upstream.uri()),
            )
            .env("FCW_PROVIDER__YAHOO__REQUESTS_PER_SECOND", "0")
            .env("FCW_PROVIDER__YAHOO__MAX_CONCURRENCY", "16")
            .env("FCW_JOBS__INTEGRITY__ENABLED", "false")
            .env("FCW_LOG__FORMAT", "json");
        cmd
    };
    for compress in ["none", "gzip"] {
        let _: () = redis::cmd("FLUSHALL").query_async(&mut c).await.unwrap();
        for chunk in symbols.chunks(5000) {
            let _: () = c.sadd("finance:watchlist", chunk).await.unwrap();
        }
        let before = used_memory(&mut c).await;
        let (code, _, err) =
            support::run(once(&["all", "--force"]).env("FCW_CACHE__COMPRESS", compress));
        assert_eq!(code, Some(0), "{err}");
        for job in ["stock", "options", "earnings"] {
            assert_eq!(
                summary(&err, job)["written"].as_u64(),
                Some(tickers as u64),
                "{job}"
            );
        }
        let after = used_memory(&mut c).await;
        let mut per_kind = Vec::new();
        for kind in ["stock", "options", "earnings"] {
            let bytes = stored_bytes(&mut c, kind, &symbols).await;
            per_kind.push(format!(
                "{:.1} MB ({} B each)",
                bytes as f64 / 1e6,
                bytes / tickers as u64
            ));
        }
        let used = after - before;
        println!(
            "| {compress} | {tickers} | {:.1} MB | {} B | {} |",
            used as f64 / 1e6,
            used / tickers as u64,
            per_kind.join(" | ")
        );
    }

    // What a pod of each job needs: the process's peak resident set per run, uncompressed
    // values, at the default batch size and at a tenth of it.
    println!();
    println!("| job | tickers | scheduler.batch_size | peak RSS |");
    println!("|---|---|---|---|");
    for (job, batch) in [
        ("stock", 1000),
        ("options", 1000),
        ("options", 100),
        ("earnings", 1000),
    ] {
        let mut cmd = tokio::process::Command::from(once(&[job, "--force"]));
        cmd.env("FCW_SCHEDULER__BATCH_SIZE", batch.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let usage = tokio::spawn(support::watch_process(child.id().unwrap()));
        assert!(child.wait().await.unwrap().success(), "{job}");
        let peak = usage.await.unwrap().peak_kib as f64 / 1024.0;
        println!("| {job} | {tickers} | {batch} | {peak:.1} MiB |");
    }
}
