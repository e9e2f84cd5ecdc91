//! A soak: the daemon (`run`) with every job every second for `BENCH_SOAK_SECS` (default 630:
//! 600+ runs per job) against a local Yahoo upstream (5 ms) and a private Redis, with warm
//! requests every 200 ms, a Redis restart (killed, down 5 s, back empty) at 40 % of the way and
//! an upstream outage (every answer a 503 for 20 s) at 70 %. Every second it samples the
//! daemon's resident memory, open file descriptors, threads and live runtime tasks, and at the
//! end prints their growth after the first minute of warm-up, the runs per job, and whether
//! every run after each fault (once the job had recovered) succeeded.
//!
//! `cargo bench --bench soak`. Done when RSS grows by less than 2 MB and file descriptors by 0.

// A benchmark uses a few of the integration tests' helpers, not all of them.
#[allow(dead_code, unused_imports)]
#[path = "../tests/it/support/mod.rs"]
mod support;
#[allow(dead_code)]
#[path = "support/upstream.rs"]
mod upstream;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use finance_cache_warmer::local_redis::LocalRedis;
use redis::AsyncCommands;
use support::{conn, fcw, free_port};
use tokio::io::{AsyncBufReadExt, BufReader};
use upstream::{mount_yahoo, yahoo_env};
use wiremock::{Mock, MockServer, ResponseTemplate};

const LATENCY: Duration = Duration::from_millis(5);
const WARM_UP: Duration = Duration::from_secs(60);
const TICKERS: usize = 50;
const REDIS_DOWN: Duration = Duration::from_secs(5);
const OUTAGE: Duration = Duration::from_secs(20);

/// One sample of the daemon.
#[derive(Clone, Copy)]
struct Sample {
    at: Duration,
    rss_kib: u64,
    fds: u64,
    sockets: u64,
    threads: u64,
    tasks: u64,
}

/// A finished run: when, which job, whether it was ok or failed (a run interrupted by the
/// final SIGTERM is neither), and why it failed.
struct Run {
    at: Duration,
    job: String,
    ok: bool,
    failed: bool,
    reason: String,
}

#[tokio::main]
async fn main() {
    let secs: u64 = std::env::var("BENCH_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(630);
    let total = Duration::from_secs(secs);
    let mut server = support::redis().await;
    let upstream = MockServer::start().await;
    mount_yahoo(&upstream, LATENCY).await;
    let symbols: Vec<String> = (0..TICKERS).map(|i| format!("S{i:03}")).collect();
    fill(&server, &symbols).await;

    let listen = free_port();
    let mut cmd = tokio::process::Command::from(fcw());
    cmd.arg("run")
        .env("FCW_REDIS__URL", server.url())
        .envs(yahoo_env(&upstream))
        .env("FCW_PROVIDER__YAHOO__MAX_CONCURRENCY", "8")
        .env("FCW_INTEGRITY__GRACE", "0s")
        .env("FCW_SERVER__LISTEN", format!("127.0.0.1:{listen}"))
        .env("FCW_LOG__FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for job in ["STOCK", "OPTIONS", "EARNINGS", "INTEGRITY"] {
        cmd.env(format!("FCW_JOBS__{job}__SCHEDULE"), "* * * * * *");
    }
    for job in ["STOCK", "OPTIONS", "EARNINGS"] {
        // Every run fetches every ticker again: the soak is of work, not of skipped keys.
        cmd.env(format!("FCW_JOBS__{job}__REFRESH_AHEAD"), "1");
    }
    let started = Instant::now();
    let mut daemon = cmd.spawn().unwrap();
    let pid = daemon.id().unwrap();
    let runs = Arc::new(Mutex::new(Vec::<Run>::new()));
    {
        let runs = runs.clone();
        let mut lines = BufReader::new(daemon.stderr.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if v["message"] == "run finished" && v["span"]["requested"].is_null() {
                    runs.lock().unwrap().push(Run {
                        at: started.elapsed(),
                        job: v["job"].as_str().unwrap_or("?").to_owned(),
                        ok: v["outcome"] == "ok",
                        failed: v["outcome"] == "failed",
                        reason: v["reason"].as_str().unwrap_or_default().to_owned(),
                    });
                }
            }
        });
    }
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let sampler = {
        let samples = samples.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let Some(sample) = sample(pid, listen, &client, started.elapsed()).await else {
                    return;
                };
                samples.lock().unwrap().push(sample);
            }
        })
    };
    let requester = {
        let server_port = server.port();
        let symbols = symbols.clone();
        tokio::spawn(async move {
            let url = format!("redis://127.0.0.1:{server_port}/0");
            let mut n = 0usize;
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let Ok(client) = redis::Client::open(url.as_str()) else {
                    continue;
                };
                let Ok(mut c) = client.get_multiplexed_async_connection().await else {
                    continue;
                };
                while let Ok(()) = c
                    .xadd::<_, _, _, _, String>(
                        "finance:warmer:requests",
                        "*",
                        &[("ticker", &symbols[n % symbols.len()])],
                    )
                    .await
                    .map(drop)
                {
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        })
    };

    let restart_at = total.mul_f64(0.4);
    let outage_at = total.mul_f64(0.7);
    tokio::time::sleep(restart_at.saturating_sub(started.elapsed())).await;
    server.stop();
    let redis_fault = (started.elapsed(), started.elapsed() + REDIS_DOWN);
    tokio::time::sleep(REDIS_DOWN).await;
    server.restart().await.unwrap();
    fill(&server, &symbols).await;
    tokio::time::sleep(outage_at.saturating_sub(started.elapsed())).await;
    upstream.reset().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(503))
        .mount(&upstream)
        .await;
    let upstream_fault = (started.elapsed(), started.elapsed() + OUTAGE);
    tokio::time::sleep(OUTAGE).await;
    upstream.reset().await;
    mount_yahoo(&upstream, LATENCY).await;
    tokio::time::sleep(total.saturating_sub(started.elapsed())).await;

    requester.abort();
    support::signal(pid, "-TERM");
    let code = daemon.wait().await.unwrap().code();
    let _ = sampler.await;
    report(
        &samples.lock().unwrap(),
        &runs.lock().unwrap(),
        [
            ("Redis restart", redis_fault),
            ("upstream outage", upstream_fault),
        ],
        total,
        code,
    );
}

