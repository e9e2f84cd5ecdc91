//! Wires the parts every run shares from the settings: the providers, the calendar, the TTL
//! policy and the Redis handle. Market time (`calendar`, `ttl`) knows nothing of settings: it
//! gets plain values from here.

use std::sync::Arc;

use crate::calendar::{Calendar, Markets};
use crate::config::{HumanDuration, Settings, TtlSettings};
use crate::jobs::Shared;
use crate::market::Resolver;
use crate::provider::{Providers, SetupError};
use crate::store::Store;
use crate::ttl::{EarningsPolicy, MarketPolicy, QuotePolicy, TtlPolicy};

/// The parts every run shares, on a Redis handle that is connected or not.
pub fn shared(settings: Settings, store: Store) -> Result<Arc<Shared>, SetupError> {
    Ok(Arc::new(Shared {
        providers: Providers::from_settings(&settings)?,
        markets: resolver(&settings),
        past_data_noticed: Default::default(),
        policy: ttl_policy(&settings.ttl),
        store,
        settings,
    }))
}

/// Every market, with the NYSE as `[market]` describes it, and the ticker rules of `[markets]`.
/// Market time takes plain values; this is where settings become them.
pub fn resolver(settings: &Settings) -> Resolver {
    let market = &settings.market;
    let nyse = Calendar::nyse_in(market.timezone.0, market.extra_holidays.iter().map(|d| d.0));
    let overrides = settings.markets.tickers.clone();
    Resolver::new(Markets::new(nyse), overrides)
        .expect("markets.tickers names only known markets: the config was validated")
}

/// The TTL policy `[ttl]` describes: `[ttl.options]` falls back to `[ttl]` key by key, and
/// `[ttl.markets.<market>]` to both.
pub fn ttl_policy(s: &TtlSettings) -> TtlPolicy {
    let pick =
        |over: Option<HumanDuration>, base: std::time::Duration| over.map_or(base, |d| d.get());
    let stock = QuotePolicy {
        open: s.open.get(),
        closed: s.closed.get(),
        min: s.min.get(),
        extended: s.extended.map(|d| d.get()),
    };
    let o = &s.options;
    let options = QuotePolicy {
        open: pick(o.open, stock.open),
        closed: pick(o.closed, stock.closed),
        min: pick(o.min, stock.min),
        extended: None,
    };
    let markets = s
        .markets
        .iter()
        .map(|(id, m)| {
            let over = |base: &QuotePolicy| QuotePolicy {
                open: pick(m.open, base.open),
                closed: pick(m.closed, base.closed),
                min: pick(m.min, base.min),
                extended: base.extended,
            };
            let policy = MarketPolicy {
                stock: over(&stock),
                options: over(&options),
            };
            // Environment variables arrive lower-cased; market names are upper case.
            (id.to_ascii_uppercase(), policy)
        })
        .collect();
    TtlPolicy {
        stock,
        options,
        markets,
        options_none: o.none.get(),
        earnings: EarningsPolicy {
            min: s.earnings_min.get(),
            max: s.earnings_max.get(),
            unknown: s.earnings_unknown.get(),
        },
        jitter: s.jitter,
    }
}
