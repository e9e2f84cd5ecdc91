//! The one shutdown signal, passed down explicitly to everything that must stop.
//!
//! SIGINT and SIGTERM cancel a [`CancellationToken`]; which signal it was is kept so a `once` run
//! cut short can exit 130 or 143 as shells and Kubernetes expect. The process then has a bounded
//! time to stop; a second signal ends it at once. SIGHUP, which would kill it, is logged and
//! ignored: there is no reload.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How long past `scheduler.shutdown_grace` a stopping process may take to record its runs and
/// release its locks before it exits regardless. Kept small: systemd's and Kubernetes' default
/// stop timeouts are 90 s and 30 s, and the grace defaults to 20 s.
pub const STOP_MARGIN: Duration = Duration::from_secs(5);

/// The signal that asked us to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        })
    }
}

impl Signal {
    /// 128 + the signal number, the shell convention.
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }
}

/// A cloneable view of the shutdown request.
#[derive(Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    signal: Arc<OnceLock<Signal>>,
}

impl Shutdown {
    /// Starts listening for SIGINT, SIGTERM and SIGHUP. Must be called inside the runtime. Once
    /// asked to stop, the process exits by itself (with the signal's exit code) if it has not
    /// finished within `deadline`, or at once on a second SIGINT or SIGTERM: a Redis that hangs
    /// cannot keep it past a service manager's stop timeout.
    pub fn listen(deadline: Duration) -> std::io::Result<Shutdown> {
        use tokio::signal::unix::{SignalKind, signal};
        let shutdown = Shutdown::default();
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let mut hangup = signal(SignalKind::hangup())?;
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            let mut asked: Option<Signal> = None;
            let overdue = tokio::time::sleep(Duration::MAX);
            tokio::pin!(overdue);
            loop {
                let which = tokio::select! {
                    _ = interrupt.recv() => Signal::Interrupt,
                    _ = terminate.recv() => Signal::Terminate,
                    _ = hangup.recv() => {
                        tracing::warn!("SIGHUP received: the configuration is not reloaded; restart the process to apply changes");
                        continue;
                    }
                    _ = &mut overdue, if asked.is_some() => {
                        let signal = asked.unwrap_or(Signal::Terminate);
                        tracing::error!(deadline_ms = deadline.as_millis() as u64, "not stopped within the deadline after {signal}; exiting now");
                        std::process::exit(signal.exit_code().into());
                    }
                };
                match asked {
                    None => {
                        tracing::info!(
                            "{which} received; stopping (a second signal exits at once)"
                        );
                        asked = Some(which);
                        trigger.trigger(which);
                        overdue
                            .as_mut()
                            .reset(tokio::time::Instant::now() + deadline);
                    }
                    Some(first) => {
                        tracing::warn!("second signal ({which}) while stopping; exiting now");
                        std::process::exit(first.exit_code().into());
                    }
                }
            }
        });
        Ok(shutdown)
    }

    /// Requests shutdown as if `signal` had arrived (the first request wins).
    pub fn trigger(&self, signal: Signal) {
        let _ = self.signal.set(signal);
        self.token.cancel();
    }

    /// The signal received, if any.
    pub fn signal(&self) -> Option<Signal> {
        self.signal.get().copied()
    }

    /// Resolves when shutdown is requested.
    pub async fn requested(&self) {
        self.token.cancelled().await
    }
}
