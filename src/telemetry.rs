//! Logging, set up once per process: JSON lines or pretty text on stderr.
//!
//! stderr because journald and Kubernetes collect it; stdout is reserved for command output
//! (`check-config`, `demo`, ...) so that it can be piped. Context such as `job`, `run_id` and
//! `ticker` travels in span fields, which the JSON format puts on every line.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber. `RUST_LOG`, when set, wins over `log.level`.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        // log.level was validated when the config loaded; a bad RUST_LOG falls back to it.
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let installed = match settings.format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(|| crate::progress::LogWriter),
            )
            .try_init(),
    };
    // A second call (only possible in tests) keeps the first subscriber.
    drop(installed);
}
