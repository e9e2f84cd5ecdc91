//! Liveness: the scheduler's heartbeat. The scheduler beats; `/healthz` asks whether it beat
//! recently, so a stalled scheduler is noticed even though the process still answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The scheduler counts as stalled after missing this many heartbeats.
const MISSED_BEATS: u32 = 3;

/// The scheduler's heartbeat, shared with `/healthz`.
pub struct Health {
    /// Milliseconds since the epoch of the last beat (0: none yet).
    last_beat_ms: AtomicU64,
    interval: Duration,
}

impl Health {
    pub fn new(interval: Duration) -> Arc<Health> {
        Arc::new(Health {
            last_beat_ms: AtomicU64::new(0),
            interval,
        })
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    pub fn beat(&self) {
        self.last_beat_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Alive: the scheduler beat within the last few intervals.
    pub fn is_alive(&self) -> bool {
        let last = self.last_beat_ms.load(Ordering::Relaxed);
        last != 0
            && now_ms().saturating_sub(last) < (self.interval * MISSED_BEATS).as_millis() as u64
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}
