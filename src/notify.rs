//! The systemd notify protocol: `READY=1`, `WATCHDOG=1`, `STOPPING=1` and the `STATUS=` line
//! `systemctl status` shows, on `$NOTIFY_SOCKET`. Without `NOTIFY_SOCKET` (Kubernetes, a
//! terminal) every call does nothing.

use std::collections::BTreeMap;
use std::sync::Mutex;
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

/// The last run of each job, as `STATUS=` shows them.
static LAST_RUNS: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

/// Shows `summary` as `job`'s last run in `systemctl status`, beside the other jobs' last runs:
/// `STATUS=earnings ok 08:00:03Z; stock ok 14:05:01Z, 98 written, 2 failed`.
pub fn last_run(job: &str, summary: String) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let line = {
        let mut runs = LAST_RUNS.lock().expect("last runs lock");
        runs.insert(job.to_owned(), summary);
        runs.iter()
            .map(|(job, summary)| format!("{job} {summary}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    send(NotifyState::Status(&line));
}
