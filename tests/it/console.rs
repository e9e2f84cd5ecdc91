//! What a person at a terminal gets: progress bars on `once` and `demo` (drawn under a
//! pseudo-terminal from `script`, never into a pipe or next to JSON logs), shell completions and
//! the man page.

use crate::support;

use std::process::{Command, Stdio};

use redis::AsyncCommands;
use support::{conn, fcw, redis, run};

use finance_cache_warmer::local_redis::LocalRedis;

const BINARY: &str = env!("CARGO_BIN_EXE_finance-cache-warmer");

/// Runs `shell_command` under a pseudo-terminal (util-linux `script`) with `env`; returns the
/// exit code and everything the terminal received.
fn under_pty(shell_command: &str, env: &[(&str, String)]) -> (Option<i32>, String) {
    let mut cmd = Command::new("script");
    cmd.args(["-qec", shell_command, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("TERM", "xterm")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = cmd.output().expect("`script` (util-linux) is installed");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

async fn replay_env(server: &LocalRedis, log_format: &str) -> Vec<(&'static str, String)> {
    let _: () = conn(server)
        .await
        .sadd(
            "finance:watchlist",
            &["AAPL", "MSFT", "GOOG", "bad member!"],
        )
        .await
        .unwrap();
    vec![
        ("FCW_REDIS__URL", server.url()),
        ("FCW_PROVIDER__STOCK", "replay".into()),
        ("FCW_LOG__FORMAT", log_format.into()),
    ]
}

/// `text` without terminal control sequences (`ESC [ ... letter`).
fn without_escapes(text: &str) -> String {
    let mut plain = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.find(|c| c.is_ascii_alphabetic());
        } else {
            plain.push(c);
        }
    }
    plain
}

/// The bar's last frame for `job`: counts, rate, ETA and how the run ended.
fn final_bar(screen: &str, job: &str) -> Option<String> {
    without_escapes(screen)
        .split(['\r', '\n'])
        .map(str::trim)
        .rfind(|frame| frame.starts_with(&format!("{job} [")))
        .map(str::to_owned)
}

#[tokio::test]
async fn once_at_a_terminal_draws_a_progress_bar_with_counts_rate_eta_and_failures() {
    let server = redis().await;
    let env = replay_env(&server, "pretty").await;
    let (code, screen) = under_pty(&format!("{BINARY} once stock"), &env);
    assert_eq!(code, Some(0), "{screen}");
    let bar = final_bar(&screen, "stock").unwrap_or_else(|| panic!("no bar in:\n{screen:?}"));
    assert!(bar.contains("3/3 tickers"), "{bar}");
    assert!(bar.contains("/s") && bar.contains("ETA"), "{bar}");
    assert!(bar.ends_with("ok, 0 failed"), "{bar}");
    // Log lines still reach the terminal, around the bar.
    assert!(screen.contains("run finished"), "{screen}");
}

#[tokio::test]
async fn no_bar_with_json_logs_or_when_stdout_is_not_a_terminal() {
    let server = redis().await;
    // JSON logs at a terminal: no bar, and every line on the terminal is a JSON log line.
    let env = replay_env(&server, "json").await;
    let (code, screen) = under_pty(&format!("{BINARY} once stock --force"), &env);
    assert_eq!(code, Some(0), "{screen}");
    assert_eq!(final_bar(&screen, "stock"), None, "{screen}");
    for line in screen.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<serde_json::Value>(line.trim()).is_ok(),
            "not a JSON log line: {line:?}"
        );
    }
    // Text logs, stderr at a terminal, stdout into a file: no bar.
    let env = replay_env(&server, "pretty").await;
    let out = tempfile::NamedTempFile::new().unwrap();
    let (code, screen) = under_pty(
        &format!("{BINARY} once stock --force > {}", out.path().display()),
        &env,
    );
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        screen.contains("run finished"),
        "the logs still show: {screen}"
    );
    assert_eq!(final_bar(&screen, "stock"), None, "{screen}");
    // And with no terminal at all.
    let mut cmd = fcw();
    cmd.args(["once", "stock", "--force"]).envs(env);
    let (code, stdout, stderr) = run(&mut cmd);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.is_empty());
    assert!(!stderr.contains("tickers  "), "{stderr}");
}

