//! The integrity job on a 1,000,000-member index with 10% orphans: members/s, Redis round trips
//! and the daemon's peak memory, next to the raw pipelined EXISTS throughput of the same server
//! (`redis-benchmark -P 100 ... EXISTS`) as the ideal.
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

use support::{fcw, summary, watch_process};
use target::Target;

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

    let mut cmd = tokio::process::Command::from(fcw());
    cmd.args(["once", "integrity"])
        .env(target.env().0, target.env().1)
        .env("FCW_INTEGRITY__GRACE", "0s")
        .env(
            "FCW_INTEGRITY__SCAN_COUNT",
            std::env::var("BENCH_SCAN_COUNT").unwrap_or_else(|_| "500".into()),
        )
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

    let ideal = std::process::Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1"])
        .args(target.benchmark_args())
        .args(["-P", "100", "-n", "1000000", "-r", "1000000", "-q"])
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

    println!(
        "integrity benchmark ({}): {members} members in finance:positions:index, {orphans} orphans, grace 0s, scan_count {}",
        target.name(),
        std::env::var("BENCH_SCAN_COUNT").unwrap_or_else(|_| "500".into())
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
    println!(
        "  ideal (same server, pipelined EXISTS): {}",
        ideal.lines().last().unwrap_or_default()
    );
}
