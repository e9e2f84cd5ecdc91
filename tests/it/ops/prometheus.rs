//! Monitoring as an operator runs it: `promtool` on a real scrape, and a real Prometheus
//! scraping a real daemon, with every shipped alert expression (its threshold removed) and every
//! dashboard query evaluated against what Prometheus stored. Each must select the daemon's own
//! series, grouped by the daemon's own label values: nothing arrives as `exported_job`.

use super::*;

use std::path::Path;

use support::tool_or_skip;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The jobs the daemon below runs: the values a result grouped by `job_name` may carry.
const JOBS: [&str; 4] = ["stock", "options", "earnings", "integrity"];

/// Whether `tool --version` runs here; if not, the check is skipped (or fails in CI).
fn installed(tool: &str) -> bool {
    let found = std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    tool_or_skip(found, tool, "FCW_REQUIRE_DEPLOY_TOOLS")
}

#[tokio::test]
async fn a_scrape_passes_promtool_with_the_alerted_series_there_from_the_start() {
    let server = redis().await;
    let mut env = replayed(vec![("FCW_REDIS__URL", server.url())]);
    // Keyed providers in the chains name their breakers; replay has none.
    env.push(("FCW_PROVIDER__STOCK", "polygon,replay".into()));
    env.push(("FCW_PROVIDER__POLYGON__API_KEY", "pk_unused".into()));
    // A port nothing listens on: the chain falls through to replay at once.
    env.push((
        "FCW_PROVIDER__POLYGON__BASE_URL",
        format!("http://127.0.0.1:{}", free_port()),
    ));
    env.push(("FCW_JOBS__INTEGRITY__ENABLED", "false".into()));
    env.extend(support::START_UP_RUNS_ONLY.map(|(k, v)| (k, v.to_owned())));
    let (child, base) = daemon(&env);
    let metrics = eventually(30, "a first scrape", || async {
        let (_, text) = get(&format!("{base}/metrics")).await?;
        text.contains("fcw_runs_total").then_some(text)
    })
    .await;
    drop(child);
    // Zero before anything failed: "absent" does not stand in for "healthy".
    for job in ["stock", "options", "earnings"] {
        for outcome in ["failed", "interrupted", "skipped_lock"] {
            let series = format!(r#"fcw_runs_total{{job_name="{job}",outcome="{outcome}"}}"#);
            assert_eq!(sample(&metrics, &series), Some(0.0), "{series}: {metrics}");
        }
    }
    assert!(
        !metrics.contains(r#"job_name="integrity""#),
        "a disabled job has no series"
    );
    assert_eq!(
        sample(&metrics, r#"fcw_circuit_breaker_open{provider="polygon"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &metrics,
            r#"fcw_circuit_breaker_opened_total{provider="polygon"}"#
        ),
        Some(0.0)
    );
    // No label a scrape would rename (`job`, `instance` become `exported_*`).
    for line in metrics.lines().filter(|l| l.starts_with("fcw_")) {
        assert!(
            !line.contains("{job=") && !line.contains(",job=") && !line.contains("instance="),
            "{line}"
        );
    }
    if installed("promtool") {
        use std::io::Write;
        let mut check = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        check
            .stdin
            .take()
            .unwrap()
            .write_all(metrics.as_bytes())
            .unwrap();
        let out = check.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The `expr`s of a rules file: one-line values and `|` blocks.
fn rule_exprs(rules: &str) -> Vec<(String, String)> {
    let mut exprs = Vec::new();
    let mut alert = String::new();
    let mut lines = rules.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("- alert: ") {
            alert = name.trim().to_owned();
        }
        let Some(value) = trimmed.strip_prefix("expr: ") else {
            continue;
        };
        if value.trim() != "|" {
            exprs.push((alert.clone(), value.trim().to_owned()));
            continue;
        }
        let indent = line.len() - trimmed.len();
        let mut block = Vec::new();
        while let Some(next) = lines.peek() {
            if next.len() - next.trim_start().len() <= indent {
                break;
            }
            block.push(lines.next().unwrap().trim().to_owned());
        }
        exprs.push((alert.clone(), block.join(" ")));
    }
    exprs
}

/// An alert expression without its threshold: what it compares, which must select series
/// whether or not the alert fires. Of `a or absent(b)`, the `a`.
fn without_threshold(expr: &str) -> String {
    let expr = expr.split(" or ").next().unwrap_or(expr).trim();
    for op in [" >= ", " <= ", " == ", " > ", " < "] {
        if let Some((lhs, rhs)) = expr.rsplit_once(op)
            && rhs.trim().parse::<f64>().is_ok()
        {
            return lhs.trim().to_owned();
        }
    }
    expr.to_owned()
}

async fn query(prometheus: &str, expr: &str) -> Vec<serde_json::Value> {
    let url =
        reqwest::Url::parse_with_params(&format!("{prometheus}/api/v1/query"), &[("query", expr)])
            .unwrap();
    let body = reqwest::get(url).await.unwrap().text().await.unwrap();
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["status"], "success", "{expr}: {reply}");
    reply["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_real_prometheus_scraping_the_daemon_selects_its_series_in_every_alert_and_panel() {
    if !installed("prometheus") {
        return;
    }
    // A daemon whose start-up runs leave every series a panel shows: a retried request (the
    // first quote answer is a 503), rate-limit waits (one request a second), an orphan removed.
    let server = redis().await;
    let mut c = conn(&server).await;
    let _: () = redis::pipe()
        .sadd("finance:watchlist", &["AAPL", "MSFT"])
        .sadd("finance:positions:index", &["1", "2"])
        .set("finance:position:1", "{}")
        .query_async(&mut c)
        .await
        .unwrap();
    let (_upstream, mut env) = retrying_upstream(&server).await;
    env.push(("FCW_PROVIDER__OPTIONS", "replay".into()));
    let (_daemon, base) = daemon(&env);
    let target = base.trim_start_matches("http://").to_owned();
    // A warm request, for the latency histogram an alert reads.
    let _: String = c
        .xadd("finance:warmer:requests", "*", &[("ticker", "AAPL")])
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             scrape_configs:\n  - job_name: finance-cache-warmer\n    \
             static_configs: [{{targets: [\"{target}\"]}}]\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let _prometheus = tokio::process::Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let prometheus = format!("http://127.0.0.1:{port}");
    // Stored: the start-up runs of every job, the coverage gauges, and enough scrapes for a
    // one-minute rate.
    eventually(
        60,
        "Prometheus to have scraped the start-up runs",
        || async {
            let ready = reqwest::get(format!("{prometheus}/-/ready")).await.ok()?;
            ready.status().is_success().then_some(())?;
            let scrapes = query(
                &prometheus,
                "count_over_time(fcw_cache_keys{kind=\"stock\",state=\"present\"}[1m])",
            )
            .await;
            let ok = query(&prometheus, "fcw_runs_total{outcome=\"ok\"} > 0").await;
            (scrapes.first()?["value"][1].as_str()?.parse::<f64>().ok()? >= 4.0
                && ok.len() == JOBS.len())
            .then_some(())
        },
    )
    .await;

    let rules =
        std::fs::read_to_string(Path::new(ROOT).join("deploy/prometheus/alerts.yml")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(ROOT).join("deploy/grafana/dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut exprs: Vec<(String, String)> = rule_exprs(&rules)
        .into_iter()
        .map(|(alert, e)| (format!("alert {alert}"), without_threshold(&e)))
        .collect();
    assert_eq!(exprs.len(), 7, "{exprs:?}");
    let mut panels = Vec::new();
    crate::deploy::panel_exprs(dashboard["panels"].as_array().unwrap(), &mut panels);
    assert!(panels.len() >= 15, "{panels:?}");
    exprs.extend(panels.into_iter().map(|(title, e)| {
        (
            format!("panel {title:?}"),
            e.replace("$__rate_interval", "1m"),
        )
    }));
    for (what, expr) in &exprs {
        let result = query(&prometheus, expr).await;
        assert!(!result.is_empty(), "{what}: `{expr}` selects nothing");
        for series in &result {
            let labels = series["metric"].as_object().unwrap();
            assert!(
                !labels.keys().any(|k| k.starts_with("exported_")),
                "{what}: {series}"
            );
            if expr.contains("by (job_name") {
                let job = labels["job_name"].as_str().unwrap();
                assert!(JOBS.contains(&job), "{what}: grouped by job_name {job:?}");
            }
            if expr.contains("by (provider") {
                assert_eq!(labels["provider"], "yahoo", "{what}: {series}");
            }
        }
    }
    // The scrape's own labels sit beside the daemon's.
    let runs = query(
        &prometheus,
        "fcw_runs_total{job_name=\"stock\",outcome=\"ok\"}",
    )
    .await;
    assert_eq!(runs[0]["metric"]["job"], "finance-cache-warmer");
    assert_eq!(runs[0]["metric"]["instance"], target.as_str());
}
