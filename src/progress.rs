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

/// Every visible bar of the process hangs here, so log lines can be written around all of them.
static BARS: LazyLock<MultiProgress> = LazyLock::new(MultiProgress::new);

/// What a run tells a person watching it. The runner hands one to each run; the job reports
/// through it and never knows whether anything is drawn.
pub trait Progress: Send + Sync {
    /// Whether anyone is watching: work done only for the display (counting the watchlist) is
    /// skipped otherwise.
    fn watched(&self) -> bool;
    /// How many items the run expects to go through.
    fn set_total(&self, total: u64);
    /// `done` more items went through; `failed` is the run's failures so far.
    fn advance(&self, done: u64, failed: u64);
}

/// Whether this process should draw bars: a terminal on stdout and text logs.
pub fn wanted(log_format: crate::config::LogFormat) -> bool {
    use std::io::IsTerminal;
    log_format == crate::config::LogFormat::Pretty && io::stdout().is_terminal()
}

/// What a bar counts: a warming job counts tickers against the watchlist's size, which it sets
/// when it starts; the integrity job counts index members, whose total nobody knows up front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Tickers,
    Members,
}

/// A run's bar, prefixed with the job's name.
pub struct Bar(ProgressBar);

impl Bar {
    /// A bar for the run of `job`; hidden (every call a no-op) unless `visible`.
    pub fn new(job: &str, unit: Unit, visible: bool) -> Bar {
        if !visible {
            return Bar(ProgressBar::hidden());
        }
        let template = match unit {
            Unit::Tickers => "{prefix:>9} [{bar:30}] {pos}/{len} tickers  {rate}  ETA {eta}  {msg}",
            Unit::Members => "{prefix:>9} {spinner} {pos} members checked  {rate}  {msg}",
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
        Bar(BARS.add(
            ProgressBar::new(0)
                .with_style(style)
                .with_prefix(job.to_owned()),
        ))
    }

    /// Leaves the bar showing how the run ended: the count reached (a failed run's bar stays
    /// where it stopped), the outcome and the failures.
    pub fn finish(&self, outcome: &str, failed: u64) {
        let message = format!("{outcome}, {failed} failed");
        if outcome == "ok" {
            self.0.set_length(self.0.position());
            self.0.finish_with_message(message);
        } else {
            self.0.abandon_with_message(message);
        }
    }
}

impl Progress for Bar {
    fn watched(&self) -> bool {
        !self.0.is_hidden()
    }

    fn set_total(&self, total: u64) {
        self.0.set_length(total);
    }

    fn advance(&self, done: u64, failed: u64) {
        self.0.inc(done);
        if failed > 0 {
            self.0.set_message(format!("{failed} failed"));
        }
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
