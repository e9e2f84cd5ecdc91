//! `demo`: every job offline on a private `redis-server`, and nothing left behind.

use super::*;

#[test]
fn demo_runs_every_job_on_replay_and_a_private_redis_server() {
    let (code, out, err) = support::run(fcw().arg("demo"));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("finance:watchlist with 11 members, provider replay"),
        "{out}"
    );
    for job in ["stock", "options", "earnings"] {
        assert!(
            out.lines().any(|l| l.starts_with(job)
                && l.contains(" ok ")
                && l.contains("invalid 1 written 10")),
            "{job}: {out}"
        );
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("finance:cache:stock:AAPL") && l.contains("333.69 USD")),
        "{out}"
    );
    assert!(
        !out.contains("(missing)"),
        "every key of every valid ticker is cached: {out}"
    );
}

/// Runs the command in its arguments as a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so
/// every process it leaves behind, running or dead and unreaped, becomes this one's child; then
/// prints the command's exit code and one line per such process.
const LEFT_BEHIND: &str = r#"
import ctypes, os, subprocess, sys
assert ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
print(code)
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        continue
    comm, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
    if int(fields[1]) == os.getpid():
        print(pid, comm, "state", fields[0])
"#;

#[test]
fn demo_leaves_no_process_behind_not_even_a_zombie() {
    let demo = fcw();
    let (code, out, err) = support::run(
        Command::new("python3")
            .args(["-c", LEFT_BEHIND])
            .arg(demo.get_program())
            .arg("demo")
            .env_clear()
            .envs(demo.get_envs().filter_map(|(k, v)| Some((k, v?)))),
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out, "0\n",
        "demo's exit code, then what it left behind: {out}"
    );
}
