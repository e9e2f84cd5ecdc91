//! The integrity job on a 1,000,000-member index with 10% orphans: members/s, Redis round trips
//! and the daemon's peak memory, next to the raw pipelined EXISTS throughput of the same server
//! (`redis-benchmark -P 100 -n <members> ... EXISTS`) as the ideal and a naive loop (one `EXISTS`
//! per member, one round trip each, over one connection) as the floor, with both ratios. On a
//! single server it also reads the time of each page's script from `SLOWLOG`, and the server
//! time of an `SSCAN` walk of the index alone (`INFO commandstats`), which any walk pays
//! before its first `EXISTS`.
//!
//! `cargo bench --bench integrity` (BENCH_MEMBERS=... for another size, BENCH_CLUSTER=1 for a
//! Redis Cluster).

// A benchmark uses a few of the integration tests' helpers, not all of them.
#[allow(dead_code, unused_imports)]
#[path = "../tests/it/support/mod.rs"]
mod support;
#[allow(dead_code)] // not every benchmark needs every method
#[path = "support/target.rs"]
mod target;

use std::process::Stdio;
use std::time::{Duration, Instant};

use redis::aio::ConnectionLike;
use support::{Logged, conn, fcw, summary, watch_process};
use target::Target;

/// Members the naive loop checks; its time is extrapolated to the whole index.
const NAIVE_SAMPLE: usize = 100_000;

#[tokio::main]
async fn main() {
    let members: usize = std::env::var("BENCH_MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // BENCH_CLUSTER=1: the same run on a 3-primary, 3-replica Redis Cluster.
    let target = Target::start().await;
    for start in (0..members).step_by(10_000) {
        let ids: Vec<String> = (start..(start + 10_000).min(members))
            .map(|i| i.to_string())
            .collect();
        let mut cmds = vec![
            redis::Cmd::new()
                .arg("SADD")
                .arg("finance:positions:index")
                .arg(&ids)
                .to_owned(),
        ];
        for id in ids
            .iter()
            .filter(|id| id.parse::<usize>().unwrap() % 10 != 0)
        {
            cmds.push(
                redis::Cmd::new()
                    .arg("SET")
                    .arg(format!("finance:position:{id}"))
                    .arg("{}")
                    .to_owned(),
            );
        }
        target.run_all(cmds).await;
    }
    let orphans = members.div_ceil(10);
    let scan_count = std::env::var("BENCH_SCAN_COUNT").unwrap_or_else(|_| "500".into());
    let walk = match &target {
        Target::Single(s) => Some(sscan_walk(&mut conn(s).await, members).await),
        Target::Cluster(_) => None,
    };
    if let Target::Single(s) = &target {
        // Every command over 20 µs of server time: the page and repair scripts, not the
        // small commands, whose logging would slow the run down.
        support::log_commands_slower_than(&mut conn(s).await, 20, 1_000_000).await;
    }

    // The positions rule only: the default `auth:inviter:*` rule would add a `SCAN` of the
    // whole keyspace (the 900,000 objects) looking for index sets, which checks no member.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("integrity.toml");
    std::fs::write(
        &config,
        "[[integrity.rules]]\nindex = \"finance:positions:index\"\nmember_key = \"finance:position:{member}\"\n",
    )
    .unwrap();
    let mut cmd = tokio::process::Command::from(fcw());
    cmd.arg("-c")
        .arg(&config)
        .args(["once", "integrity"])
        .env(target.env().0, target.env().1)
        .env("FCW_INTEGRITY__GRACE", "0s")
        .env("FCW_INTEGRITY__SCAN_COUNT", &scan_count)
        .env("FCW_LOG__FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let pid = child.id().unwrap();
    let usage = tokio::spawn(watch_process(pid));
    let output = child.wait_with_output().await.unwrap();
    let usage = usage.await.unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{err}");
    let s = summary(&err, "integrity");
    assert_eq!(s["removed"].as_u64(), Some(orphans as u64), "{s}");
    let ms = s["duration_ms"].as_f64().unwrap();

    let scripts = match &target {
        Target::Single(s) => {
            let mut c = conn(s).await;
            let pages = page_scripts(&mut c).await;
            support::log_commands_slower_than(&mut c, 10_000, 128).await;
            Some(pages)
        }
        Target::Cluster(_) => None,
    };

    let n = members.to_string();
    let ideal = std::process::Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1"])
        .args(target.benchmark_args())
        .args(["-P", "100", "-n", &n, "-r", &n, "-q"])
        .args(["EXISTS", "finance:position:__rand_int__"])
        .output()
        // redis-benchmark redraws its line with carriage returns; the result is the segment
        // with the final "requests per second".
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.split(['\r', '\n'])
                .rfind(|s| s.contains("requests per second"))
                .map_or_else(
                    || format!("(no result: {})", text.trim()),
                    |s| s.trim().to_owned(),
                )
        })
        .unwrap_or_else(|e| format!("redis-benchmark not available: {e}"));
    let ideal_per_s: Option<f64> = ideal
        .split("requests per second")
        .next()
        .and_then(|s| s.trim_end().rsplit(' ').next())
        .and_then(|rate| rate.parse().ok());

    let sample = NAIVE_SAMPLE.min(members);
    let naive = match &target {
        Target::Single(s) => naive_loop(&mut conn(s).await, sample).await,
        Target::Cluster(c) => naive_loop(&mut c.conn().await, sample).await,
    };
    let naive_ms = naive.as_secs_f64() * 1000.0 * members as f64 / sample as f64;

    println!(
        "integrity benchmark ({}): {members} members in finance:positions:index (the only rule), {orphans} orphans, grace 0s, scan_count {scan_count}",
        target.name(),
    );
    println!("  run duration      {ms:.0} ms");
    println!(
        "  throughput        {:.0} members/s",
        members as f64 / (ms / 1000.0)
    );
    println!("  redis round trips {}", s["redis_round_trips"]);
    println!(
        "  daemon CPU time   {} ms (user + system; the rest of the run is waiting on Redis)",
        usage.cpu_ms
    );
    println!(
        "  peak memory       {:.1} MiB (VmHWM of the daemon process)",
        usage.peak_kib as f64 / 1024.0
    );
    if let Some(pages) = scripts {
        println!("  page scripts      {pages}");
    }
    println!(
        "  ideal (same server, redis-benchmark -P 100 -n {members}, pipelined EXISTS): {ideal}"
    );
    match ideal_per_s {
        Some(rate) => {
            let ideal_ms = members as f64 / rate * 1000.0;
            println!(
                "  ideal time        {ideal_ms:.0} ms; job / ideal = {:.2}x",
                ms / ideal_ms
            );
        }
        None => println!("  ideal time        (no redis-benchmark result)"),
    }
    if let (Some(server_ms), Some(rate)) = (walk, ideal_per_s) {
        let ideal_ms = members as f64 / rate * 1000.0;
        println!(
            "  SSCAN walk alone  {server_ms:.0} ms of server time (COUNT 1000, INFO commandstats) = {:.2}x the ideal: a floor no walk of the index goes under, before any EXISTS or repair",
            server_ms / ideal_ms
        );
    }
    println!(
        "  naive loop        {naive_ms:.0} ms ({sample} sequential EXISTS round trips over one connection took {:.0} ms, extrapolated to {members}); naive / job = {:.1}x",
        naive.as_secs_f64() * 1000.0,
        naive_ms / ms
    );
}

