//! The one shutdown signal, passed down explicitly to everything that must stop.
//!
//! SIGINT and SIGTERM cancel a [`CancellationToken`]; which signal it was is kept so a `once` run
//! cut short can exit 130 or 143 as shells and Kubernetes expect.

use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

/// The signal that asked us to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
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
    /// Starts listening for SIGINT and SIGTERM. Must be called inside the runtime.
    pub fn listen() -> std::io::Result<Shutdown> {
        use tokio::signal::unix::{SignalKind, signal};
        let shutdown = Shutdown::default();
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            let which = tokio::select! {
                _ = interrupt.recv() => Signal::Interrupt,
                _ = terminate.recv() => Signal::Terminate,
            };
            trigger.trigger(which);
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
