//! Progress bars for runs started by hand (`once`, `demo`): tickers done of the watchlist, rate,
//! ETA and failures so far, drawn on stderr.
//!
//! Only for a person at a terminal: with JSON logs or when stdout is not a terminal the runner
//! never asks for a bar, and indicatif itself draws nothing when stderr is not one. Text log
//! lines go through [`LogWriter`], which lifts the bars out of the way while a line is written,
//! so the two never garble each other.

use std::io::{self, Write};
use std::sync::LazyLock;

use indicatif::{MultiProgress, ProgressBar, ProgressState, ProgressStyle};

use crate::jobs::JobName;

/// Every visible bar of the process hangs here, so log lines can be written around all of them.
static BARS: LazyLock<MultiProgress> = LazyLock::new(MultiProgress::new);

/// Whether this process should draw bars: a terminal on stdout and text logs.
pub fn wanted(log_format: crate::config::LogFormat) -> bool {
    use std::io::IsTerminal;
    log_format == crate::config::LogFormat::Pretty && io::stdout().is_terminal()
}

/// A run's bar, prefixed with the job's name; hidden (every call a no-op) unless `visible`.
/// A warming job counts tickers against the watchlist's size, which it sets when it starts;
/// the integrity job counts index members, whose total nobody knows up front.
pub fn bar(job: JobName, visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let template = match job.cache_kind() {
        Some(_) => "{prefix:>9} [{bar:30}] {pos}/{len} tickers  {rate}  ETA {eta}  {msg}",
        None => "{prefix:>9} {spinner} {pos} members checked  {rate}  {msg}",
    };
    let style = ProgressStyle::with_template(template)
        .expect("the templates are valid")
        .with_key(
            "rate",
            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0}/s", state.per_sec());
            },
        )
        .progress_chars("=> ");
    BARS.add(
        ProgressBar::new(0)
            .with_style(style)
            .with_prefix(job.as_str()),
    )
}

/// Leaves the bar showing how the run ended: the count reached (a failed run's bar stays where
/// it stopped), the outcome and the failures.
pub fn finish(bar: &ProgressBar, outcome: &str, failed: u64) {
    let message = format!("{outcome}, {failed} failed");
    if outcome == "ok" {
        bar.set_length(bar.position());
        bar.finish_with_message(message);
    } else {
        bar.abandon_with_message(message);
    }
}

/// The text log format's writer: stderr, with the bars cleared while a line is written.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        BARS.suspend(|| io::stderr().write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}
