//! `status` on a real `redis-server` filled by real runs (the replay provider, or a Yahoo
//! upstream that fails): after a success, after a failed run, with a lock held by another
//! process, with keys missing or expiring, and the exit code rule.

use crate::support;

use redis::AsyncCommands;
use serde_json::Value;
use support::{assert_schema, conn, fcw, redis, run};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

use finance_cache_warmer::local_redis::LocalRedis;

const WATCHLIST: &[&str] = &["AAPL", "MSFT", "GOOG", "AMZN", "not a ticker!"];

/// The binary on `server` with every job on the replay provider (recorded answers).
fn fcw_on(server: &LocalRedis, args: &[&str]) -> std::process::Command {
    let mut cmd = fcw();
    cmd.args(args)
        .env("FCW_REDIS__URL", server.url())
        .env("FCW_LOG__FORMAT", "json")
        .envs(support::REPLAY)
        .env("FCW_INTEGRITY__GRACE", "0s");
    cmd
}

async fn server_with_watchlist() -> LocalRedis {
    let server = redis().await;
    let _: () = conn(&server)
        .await
        .sadd("finance:watchlist", WATCHLIST)
        .await
        .unwrap();
    server
}

fn once_all(server: &LocalRedis) {
    let (code, _, err) = run(&mut fcw_on(server, &["once", "all"]));
    assert_eq!(code, Some(0), "{err}");
}

/// `status --json`: the exit code and the report, checked against its schema.
fn status_json(cmd: &mut std::process::Command) -> (Option<i32>, Value) {
    let (code, out, err) = run(cmd);
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    assert_schema("status", &report);
    (code, report)
}

fn job<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == name)
        .unwrap()
}

fn coverage<'a>(report: &'a Value, kind: &str) -> &'a Value {
    report["coverage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == kind)
        .unwrap()
}

