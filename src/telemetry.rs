//! Logging, set up once per process: JSON lines or pretty text on stderr, and traces over OTLP
//! when configured ([`crate::traces`]).
//!
//! stderr because journald and Kubernetes collect it; stdout is reserved for command output
//! (`check-config`, `demo`, ...) so that it can be piped. Context such as `job`, `run_id` and
//! `ticker` travels in span fields, which the JSON format puts on every line. When stderr is
//! the journal, each line starts with its syslog priority (`<3>` error ... `<7>` debug, the
//! sd-daemon convention), or journald would file every line, errors included, as info.

use std::io::{self, IsTerminal, Write};

use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use tracing_subscriber::Layer;
use tracing_subscriber::filter::{FilterExt, LevelFilter, filter_fn};

use crate::config::{HttpUrl, LogFormat, LogSettings};
use crate::traces::{self, Traces};

/// `format` as it will be written: `auto` is pretty only when stderr is a terminal and not
/// systemd's journal.
pub fn effective_format(format: LogFormat) -> LogFormat {
    format.resolved(io::stderr().is_terminal() && !stderr_is_the_journal())
}

/// Installs the global subscriber, exporting traces to `otlp` when given. `RUST_LOG`, when set,
/// wins over `log.level`. Call it before the async runtime starts.
pub fn init(settings: &LogSettings, otlp: Option<&HttpUrl>) -> Traces {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        // log.level was validated when the config loaded; a bad RUST_LOG falls back to it.
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (exporter, traces) = match otlp.map(|url| traces::exporter(&url.0)) {
        Some(Ok((layer, traces))) => (Some(layer), traces),
        Some(Err(e)) => {
            eprintln!("traces are off: {e}");
            (None, Traces::off())
        }
        None => (None, Traces::off()),
    };
    // Traces take every span at info and above whatever `log.level` says, so quieter logs do
    // not turn the traces off.
    let registry = tracing_subscriber::registry()
        .with(exporter.map(|layer| layer.with_filter(LevelFilter::INFO)));
    // The logs follow `log.level`; the spans inside a run are for traces, so a log line keeps
    // naming its run.
    let logged = move || filter.and(filter_fn(|meta| meta.target() != traces::TARGET));
    let journal = stderr_is_the_journal();
    let writer = |inner: BoxMakeWriter| match journal {
        true => BoxMakeWriter::new(Prioritised(inner)),
        false => inner,
    };
    let installed = match effective_format(settings.format) {
        LogFormat::Json | LogFormat::Auto => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(writer(BoxMakeWriter::new(io::stderr)))
                    .with_filter(logged()),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(io::stderr().is_terminal() && !journal)
                    .with_writer(writer(BoxMakeWriter::new(|| crate::progress::LogWriter)))
                    .with_filter(logged()),
            )
            .try_init(),
    };
    // A second call (only possible in tests) keeps the first subscriber.
    drop(installed);
    traces
}

/// Whether stderr is the stream systemd connected to the journal: `$JOURNAL_STREAM` holds its
/// device and inode, and a redirected stderr (`2>file` in the unit's command) no longer matches.
fn stderr_is_the_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|f| f.metadata())
        .is_ok_and(|m| (m.dev(), m.ino()) == (dev, ino))
}

/// Starts every log line with its syslog priority.
struct Prioritised(BoxMakeWriter);

impl<'a> MakeWriter<'a> for Prioritised {
    type Writer = Prefixed<<BoxMakeWriter as MakeWriter<'a>>::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        Prefixed::new(b"<6>", self.0.make_writer())
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        let prefix: &'static [u8] = match *meta.level() {
            Level::ERROR => b"<3>",
            Level::WARN => b"<4>",
            Level::INFO => b"<6>",
            Level::DEBUG | Level::TRACE => b"<7>",
        };
        Prefixed::new(prefix, self.0.make_writer_for(meta))
    }
}

/// A writer for one log line that puts `prefix` before its first byte.
struct Prefixed<W> {
    prefix: Option<&'static [u8]>,
    inner: W,
}

impl<W> Prefixed<W> {
    fn new(prefix: &'static [u8], inner: W) -> Self {
        Prefixed {
            prefix: Some(prefix),
            inner,
        }
    }
}

impl<W: Write> Write for Prefixed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(prefix) = self.prefix.take() {
            // One write, so the prefix and its line reach the journal together.
            let mut line = Vec::with_capacity(prefix.len() + buf.len());
            line.extend_from_slice(prefix);
            line.extend_from_slice(buf);
            self.inner.write_all(&line)?;
            return Ok(buf.len());
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
