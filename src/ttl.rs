//! How long each cached value lives. Pure functions of (instant, calendar, policy): nothing here
//! reads a clock, so every rule is testable at any instant.
//!
//! Quotes and options chains follow the session: during it a value lives at most `open` and never
//! past the close, so the closing price is cached promptly; outside it at most `closed` and never
//! past the next open, so the cache turns over at the bell instead of serving yesterday into the
//! session. Earnings values live until the start of the earnings day in the exchange's time zone.

use std::hash::{Hash, Hasher};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

use crate::calendar::{Calendar, MarketState};

/// TTL rules for a quote-like key (stock, options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotePolicy {
    pub open: Duration,
    pub closed: Duration,
    pub min: Duration,
}

/// TTL rules for an earnings key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EarningsPolicy {
    pub min: Duration,
    pub max: Duration,
    /// For an instrument with no known earnings date.
    pub unknown: Duration,
}

/// The whole policy, from `[ttl]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TtlPolicy {
    pub stock: QuotePolicy,
    pub options: QuotePolicy,
    pub earnings: EarningsPolicy,
    /// Up to this fraction shorter, per key (0 = off).
    pub jitter: f64,
}

/// Which term of the rule decided a TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The policy's cap (`open`, `closed`, `earnings_max`, `earnings_unknown`).
    Policy,
    /// The next session boundary, or the earnings date.
    Boundary,
    /// The policy's floor (`min`, `earnings_min`).
    Floor,
}

/// A TTL decision, in whole seconds (what `SET ... EX` takes), never below its floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl {
    pub duration: Duration,
    pub limit: Limit,
    floor: Duration,
}

impl Ttl {
    /// Caps `until_boundary` by `cap` and raises it to `floor`.
    fn decide(cap: Duration, until_boundary: Duration, floor: Duration) -> Ttl {
        let until = whole_seconds(until_boundary);
        let (duration, limit) = if until < cap {
            (until, Limit::Boundary)
        } else {
            (cap, Limit::Policy)
        };
        if duration < floor {
            return Ttl {
                duration: floor,
                limit: Limit::Floor,
                floor,
            };
        }
        Ttl {
            duration: whole_seconds(duration),
            limit,
            floor,
        }
    }

    pub fn secs(&self) -> u64 {
        self.duration.as_secs()
    }

    /// Shortens the TTL by up to `jitter` (a fraction) chosen by `seed`, so keys written together
    /// do not all expire together. Never longer than the TTL, never below its floor.
    pub fn jittered(self, jitter: f64, seed: u64) -> Duration {
        if jitter <= 0.0 {
            return self.duration;
        }
        // A uniform fraction in [0, 1) from the seed's low bits.
        let unit = (seed % 1_000_000) as f64 / 1_000_000.0;
        let cut = (self.duration.as_secs() as f64 * jitter.min(1.0) * unit) as u64;
        Duration::from_secs(self.duration.as_secs() - cut).max(self.floor)
    }
}

fn whole_seconds(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}

fn until(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    (to - from).to_std().unwrap_or_default()
}

impl QuotePolicy {
    pub fn ttl(&self, calendar: &Calendar, at: DateTime<Utc>) -> Ttl {
        match calendar.state_at(at) {
            MarketState::Open { session } => {
                Ttl::decide(self.open, until(at, session.close), self.min)
            }
            MarketState::Closed { next } => {
                Ttl::decide(self.closed, until(at, next.open), self.min)
            }
        }
    }
}

impl EarningsPolicy {
    /// Until the start of `date` in the exchange's time zone, within [min, max]; a date today or
    /// past gives `min`, no date gives `unknown`.
    pub fn ttl(&self, calendar: &Calendar, at: DateTime<Utc>, date: Option<NaiveDate>) -> Ttl {
        match date {
            None => Ttl {
                duration: self.unknown,
                limit: Limit::Policy,
                floor: self.min,
            },
            Some(date) => Ttl::decide(self.max, until(at, calendar.start_of_day(date)), self.min),
        }
    }
}

/// A per-key, per-day seed for [`Ttl::jittered`]: stable for a key within a UTC day, so a retry
/// writes the same TTL, and different across keys.
pub fn jitter_seed(key: &str, at: DateTime<Utc>) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    key.hash(&mut hasher);
    at.date_naive().hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn decide_picks_the_binding_term() {
        let t = Ttl::decide(secs(600), secs(300), secs(60));
        assert_eq!((t.secs(), t.limit), (300, Limit::Boundary));
        let t = Ttl::decide(secs(600), secs(5000), secs(60));
        assert_eq!((t.secs(), t.limit), (600, Limit::Policy));
        let t = Ttl::decide(secs(600), secs(10), secs(60));
        assert_eq!((t.secs(), t.limit), (60, Limit::Floor));
        // Fractions of a second are dropped: the value must not outlive the boundary.
        let t = Ttl::decide(secs(600), Duration::from_millis(299_999), secs(60));
        assert_eq!(t.secs(), 299);
    }

    #[test]
    fn jitter_only_shortens_and_respects_the_floor() {
        let t = Ttl::decide(secs(3600), secs(10_000), secs(60));
        assert_eq!(t.jittered(0.0, 123), secs(3600));
        for seed in [0, 1, 999_999, 12_345_678_901, u64::MAX] {
            let j = t.jittered(0.1, seed);
            assert!(j <= secs(3600) && j >= secs(3240), "{j:?}");
        }
        let at_floor = Ttl::decide(secs(600), secs(1), secs(60));
        assert_eq!(at_floor.jittered(0.5, 999_999), secs(60));
    }
}
