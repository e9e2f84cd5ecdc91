//! The normalised cache format: what lands in Redis, whatever the provider.
//!
//! Every value carries `schema_version`, `symbol`, `source` and `fetched_at`; the JSON Schemas in
//! `schemas/` describe the same shapes for the app that reads them. Values are validated here
//! before they are written, because a wrong value in the cache is worse than a stale one.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::ticker::Ticker;

mod options_json;

/// Bumped when a field changes meaning or disappears (adding a field does not bump it).
pub const SCHEMA_VERSION: u32 = 1;

/// A stock (or ETF, index, FX, crypto) quote: `finance:cache:stock:{T}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StockQuote {
    pub schema_version: u32,
    pub symbol: String,
    pub source: String,
    #[serde(with = "utc_seconds")]
    pub fetched_at: DateTime<Utc>,
    pub price: f64,
    pub previous_close: Option<f64>,
    pub change: Option<f64>,
    pub change_percent: Option<f64>,
    pub currency: Option<String>,
    pub exchange: Option<String>,
    pub market_state: Option<String>,
    #[serde(with = "utc_seconds_opt")]
    pub market_time: Option<DateTime<Utc>>,
    pub volume: Option<u64>,
    #[serde(flatten)]
    pub extended_hours: ExtendedHours,
    /// The market whose clock the key's TTL follows (`XNYS`, `XLON`, `24/7`, `FX`, ...). Providers
    /// leave it `None`; the stock job sets it once it has resolved the ticker. Defaulted so values
    /// cached before the field existed still parse.
    #[serde(default)]
    pub calendar: Option<String>,
    /// The next earnings date, when the quote carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earnings_date: Option<NaiveDate>,
    #[serde(skip)]
    pub listing: Listing,
}

/// US extended-hours trading, when the provider reports it (Yahoo, for US listings): the last
/// pre-market and after-hours trades. Flattened into the quote: the cached fields stay at its top
/// level, null when absent (and defaulted, so values cached before they existed still parse).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ExtendedHours {
    #[serde(default)]
    pub pre_market_price: Option<f64>,
    #[serde(default)]
    pub pre_market_change_percent: Option<f64>,
    #[serde(default, with = "utc_seconds_opt")]
    pub pre_market_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub post_market_price: Option<f64>,
    #[serde(default)]
    pub post_market_change_percent: Option<f64>,
    #[serde(default, with = "utc_seconds_opt")]
    pub post_market_time: Option<DateTime<Utc>>,
}

/// The provider's own metadata about where the instrument trades, in the provider's own words
/// (Yahoo: `EQUITY`, `LSE`, `Europe/London`). It is used to resolve the instrument's market and
/// is not cached: the resolved market is, as [`StockQuote::calendar`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listing {
    pub quote_type: Option<String>,
    pub exchange: Option<String>,
    pub timezone: Option<String>,
}

/// An options chain: `finance:cache:options:{T}`. `chains` holds the fetched expiries, nearest
/// first; `expirations` every expiry the provider listed. An instrument with no options has both
/// empty (cached, so the app does not keep asking). The cache's copy is written by
/// [`OptionsChain::write_json`]: a field added here, or to a chain or a contract, goes there too
/// (its test fails until it does).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptionsChain {
    pub schema_version: u32,
    pub symbol: String,
    pub source: String,
    #[serde(with = "utc_seconds")]
    pub fetched_at: DateTime<Utc>,
    pub underlying_price: Option<f64>,
    pub expirations: Vec<NaiveDate>,
    pub chains: Vec<ExpiryChain>,
}

