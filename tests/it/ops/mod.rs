//! Operating the daemon: `/metrics` after real runs, `/readyz` following Redis, `/healthz`, and
//! the systemd notify protocol on a socket the test owns.

mod prometheus;
mod traces;

use crate::support;

use std::process::Stdio;
use std::time::Duration;

use redis::AsyncCommands;

use finance_cache_warmer::local_redis::{LocalRedis, LocalRedisOptions};
use support::{RecordedQuotes, conn, eventually, fcw, free_port, mount_yahoo_session, redis};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Starts `run` with the endpoint on a free port; returns the child and the base URL.
fn daemon(env: &[(&str, String)]) -> (tokio::process::Child, String) {
    let port = free_port();
    let mut cmd = tokio::process::Command::from(fcw());
    cmd.arg("run")
        .env("FCW_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("FCW_LOG__FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    (cmd.spawn().unwrap(), format!("http://127.0.0.1:{port}"))
}

/// `env` with every data kind from the replay provider.
fn replayed(mut env: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    env.extend(support::REPLAY.map(|(k, v)| (k, v.to_owned())));
    env
}

async fn get(url: &str) -> Option<(u16, String)> {
    let reply = reqwest::get(url).await.ok()?;
    let status = reply.status().as_u16();
    Some((status, reply.text().await.ok()?))
}

/// The value of the series `name{labels}` (labels in the exporter's order), if exported.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A Yahoo upstream whose first quote answer is a 503 (so a retry shows), then the recordings,
/// and a daemon's settings for it and `server`: one request a second (three requests: the
/// bucket makes some wait), earnings from replay, no integrity grace, every job once at start.
async fn retrying_upstream(server: &LocalRedis) -> (MockServer, Vec<(&'static str, String)>) {
    let upstream = MockServer::start().await;
    mount_yahoo_session(&upstream).await;
    Mock::given(path("/v7/finance/quote"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&upstream)
        .await;
    Mock::given(path("/v7/finance/quote"))
        .respond_with(RecordedQuotes::new(Duration::ZERO))
        .mount(&upstream)
        .await;
    let mut env = vec![
        ("FCW_REDIS__URL", server.url()),
        ("FCW_PROVIDER__YAHOO__BASE_URL", upstream.uri()),
        (
            "FCW_PROVIDER__YAHOO__COOKIE_URL",
            format!("{}/cookie", upstream.uri()),
        ),
        ("FCW_PROVIDER__YAHOO__REQUESTS_PER_SECOND", "1".into()),
        ("FCW_PROVIDER__MAX_RETRIES", "2".into()),
        ("FCW_PROVIDER__EARNINGS", "replay".into()),
        ("FCW_INTEGRITY__GRACE", "0s".into()),
    ];
    env.extend(support::START_UP_RUNS_ONLY.map(|(k, v)| (k, v.to_owned())));
    (upstream, env)
}

#[tokio::test]
async fn metrics_show_runs_tickers_upstream_and_integrity_after_real_runs() {
    let server = redis().await;
    let mut c = conn(&server).await;
    let _: () = redis::pipe()
        .sadd("finance:watchlist", &["AAPL", "MSFT", "not valid!"])
        .sadd("finance:positions:index", &["1", "2"])
        .set("finance:position:1", "{}")
        // Another replica "holds" the options lock: that job's run is skipped.
        .set("finance:lock:job:options", "held elsewhere")
        .query_async(&mut c)
        .await
        .unwrap();
    // Each job runs once, on start: the counts below are of exactly those runs.
    let (_upstream, env) = retrying_upstream(&server).await;
    let (child, base) = daemon(&env);
    let metrics = eventually(30, "metrics of the start-up runs", || async {
        let (_, text) = get(&format!("{base}/metrics")).await?;
        let done = ["stock", "earnings", "integrity"].iter().all(|job| {
            sample(
                &text,
                &format!("fcw_runs_total{{job_name=\"{job}\",outcome=\"ok\"}}"),
            ) == Some(1.0)
        });
        // The coverage gauges follow the start-up runs.
        let counted = text.contains("fcw_watchlist_tickers");
        (done && counted && text.contains("outcome=\"skipped_lock\"")).then_some(text)
    })
    .await;
    let has = |series: &str| {
        sample(&metrics, series).unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
    };
    assert_eq!(
        has(r#"fcw_runs_total{job_name="options",outcome="skipped_lock"}"#),
        1.0
    );
    assert_eq!(
        has(r#"fcw_tickers_total{job_name="stock",outcome="written"}"#),
        2.0
    );
    assert_eq!(
        has(r#"fcw_tickers_total{job_name="stock",outcome="invalid"}"#),
        1.0
    );
    assert_eq!(
        has(r#"fcw_run_duration_seconds_count{job_name="stock"}"#),
        1.0
    );
    assert!(
        metrics.contains(r#"fcw_run_duration_seconds_bucket{job_name="stock",le="0.5"}"#),
        "a histogram with buckets"
    );
    let last = has(r#"fcw_last_success_timestamp_seconds{job_name="stock"}"#);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - last).abs() < 60.0, "{last} vs {now}");
    assert_eq!(
        has(r#"fcw_upstream_requests_total{provider="yahoo",endpoint="quote",status="5xx"}"#),
        1.0
    );
    assert_eq!(
        has(r#"fcw_upstream_requests_total{provider="yahoo",endpoint="quote",status="2xx"}"#),
        1.0
    );
    assert_eq!(
        has(r#"fcw_upstream_retries_total{provider="yahoo",endpoint="quote"}"#),
        1.0
    );
    assert!(has(r#"fcw_rate_limit_waits_total{provider="yahoo"}"#) >= 1.0);
    assert_eq!(
        has(r#"fcw_integrity_members_checked_total{rule="finance:positions:index"}"#),
        2.0
    );
    assert_eq!(
        has(r#"fcw_integrity_members_removed_total{rule="finance:positions:index"}"#),
        1.0
    );
    assert!(
        metrics.contains("# HELP fcw_runs_total"),
        "series are described"
    );
    assert_eq!(has("fcw_watchlist_tickers"), 2.0);
    for kind in ["stock", "options", "earnings"] {
        for state in ["present", "missing", "expiring_soon"] {
            has(&format!(
                "fcw_cache_keys{{kind=\"{kind}\",state=\"{state}\"}}"
            ));
        }
    }
    let (status, body) = get(&format!("{base}/healthz")).await.unwrap();
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    support::signal(child.id().unwrap(), "-TERM");
    assert_eq!(
        child.wait_with_output().await.unwrap().status.code(),
        Some(0)
    );
}

#[tokio::test]
async fn readyz_follows_redis_while_healthz_stays_up() {
    let mut server = redis().await;
    let (child, base) = daemon(&replayed(vec![("FCW_REDIS__URL", server.url())]));
    let ready = |want: u16| {
        let base = base.clone();
        async move {
            eventually(20, &format!("/readyz {want}"), || async {
                get(&format!("{base}/readyz"))
                    .await
                    .filter(|(s, _)| *s == want)
            })
            .await
        }
    };
    assert_eq!(ready(200).await.1, "ready\n");
    server.stop();
    let (_, why) = ready(503).await;
    assert!(
        why.starts_with("redis: cannot connect to Redis at 127.0.0.1:"),
        "{why}"
    );
    assert_eq!(
        get(&format!("{base}/healthz")).await.unwrap().0,
        200,
        "Redis down is not a reason to restart"
    );
    server.restart().await.unwrap();
    ready(200).await;
    support::signal(child.id().unwrap(), "-TERM");
    assert_eq!(
        child.wait_with_output().await.unwrap().status.code(),
        Some(0)
    );
}

#[tokio::test]
async fn the_daemon_recovers_by_itself_once_redis_accepts_its_credentials_again() {
    let password = |p: &str| vec!["--requirepass".to_owned(), p.to_owned()];
    let mut server = support::redis_with(LocalRedisOptions {
        extra_args: password("first-secret"),
        ..LocalRedisOptions::default()
    })
    .await;
    let watch = async |server: &LocalRedis, secret: &str| {
        let url = server
            .url()
            .replace("redis://", &format!("redis://:{secret}@"));
        let mut c = redis::Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let _: () = c.sadd("finance:watchlist", "AAPL").await.unwrap();
    };
    watch(&server, "first-secret").await;
    let (child, base) = daemon(&replayed(vec![
        ("FCW_REDIS__URL", server.url()),
        ("FCW_REDIS__PASSWORD", "first-secret".into()),
        ("FCW_JOBS__STOCK__SCHEDULE", "* * * * * *".into()),
        ("FCW_JOBS__STOCK__REFRESH_AHEAD", "1".into()),
    ]));
    let ready = |want: u16, saying: &'static str| {
        let base = base.clone();
        async move {
            eventually(20, &format!("/readyz {want} {saying}"), || async {
                get(&format!("{base}/readyz"))
                    .await
                    .filter(|(s, why)| *s == want && why.to_lowercase().contains(saying))
            })
            .await
        }
    };
    ready(200, "ready").await;
    // Restarted with another password: the daemon's reconnect is refused ...
    server
        .restart_with(password("second-secret"))
        .await
        .unwrap();
    ready(503, "authentication").await;
    // ... and once Redis takes the daemon's password again, it is ready and warming, unaided.
    server.restart_with(password("first-secret")).await.unwrap();
    watch(&server, "first-secret").await;
    ready(200, "ready").await;
    let url = server.url().replace("redis://", "redis://:first-secret@");
    let c = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    eventually(20, "AAPL warmed again", || {
        let mut c = c.clone();
        async move {
            c.exists::<_, bool>("finance:cache:stock:AAPL")
                .await
                .unwrap()
                .then_some(())
        }
    })
    .await;
    support::signal(child.id().unwrap(), "-TERM");
    assert_eq!(
        child.wait_with_output().await.unwrap().status.code(),
        Some(0)
    );
}

#[tokio::test]
async fn systemd_gets_ready_watchdog_and_stopping_on_its_notify_socket() {
    let server = redis().await;
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = tokio::net::UnixDatagram::bind(&socket_path).unwrap();
    let (child, _) = daemon(&replayed(vec![
        ("FCW_REDIS__URL", server.url()),
        ("NOTIFY_SOCKET", socket_path.display().to_string()),
        // A 400 ms watchdog: the daemon must ping every 200 ms.
        ("WATCHDOG_USEC", "400000".into()),
    ]));
    let mut buf = vec![0u8; 512];
    let mut next = async || {
        let n = tokio::time::timeout(Duration::from_secs(10), socket.recv(&mut buf))
            .await
            .expect("a notification")
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).trim().to_owned()
    };
    // STATUS= lines (what `systemctl status` shows) come as runs finish, between the others.
    let (mut received, mut statuses) = (Vec::new(), Vec::new());
    // The start-up runs end up on one line naming the last run of each job.
    let jobs = ["earnings ok", "integrity ok", "options ok", "stock ok"];
    while received.len() < 4
        || !statuses
            .last()
            .is_some_and(|last: &String| jobs.iter().all(|j| last.contains(j)))
    {
        let message = next().await;
        match message.strip_prefix("STATUS=") {
            Some(status) => statuses.push(status.to_owned()),
            None => received.push(message),
        }
    }
    assert_eq!(received[0], "READY=1");
    assert!(
        received[1..].iter().all(|m| m == "WATCHDOG=1"),
        "{received:?}"
    );
    support::signal(child.id().unwrap(), "-TERM");
    loop {
        let message = next().await;
        if message == "STOPPING=1" {
            break;
        }
        assert!(
            message == "WATCHDOG=1" || message.starts_with("STATUS="),
            "{message}"
        );
    }
    assert_eq!(
        child.wait_with_output().await.unwrap().status.code(),
        Some(0)
    );
}

#[tokio::test]
async fn the_daemon_exports_coverage_and_last_successes_it_reads_from_redis() {
    let server = redis().await;
    let _: () = conn(&server)
        .await
        .sadd("finance:watchlist", &["AAPL", "MSFT", "GOOG"])
        .await
        .unwrap();
    let replay = replayed(vec![("FCW_REDIS__URL", server.url())]);
    // A CronJob-style run elsewhere warmed the stock cache and recorded its success.
    let (code, _, err) = support::run(fcw().args(["once", "stock"]).envs(replay.clone()));
    assert_eq!(code, Some(0), "{err}");
    let mut c = conn(&server).await;
    let recorded: String = c
        .hget("finance:warmer:run:stock", "last_success_at")
        .await
        .unwrap();
    let _: () = c.del("finance:cache:stock:MSFT").await.unwrap();
    // This daemon runs no job at all, yet knows both from Redis.
    let mut env = replay.clone();
    for var in [
        "FCW_JOBS__STOCK__ENABLED",
        "FCW_JOBS__OPTIONS__ENABLED",
        "FCW_JOBS__EARNINGS__ENABLED",
        "FCW_JOBS__INTEGRITY__ENABLED",
    ] {
        env.push((var, "false".into()));
    }
    let (child, base) = daemon(&env);
    let metrics = eventually(30, "the coverage gauges", || async {
        let (_, text) = get(&format!("{base}/metrics")).await?;
        text.contains("fcw_watchlist_tickers").then_some(text)
    })
    .await;
    let has = |series: &str| {
        sample(&metrics, series).unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
    };
    assert_eq!(has("fcw_watchlist_tickers"), 3.0);
    assert_eq!(has(r#"fcw_cache_keys{kind="stock",state="present"}"#), 2.0);
    assert_eq!(has(r#"fcw_cache_keys{kind="stock",state="missing"}"#), 1.0);
    assert_eq!(
        has(r#"fcw_cache_keys{kind="options",state="missing"}"#),
        3.0
    );
    let recorded = chrono::DateTime::parse_from_rfc3339(&recorded).unwrap();
    assert_eq!(
        has(r#"fcw_last_success_timestamp_seconds{job_name="stock"}"#),
        recorded.timestamp_millis() as f64 / 1000.0
    );
    assert!(
        !metrics.contains(r#"fcw_last_success_timestamp_seconds{job_name="options"}"#),
        "a job that never succeeded has no last success"
    );
    support::signal(child.id().unwrap(), "-TERM");
    assert_eq!(
        child.wait_with_output().await.unwrap().status.code(),
        Some(0)
    );
}

#[tokio::test]
async fn coverage_is_first_published_after_the_start_up_runs_never_as_a_cold_cache() {
    let server = redis().await;
    let _: () = conn(&server)
        .await
        .sadd("finance:watchlist", &["AAPL", "MSFT", "GOOG"])
        .await
        .unwrap();
    let (child, base) = daemon(&replayed(vec![("FCW_REDIS__URL", server.url())]));
    // Scraped as fast as it answers from the start: the first coverage it ever shows.
    let first = eventually(30, "the coverage gauges", || async {
        let (_, text) = get(&format!("{base}/metrics")).await?;
        sample(&text, r#"fcw_cache_keys{kind="stock",state="present"}"#)
    })
    .await;
    assert_eq!(
        first, 3.0,
        "published only once the start-up runs had warmed the cache"
    );
    support::signal(child.id().unwrap(), "-TERM");
    assert_eq!(
        child.wait_with_output().await.unwrap().status.code(),
        Some(0)
    );
}

/// Debian's `prometheus-pushgateway` on a free port, killed when dropped; `None` when it is
/// not installed (the test is skipped, or fails where FCW_REQUIRE_DEPLOY_TOOLS=1).
async fn pushgateway() -> Option<(tokio::process::Child, String)> {
    let port = free_port();
    let spawned = tokio::process::Command::new("prometheus-pushgateway")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let Ok(child) = spawned else {
        assert!(
            std::env::var("FCW_REQUIRE_DEPLOY_TOOLS").as_deref() != Ok("1"),
            "prometheus-pushgateway is required here but not installed"
        );
        println!("SKIPPED: prometheus-pushgateway is not installed");
        return None;
    };
    let base = format!("http://127.0.0.1:{port}");
    eventually(10, "the Pushgateway", || async {
        get(&format!("{base}/-/ready"))
            .await
            .filter(|(s, _)| *s == 200)
    })
    .await;
    Some((child, base))
}

#[tokio::test]
async fn once_pushes_each_jobs_metrics_to_a_real_pushgateway_grouped_by_job() {
    let Some((_gateway, base)) = pushgateway().await else {
        return;
    };
    let server = redis().await;
    support::watchlist(&server, &[b"AAPL", b"MSFT"]).await;
    let once = |args: &[&str], gateway: &str| {
        support::run(
            fcw()
                .arg("once")
                .args(args)
                .env("FCW_REDIS__URL", server.url())
                .envs(support::REPLAY)
                .env("FCW_LOG__FORMAT", "json")
                .env("FCW_TELEMETRY__PUSHGATEWAY_URL", gateway),
        )
    };
    let (code, _, err) = once(&["stock"], &base);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("pushed the run's metrics"), "{err}");
    let (_, metrics) = get(&format!("{base}/metrics")).await.unwrap();
    assert_eq!(
        sample(
            &metrics,
            r#"fcw_runs_total{instance="",job="stock",job_name="stock",outcome="ok"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        sample(
            &metrics,
            r#"fcw_last_success_timestamp_seconds{instance="",job="stock",job_name="stock"}"#
        )
        .is_some()
    );
    assert!(sample(&metrics, r#"push_time_seconds{instance="",job="stock"}"#).is_some());
    // `once all`: each job under its own group, its `job` label intact; nothing else under stock.
    let (code, _, err) = once(&["all"], &base);
    assert_eq!(code, Some(0), "{err}");
    let (_, metrics) = get(&format!("{base}/metrics")).await.unwrap();
    for job in ["stock", "options", "earnings", "integrity"] {
        assert_eq!(
            sample(
                &metrics,
                &format!(
                    r#"fcw_runs_total{{instance="",job="{job}",job_name="{job}",outcome="ok"}}"#
                )
            ),
            Some(1.0),
            "{job}: {metrics}"
        );
    }
    assert!(sample(&metrics, r#"push_time_seconds{instance="",job="all"}"#).is_some());
    // A Pushgateway that is down costs a warning, not the run.
    let (code, _, err) = once(&["stock"], &format!("http://127.0.0.1:{}", free_port()));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("telemetry.pushgateway_url: pushing the stock metrics"),
        "{err}"
    );
}
