//! Parsing Yahoo's answers (v7 quote, v8 chart, v7 options, v10 quoteSummary) into the cache's
//! values, checking each field the recordings show.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::model::{
    Earnings, ExpiryChain, ExtendedHours, Listing, OptionContract, OptionsChain, SCHEMA_VERSION,
    StockQuote,
};
use crate::provider::api::{Fetched, ProviderError, TickerResult, count};
use crate::provider::http::Reply;
use crate::ticker::Ticker;

/// The provider name in errors, metrics and cached values.
pub(super) const NAME: &str = "yahoo";

pub(super) fn date_in(epoch: i64, tz: Tz) -> Option<NaiveDate> {
    DateTime::from_timestamp(epoch, 0).map(|t| t.with_timezone(&tz).date_naive())
}

/// Yahoo's times are epoch seconds.
fn epoch_time(epoch: Option<i64>) -> Option<DateTime<Utc>> {
    epoch.and_then(|t| DateTime::from_timestamp(t, 0))
}

// ---- v7 quote -------------------------------------------------------------------------------

#[derive(Deserialize)]
struct QuoteEnvelope<'a> {
    #[serde(rename = "quoteResponse", borrow)]
    quote_response: ResultList<'a>,
}

/// Entries are kept as raw JSON and parsed one by one, so one malformed entry fails only its
/// ticker, without building a `Value` tree for every entry of a large batch.
#[derive(Deserialize)]
struct ResultList<'a> {
    #[serde(default, borrow)]
    result: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct EntrySymbol {
    symbol: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawQuote {
    symbol: String,
    quote_type: Option<String>,
    regular_market_price: Option<f64>,
    regular_market_previous_close: Option<f64>,
    regular_market_change: Option<f64>,
    regular_market_change_percent: Option<f64>,
    currency: Option<String>,
    exchange: Option<String>,
    market_state: Option<String>,
    regular_market_time: Option<i64>,
    regular_market_volume: Option<f64>,
    pre_market_price: Option<f64>,
    pre_market_change_percent: Option<f64>,
    pre_market_time: Option<i64>,
    post_market_price: Option<f64>,
    post_market_change_percent: Option<f64>,
    post_market_time: Option<i64>,
    exchange_timezone_name: Option<String>,
    earnings_timestamp_start: Option<i64>,
}

/// Parses a v7 quote answer for the tickers asked: a ticker missing from `result`, or present
/// as `quoteType: "NONE"` without a price, is unknown; one entry that does not parse or
/// validate fails only that ticker. `tz` dates the earnings of an entry without a usable
/// `exchangeTimezoneName`.
pub fn parse_quotes(
    reply: &Reply,
    asked: &[Ticker],
    tz: Tz,
    source: &str,
    now: DateTime<Utc>,
) -> Vec<(Ticker, TickerResult<StockQuote>)> {
    let entries: Result<Vec<&RawValue>, ProviderError> = if reply.status == 200 {
        reply
            .json::<QuoteEnvelope>(NAME, "quote")
            .map(|e| e.quote_response.result.unwrap_or_default())
    } else {
        Err(ProviderError::status(NAME, reply.status, "quote"))
    };
    let entries = match entries {
        Ok(entries) => entries,
        Err(e) => return asked.iter().map(|t| (t.clone(), Err(e.clone()))).collect(),
    };
    let mut by_symbol: HashMap<String, &RawValue> = HashMap::new();
    for entry in entries {
        if let Ok(EntrySymbol { symbol }) = serde_json::from_str(entry.get()) {
            by_symbol.insert(symbol.to_ascii_uppercase(), entry);
        }
    }
    asked
        .iter()
        .map(|ticker| {
            let result = match by_symbol.remove(ticker.as_str()) {
                None => Ok(Fetched::Unknown),
                Some(entry) => quote_from_entry(entry, ticker, tz, source, now),
            };
            (ticker.clone(), result)
        })
        .collect()
}

pub(super) fn quote_from_entry(
    entry: &RawValue,
    ticker: &Ticker,
    tz: Tz,
    source: &str,
    now: DateTime<Utc>,
) -> TickerResult<StockQuote> {
    let raw: RawQuote = serde_json::from_str(entry.get())
        .map_err(|e| ProviderError::invalid(NAME, ticker, e.to_string()))?;
    let Some(price) = raw.regular_market_price else {
        return Ok(Fetched::Unknown);
    };
    if raw.quote_type.as_deref() == Some("NONE") {
        return Ok(Fetched::Unknown);
    }
    // An earnings date is a date where the instrument trades (an ASX report is on a Sydney
    // date); the configured zone is only the fallback for an entry that does not name its own.
    let zone = raw
        .exchange_timezone_name
        .as_deref()
        .and_then(|name| name.parse::<Tz>().ok())
        .unwrap_or(tz);
    let quote = StockQuote {
        schema_version: SCHEMA_VERSION,
        symbol: raw.symbol.to_ascii_uppercase(),
        source: source.to_owned(),
        fetched_at: now,
        price,
        previous_close: raw.regular_market_previous_close,
        change: raw.regular_market_change,
        change_percent: raw.regular_market_change_percent,
        currency: raw.currency,
        exchange: raw.exchange.clone(),
        market_state: raw.market_state,
        market_time: epoch_time(raw.regular_market_time),
        volume: count(raw.regular_market_volume),
        extended_hours: ExtendedHours {
            pre_market_price: raw.pre_market_price,
            pre_market_change_percent: raw.pre_market_change_percent,
            pre_market_time: epoch_time(raw.pre_market_time),
            post_market_price: raw.post_market_price,
            post_market_change_percent: raw.post_market_change_percent,
            post_market_time: epoch_time(raw.post_market_time),
        },
        calendar: None,
        earnings_date: raw.earnings_timestamp_start.and_then(|t| date_in(t, zone)),
        listing: Listing {
            quote_type: raw.quote_type,
            exchange: raw.exchange,
            timezone: raw.exchange_timezone_name,
        },
    };
    quote
        .validate(ticker)
        .map_err(|reason| ProviderError::invalid(NAME, ticker, reason))?;
    Ok(Fetched::Found(quote))
}

// ---- v8 chart (the crumb-free price fallback) -------------------------------------------------

#[derive(Deserialize)]
struct ChartEnvelope {
    chart: ChartBody,
}

#[derive(Deserialize)]
struct ChartBody {
    result: Option<Vec<ChartResult>>,
}

#[derive(Deserialize)]
struct ChartResult {
    meta: ChartMeta,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChartMeta {
    symbol: String,
    currency: Option<String>,
    exchange_name: Option<String>,
    instrument_type: Option<String>,
    exchange_timezone_name: Option<String>,
    regular_market_price: Option<f64>,
    regular_market_time: Option<i64>,
    regular_market_volume: Option<f64>,
    previous_close: Option<f64>,
    chart_previous_close: Option<f64>,
    /// The `range` asked for (`1d`), empty for a period query.
    #[serde(default)]
    range: String,
    regular_market_change_percent: Option<f64>,
}

/// Parses a v8 chart answer into a quote from its `meta` block. A 404 is an unknown symbol.
pub fn parse_chart(reply: &Reply, ticker: &Ticker, now: DateTime<Utc>) -> TickerResult<StockQuote> {
    match reply.status {
        200 => {}
        404 => return Ok(Fetched::Unknown),
        _ => return Err(ProviderError::status(NAME, reply.status, "chart")),
    }
    let envelope: ChartEnvelope = reply.json(NAME, "chart")?;
    let Some(meta) = envelope
        .chart
        .result
        .and_then(|r| r.into_iter().next())
        .map(|r| r.meta)
    else {
        return Ok(Fetched::Unknown);
    };
    let Some(price) = meta.regular_market_price else {
        return Ok(Fetched::Unknown);
    };
    // `previousClose` is yesterday's close. `chartPreviousClose` is the close before the chart's
    // range, which is yesterday's only for a one-day range (what the fallback asks for); some
    // answers carry only that.
    let previous_close = meta
        .previous_close
        .or(meta.chart_previous_close.filter(|_| meta.range == "1d"));
    let change = previous_close.map(|p| price - p);
    let change_percent = match previous_close {
        Some(p) if p > 0.0 => Some((price - p) / p * 100.0),
        _ => meta.regular_market_change_percent,
    };
    let quote = StockQuote {
        schema_version: SCHEMA_VERSION,
        symbol: meta.symbol.to_ascii_uppercase(),
        source: NAME.to_owned(),
        fetched_at: now,
        price,
        previous_close,
        change,
        change_percent,
        currency: meta.currency,
        exchange: meta.exchange_name.clone(),
        market_state: None,
        market_time: epoch_time(meta.regular_market_time),
        volume: count(meta.regular_market_volume),
        // The chart's meta has no extended-hours prices.
        extended_hours: ExtendedHours::default(),
        calendar: None,
        earnings_date: None,
        listing: Listing {
            quote_type: meta.instrument_type,
            exchange: meta.exchange_name,
            timezone: meta.exchange_timezone_name,
        },
    };
    quote
        .validate(ticker)
        .map_err(|reason| ProviderError::invalid(NAME, ticker, reason))?;
    Ok(Fetched::Found(quote))
}

// ---- v7 options --------------------------------------------------------------------------------

#[derive(Deserialize)]
struct OptionsEnvelope {
    #[serde(rename = "optionChain")]
    option_chain: OptionsBody,
}

#[derive(Deserialize)]
struct OptionsBody {
    result: Option<Vec<OptionsResult>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OptionsResult {
    underlying_symbol: Option<String>,
    #[serde(default)]
    expiration_dates: Vec<i64>,
    quote: Option<UnderlyingQuote>,
    #[serde(default)]
    options: Vec<ExpiryPage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UnderlyingQuote {
    regular_market_price: Option<f64>,
}

#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExpiryPage {
    expiration_date: i64,
    #[serde(default)]
    calls: Vec<RawContract>,
    #[serde(default)]
    puts: Vec<RawContract>,
}

#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawContract {
    contract_symbol: String,
    strike: f64,
    last_price: Option<f64>,
    bid: Option<f64>,
    ask: Option<f64>,
    volume: Option<f64>,
    open_interest: Option<f64>,
    implied_volatility: Option<f64>,
    in_the_money: Option<bool>,
}

impl RawContract {
    fn normalise(self) -> OptionContract {
        OptionContract {
            contract_symbol: self.contract_symbol,
            strike: self.strike,
            last_price: self.last_price,
            bid: self.bid,
            ask: self.ask,
            volume: count(self.volume),
            open_interest: count(self.open_interest),
            implied_volatility: self.implied_volatility,
            in_the_money: self.in_the_money,
            greeks: None,
        }
    }
}

/// One v7 options answer: the expiries Yahoo lists and the chain(s) it carried.
#[derive(Clone)]
pub struct OptionsPage {
    pub expiration_dates: Vec<i64>,
    underlying_price: Option<f64>,
    pages: Vec<ExpiryPage>,
}

impl OptionsPage {
    /// Takes the chain for the expiry `epoch` out of the page, if it carried it: its contracts
    /// move into the value instead of being copied.
    pub(super) fn take_chain(&mut self, epoch: i64) -> Option<ExpiryChain> {
        let page = self.pages.iter_mut().find(|p| p.expiration_date == epoch)?;
        let normalise = |raw: &mut Vec<RawContract>| {
            std::mem::take(raw)
                .into_iter()
                .map(RawContract::normalise)
                .collect()
        };
        Some(ExpiryChain {
            expiration: expiry_date(epoch)?,
            calls: normalise(&mut page.calls),
            puts: normalise(&mut page.puts),
        })
    }

    /// The chain value for `ticker` from this (first) page and the fetched expiries.
    pub fn to_chain(
        &self,
        ticker: &Ticker,
        chains: Vec<ExpiryChain>,
        source: &str,
        now: DateTime<Utc>,
    ) -> OptionsChain {
        OptionsChain {
            schema_version: SCHEMA_VERSION,
            symbol: ticker.to_string(),
            source: source.to_owned(),
            fetched_at: now,
            underlying_price: self.underlying_price,
            expirations: self
                .expiration_dates
                .iter()
                .filter_map(|e| expiry_date(*e))
                .collect(),
            chains,
        }
    }

    /// The chains this page carries for the nearest `expirations` expiries (all it has when
    /// the page holds fewer): what a recording of one answer can provide.
    pub fn recorded_chains(&self, expirations: usize) -> Vec<ExpiryChain> {
        let mut page = self.clone();
        wanted_expiries(&self.expiration_dates, expirations)
            .iter()
            .filter_map(|e| page.take_chain(*e))
            .collect()
    }
}

/// Expiry dates are epoch seconds at 00:00 UTC of the expiry day.
pub(super) fn expiry_date(epoch: i64) -> Option<NaiveDate> {
    DateTime::from_timestamp(epoch, 0).map(|t| t.date_naive())
}

pub(super) fn wanted_expiries(all: &[i64], expirations: usize) -> &[i64] {
    match expirations {
        0 => all,
        n => &all[..n.min(all.len())],
    }
}

/// Parses a v7 options answer; `None` is an unknown symbol (no result).
pub fn parse_options_page(
    reply: &Reply,
    ticker: &Ticker,
) -> Result<Option<OptionsPage>, ProviderError> {
    match reply.status {
        200 => {}
        404 => return Ok(None),
        _ => return Err(ProviderError::status(NAME, reply.status, "options")),
    }
    let envelope: OptionsEnvelope = reply.json(NAME, "options")?;
    let Some(result) = envelope
        .option_chain
        .result
        .and_then(|r| r.into_iter().next())
    else {
        return Ok(None);
    };
    if let Some(underlying) = &result.underlying_symbol
        && !underlying.eq_ignore_ascii_case(ticker.as_str())
    {
        return Err(ProviderError::invalid(
            NAME,
            ticker,
            format!("the response is for {underlying:?}, not {ticker}"),
        ));
    }
    let mut expiration_dates = result.expiration_dates;
    expiration_dates.sort_unstable();
    expiration_dates.dedup();
    Ok(Some(OptionsPage {
        expiration_dates,
        underlying_price: result.quote.and_then(|q| q.regular_market_price),
        pages: result.options,
    }))
}

// ---- v10 quoteSummary (calendarEvents) --------------------------------------------------------

#[derive(Deserialize)]
struct SummaryEnvelope {
    #[serde(rename = "quoteSummary")]
    quote_summary: SummaryBody,
}

#[derive(Deserialize)]
struct SummaryBody {
    result: Option<Vec<SummaryResult>>,
    error: Option<YahooError>,
}

#[derive(Deserialize)]
struct YahooError {
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SummaryResult {
    calendar_events: Option<CalendarEvents>,
}

#[derive(Deserialize)]
struct CalendarEvents {
    earnings: Option<EarningsEvents>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EarningsEvents {
    #[serde(default)]
    earnings_date: Vec<i64>,
    is_earnings_date_estimate: Option<bool>,
}

/// Parses a quoteSummary `calendarEvents` answer. `earningsDate[]` is the next date (two
/// entries: a window); `earningsCallDate` is the past call and is ignored. A 404 "No
/// fundamentals data found" means the instrument has no earnings (ETF, crypto, FX): cached as
/// `earnings_date: null`. Other 404s and an empty result are an unknown symbol. The dates are
/// read in `zone`, the listing's own time zone: the answer does not name one.
pub fn parse_earnings(
    reply: &Reply,
    ticker: &Ticker,
    zone: Tz,
    source: &str,
    now: DateTime<Utc>,
) -> TickerResult<Earnings> {
    let none = |is_estimate| Earnings {
        schema_version: SCHEMA_VERSION,
        symbol: ticker.to_string(),
        source: source.to_owned(),
        fetched_at: now,
        earnings_date: None,
        earnings_date_end: None,
        is_estimate,
        // quoteSummary gives instants, not a session: nothing says before or after the open.
        earnings_time: None,
    };
    match reply.status {
        200 => {}
        404 => {
            let no_fundamentals = reply
                .json::<SummaryEnvelope>(NAME, "earnings")
                .ok()
                .and_then(|e| e.quote_summary.error)
                .and_then(|e| e.description)
                .is_some_and(|d| d.contains("No fundamentals data found"));
            return Ok(if no_fundamentals {
                Fetched::Found(none(None))
            } else {
                Fetched::Unknown
            });
        }
        _ => return Err(ProviderError::status(NAME, reply.status, "earnings")),
    }
    let envelope: SummaryEnvelope = reply.json(NAME, "earnings")?;
    let Some(result) = envelope
        .quote_summary
        .result
        .and_then(|r| r.into_iter().next())
    else {
        return Ok(Fetched::Unknown);
    };
    let events = result.calendar_events.and_then(|c| c.earnings);
    let earnings = match events {
        None => none(None),
        Some(events) => {
            let dates: Vec<NaiveDate> = events
                .earnings_date
                .iter()
                .filter_map(|t| date_in(*t, zone))
                .collect();
            if events.earnings_date.len() != dates.len() {
                return Err(ProviderError::malformed(
                    NAME,
                    "earnings",
                    "an earningsDate is out of range",
                ));
            }
            Earnings {
                earnings_date: dates.iter().min().copied(),
                earnings_date_end: dates.iter().max().copied(),
                is_estimate: events.is_earnings_date_estimate,
                ..none(None)
            }
        }
    };
    earnings
        .validate(ticker)
        .map_err(|reason| ProviderError::invalid(NAME, ticker, reason))?;
    Ok(Fetched::Found(earnings))
}
