//! Warms a watchlist with every kind (`once all --force`: stock quotes, options chains of 3
//! expiries, earnings) against a local Yahoo upstream that answers every request after 20 ms,
//! and prints, per provider concurrency, the run's wall time next to the ideal (requests x
//! 20 ms / concurrency) and their ratio, the requests in flight at most, the daemon's CPU per
//! ticker and its peak memory, and how long a bare client takes for the same requests at the
//! same concurrency (each body read and dropped): the nearest to the ideal this upstream lets
//! any client come, on the same cores.
//!
//! `cargo bench --bench warm`; `BENCH_TICKERS` (default 5000), `BENCH_CONCURRENCY` (a list,
//! default `64,16`), `BENCH_JOB` (one job instead of `all`), `BENCH_CLUSTER=1` for a Redis
//! Cluster. It runs the real binary against a
//! private redis-server; the upstream relabels the recorded quote, chain and quoteSummary
//! answers per ticker (and the chain per expiry).

// A benchmark uses a few of the integration tests' helpers, not all of them.
#[allow(dead_code, unused_imports)]
#[path = "../tests/it/support/mod.rs"]
mod support;
#[allow(dead_code)] // not every benchmark needs every method
#[path = "support/target.rs"]
mod target;
#[allow(dead_code)]
#[path = "support/upstream.rs"]
mod upstream;

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use support::{RecordedQuotes, fcw, fixture, mount_yahoo_session, summary, watch_process};
use target::Target;
use upstream::{Arrivals, RecordedChains, most_within};
use wiremock::matchers::{path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const LATENCY: Duration = Duration::from_millis(20);
const QUOTE_BATCH: usize = 50;
/// The dated chain requests the bare client makes per ticker (the daemon asks for the two
/// expiries after the nearest; the upstream relabels the recording with whatever date is asked).
const BARE_EXPIRIES: [i64; 2] = [1741305600, 1741910400];

#[tokio::main]
async fn main() {
    let tickers: usize = std::env::var("BENCH_TICKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let concurrencies: Vec<usize> = std::env::var("BENCH_CONCURRENCY")
        .unwrap_or_else(|_| "64,16".into())
        .split(',')
        .map(|c| c.trim().parse().expect("BENCH_CONCURRENCY: numbers"))
        .collect();
    let target = Target::start().await;
    let arrivals = Arrivals::default();
    let upstream = MockServer::start().await;
    mount_yahoo_session(&upstream).await;
    Mock::given(path("/v7/finance/quote"))
        .respond_with(arrivals.counting(RecordedQuotes::new(LATENCY)))
        .mount(&upstream)
        .await;
    Mock::given(path_regex("^/v7/finance/options/"))
        .respond_with(arrivals.counting(RecordedChains::new(LATENCY)))
        .mount(&upstream)
        .await;
    Mock::given(path_regex("^/v10/finance/quoteSummary/"))
        .respond_with(
            arrivals.counting(
                ResponseTemplate::new(200)
                    .set_body_raw(
                        fixture("yahoo/quoteSummary_calendarEvents_AAPL.json"),
                        "application/json",
                    )
                    .set_delay(LATENCY),
            ),
        )
        .mount(&upstream)
        .await;

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
    println!(
        "warm benchmark ({}): {tickers} tickers, once all --force (stock, options with 3 expiries, earnings), upstream latency {LATENCY:?}, quote_batch {QUOTE_BATCH}, requests_per_second 0",
        target.name()
    );
    println!(
        "| concurrency | wall | ideal (requests x 20 ms / concurrency) | ratio | requests | most in flight | CPU | CPU per ticker | peak RSS | bare client (ratio) | wall / bare |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for concurrency in concurrencies {
        let mut cmd = tokio::process::Command::from(fcw());
        let job = std::env::var("BENCH_JOB").unwrap_or_else(|_| "all".into());
        cmd.args(["once", &job, "--force"])
            .env(target.env().0, target.env().1)
            .env("FCW_PROVIDER__STOCK", "yahoo")
            .env("FCW_PROVIDER__OPTIONS", "yahoo")
            .env("FCW_PROVIDER__EARNINGS", "yahoo")
            .env("FCW_PROVIDER__YAHOO__BASE_URL", upstream.uri())
            .env(
                "FCW_PROVIDER__YAHOO__COOKIE_URL",
                format!("{}/cookie", upstream.uri()),
            )
            .env("FCW_PROVIDER__YAHOO__REQUESTS_PER_SECOND", "0")
            .env("FCW_PROVIDER__YAHOO__QUOTE_BATCH", QUOTE_BATCH.to_string())
            .env(
                "FCW_PROVIDER__YAHOO__MAX_CONCURRENCY",
                concurrency.to_string(),
            )
            .env("FCW_JOBS__INTEGRITY__ENABLED", "false")
            .env("FCW_LOG__FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        arrivals.take();
        let started = Instant::now();
        let child = cmd.spawn().unwrap();
        let usage = tokio::spawn(watch_process(child.id().unwrap()));
        let output = child.wait_with_output().await.unwrap();
        let wall = started.elapsed();
        let usage = usage.await.unwrap();
        let err = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{err}");
        for job in ["stock", "options", "earnings"]
            .into_iter()
            .filter(|j| *j == job || job == "all")
        {
            let written = summary(&err, job)["written"].as_u64();
            assert_eq!(written, Some(tickers as u64), "{job}: every ticker written");
        }
        let requests = arrivals.take();
        let count = requests.len();
        let ideal = LATENCY * count as u32 / concurrency as u32;
        let in_flight = most_within(requests, LATENCY);
        let urls = run_requests(&upstream.uri(), &symbols, &job);
        assert_eq!(
            urls.len(),
            count,
            "the bare client makes the run's requests"
        );
        let bare = bare_client(urls, concurrency).await;
        arrivals.take();
        println!(
            "| {concurrency} | {:.2} s | {:.2} s | {:.2} | {count} | {in_flight} | {:.2} s | {:.0} us | {:.1} MiB | {:.2} s ({:.2}) | {:.2} |",
            wall.as_secs_f64(),
            ideal.as_secs_f64(),
            wall.as_secs_f64() / ideal.as_secs_f64(),
            usage.cpu_ms as f64 / 1000.0,
            usage.cpu_ms as f64 * 1000.0 / tickers as f64,
            usage.peak_kib as f64 / 1024.0,
            bare.as_secs_f64(),
            bare.as_secs_f64() / ideal.as_secs_f64(),
            wall.as_secs_f64() / bare.as_secs_f64()
        );
    }
}

/// The upstream requests a run of `job` makes for `symbols`, less Yahoo's session (the cookie and
/// the crumb): the quote batches, each ticker's nearest chain and two dated ones, its
/// quoteSummary.
fn run_requests(upstream: &str, symbols: &[String], job: &str) -> Vec<String> {
    let wants = |kind: &str| job == "all" || job == kind;
    let mut urls = Vec::new();
    if wants("stock") {
        for batch in symbols.chunks(QUOTE_BATCH) {
            urls.push(format!(
                "{upstream}/v7/finance/quote?symbols={}",
                batch.join(",")
            ));
        }
    }
    for symbol in symbols {
        if wants("options") {
            urls.push(format!("{upstream}/v7/finance/options/{symbol}"));
            for date in BARE_EXPIRIES {
                urls.push(format!(
                    "{upstream}/v7/finance/options/{symbol}?date={date}"
                ));
            }
        }
        if wants("earnings") {
            urls.push(format!(
                "{upstream}/v10/finance/quoteSummary/{symbol}?modules=calendarEvents"
            ));
        }
    }
    urls
}

/// How long a bare client takes to get `urls` with `concurrency` requests in flight, reading
/// each body whole and keeping nothing.
async fn bare_client(urls: Vec<String>, concurrency: usize) -> Duration {
    let client = reqwest::Client::new();
    let started = Instant::now();
    futures_util::stream::iter(urls)
        .map(|url| {
            let client = client.clone();
            async move {
                let response = client.get(url).send().await.unwrap();
                assert!(response.status().is_success());
                response.bytes().await.unwrap().len()
            }
        })
        .buffer_unordered(concurrency)
        .for_each(|_| async {})
        .await;
    started.elapsed()
}