impl OptionsChain {
    /// Drops the contracts whose strike is further than `window` (a fraction) from the
    /// underlying price. Without an underlying price nothing can be judged, and all stay.
    pub fn keep_strikes_within(&mut self, window: f64) {
        let Some(price) = self.underlying_price else {
            return;
        };
        let reach = price * window;
        let near = |c: &OptionContract| (c.strike - price).abs() <= reach;
        for chain in &mut self.chains {
            chain.calls.retain(near);
            chain.puts.retain(near);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpiryChain {
    pub expiration: NaiveDate,
    pub calls: Vec<OptionContract>,
    pub puts: Vec<OptionContract>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptionContract {
    pub contract_symbol: String,
    pub strike: f64,
    pub last_price: Option<f64>,
    pub bid: Option<f64>,
    pub ask: Option<f64>,
    pub volume: Option<u64>,
    pub open_interest: Option<u64>,
    #[serde(serialize_with = "six_decimals")]
    pub implied_volatility: Option<f64>,
    pub in_the_money: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greeks: Option<Greeks>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Greeks {
    #[serde(serialize_with = "six_decimals")]
    pub delta: Option<f64>,
    #[serde(serialize_with = "six_decimals")]
    pub gamma: Option<f64>,
    #[serde(serialize_with = "six_decimals")]
    pub theta: Option<f64>,
    #[serde(serialize_with = "six_decimals")]
    pub vega: Option<f64>,
    #[serde(serialize_with = "six_decimals")]
    pub rho: Option<f64>,
}

/// Volatilities and greeks are written with six decimals at most: providers send float noise
/// (`0.000010000000000000004`, `3.58593853515625`) that costs bytes in every contract and means
/// nothing. Prices are written as received: they already have their tick size.
fn six_decimals<S: serde::Serializer>(value: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.serialize_f64(round_six(*v)),
        None => s.serialize_none(),
    }
}

fn round_six(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// The next earnings date: `finance:cache:earnings:{T}`. `earnings_date: null` means the
/// instrument has no earnings (an ETF, a fund, FX, crypto), cached so the app stops asking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Earnings {
    pub schema_version: u32,
    pub symbol: String,
    pub source: String,
    #[serde(with = "utc_seconds")]
    pub fetched_at: DateTime<Utc>,
    pub earnings_date: Option<NaiveDate>,
    /// The end of the announced window; equal to `earnings_date` when it is one day.
    pub earnings_date_end: Option<NaiveDate>,
    pub is_estimate: Option<bool>,
    /// When in the day the report comes: `bmo` (before the market opens), `amc` (after it
    /// closes) or `dmh` (during market hours); null when the provider does not say.
    #[serde(default)]
    pub earnings_time: Option<EarningsTime>,
}

/// When in the trading day an earnings report comes, as Finnhub names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EarningsTime {
    /// Before the market opens.
    Bmo,
    /// After the market closes.
    Amc,
    /// During market hours.
    Dmh,
}

/// Whether a contract is in the money at `underlying`, for providers that do not say.
pub fn in_the_money(is_call: bool, strike: f64, underlying: Option<f64>) -> Option<bool> {
    underlying.map(|u| if is_call { strike < u } else { strike > u })
}

/// Why a value was rejected before it reached Redis.
pub type Rejection = String;

fn price(name: &str, v: f64) -> Result<(), Rejection> {
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{name} {v} is not a finite, non-negative number"));
    }
    Ok(())
}

fn opt_price(name: &str, v: Option<f64>) -> Result<(), Rejection> {
    v.map_or(Ok(()), |v| price(name, v))
}

fn finite(name: &str, v: Option<f64>) -> Result<(), Rejection> {
    match v {
        Some(v) if !v.is_finite() => Err(format!("{name} {v} is not finite")),
        _ => Ok(()),
    }
}

fn same_symbol(got: &str, asked: &Ticker) -> Result<(), Rejection> {
    if got != asked.as_str() {
        return Err(format!("the response is for {got:?}, not {asked}"));
    }
    Ok(())
}

impl StockQuote {
    pub fn validate(&self, asked: &Ticker) -> Result<(), Rejection> {
        same_symbol(&self.symbol, asked)?;
        price("price", self.price)?;
        if self.price == 0.0 {
            return Err("price is 0".into());
        }
        opt_price("previous_close", self.previous_close)?;
        finite("change", self.change)?;
        finite("change_percent", self.change_percent)?;
        opt_price("pre_market_price", self.extended_hours.pre_market_price)?;
        finite(
            "pre_market_change_percent",
            self.extended_hours.pre_market_change_percent,
        )?;
        opt_price("post_market_price", self.extended_hours.post_market_price)?;
        finite(
            "post_market_change_percent",
            self.extended_hours.post_market_change_percent,
        )
    }
}

impl OptionsChain {
    pub fn validate(&self, asked: &Ticker) -> Result<(), Rejection> {
        same_symbol(&self.symbol, asked)?;
        opt_price("underlying_price", self.underlying_price)?;
        if !self
            .chains
            .windows(2)
            .all(|w| w[0].expiration < w[1].expiration)
        {
            return Err("expiries are not in ascending order".into());
        }
        // OCC symbols start with the option root, which is the underlying without punctuation
        // (BRK-B -> BRKB, ^SPX -> SPX, SPXW for its weeklies).
        let root: String = asked
            .as_str()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        for chain in &self.chains {
            for c in chain.calls.iter().chain(&chain.puts) {
                // A loop, not `trim_start_matches`: its substring searcher is set up anew
                // for each contract.
                let mut symbol = c.contract_symbol.as_str();
                while let Some(rest) = symbol.strip_prefix("O:") {
                    symbol = rest;
                }
                if !symbol.starts_with(root.as_str()) && !symbol.starts_with(asked.as_str()) {
                    return Err(format!(
                        "contract {} does not belong to {asked}",
                        c.contract_symbol
                    ));
                }
                price("strike", c.strike)?;
                opt_price("last_price", c.last_price)?;
                opt_price("bid", c.bid)?;
                opt_price("ask", c.ask)?;
                finite("implied_volatility", c.implied_volatility)?;
            }
        }
        Ok(())
    }
}

impl Earnings {
    pub fn validate(&self, asked: &Ticker) -> Result<(), Rejection> {
        same_symbol(&self.symbol, asked)?;
        if let (Some(start), Some(end)) = (self.earnings_date, self.earnings_date_end)
            && end < start
        {
            return Err(format!(
                "earnings window ends ({end}) before it starts ({start})"
            ));
        }
        Ok(())
    }
}

/// RFC 3339 in UTC to the second: `2026-11-25T23:24:55Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

mod utc_seconds {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let raw = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

mod utc_seconds_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::rfc3339(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|raw| {
                DateTime::parse_from_rfc3339(&raw)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(serde::de::Error::custom)
            })
            .transpose()
    }
}
