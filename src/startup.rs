//! Wires the parts every run shares from the settings: the providers, the calendar, the TTL
//! policy and the Redis handle. Market time (`calendar`, `ttl`) knows nothing of settings: it
//! gets plain values from here.

use std::sync::Arc;

use crate::calendar::Calendar;
use crate::config::{MarketSettings, Settings, TtlSettings};
use crate::jobs::Shared;
use crate::provider::{Providers, SetupError};
use crate::store::Store;
use crate::ttl::{EarningsPolicy, QuotePolicy, TtlPolicy};

/// The parts every run shares, on a Redis handle that is connected or not.
pub fn shared(settings: Settings, store: Store) -> Result<Arc<Shared>, SetupError> {
    Ok(Arc::new(Shared {
        providers: Providers::from_settings(&settings)?,
        calendar: calendar(&settings.market),
        policy: ttl_policy(&settings.ttl),
        store,
        settings,
    }))
}

/// The calendar `[market]` describes. Market time takes plain values; this is where settings
/// become them.
pub fn calendar(market: &MarketSettings) -> Calendar {
    Calendar::new(market.timezone.0, market.extra_holidays.iter().map(|d| d.0))
}

/// The TTL policy `[ttl]` describes (`[ttl.options]` falls back to `[ttl]` key by key).
pub fn ttl_policy(s: &TtlSettings) -> TtlPolicy {
    let stock = QuotePolicy {
        open: s.open.get(),
        closed: s.closed.get(),
        min: s.min.get(),
    };
    let o = &s.options;
    TtlPolicy {
        stock,
        options: QuotePolicy {
            open: o.open.map_or(stock.open, |d| d.get()),
            closed: o.closed.map_or(stock.closed, |d| d.get()),
            min: o.min.map_or(stock.min, |d| d.get()),
        },
        earnings: EarningsPolicy {
            min: s.earnings_min.get(),
            max: s.earnings_max.get(),
            unknown: s.earnings_unknown.get(),
        },
        jitter: s.jitter,
    }
}
