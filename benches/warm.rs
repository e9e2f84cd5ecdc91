//! Warms a large watchlist against a local upstream with 20 ms latency and reports throughput,
//! upstream requests, Redis round trips and the daemon's peak memory, next to the ideal time.
//!
//! `cargo bench --bench warm` (BENCH_TICKERS=100000 for a bigger run, BENCH_CLUSTER=1 for a
//! Redis Cluster). It runs the real binary
//! (`once stock --force`) against a private redis-server; the upstream answers every quote batch
//! with the recorded Yahoo quote relabelled per symbol.

// A benchmark uses a few of the integration tests' helpers, not all of them.
#[allow(dead_code, unused_imports)]
#[path = "../tests/it/support/mod.rs"]
mod support;
#[allow(dead_code)] // not every benchmark needs every method
#[path = "support/target.rs"]
mod target;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{RecordedQuotes, fcw, summary, watch_process};
use target::Target;

const LATENCY: Duration = Duration::from_millis(20);

#[tokio::main]
async fn main() {
    let tickers: usize = std::env::var("BENCH_TICKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    // BENCH_CLUSTER=1: the same run on a 3-primary, 3-replica Redis Cluster.
    let target = Target::start().await;
    let upstream = support::yahoo(RecordedQuotes::new(LATENCY)).await;

    let symbols: Vec<String> = (0..tickers).map(|i| format!("B{i:06}")).collect();
    for chunk in symbols.chunks(5_000) {
        target
            .run_all(vec![
                redis::Cmd::new()
                    .arg("SADD")
                    .arg("finance:watchlist")
                    .arg(chunk)
                    .to_owned(),
            ])
            .await;
    }

    let (batch, concurrency) = (50usize, 4usize);
    let mut cmd = tokio::process::Command::from(fcw());
    cmd.args(["once", "stock", "--force"])
        .env(target.env().0, target.env().1)
        .env("FCW_PROVIDER__YAHOO__BASE_URL", upstream.uri())
        .env(
            "FCW_PROVIDER__YAHOO__COOKIE_URL",
            format!("{}/cookie", upstream.uri()),
        )
        .env("FCW_PROVIDER__YAHOO__REQUESTS_PER_SECOND", "0")
        .env("FCW_PROVIDER__YAHOO__QUOTE_BATCH", batch.to_string())
        .env(
            "FCW_PROVIDER__YAHOO__MAX_CONCURRENCY",
            concurrency.to_string(),
        )
        .env("FCW_LOG__FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let child = cmd.spawn().unwrap();
    let pid = child.id().unwrap();
    let usage = tokio::spawn(watch_process(pid));
    let output = child.wait_with_output().await.unwrap();
    let wall = started.elapsed();
    let usage = usage.await.unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{err}");
    let s = summary(&err, "stock");
    let written = s["written"].as_u64().unwrap();
    assert_eq!(written as usize, tickers, "every ticker written");
    let requests = tickers.div_ceil(batch);
    let ideal = LATENCY * requests as u32 / concurrency as u32;
    let keys = target.dbsize().await;
    println!(
        "warm benchmark ({}): {tickers} tickers, upstream latency {LATENCY:?}, quote_batch {batch}, max_concurrency {concurrency}",
        target.name()
    );
    println!(
        "  run duration      {} ms (process wall time {} ms)",
        s["duration_ms"],
        wall.as_millis()
    );
    println!(
        "  throughput        {:.0} tickers/s",
        tickers as f64 / (s["duration_ms"].as_f64().unwrap() / 1000.0)
    );
    println!(
        "  ideal             {} ms = {requests} requests x {LATENCY:?} / {concurrency} ({:.0} tickers/s)",
        ideal.as_millis(),
        tickers as f64 / ideal.as_secs_f64()
    );
    println!(
        "  upstream requests {} (quote batches {requests}, plus cookie and crumb)",
        s["upstream_requests"]
    );
    println!(
        "  redis round trips {} (SSCAN pages, one SETEX write per batch of scheduler.batch_size, the lock)",
        s["redis_round_trips"]
    );
    println!(
        "  cpu               {} ms user+system ({:.1} us per ticker)",
        usage.cpu_ms,
        usage.cpu_ms as f64 * 1000.0 / tickers as f64
    );
    println!(
        "  peak memory       {:.1} MiB (VmHWM of the daemon process)",
        usage.peak_kib as f64 / 1024.0
    );
    println!("  keys in redis     {keys}");
}
