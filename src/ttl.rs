//! How long each cached value lives. Pure functions of (instant, calendar, policy): nothing here
//! reads a clock, so every rule is testable at any instant.
//!
//! Quotes and options chains follow their own market's session: during it a value lives at most
//! `open` and never past the next boundary (a lunch break or the close), so the closing price is
//! cached promptly; in a break or outside a session at most `closed` and never past the reopening,
//! so the cache turns over at the bell instead of serving yesterday into the session. A market
//! that never closes (24/7) has no boundary. With US extended hours on, the NYSE's pre- and
//! post-market are a phase of their own for stock keys. Earnings values live until the start of
//! the earnings day in the listing's time zone.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

use crate::calendar::{Calendar, MarketState};

/// TTL rules for a quote-like key (stock, options) on one market.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotePolicy {
    pub open: Duration,
    pub closed: Duration,
    pub min: Duration,
    /// The cap in US extended hours; `None` treats them as closed (and options keys always do).
    pub extended: Option<Duration>,
}

/// Which quote-like key a TTL is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuoteKind {
    Stock,
    Options,
}

/// Where a market is, for a TTL: the phase and the instant it ends (none for 24/7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phase {
    pub state: PhaseState,
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhaseState {
    Open,
    Break,
    Closed,
    Extended,
}

impl PhaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseState::Open => "open",
            PhaseState::Break => "break",
            PhaseState::Closed => "closed",
            PhaseState::Extended => "extended",
        }
    }
}

/// The phase `calendar` is in at `at`; with `extended`, US pre/post-market hours count as
/// their own phase, and a closed market's next change is the next pre-market start.
pub fn phase(calendar: &Calendar, at: DateTime<Utc>, extended: bool) -> Phase {
    let phase = |state, until| Phase {
        state,
        until: Some(until),
    };
    match calendar.state_at(at) {
        MarketState::AlwaysOpen => Phase {
            state: PhaseState::Open,
            until: None,
        },
        MarketState::Open { until, .. } => phase(PhaseState::Open, until),
        MarketState::Break { session } => phase(
            PhaseState::Break,
            session.break_end.unwrap_or(session.close),
        ),
        MarketState::Closed { next } => {
            if !extended {
                return phase(PhaseState::Closed, next.open);
            }
            let today = at.with_timezone(&calendar.timezone()).date_naive();
            // Post-market after today's close.
            if let Some((_, post_end)) = calendar
                .session(today)
                .filter(|s| s.close <= at)
                .and_then(|s| calendar.extended(&s))
                && at < post_end
            {
                return phase(PhaseState::Extended, post_end);
            }
            match calendar.extended(&next) {
                Some((pre, _)) if pre <= at => phase(PhaseState::Extended, next.open),
                Some((pre, _)) => phase(PhaseState::Closed, pre),
                None => phase(PhaseState::Closed, next.open),
            }
        }
    }
}

/// TTL rules for an earnings key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EarningsPolicy {
    pub min: Duration,
    pub max: Duration,
    /// For an instrument with no known earnings date.
    pub unknown: Duration,
}

/// The stock and options rules for one market.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarketPolicy {
    pub stock: QuotePolicy,
    pub options: QuotePolicy,
}

/// The whole policy, from `[ttl]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TtlPolicy {
    /// Every market without its own entry in `markets`.
    pub stock: QuotePolicy,
    pub options: QuotePolicy,
    /// Markets with their own rules (`[ttl.markets.XLON]`), by market name.
    pub markets: BTreeMap<String, MarketPolicy>,
    /// An options key for an instrument with no options (an empty chain).
    pub options_none: Duration,
    pub earnings: EarningsPolicy,
    /// Up to this fraction shorter, per key (0 = off).
    pub jitter: f64,
}

impl TtlPolicy {
    /// The rules for `kind` keys of instruments on `market`.
    pub fn quote_policy(&self, kind: QuoteKind, market: &str) -> &QuotePolicy {
        match (self.markets.get(market), kind) {
            (Some(m), QuoteKind::Stock) => &m.stock,
            (Some(m), QuoteKind::Options) => &m.options,
            (None, QuoteKind::Stock) => &self.stock,
            (None, QuoteKind::Options) => &self.options,
        }
    }

    /// The TTL of a `kind` key for an instrument on `calendar`'s market at `at`, and the phase
    /// that decided it.
    pub fn quote(&self, kind: QuoteKind, calendar: &Calendar, at: DateTime<Utc>) -> (Phase, Ttl) {
        let policy = self.quote_policy(kind, calendar.id());
        let phase = phase(calendar, at, policy.extended.is_some());
        (phase, policy.ttl(phase, at))
    }

    /// The TTL of an options key whose chain is empty.
    pub fn options_none(&self) -> Ttl {
        Ttl {
            duration: self.options_none,
            limit: Limit::Policy,
            floor: self.options.min,
        }
    }
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
    /// Caps `until_boundary` (none: no boundary) by `cap` and raises it to `floor`.
    fn decide(cap: Duration, until_boundary: Option<Duration>, floor: Duration) -> Ttl {
        let (duration, limit) = match until_boundary.map(whole_seconds) {
            Some(until) if until < cap => (until, Limit::Boundary),
            _ => (cap, Limit::Policy),
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
    /// The cap that applies in `state`.
    pub fn cap(&self, state: PhaseState) -> Duration {
        match state {
            PhaseState::Open => self.open,
            PhaseState::Break | PhaseState::Closed => self.closed,
            PhaseState::Extended => self.extended.unwrap_or(self.closed),
        }
    }

    pub fn ttl(&self, phase: Phase, at: DateTime<Utc>) -> Ttl {
        let boundary = phase.until.map(|t| until(at, t));
        Ttl::decide(self.cap(phase.state), boundary, self.min)
    }
}

impl EarningsPolicy {
    /// Until the start of `date` in the listing's time zone, within [min, max]; a date today or
    /// past gives `min`, no date gives `unknown`.
    pub fn ttl(&self, calendar: &Calendar, at: DateTime<Utc>, date: Option<NaiveDate>) -> Ttl {
        match date {
            None => Ttl {
                duration: self.unknown,
                limit: Limit::Policy,
                floor: self.min,
            },
            Some(date) => Ttl::decide(
                self.max,
                Some(until(at, calendar.start_of_day(date))),
                self.min,
            ),
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
        let t = Ttl::decide(secs(600), Some(secs(300)), secs(60));
        assert_eq!((t.secs(), t.limit), (300, Limit::Boundary));
        let t = Ttl::decide(secs(600), Some(secs(5000)), secs(60));
        assert_eq!((t.secs(), t.limit), (600, Limit::Policy));
        let t = Ttl::decide(secs(600), Some(secs(10)), secs(60));
        assert_eq!((t.secs(), t.limit), (60, Limit::Floor));
        // Fractions of a second are dropped: the value must not outlive the boundary.
        let t = Ttl::decide(secs(600), Some(Duration::from_millis(299_999)), secs(60));
        assert_eq!(t.secs(), 299);
    }

    #[test]
    fn jitter_only_shortens_and_respects_the_floor() {
        let t = Ttl::decide(secs(3600), Some(secs(10_000)), secs(60));
        assert_eq!(t.jittered(0.0, 123), secs(3600));
        for seed in [0, 1, 999_999, 12_345_678_901, u64::MAX] {
            let j = t.jittered(0.1, seed);
            assert!(j <= secs(3600) && j >= secs(3240), "{j:?}");
        }
        let at_floor = Ttl::decide(secs(600), Some(secs(1)), secs(60));
        assert_eq!(at_floor.jittered(0.5, 999_999), secs(60));
    }
}
