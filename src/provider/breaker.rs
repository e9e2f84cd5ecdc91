//! The circuit breaker each provider's requests go through: after enough consecutive failures
//! the provider is not called for a cooldown, then one trial request decides.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::metrics;
use crate::provider::api::ProviderError;

/// Stops calling a provider after `threshold` consecutive failed requests, for `cooldown`; then
/// lets one trial request through, which closes it again on success.
pub(crate) struct Breaker {
    provider: &'static str,
    threshold: u32,
    cooldown: Duration,
    state: Mutex<BreakerState>,
}

#[derive(Debug, Clone, Copy)]
enum BreakerState {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// The cooldown passed and one trial request is out.
    Trial,
}

impl Breaker {
    pub(crate) fn new(provider: &'static str, threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            provider,
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(BreakerState::Closed { failures: 0 }),
        }
    }

    pub(crate) fn admit(&self) -> Result<(), ProviderError> {
        let mut state = self.state.lock().expect("breaker lock");
        match *state {
            BreakerState::Closed { .. } => Ok(()),
            BreakerState::Open { until } if Instant::now() >= until => {
                *state = BreakerState::Trial;
                Ok(())
            }
            BreakerState::Open { .. } | BreakerState::Trial => Err(ProviderError::BreakerOpen {
                provider: self.provider,
            }),
        }
    }

    pub(crate) fn success(&self) {
        let mut state = self.state.lock().expect("breaker lock");
        if !matches!(*state, BreakerState::Closed { .. }) {
            tracing::info!(provider = self.provider, "circuit breaker closed");
            metrics::breaker_state(self.provider, false);
        }
        *state = BreakerState::Closed { failures: 0 };
    }

    pub(crate) fn failure(&self) {
        let mut state = self.state.lock().expect("breaker lock");
        let open = match *state {
            BreakerState::Closed { failures } if failures + 1 >= self.threshold => true,
            BreakerState::Closed { failures } => {
                *state = BreakerState::Closed {
                    failures: failures + 1,
                };
                false
            }
            BreakerState::Trial => true,
            BreakerState::Open { .. } => false,
        };
        if open {
            *state = BreakerState::Open {
                until: Instant::now() + self.cooldown,
            };
            tracing::warn!(
                provider = self.provider,
                cooldown_s = self.cooldown.as_secs(),
                "circuit breaker opened after repeated failures"
            );
            metrics::breaker_state(self.provider, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_breaker_opens_after_consecutive_failures_and_closes_after_a_trial() {
        let b = Breaker::new("test", 3, Duration::from_secs(60));
        b.failure();
        b.failure();
        b.success(); // a success resets the count
        b.failure();
        b.failure();
        assert!(b.admit().is_ok());
        b.failure();
        assert!(matches!(b.admit(), Err(ProviderError::BreakerOpen { .. })));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(b.admit().is_ok(), "one trial after the cooldown");
        assert!(b.admit().is_err(), "only one trial at a time");
        b.success();
        assert!(b.admit().is_ok());
    }
}
