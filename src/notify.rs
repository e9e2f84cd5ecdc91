//! The systemd notify protocol: `READY=1`, `WATCHDOG=1`, `STOPPING=1` on `$NOTIFY_SOCKET`.
//! Without `NOTIFY_SOCKET` (Kubernetes, a terminal) every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(state: NotifyState) {
    if let Err(e) = sd_notify::notify(&[state]) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

/// Start-up is done: config valid, scheduler running (Redis may still be down; that is what
/// `/readyz` reports, or a Redis outage would become a restart loop).
pub fn ready() {
    send(NotifyState::Ready);
}

/// The scheduler is alive.
pub fn watchdog() {
    send(NotifyState::Watchdog);
}

/// Shutdown has begun.
pub fn stopping() {
    send(NotifyState::Stopping);
}

/// The watchdog interval systemd expects (`WatchdogSec=`), if it set one for this process.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
}