/// The server time of the scripts in `SLOWLOG`: the page scripts (`EVALSHA sha 1 index cursor
/// count prefix suffix limit`: calls, the largest `COUNT`, mean, 99th percentile and maximum)
/// and the repair scripts (every other `EVALSHA`: a few hundred suspects each).
async fn page_scripts(c: &mut redis::aio::MultiplexedConnection) -> String {
    let (pages, repairs): (Vec<Logged>, Vec<Logged>) = support::slow_log(c)
        .await
        .into_iter()
        .filter(|e| e.args[0].eq_ignore_ascii_case(b"EVALSHA"))
        .partition(|e| e.args.len() == 9);
    if pages.is_empty() {
        return "none in SLOWLOG".into();
    }
    let count = pages
        .iter()
        .map(|e| String::from_utf8_lossy(&e.args[5]).into_owned())
        .max()
        .unwrap_or_default();
    let times = |entries: &[Logged]| {
        let mut micros: Vec<u64> = entries.iter().map(|e| e.micros).collect();
        micros.sort_unstable();
        match micros.len() {
            0 => "none".to_owned(),
            n => format!(
                "{n} calls: {:.0} µs mean, {} µs p99, {} µs max per call",
                micros.iter().sum::<u64>() as f64 / n as f64,
                micros[n * 99 / 100],
                micros[n - 1]
            ),
        }
    };
    format!(
        "pages of COUNT {count}, {}; repairs, {} (server time, SLOWLOG)",
        times(&pages),
        times(&repairs)
    )
}

/// The server time (ms, from `INFO commandstats`) of one `SSCAN ... COUNT 1000` walk of the
/// whole index, page by page: the part of any walk that the ideal's `EXISTS` does not include.
async fn sscan_walk(c: &mut redis::aio::MultiplexedConnection, members: usize) -> f64 {
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(c)
        .await
        .unwrap();
    let (mut cursor, mut seen) = (0u64, 0usize);
    loop {
        let (next, page): (u64, Vec<Vec<u8>>) = redis::cmd("SSCAN")
            .arg("finance:positions:index")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(c)
            .await
            .unwrap();
        seen += page.len();
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert!(seen >= members, "the walk saw {seen} of {members} members");
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(c)
        .await
        .unwrap();
    let usec = stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_sscan:"))
        .and_then(|l| l.split(',').find_map(|f| f.strip_prefix("usec=")))
        .and_then(|u| u.parse::<f64>().ok())
        .expect("cmdstat_sscan in INFO commandstats");
    usec / 1000.0
}

/// `EXISTS finance:position:<i>` for the first `sample` ids, one round trip each.
async fn naive_loop(c: &mut impl ConnectionLike, sample: usize) -> Duration {
    let started = Instant::now();
    for i in 0..sample {
        let _: bool = redis::cmd("EXISTS")
            .arg(format!("finance:position:{i}"))
            .query_async(c)
            .await
            .unwrap();
    }
    started.elapsed()
}
