//! Redis access against real `redis-server`s owned by the test: plain, ACL, TLS, restarts.

use crate::support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use finance_cache_warmer::config::{RedisUrl, Settings};
use finance_cache_warmer::local_redis::LocalRedisOptions;
use finance_cache_warmer::store::Store;
use support::{conn, fcw, redis, redis_with, run};

fn settings_for(url: &str) -> Settings {
    let mut s = Settings::defaults().unwrap();
    s.redis.url = RedisUrl::parse(url).unwrap();
    s
}

#[tokio::test]
async fn check_config_connect_reports_the_server_version() {
    let server = redis().await;
    let (code, out, err) = run(fcw()
        .args(["check-config", "--connect"])
        .env("FCW_REDIS__URL", server.url()));
    assert_eq!(code, Some(0), "{err}");
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with(&format!(
            "# redis: PONG from 127.0.0.1:{} (redis_version ",
            server.port()
        )),
        "{out}"
    );
    let version = last.rsplit(' ').next().unwrap().trim_end_matches(')');
    assert!(
        version.split('.').all(|p| p.parse::<u32>().is_ok()),
        "{version}"
    );
    toml::from_str::<toml::Table>(&out).expect("still valid TOML");
}

#[tokio::test]
async fn an_unreachable_redis_exits_3_with_one_json_log_line() {
    let mut server = redis().await;
    let url = server.url();
    server.stop();
    let started = Instant::now();
    let (code, _, err) = run(fcw()
        .args(["check-config", "--connect"])
        .env("FCW_REDIS__URL", &url));
    assert_eq!(code, Some(3), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "gave up after {:?}",
        started.elapsed()
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    let line: serde_json::Value = serde_json::from_str(lines[0]).expect("a JSON log line");
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["exit_code"], 3);
    let message = line["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "cannot connect to Redis at 127.0.0.1:{}: ",
            server.port()
        )),
        "{message}"
    );
    let ts = line["timestamp"].as_str().unwrap();
    assert!(ts.ends_with('Z') && ts.contains('T'), "RFC 3339 UTC: {ts}");
    assert!(line["target"].is_string());
}

#[tokio::test]
async fn acl_users_authenticate_and_a_wrong_password_is_refused_without_showing_it() {
    let server = redis().await;
    let _: () = redis::cmd("ACL")
        .arg(
            &[
                "SETUSER",
                "warmer",
                "on",
                ">pa:ss@w0rd",
                "~finance:*",
                "+@all",
            ][..],
        )
        .query_async(&mut conn(&server).await)
        .await
        .unwrap();
    let url = format!("redis://warmer@127.0.0.1:{}/0", server.port());

    // The password from the environment, so a ':' or '@' in it needs no URL escaping.
    let (code, out, err) = run(fcw()
        .args(["check-config", "--connect"])
        .env("FCW_REDIS__URL", &url)
        .env("FCW_REDIS__PASSWORD", "pa:ss@w0rd"));
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("# redis: PONG"), "{out}");
    assert!(!out.contains("pa:ss@w0rd") && !err.contains("pa:ss@w0rd"));

    // In the URL itself (percent-encoded, as URLs require).
    let in_url = format!(
        "redis://warmer:pa%3Ass%40w0rd@127.0.0.1:{}/0",
        server.port()
    );
    let (code, out, err) = run(fcw()
        .args(["check-config", "--connect"])
        .env("FCW_REDIS__URL", &in_url));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        !out.contains("pa%3Ass") && !err.contains("pa%3Ass"),
        "{out}{err}"
    );

    let (code, out, err) = run(fcw()
        .args(["check-config", "--connect"])
        .env("FCW_REDIS__URL", &url)
        .env("FCW_REDIS__PASSWORD", "wrong-s3cr3t"));
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("cannot connect to Redis at") && err.contains("authentication failed"),
        "{err}"
    );
    assert!(!out.contains("wrong-s3cr3t") && !err.contains("wrong-s3cr3t"));
}

#[tokio::test]
async fn rediss_connects_with_the_configured_ca_and_refuses_an_unknown_one() {
    if !support::redis_has_tls() {
        println!("SKIPPED: the installed redis-server has no TLS support");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tls = support::tls_files(dir.path());
    let server = redis_with(LocalRedisOptions {
        tls: Some(tls.clone()),
        ..LocalRedisOptions::default()
    })
    .await;
    assert!(server.url().starts_with("rediss://localhost:"));

    let (code, out, err) = run(fcw()
        .args(["check-config", "--connect"])
        .env("FCW_REDIS__URL", server.url())
        .env("FCW_REDIS__CA_FILE", &tls.ca));
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("# redis: PONG from localhost:"), "{out}");

    // A CA that did not sign the server's certificate.
    let other = tempfile::tempdir().unwrap();
    let wrong = support::tls_files(other.path());
    let (code, _, err) = run(fcw()
        .args(["check-config", "--connect"])
        .env("FCW_REDIS__URL", server.url())
        .env("FCW_REDIS__CA_FILE", &wrong.ca));
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("cannot connect to Redis at localhost:")
            && err.to_lowercase().contains("certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn idempotent_commands_are_retried_across_a_redis_restart() {
    let mut server = redis().await;
    let store = Store::connect(&settings_for(&server.url()).redis)
        .await
        .unwrap();
    server.restart().await.unwrap();
    // The first command on the dead socket fails inside the manager; retry hides that.
    let version = store
        .server_version()
        .await
        .expect("retried after the reconnect");
    assert!(!version.is_empty());
    store
        .set_each("SET probe", &[("finance:warmer:probe", "1")])
        .await
        .unwrap();
    assert_eq!(
        store
            .get("GET probe", "finance:warmer:probe")
            .await
            .unwrap(),
        Some("1".to_owned())
    );
}

#[tokio::test]
async fn the_daemon_starts_without_redis_and_stops_on_sigterm_with_exit_0() {
    let mut server = redis().await;
    let url = server.url();
    server.stop(); // Redis down: readiness is Redis's problem, not a start-up failure.
    let mut child = fcw()
        .arg("run")
        .env("FCW_REDIS__URL", &url)
        .env("FCW_SERVER__LISTEN", "")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let started = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("daemon started"));
    assert!(started.is_some(), "the daemon logged its start");
    support::signal(child.id(), "-TERM");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter()
            .any(|l| l.contains("daemon stopped") && l.contains(r#""signal":"SIGTERM""#)),
        "{rest:?}"
    );
}

#[tokio::test]
async fn a_private_server_is_killed_and_reaped_however_it_is_let_go() {
    for how in ["stop", "drop", "drop while paused"] {
        let mut server = redis().await;
        let pid = server.pid().unwrap();
        match how {
            "stop" => server.stop(),
            "drop" => drop(server),
            _ => {
                server.pause();
                drop(server);
            }
        }
        // Gone from /proc: not running, and not a `<defunct>` entry waiting to be reaped.
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            let state = status.lines().find(|l| l.starts_with("State:"));
            panic!("{how}: pid {pid} is still there: {state:?}");
        }
    }
}