#[tokio::test]
async fn log_format_auto_is_pretty_at_a_terminal_and_json_in_a_pipe() {
    let server = redis().await;
    let env = replay_env(&server, "auto").await;
    // At a terminal: text lines (and the bar), no JSON.
    let (code, screen) = under_pty(&format!("{BINARY} once stock --force"), &env);
    assert_eq!(code, Some(0), "{screen}");
    let finished = without_escapes(&screen)
        .lines()
        .find(|l| l.contains("run finished"))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no run line in {screen:?}"));
    assert!(!finished.trim_start().starts_with('{'), "{finished}");
    assert!(final_bar(&screen, "stock").is_some(), "{screen}");
    // Into a pipe: every line is a JSON object, without colour codes.
    let mut cmd = fcw();
    cmd.args(["once", "stock", "--force"]).envs(env);
    let (code, _, stderr) = run(&mut cmd);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not a JSON log line: {line:?}"
        );
    }
}

#[test]
fn demo_at_a_terminal_shows_a_bar_per_job() {
    let (code, screen) = under_pty(&format!("{BINARY} demo"), &[]);
    assert_eq!(code, Some(0), "{screen}");
    for job in ["stock", "options", "earnings"] {
        let bar = final_bar(&screen, job).unwrap_or_else(|| panic!("no {job} bar in {screen:?}"));
        assert!(
            bar.contains("10/10 tickers") && bar.ends_with("ok, 0 failed"),
            "{bar}"
        );
    }
    assert!(
        screen.contains("integrity") && screen.contains("members checked"),
        "{screen}"
    );
}

#[test]
fn completions_for_bash_zsh_and_fish_need_no_config() {
    for (shell, marker) in [
        ("bash", "_finance__cache__warmer()"),
        ("zsh", "#compdef finance-cache-warmer"),
        ("fish", "complete -c finance-cache-warmer"),
    ] {
        // A config that does not exist would fail any other command with exit 2.
        let (code, out, err) = run(fcw()
            .args(["completions", shell])
            .env("FCW_CONFIG", "/nonexistent/fcw.toml"));
        assert_eq!(code, Some(0), "{shell}: {err}");
        assert!(out.contains(marker), "{shell}: {out}");
        for command in ["status", "once", "check-config", "completions"] {
            assert!(out.contains(command), "{shell} completes {command}");
        }
    }
    // The bash script is valid bash.
    let (_, script, _) = run(fcw().args(["completions", "bash"]));
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), script).unwrap();
    let (code, _, err) = run(Command::new("bash").arg("-n").arg(file.path()));
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = run(fcw().args(["completions", "tcsh"]));
    assert_eq!(code, Some(2), "an unknown shell is a usage error: {err}");
}

#[test]
fn the_man_page_is_roff_generated_from_the_cli() {
    let (code, page, err) = run(fcw().arg("man").env("FCW_CONFIG", "/nonexistent/fcw.toml"));
    assert_eq!(code, Some(0), "{err}");

    assert!(page.contains(".TH finance-cache-warmer 1"), "{page}");
    for command in ["status", "once", "demo", "completions", "man"] {
        assert!(page.contains(command), "the page lists {command}");
    }
    // man(1) itself renders it, where installed.
    if Command::new("man")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &page).unwrap();
        let (code, text, err) = run(Command::new("man")
            .arg("-l")
            .arg(file.path())
            .env("MANPAGER", "cat"));
        assert_eq!(code, Some(0), "{err}");
        assert!(text.contains("Keeps a finance app"), "{text}");
    }
}

#[test]
fn a_reader_that_stops_early_ends_the_output_quietly() {
    // 36 years of sessions are far more than a pipe holds, so with its reader gone the writes
    // certainly fail (EPIPE): the command stops writing and exits 0, saying nothing.
    let mut child = fcw()
        .args(["calendar", "--from", "2000-01-01", "--to", "2035-12-31"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{err}");
    assert_eq!(err, "", "no error line");
    // As a person types it: the first line, a clean pipeline, nothing on stderr.
    for command in [
        "check-config",
        "calendar --from 2000-01-01 --to 2035-12-31",
        "man",
    ] {
        let (code, out, err) = run(Command::new("bash")
            .args(["-o", "pipefail", "-c"])
            .arg(format!("{BINARY} {command} | head -1"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap()));
        assert_eq!(code, Some(0), "{command}: {err}");
        assert_eq!(out.lines().count(), 1, "{command}: {out}");
        assert_eq!(err, "", "{command}");
    }
}
