//! `status`: the report on stdout, and exit 1 (with the problems logged) when the cache is not
//! warm.

use std::io::Write;

use chrono::Utc;

use crate::commands::common::{AppError, connect};
use crate::config::Settings;
use crate::shutdown::Shutdown;

/// `status`: the report on stdout, then exit 1 (with the problems logged) if a job is unhealthy.
pub async fn status(
    settings: &Settings,
    json: bool,
    shutdown: &Shutdown,
    out: &mut dyn Write,
) -> Result<(), AppError> {
    let store = connect(settings, shutdown).await?;
    let now = Utc::now();
    let report = crate::status::gather(settings, &store, now).await?;
    if json {
        serde_json::to_writer(&mut *out, &report).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        crate::status::render(&report, settings.market.timezone.0, now, out)?;
    }
    out.flush()?;
    if report.healthy {
        Ok(())
    } else {
        let jobs = report
            .jobs
            .iter()
            .filter_map(|j| Some(format!("job {}: {}", j.job, j.problem.as_ref()?)));
        let kinds = report
            .coverage
            .iter()
            .filter_map(|c| Some(format!("coverage {}: {}", c.kind, c.problem.as_ref()?)));
        Err(AppError::Unhealthy(jobs.chain(kinds).collect()))
    }
}
