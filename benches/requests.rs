//! Warm requests: the daemon (`run`, nothing scheduled) against a local Yahoo upstream that
//! answers every request after 20 ms; the bench `XADD`s `ticker=T` for cold watchlist tickers
//! and times each from its `XADD` until all three of its keys exist (polled every 2 ms), and
//! prints the percentiles next to the goal (p99 under 1 s) and the ideal: the longest kind's
//! requests one after another (an options chain of 3 expiries: 3 x 20 ms), plus the wait for
//! the next read of the stream (`requests.poll_interval`, 100 ms at most).
//!
//! `cargo bench --bench requests`; `BENCH_REQUESTS` (default 300) requests at `BENCH_RATE` per
//! second (default 20), then the same number at once; `BENCH_CONCURRENCY` is Yahoo's
//! `max_concurrency` (default 2, as shipped).

// A benchmark uses a few of the integration tests' helpers, not all of them.
#[allow(dead_code, unused_imports)]
#[path = "../tests/it/support/mod.rs"]
mod support;
#[allow(dead_code)]
#[path = "support/upstream.rs"]
mod upstream;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use support::{conn, fcw, redis};
use upstream::{mount_yahoo, yahoo_env};
use wiremock::MockServer;

const LATENCY: Duration = Duration::from_millis(20);
const GOAL: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(2);

#[tokio::main]
async fn main() {
    let count: usize = env_or("BENCH_REQUESTS", 300);
    let rate: u64 = env_or("BENCH_RATE", 20);
    let concurrency: u32 = env_or("BENCH_CONCURRENCY", 2);
    let server = redis().await;
    let upstream = MockServer::start().await;
    mount_yahoo(&upstream, LATENCY).await;
    let mut c = conn(&server).await;
    let symbols: Vec<String> = (0..2 * count).map(|i| format!("R{i:05}")).collect();
    let _: () = c.sadd("finance:watchlist", &symbols).await.unwrap();

    let mut cmd = tokio::process::Command::from(fcw());
    cmd.arg("run")
        .env("FCW_REDIS__URL", server.url())
        .envs(yahoo_env(&upstream))
        .env(
            "FCW_PROVIDER__YAHOO__MAX_CONCURRENCY",
            concurrency.to_string(),
        )
        .env("FCW_SERVER__LISTEN", "")
        .env("FCW_LOG__FORMAT", "json")
        .env("FCW_LOG__LEVEL", "warn")
        .envs(support::START_UP_RUNS_ONLY)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for job in ["STOCK", "OPTIONS", "EARNINGS", "INTEGRITY"] {
        cmd.env(format!("FCW_JOBS__{job}__RUN_ON_START"), "false");
    }
    let mut daemon = cmd.spawn().unwrap();
    // Ready once it has made its consumer group.
    support::eventually(30, "the daemon's consumer group", || {
        let mut c = c.clone();
        async move {
            let groups: redis::streams::StreamInfoGroupsReply =
                c.xinfo_groups("finance:warmer:requests").await.ok()?;
            (!groups.groups.is_empty()).then_some(())
        }
    })
    .await;

    println!(
        "warm requests benchmark: upstream latency {LATENCY:?}, Yahoo max_concurrency {concurrency} (shared by the three kinds), requests_per_second 0, requests.poll_interval 100ms; from XADD to all three keys written"
    );
    println!("| requests | sent | p50 | p90 | p99 | max | goal (p99) | p99 / goal | ideal |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let (steady, burst) = symbols.split_at(count);
    let interval = Duration::from_micros(1_000_000 / rate.max(1));
    for (tickers, sent, gap) in [
        (steady, format!("{rate}/s"), Some(interval)),
        (burst, "at once".to_owned(), None),
    ] {
        let mut latencies = time_requests(&c, tickers, gap).await;
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
        // One ticker: its options chain's 3 requests in a row. Many at once: all their
        // requests (3 chain pages and a quoteSummary each, a quote per 50) through the
        // provider's slots.
        let n = tickers.len() as u32;
        let ideal = match gap {
            Some(_) => LATENCY * 3,
            None => (LATENCY * (4 * n + n.div_ceil(50)) / concurrency).max(LATENCY * 3),
        };
        println!(
            "| {} | {sent} | {} | {} | {} | {} | {} | {:.2} | {} + up to 100 ms |",
            latencies.len(),
            ms(at(0.5)),
            ms(at(0.9)),
            ms(at(0.99)),
            ms(at(1.0)),
            ms(GOAL),
            at(0.99).as_secs_f64() / GOAL.as_secs_f64(),
            ms(ideal),
        );
    }
    let _ = daemon.start_kill();
    let _ = daemon.wait().await;
}

/// Sends a request for each of `tickers` (`gap` apart, or all at once) and returns how long
/// each took from its `XADD` until its three keys existed.
async fn time_requests(
    c: &redis::aio::MultiplexedConnection,
    tickers: &[String],
    gap: Option<Duration>,
) -> Vec<Duration> {
    let sender = {
        let mut c = c.clone();
        let tickers = tickers.to_vec();
        tokio::spawn(async move {
            let mut sent = HashMap::new();
            for ticker in tickers {
                let at = Instant::now();
                let _: String = c
                    .xadd("finance:warmer:requests", "*", &[("ticker", &ticker)])
                    .await
                    .unwrap();
                sent.insert(ticker, at);
                if let Some(gap) = gap {
                    tokio::time::sleep(gap).await;
                }
            }
            sent
        })
    };
    let mut c = c.clone();
    let mut done: HashMap<String, Instant> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while done.len() < tickers.len() {
        assert!(Instant::now() < deadline, "requests not warmed in 120 s");
        let waiting: Vec<&String> = tickers.iter().filter(|t| !done.contains_key(*t)).collect();
        let mut pipe = redis::pipe();
        for t in &waiting {
            let keys = ["stock", "options", "earnings"].map(|k| format!("finance:cache:{k}:{t}"));
            pipe.exists(&keys);
        }
        let found: Vec<usize> = pipe.query_async(&mut c).await.unwrap();
        let now = Instant::now();
        for (t, n) in waiting.into_iter().zip(found) {
            if n == 3 {
                done.insert(t.clone(), now);
            }
        }
        tokio::time::sleep(POLL).await;
    }
    let sent = sender.await.unwrap();
    tickers
        .iter()
        .map(|t| done[t].saturating_duration_since(sent[t]))
        .collect()
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