#[tokio::test]
async fn after_successful_runs_status_is_healthy_and_shows_each_run_and_full_coverage() {
    let server = server_with_watchlist().await;
    once_all(&server);
    let (code, report) = status_json(&mut fcw_on(&server, &["status", "--json"]));
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["healthy"], true);
    for name in ["stock", "options", "earnings"] {
        let j = job(&report, name);
        assert_eq!(j["healthy"], true);
        assert_eq!(j["problem"], Value::Null);
        let last = &j["last_run"];
        assert_eq!(last["outcome"], "ok", "{name}");
        assert_eq!(last["reason"], "");
        assert_eq!(last["pid"].as_u64().map(|p| p > 0), Some(true));
        assert_eq!(last["counts"]["written"], 4, "{name}");
        assert_eq!(last["counts"]["invalid"], 1, "{name}");
        assert_eq!(last["counts"]["failed"], 0, "{name}");
        assert!(j["last_success_at"].as_str().unwrap() >= last["started_at"].as_str().unwrap());
        assert!(j["healthy_until"].as_str().unwrap() > report["generated_at"].as_str().unwrap());
        assert_eq!(j["locks"], serde_json::json!([]));
        assert_eq!(j["next_runs"].as_array().unwrap().len(), 3);
        let c = coverage(&report, name);
        assert_eq!(
            (c["present"].as_u64(), c["missing"].as_u64()),
            (Some(4), Some(0))
        );
        assert_eq!(c["missing_tickers"], serde_json::json!([]));
    }
    let integrity = &job(&report, "integrity")["last_run"];
    assert_eq!(integrity["outcome"], "ok");
    assert_eq!(
        report["watchlist"],
        serde_json::json!({"key": "finance:watchlist", "members": 5, "tickers": 4, "invalid": 1, "duplicates": 0, "calendars": {"XNYS": 4}})
    );

    let (code, text, err) = run(&mut fcw_on(&server, &["status"]));
    assert_eq!(code, Some(0), "{err}");
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("finance-cache-warmer status at ") && first.ends_with("· healthy"),
        "{text}"
    );
    let stock = text.lines().find(|l| l.starts_with("stock ")).unwrap();
    let cells: Vec<&str> = stock
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    // JOB HEALTH LAST-RUN OUTCOME TOOK OK FAILED SKIPPED INVALID LAST-SUCCESS LOCK NEXT-RUNS
    assert_eq!(
        (
            cells[0], cells[1], cells[3], cells[5], cells[6], cells[7], cells[8], cells[10]
        ),
        ("stock", "ok", "ok", "4", "0", "0", "1", "free"),
        "{text}"
    );
    assert!(
        text.contains(
            "Cache coverage of finance:watchlist (4 tickers; 5 members, 1 invalid, 0 duplicates)"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn a_failed_run_is_shown_with_its_reason_and_keeps_the_last_success() {
    let server = server_with_watchlist().await;
    once_all(&server);
    let before = status_json(&mut fcw_on(&server, &["status", "--json"])).1;
    // Now the stock job's upstream fails every request.
    let upstream = MockServer::start().await;
    support::mount_yahoo_session(&upstream).await;
    Mock::given(path("/v7/finance/quote"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&upstream)
        .await;
    let (code, _, err) = run(fcw_on(&server, &["once", "stock", "--force"])
        .env("FCW_PROVIDER__STOCK", "yahoo")
        .env("FCW_PROVIDER__YAHOO__BASE_URL", upstream.uri())
        .env(
            "FCW_PROVIDER__YAHOO__COOKIE_URL",
            format!("{}/cookie", upstream.uri()),
        )
        .env("FCW_PROVIDER__MAX_RETRIES", "0"));
    assert_eq!(code, Some(1), "{err}");

    let (code, report) = status_json(&mut fcw_on(&server, &["status", "--json"]));
    let stock = job(&report, "stock");
    assert_eq!(stock["last_run"]["outcome"], "failed");
    assert_eq!(stock["last_run"]["counts"]["failed"], 4);
    assert!(
        stock["last_run"]["reason"]
            .as_str()
            .unwrap()
            .contains("4 of 4 fetched tickers failed"),
        "{stock:#}"
    );
    // One failure within the schedule is not yet a problem; the success it had stays recorded.
    assert_eq!(
        stock["last_success_at"],
        job(&before, "stock")["last_success_at"]
    );
    assert_eq!((code, &stock["healthy"]), (Some(0), &Value::Bool(true)));
    // Its values are still cached: a failed run writes nothing.
    assert_eq!(coverage(&report, "stock")["present"], 4);

    let (_, text, _) = run(&mut fcw_on(&server, &["status"]));
    assert!(
        text.contains("  stock: last run failed: 4 of 4 fetched tickers failed"),
        "{text}"
    );
    let row = text.lines().find(|l| l.starts_with("stock ")).unwrap();
    assert!(row.contains(" failed "), "{row}");
}

#[tokio::test]
async fn a_lock_held_by_another_process_is_named_and_its_skipped_run_leaves_the_record_alone() {
    let server = server_with_watchlist().await;
    once_all(&server);
    let before = status_json(&mut fcw_on(&server, &["status", "--json"])).1;
    let since = chrono::Utc::now() - chrono::Duration::seconds(90);
    let holder = serde_json::json!({
        "token": "0123456789abcdef", "host": "worker-7", "pid": 4242,
        "since": since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    let _: () = conn(&server)
        .await
        .set_ex("finance:lock:job:options", holder.to_string(), 60)
        .await
        .unwrap();
    let (code, _, err) = run(&mut fcw_on(&server, &["once", "options"]));
    assert_eq!(
        code,
        Some(0),
        "a run skipped for the lock is not a failure: {err}"
    );

    let (_, report) = status_json(&mut fcw_on(&server, &["status", "--json"]));
    let options = job(&report, "options");
    assert_eq!(
        options["locks"],
        serde_json::json!([{"key": "finance:lock:job:options", "host": "worker-7", "pid": 4242,
                            "since": holder["since"]}])
    );
    assert_eq!(options["last_run"], job(&before, "options")["last_run"]);
    let (_, text, _) = run(&mut fcw_on(&server, &["status"]));
    let row = text.lines().find(|l| l.starts_with("options ")).unwrap();
    assert!(row.contains("worker-7:4242 for 1m 3"), "{row}");
}

#[tokio::test]
async fn missing_and_expiring_keys_are_counted_and_named() {
    let server = server_with_watchlist().await;
    once_all(&server);
    let mut c = conn(&server).await;
    let _: () = redis::pipe()
        .del("finance:cache:stock:MSFT")
        .del("finance:cache:options:MSFT")
        .del("finance:cache:options:AAPL")
        .pexpire("finance:cache:earnings:GOOG", 30_000)
        .persist("finance:cache:earnings:AMZN")
        .query_async(&mut c)
        .await
        .unwrap();
    let (_, report) = status_json(&mut fcw_on(&server, &["status", "--json"]));
    let stock = coverage(&report, "stock");
    assert_eq!(
        (stock["present"].as_u64(), stock["missing"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(stock["missing_tickers"], serde_json::json!(["MSFT"]));
    let options = coverage(&report, "options");
    assert_eq!(
        options["missing_tickers"],
        serde_json::json!(["AAPL", "MSFT"])
    );
    let earnings = coverage(&report, "earnings");
    assert_eq!(
        (
            earnings["present"].as_u64(),
            earnings["expiring_within_1m"].as_u64()
        ),
        (Some(4), Some(1))
    );
    assert_eq!(earnings["ttl_histogram"]["under_1m"], 1);
    assert_eq!(earnings["ttl_histogram"]["no_expiry"], 1);
    let buckets: u64 = earnings["ttl_histogram"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(buckets, 4, "every present key is in one bucket");

    let (_, text, _) = run(&mut fcw_on(&server, &["status"]));
    let row = text
        .lines()
        .find(|l| l.starts_with("options ") && l.contains("AAPL"))
        .unwrap();
    assert!(row.ends_with("AAPL, MSFT"), "{row}");
}

#[tokio::test]
async fn exit_code_is_1_when_an_enabled_job_never_or_not_recently_succeeded() {
    let server = server_with_watchlist().await;
    // Nothing ran yet.
    let (code, report) = status_json(&mut fcw_on(&server, &["status", "--json"]));
    assert_eq!((code, &report["healthy"]), (Some(1), &Value::Bool(false)));
    assert_eq!(job(&report, "stock")["problem"], "never succeeded");
    let (code, _, err) = run(&mut fcw_on(&server, &["status"]));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("unhealthy: job stock: never succeeded"),
        "{err}"
    );

    once_all(&server);
    assert_eq!(run(&mut fcw_on(&server, &["status"])).0, Some(0));
    // The stock job (every 5 minutes, 4 minute timeout) last succeeded 20 minutes ago.
    let long_ago = chrono::Utc::now() - chrono::Duration::minutes(20);
    let _: () = conn(&server)
        .await
        .hset(
            "finance:warmer:run:stock",
            "last_success_at",
            long_ago.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        )
        .await
        .unwrap();
    let (code, report) = status_json(&mut fcw_on(&server, &["status", "--json"]));
    assert_eq!(code, Some(1));
    let stock = job(&report, "stock");
    assert_eq!(stock["healthy"], false);
    assert!(
        stock["problem"]
            .as_str()
            .unwrap()
            .contains("two scheduled runs have passed"),
        "{stock:#}"
    );
    assert_eq!(job(&report, "options")["healthy"], true);
    let (_, text, _) = run(&mut fcw_on(&server, &["status"]));
    assert!(
        text.lines().next().unwrap().ends_with("· UNHEALTHY"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("stock ") && l.contains(" stale ")),
        "{text}"
    );
    // A disabled job does not count.
    let (code, report) = status_json(
        fcw_on(&server, &["status", "--json"]).env("FCW_JOBS__STOCK__ENABLED", "false"),
    );
    assert_eq!(
        (code, &job(&report, "stock")["healthy"]),
        (Some(0), &Value::Bool(true))
    );
}

#[tokio::test]
async fn status_exits_3_when_redis_is_down() {
    let mut server = redis().await;
    server.stop();
    let (code, out, err) = run(&mut fcw_on(&server, &["status"]));
    assert_eq!(code, Some(3), "{err}");
    assert!(out.is_empty());
    let address = format!("127.0.0.1:{}", server.port());
    assert!(err.contains(&address), "names the server: {err}");
}

#[tokio::test]
async fn a_cold_cache_is_unhealthy_even_when_every_job_succeeded() {
    let server = server_with_watchlist().await;
    once_all(&server);
    let mut c = conn(&server).await;
    for t in ["AAPL", "MSFT", "GOOG", "AMZN"] {
        let _: () = c.del(format!("finance:cache:stock:{t}")).await.unwrap();
    }
    // One options key of four gone: 75 %, under the default 95 %.
    let _: () = c.del("finance:cache:options:MSFT").await.unwrap();
    let (code, report) = status_json(&mut fcw_on(&server, &["status", "--json"]));
    assert_eq!((code, &report["healthy"]), (Some(1), &Value::Bool(false)));
    assert_eq!(
        job(&report, "stock")["healthy"],
        true,
        "the job itself is fine"
    );
    assert_eq!(
        coverage(&report, "stock")["problem"],
        "0 of 4 watchlist tickers cached (0 %), under status.min_coverage (95 %)"
    );
    assert_eq!(
        coverage(&report, "options")["problem"],
        "3 of 4 watchlist tickers cached (75 %), under status.min_coverage (95 %)"
    );
    assert_eq!(coverage(&report, "earnings")["problem"], Value::Null);
    let (code, out, err) = run(&mut fcw_on(&server, &["status"]));
    assert_eq!(code, Some(1));
    assert!(
        out.contains("  stock: 0 of 4 watchlist tickers cached"),
        "{out}"
    );
    assert!(err.contains("coverage stock: 0 of 4"), "{err}");
    // A disabled kind is not counted, and the threshold is the operator's.
    let (code, _, err) = run(fcw_on(&server, &["status"])
        .env("FCW_JOBS__STOCK__ENABLED", "false")
        .env("FCW_STATUS__MIN_COVERAGE", "0.75"));
    assert_eq!(code, Some(0), "{err}");
}
