//! The binary under test: a clean environment, its output, its log lines, signals, and what
//! the process used.

use std::process::{Command, Output};

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

/// Whether a check's external tool was `found`: if not, the check is skipped with a printed
/// reason, unless `required_by` (an environment variable `.ci/run` sets to 1) makes it a failure.
pub fn tool_or_skip(found: bool, what: &str, required_by: &str) -> bool {
    if !found {
        assert!(
            std::env::var(required_by).as_deref() != Ok("1"),
            "{what} is required here ({required_by}=1) but not installed"
        );
        println!("SKIPPED: {what} is not installed");
    }
    found
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

/// Every job's start-up run off: with [`START_UP_RUNS_ONLY`], a daemon that runs nothing by
/// itself (what it does then, a warm request made it do).
pub const NO_START_UP_RUNS: [(&str, &str); 4] = [
    ("FCW_JOBS__STOCK__RUN_ON_START", "false"),
    ("FCW_JOBS__OPTIONS__RUN_ON_START", "false"),
    ("FCW_JOBS__EARNINGS__RUN_ON_START", "false"),
    ("FCW_JOBS__INTEGRITY__RUN_ON_START", "false"),
];

/// Starts `cmd` (killed when dropped) with its stderr lines sent to the returned channel as
/// they come.
pub fn spawn_with_lines(
    mut cmd: tokio::process::Command,
) -> (
    tokio::process::Child,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    use tokio::io::AsyncBufReadExt;
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

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
