//! The jobs: what one run of each does, and what it reports.
//!
//! A job is a small type with a name and a `run`; the [`crate::runner`] owns everything around
//! a run (lock, timeout, panics, shutdown, the summary line and metrics), for the daemon and for
//! `once` alike.
//!
//! # Layout
//! - [`job`]: the `Job` trait, the run's context and report.
//! - [`warm`]: the `stock`, `options` and `earnings` jobs.
//! - [`integrity`]: the `integrity` job.

pub mod integrity;
pub mod job;
pub mod warm;

use std::sync::Arc;

pub use job::{
    FAILURE_SAMPLES, Job, JobError, JobName, RunContext, RunOptions, RunReport, Shared,
    WriteProgress,
};

/// The job type for a name.
pub fn named(name: JobName) -> Arc<dyn Job> {
    match name.cache_kind() {
        Some(kind) => Arc::new(warm::WarmJob::new(kind)),
        None => Arc::new(integrity::IntegrityJob),
    }
}
