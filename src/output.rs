//! Command output that ends quietly when its reader goes away.
//!
//! `check-config | head -3` closes the pipe after three lines. Rust ignores SIGPIPE, so the next
//! write fails with `BrokenPipe`, and reporting that as an error (exit 1, "cannot write output")
//! is not what a Unix tool does. [`UntilClosed`] takes a closed reader as the end of the output:
//! what is written after it is discarded, and the command finishes with the status it would
//! have had anyway, so `check-config | head -1` exits 0 and `status | head -1` still exits 1
//! when the cache is not warm. Every other write error is still an error.

use std::io::{self, ErrorKind, Write};

/// A writer that turns "the reader has gone" into the end of the output.
pub struct UntilClosed<W> {
    inner: W,
    /// The reader went away: every later write is discarded.
    closed: bool,
}

impl<W: Write> UntilClosed<W> {
    pub fn new(inner: W) -> UntilClosed<W> {
        UntilClosed {
            inner,
            closed: false,
        }
    }

    /// `ok` for a write or flush that failed because the reader went away, remembering it.
    fn absorb<T>(&mut self, result: io::Result<T>, ok: T) -> io::Result<T> {
        match result {
            Err(e) if e.kind() == ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(ok)
            }
            other => other,
        }
    }
}

impl<W: Write> Write for UntilClosed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        let written = self.inner.write(buf);
        self.absorb(written, buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let flushed = self.inner.flush();
        self.absorb(flushed, ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts `room` bytes, then fails every call with `error`.
    struct Pipe {
        room: usize,
        error: ErrorKind,
        calls_after_full: usize,
    }

    impl Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                self.calls_after_full += 1;
                return Err(self.error.into());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            if self.room == 0 {
                self.calls_after_full += 1;
                return Err(self.error.into());
            }
            Ok(())
        }
    }

    #[test]
    fn a_closed_reader_ends_the_output_without_an_error() {
        let mut out = UntilClosed::new(Pipe {
            room: 4,
            error: ErrorKind::BrokenPipe,
            calls_after_full: 0,
        });
        for _ in 0..100 {
            writeln!(out, "a line of output").unwrap();
        }
        out.flush().unwrap();
        assert!(out.closed);
        assert_eq!(
            out.inner.calls_after_full, 1,
            "nothing is tried after the pipe closed"
        );
    }

    #[test]
    fn other_write_errors_are_still_errors() {
        let mut out = UntilClosed::new(Pipe {
            room: 0,
            error: ErrorKind::StorageFull,
            calls_after_full: 0,
        });
        let e = writeln!(out, "x").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::StorageFull);
        assert!(!out.closed);
    }
}
