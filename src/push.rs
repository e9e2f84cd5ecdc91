//! Pushes a `once` run's metrics to a Prometheus Pushgateway, so CronJob runs, which end before
//! any scrape, are seen too.
//!
//! Each job's series go to their own group, `PUT /metrics/job/<job>`, replacing what that job's
//! previous run pushed. The Pushgateway overwrites a pushed `job` label with the group's, so a
//! series is pushed only under the group of its own `job` label; series without one (upstream
//! requests by provider, Redis errors) go with the job of a single-job run, or to `job/all`.

use std::time::Duration;

use crate::config::HttpUrl;
use crate::metrics;

/// How long one push may take: a Pushgateway that hangs must not keep a finished CronJob pod.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[error("telemetry.pushgateway_url: pushing the {group} metrics to {url} failed: {reason}")]
pub struct PushError {
    group: String,
    url: String,
    reason: String,
}

/// Pushes `exposition` (the Prometheus text format) for a run of `jobs`, one group per job.
pub async fn push(gateway: &HttpUrl, exposition: &str, jobs: &[&str]) -> Result<(), PushError> {
    let client = reqwest::Client::builder()
        .timeout(PUSH_TIMEOUT)
        .build()
        .map_err(|e| error(gateway, "any", e.to_string()))?;
    for (group, body) in groups(exposition, jobs) {
        let url = gateway
            .0
            .join(&format!("metrics/job/{group}"))
            .map_err(|e| error(gateway, &group, e.to_string()))?;
        let reply = client
            .put(url)
            .header("Content-Type", "text/plain; version=0.0.4")
            .body(body)
            .send()
            .await
            .map_err(|e| error(gateway, &group, e.without_url().to_string()))?;
        if !reply.status().is_success() {
            let status = reply.status();
            let text = reply.text().await.unwrap_or_default();
            return Err(error(gateway, &group, format!("{status}: {}", text.trim())));
        }
    }
    Ok(())
}

fn error(gateway: &HttpUrl, group: &str, reason: String) -> PushError {
    PushError {
        group: group.to_owned(),
        url: gateway.0.as_str().to_owned(),
        reason,
    }
}

/// The exposition split into one body per group: each job's series, and the job-less ones with
/// the only job or under `all`. `# HELP`/`# TYPE` lines go with every group that has a sample of
/// their family.
fn groups(exposition: &str, jobs: &[&str]) -> Vec<(String, String)> {
    let jobless = match jobs {
        [only] => (*only).to_owned(),
        _ => "all".to_owned(),
    };
    let mut groups: Vec<(String, String)> = jobs
        .iter()
        .map(|j| ((*j).to_owned(), String::new()))
        .collect();
    if !groups.iter().any(|(g, _)| *g == jobless) {
        groups.push((jobless.clone(), String::new()));
    }
    // Comment lines of the current family, written to a group before its first sample there.
    let mut family: Vec<&str> = Vec::new();
    let mut started: Vec<bool> = vec![false; groups.len()];
    let mut in_samples = false;
    for line in exposition.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with('#') {
            // A comment after samples starts the next family.
            if in_samples {
                family.clear();
                started.iter_mut().for_each(|s| *s = false);
                in_samples = false;
            }
            family.push(line);
            continue;
        }
        in_samples = true;
        let group = job_label(line).unwrap_or(&jobless);
        let Some(at) = groups.iter().position(|(g, _)| g == group) else {
            continue; // a job this run did not run
        };
        let body = &mut groups[at].1;
        if !started[at] {
            for comment in &family {
                body.push_str(comment);
                body.push('\n');
            }
            started[at] = true;
        }
        body.push_str(line);
        body.push('\n');
    }
    groups.retain(|(_, body)| !body.is_empty());
    groups
}

/// The value of a sample line's job label ([`metrics::JOB_LABEL`]).
fn job_label(line: &str) -> Option<&str> {
    let labels = &line[line.find('{')? + 1..line.find('}')?];
    let key = format!("{}=\"", metrics::JOB_LABEL);
    let at = labels
        .match_indices(key.as_str())
        .find(|(i, _)| *i == 0 || labels.as_bytes()[i - 1] == b',')?
        .0;
    let value = &labels[at + key.len()..];
    Some(&value[..value.find('"')?])
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP fcw_runs_total Runs.\n# TYPE fcw_runs_total counter\n\
        fcw_runs_total{job_name=\"stock\",outcome=\"ok\"} 1\n\
        fcw_runs_total{job_name=\"options\",outcome=\"failed\"} 1\n\n\
        # HELP fcw_redis_errors_total Errors.\n# TYPE fcw_redis_errors_total counter\n\
        fcw_redis_errors_total 2\n\
        # HELP fcw_tickers_total T.\n# TYPE fcw_tickers_total counter\n\
        fcw_tickers_total{outcome=\"seen\",job_name=\"stock\"} 3\n";

    #[test]
    fn each_series_goes_to_the_group_of_its_own_job() {
        let g = groups(TEXT, &["stock", "options"]);
        let names: Vec<&str> = g.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["stock", "options", "all"]);
        assert_eq!(
            g[0].1,
            "# HELP fcw_runs_total Runs.\n# TYPE fcw_runs_total counter\n\
             fcw_runs_total{job_name=\"stock\",outcome=\"ok\"} 1\n\
             # HELP fcw_tickers_total T.\n# TYPE fcw_tickers_total counter\n\
             fcw_tickers_total{outcome=\"seen\",job_name=\"stock\"} 3\n"
        );
        assert!(g[1].1.contains("job_name=\"options\"") && !g[1].1.contains("stock"));
        assert!(g[2].1.ends_with("fcw_redis_errors_total 2\n"), "{}", g[2].1);
    }

    #[test]
    fn a_single_job_run_takes_the_jobless_series_and_no_other_job() {
        let g = groups(TEXT, &["stock"]);
        assert_eq!(g.len(), 1);
        assert!(g[0].1.contains("fcw_redis_errors_total 2"));
        assert!(!g[0].1.contains("options"));
    }
}