/// The watchlist, and an index of 100 positions of which every tenth has lost its object.
async fn fill(server: &LocalRedis, symbols: &[String]) {
    let mut c = conn(server).await;
    let _: () = c.sadd("finance:watchlist", symbols).await.unwrap();
    // Objects first, as the app writes them: an index entry never precedes its object here.
    let ids: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    for id in ids.iter().filter(|i| !i.ends_with('0')) {
        let _: () = c.set(format!("finance:position:{id}"), "{}").await.unwrap();
    }
    let _: () = c.sadd("finance:positions:index", &ids).await.unwrap();
}

async fn sample(pid: u32, listen: u16, client: &reqwest::Client, at: Duration) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let links: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|l| l.display().to_string())
        .collect();
    let sockets = links.iter().filter(|l| l.starts_with("socket:")).count() as u64;
    let metrics = client
        .get(format!("http://127.0.0.1:{listen}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let tasks = metrics
        .lines()
        .find_map(|l| l.strip_prefix("fcw_runtime_tasks "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64;
    Some(Sample {
        at,
        rss_kib: field("VmRSS:")?,
        fds: links.len() as u64,
        sockets,
        threads: field("Threads:")?,
        tasks,
    })
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

fn report(
    samples: &[Sample],
    runs: &[Run],
    faults: [(&str, (Duration, Duration)); 2],
    total: Duration,
    exit: Option<i32>,
) {
    let window = |from: Duration, to: Duration| -> Vec<Sample> {
        samples
            .iter()
            .filter(|s| s.at >= from && s.at < to)
            .copied()
            .collect()
    };
    // After warm-up, before the first fault; and the last minute, well after the last.
    let early = window(WARM_UP, WARM_UP + Duration::from_secs(60));
    let late = window(total.saturating_sub(Duration::from_secs(60)), total);
    println!(
        "soak: {} s, every job every second, {TICKERS} tickers, warm requests every 200 ms; faults: {}",
        total.as_secs(),
        faults
            .iter()
            .map(|(what, (from, to))| format!("{what} {}-{} s", from.as_secs(), to.as_secs()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "| sampled (every second) | after warm-up (median, {}-{} s) | last minute (median) | growth | min / max over the soak |",
        WARM_UP.as_secs(),
        WARM_UP.as_secs() + 60
    );
    println!("|---|---|---|---|---|");
    type Pick = fn(&Sample) -> u64;
    let rows: [(&str, Pick, f64, &str); 6] = [
        ("RSS", |s| s.rss_kib, 1024.0, "MiB"),
        ("open file descriptors", |s| s.fds, 1.0, ""),
        ("of them sockets", |s| s.sockets, 1.0, ""),
        (
            "of them others (files, pipes, epoll)",
            |s| s.fds - s.sockets,
            1.0,
            "",
        ),
        ("threads", |s| s.threads, 1.0, ""),
        ("runtime tasks", |s| s.tasks, 1.0, ""),
    ];
    let mut growth_of = Vec::new();
    for (name, pick, scale, unit) in rows {
        let a = median(early.iter().map(pick).collect());
        let b = median(late.iter().map(pick).collect());
        let all: Vec<u64> = samples
            .iter()
            .filter(|s| s.at >= WARM_UP)
            .map(pick)
            .collect();
        let show = |v: f64| {
            if scale == 1.0 {
                format!("{v:.0}{unit}")
            } else {
                format!("{:.2} {unit}", v / scale)
            }
        };
        growth_of.push(b as f64 - a as f64);
        println!(
            "| {name} | {} | {} | {} | {} / {} |",
            show(a as f64),
            show(b as f64),
            show(b as f64 - a as f64),
            show(*all.iter().min().unwrap_or(&0) as f64),
            show(*all.iter().max().unwrap_or(&0) as f64),
        );
    }
    println!();
    println!(
        "| job | runs | ok | failed | failed after recovering from a fault | recovered after (Redis, upstream) |"
    );
    println!("|---|---|---|---|---|---|");
    let mut all_recovered = true;
    let mut reasons = Vec::new();
    for job in ["stock", "options", "earnings", "integrity"] {
        let mine: Vec<&Run> = runs.iter().filter(|r| r.job == job).collect();
        let ok = mine.iter().filter(|r| r.ok).count();
        let failed = mine.iter().filter(|r| r.failed).count();
        let mut after = 0;
        let mut recovered = Vec::new();
        for (i, (_, (_, end))) in faults.iter().enumerate() {
            let until = faults
                .get(i + 1)
                .map_or(total * 2, |(_, (start, _))| *start);
            let first_ok = mine.iter().find(|r| r.at >= *end && r.ok).map(|r| r.at);
            recovered.push(first_ok.map_or("never".to_owned(), |at| {
                format!("{:.1} s", (at - *end).as_secs_f64())
            }));
            if let Some(first_ok) = first_ok {
                for r in mine
                    .iter()
                    .filter(|r| r.at > first_ok && r.at < until && r.failed)
                {
                    after += 1;
                    reasons.push(format!(
                        "{job} at {:.1} s: {}",
                        r.at.as_secs_f64(),
                        r.reason
                    ));
                }
            } else {
                all_recovered = false;
            }
        }
        all_recovered &= after == 0;
        println!(
            "| {job} | {} | {ok} | {failed} | {after} | {} |",
            mine.len(),
            recovered.join(", ")
        );
    }
    for reason in reasons.iter().take(10) {
        println!("- failed after recovering: {reason}");
    }
    let rss_ok = growth_of[0] < 2048.0;
    let fds_ok = growth_of[1] <= 0.0;
    if let Ok(path) = std::env::var("BENCH_SOAK_CSV") {
        let mut csv = String::from("seconds,rss_kib,fds,sockets,threads,tasks\n");
        for s in samples {
            csv.push_str(&format!(
                "{},{},{},{},{},{}\n",
                s.at.as_secs(),
                s.rss_kib,
                s.fds,
                s.sockets,
                s.threads,
                s.tasks
            ));
        }
        std::fs::write(path, csv).unwrap();
    }
    println!();
    println!(
        "done when: RSS growth < 2 MB: {}; file descriptor growth 0: {}; every run after each fault succeeds: {}; exit code {exit:?}",
        if rss_ok { "yes" } else { "NO" },
        if fds_ok { "yes" } else { "NO" },
        if all_recovered { "yes" } else { "NO" },
    );
}
