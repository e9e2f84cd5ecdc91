//! The Grafana dashboard, the alert rules and the metrics table query only what the daemon
//! exports.

use super::*;

/// The `fcw_*` series an expression or a text names, with a histogram's `_bucket`, `_sum` and
/// `_count` suffixes taken back to the histogram's name.
fn series_named(text: &str) -> Vec<String> {
    use finance_cache_warmer::metrics::{Kind, SERIES};
    let mut found = Vec::new();
    for (at, _) in text.match_indices("fcw_") {
        if text[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                let base = name.strip_suffix(suffix)?;
                SERIES
                    .iter()
                    .any(|(n, kind, _)| *n == base && *kind == Kind::Histogram)
                    .then(|| base.to_owned())
            })
            .unwrap_or(name);
        found.push(base);
    }
    found
}

fn exported() -> Vec<&'static str> {
    finance_cache_warmer::metrics::SERIES
        .iter()
        .map(|(name, _, _)| *name)
        .collect()
}

pub(crate) fn panel_exprs(panels: &[serde_json::Value], exprs: &mut Vec<(String, String)>) {
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("?").to_owned();
        if let Some(nested) = panel["panels"].as_array() {
            panel_exprs(nested, exprs);
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push((title.clone(), target["expr"].as_str().unwrap().to_owned()));
        }
    }
}

#[test]
fn every_metric_the_grafana_dashboard_queries_is_one_the_daemon_exports() {
    let text =
        std::fs::read_to_string(Path::new(ROOT).join("deploy/grafana/dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        dashboard["__inputs"][0]["name"], "DS_PROMETHEUS",
        "importable with a data source choice"
    );
    let mut exprs = Vec::new();
    panel_exprs(dashboard["panels"].as_array().unwrap(), &mut exprs);
    let exported = exported();
    let mut used = std::collections::BTreeSet::new();
    for (title, expr) in &exprs {
        let names = series_named(expr);
        assert!(
            !names.is_empty(),
            "panel {title:?} queries no fcw_ series: {expr}"
        );
        for name in names {
            assert!(
                exported.contains(&name.as_str()),
                "panel {title:?} queries {name}, which the daemon does not export: {expr}"
            );
            used.insert(name);
        }
        // Every replica counts the same Redis: adding their coverage up would show 200 %.
        if ["fcw_cache_keys", "fcw_watchlist_tickers"]
            .iter()
            .any(|gauge| expr.contains(gauge))
        {
            assert!(
                !expr.contains("sum"),
                "panel {title:?} adds up the replicas' coverage: {expr}"
            );
        }
    }
    // What the dashboard is for: runs, durations, upstream traffic and errors, retries and
    // rate-limit waits, cache coverage, the age of the last success.
    for needed in [
        "fcw_runs_total",
        "fcw_run_duration_seconds",
        "fcw_upstream_requests_total",
        "fcw_upstream_retries_total",
        "fcw_rate_limit_waits_total",
        "fcw_cache_keys",
        "fcw_watchlist_tickers",
        "fcw_last_success_timestamp_seconds",
    ] {
        assert!(used.contains(needed), "no panel shows {needed}");
    }
}

#[test]
fn the_exported_series_are_the_ones_recorded_and_the_readme_documents() {
    let exported = exported();
    // Every `counter!`/`gauge!`/`histogram!` in the metrics module names a listed series, and
    // every listed series is recorded somewhere there.
    let source = std::fs::read_to_string(Path::new(ROOT).join("src/metrics.rs")).unwrap();
    let stats = source.as_str();
    let recorded: std::collections::BTreeSet<String> =
        ["counter!(\"", "gauge!(\"", "histogram!(\""]
            .iter()
            .flat_map(|mac| {
                stats
                    .match_indices(mac)
                    .map(move |(at, _)| &stats[at + mac.len()..])
            })
            .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
            .collect();
    let listed: std::collections::BTreeSet<String> =
        exported.iter().map(|n| (*n).to_owned()).collect();
    assert_eq!(recorded, listed);
    // The metrics table and alert rules (docs/monitoring.md) name listed series only, and the table names them all.
    let readme = std::fs::read_to_string(Path::new(ROOT).join("docs/monitoring.md")).unwrap();
    for name in series_named(&readme) {
        assert!(
            exported.contains(&name.as_str()),
            "docs/monitoring.md names {name}, which is not exported"
        );
    }
    for name in &exported {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "the metrics table of docs/monitoring.md lacks {name}"
        );
    }
}

#[test]
fn the_shipped_alert_rules_pass_promtool_and_their_unit_tests() {
    if !available("promtool") {
        return;
    }
    let dir = Path::new(ROOT).join("deploy/prometheus");
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // They select the daemon's own labels, never the `job` Prometheus attaches, for its series.
    let rules = std::fs::read_to_string(dir.join("alerts.yml")).unwrap();
    for name in series_named(&rules) {
        assert!(
            exported().contains(&name.as_str()),
            "alerts.yml names {name}, which is not exported"
        );
    }
    assert!(
        !rules.contains("by (job)") && !rules.contains("fcw_last_success_timestamp_seconds{job=")
    );
}
