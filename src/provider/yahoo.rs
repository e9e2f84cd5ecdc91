//! Yahoo Finance: no key, no contract, best-effort.
//!
//! Quote, options and quoteSummary need a crumb bound to Yahoo's session cookies: one shared
//! session, refreshed by one task at a time, refreshed once on a 401 `Invalid Crumb`. Yahoo
//! refuses the crumb to whole IP ranges (429 or an HTML page from `getcrumb`) while the chart
//! endpoint still answers without one, so quotes fall back to it; options and earnings cannot.
//! Parsing is in free functions so the replay provider reads recordings exactly the same way.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use crate::config::ProviderSettings;
use crate::model::{
    Earnings, ExpiryChain, OptionContract, OptionsChain, SCHEMA_VERSION, StockQuote,
};
use crate::provider::api::{
    Fetched, Provider, ProviderError, TickerResult, comma_separated, count,
};
use crate::provider::http::{Policy, Reply, Upstream, endpoint_url};
use crate::ticker::Ticker;

const NAME: &str = "yahoo";
/// After the crumb is refused, use the chart fallback for this long before asking again, so a
/// blocked IP does not hammer the crumb endpoint.
const CRUMB_RETRY_INTERVAL: Duration = Duration::from_secs(300);
/// Longest plausible crumb (they are 11 characters); anything longer is an error page.
const MAX_CRUMB_LEN: usize = 64;
/// Parameters Yahoo's own clients send for plain numbers and US formatting.
const PLAIN: [(&str, &str); 3] = [("formatted", "false"), ("lang", "en-US"), ("region", "US")];

pub struct Yahoo {
    upstream: Upstream,
    base: Url,
    cookie_url: Url,
    quote_batch: usize,
    tz: Tz,
    session: Mutex<Session>,
}

#[derive(Default)]
struct Session {
    crumb: Option<String>,
    /// Bumped on every new crumb, so a 401 invalidates only the crumb it was sent with.
    generation: u64,
    refused_until: Option<Instant>,
}

impl Yahoo {
    pub fn new(client: reqwest::Client, p: &ProviderSettings, tz: Tz) -> Yahoo {
        Yahoo {
            upstream: Upstream::new(NAME, client, p, p.yahoo.limits()),
            base: p.yahoo.base_url.0.clone(),
            cookie_url: p.yahoo.cookie_url.0.clone(),
            quote_batch: p.yahoo.quote_batch as usize,
            tz,
            session: Mutex::new(Session::default()),
        }
    }

    /// The current crumb, fetching cookie and crumb first if there is none. The session lock is
    /// held while fetching, so concurrent callers wait for one refresh instead of each doing one.
    async fn crumb(&self) -> Result<(String, u64), ProviderError> {
        let mut session = self.session.lock().await;
        if let Some(crumb) = &session.crumb {
            return Ok((crumb.clone(), session.generation));
        }
        if session.refused_until.is_some_and(|t| Instant::now() < t) {
            return Err(crumb_refused("refused recently; not asking again yet"));
        }
        let none = HeaderMap::new();
        // The cookie endpoint answers 404, but with the session cookies the crumb is bound to.
        self.upstream.get("cookie", &self.cookie_url, &none).await?;
        let url = endpoint_url(&self.base, &["v1", "test", "getcrumb"], &[]);
        let reply = self
            .upstream
            .get_with("crumb", &url, &none, Policy::Once)
            .await;
        let crumb = match reply {
            Ok(reply) if reply.status == 200 => valid_crumb(&reply.text()),
            Ok(reply) => Err(format!("HTTP {}", reply.status)),
            Err(e) => Err(e.to_string()),
        };
        match crumb {
            Ok(crumb) => {
                session.crumb = Some(crumb.clone());
                session.generation += 1;
                session.refused_until = None;
                Ok((crumb, session.generation))
            }
            Err(why) => {
                session.refused_until = Some(Instant::now() + CRUMB_RETRY_INTERVAL);
                tracing::warn!(provider = NAME, reason = %why, "Yahoo refused a crumb; quotes use the chart endpoint meanwhile");
                Err(crumb_refused(&why))
            }
        }
    }

    async fn forget_crumb(&self, generation: u64) {
        let mut session = self.session.lock().await;
        if session.generation == generation {
            session.crumb = None;
        }
    }

    /// GETs an endpoint that needs the crumb; a 401 about the crumb or cookie refreshes it once.
    async fn get_with_crumb(
        &self,
        endpoint: &'static str,
        url: &Url,
    ) -> Result<Reply, ProviderError> {
        for attempt in 0..2 {
            let (crumb, generation) = self.crumb().await?;
            let mut with_crumb = url.clone();
            with_crumb.query_pairs_mut().append_pair("crumb", &crumb);
            let reply = self
                .upstream
                .get(endpoint, &with_crumb, &HeaderMap::new())
                .await?;
            let stale = reply.status == 401 && {
                let text = reply.text();
                text.contains("Invalid Crumb") || text.contains("Invalid Cookie")
            };
            if stale && attempt == 0 {
                tracing::info!(provider = NAME, "crumb rejected; refreshing the session");
                self.forget_crumb(generation).await;
                continue;
            }
            return Ok(reply);
        }
        unreachable!("the second attempt always returns")
    }

    async fn chart_quote(&self, ticker: &Ticker) -> TickerResult<StockQuote> {
        let url = endpoint_url(
            &self.base,
            &["v8", "finance", "chart", ticker.as_str()],
            &[("range", "1d"), ("interval", "1d")],
        );
        let reply = self.upstream.get("chart", &url, &HeaderMap::new()).await?;
        parse_chart(&reply, ticker, Utc::now())
    }
}

#[async_trait]
impl Provider for Yahoo {
    fn name(&self) -> &'static str {
        NAME
    }

    fn quote_batch(&self) -> usize {
        self.quote_batch
    }

    async fn quotes(&self, tickers: &[Ticker]) -> Vec<(Ticker, TickerResult<StockQuote>)> {
        let symbols = comma_separated(tickers);
        let mut query = vec![("symbols", symbols.as_str())];
        query.extend(PLAIN);
        let url = endpoint_url(&self.base, &["v7", "finance", "quote"], &query);
        let reply = match self.get_with_crumb("quote", &url).await {
            Ok(reply) if reply.status != 401 => reply,
            // No crumb to be had (or it keeps being refused): the chart needs none.
            Ok(_) | Err(ProviderError::Unavailable { .. }) => {
                let mut out = Vec::with_capacity(tickers.len());
                for t in tickers {
                    out.push((t.clone(), self.chart_quote(t).await));
                }
                return out;
            }
            Err(e) => {
                return tickers
                    .iter()
                    .map(|t| (t.clone(), Err(e.clone())))
                    .collect();
            }
        };
        parse_quotes(&reply, tickers, self.tz, NAME, Utc::now())
    }

    async fn options(&self, ticker: &Ticker, expirations: usize) -> TickerResult<OptionsChain> {
        let path = ["v7", "finance", "options", ticker.as_str()];
        let first = self
            .get_with_crumb("options", &endpoint_url(&self.base, &path, &PLAIN))
            .await?;
        let Some(page) = parse_options_page(&first, ticker)? else {
            return Ok(Fetched::Unknown);
        };
        let wanted = wanted_expiries(&page.expiration_dates, expirations);
        let mut chains = Vec::with_capacity(wanted.len());
        for &epoch in wanted {
            // The undated answer already holds the nearest expiry's contracts.
            let chain = match page.chain_for(epoch) {
                Some(chain) => chain,
                None => {
                    let date = epoch.to_string();
                    let mut query = PLAIN.to_vec();
                    query.push(("date", &date));
                    let reply = self
                        .get_with_crumb("options", &endpoint_url(&self.base, &path, &query))
                        .await?;
                    match parse_options_page(&reply, ticker)? {
                        Some(dated) => dated.chain_for(epoch).ok_or_else(|| {
                            ProviderError::invalid(
                                NAME,
                                ticker,
                                format!("no chain for expiry {epoch} in its own answer"),
                            )
                        })?,
                        None => return Ok(Fetched::Unknown),
                    }
                }
            };
            chains.push(chain);
        }
        let chain = page.to_chain(ticker, chains, NAME, Utc::now());
        chain
            .validate(ticker)
            .map_err(|reason| ProviderError::invalid(NAME, ticker, reason))?;
        Ok(Fetched::Found(chain))
    }

    async fn earnings(&self, ticker: &Ticker) -> TickerResult<Earnings> {
        let mut query = vec![("modules", "calendarEvents")];
        query.extend(PLAIN);
        let url = endpoint_url(
            &self.base,
            &["v10", "finance", "quoteSummary", ticker.as_str()],
            &query,
        );
        let reply = self.get_with_crumb("earnings", &url).await?;
        parse_earnings(&reply, ticker, self.tz, NAME, Utc::now())
    }
}

fn crumb_refused(why: &str) -> ProviderError {
    ProviderError::Unavailable {
        provider: NAME,
        message: format!("no crumb: {why}"),
    }
}

/// A getcrumb answer is a crumb only if it looks like one: not empty, not an HTML page, not the
/// text "Too Many Requests" (which would otherwise be sent as the crumb).
fn valid_crumb(body: &str) -> Result<String, String> {
    let crumb = body.trim();
    if crumb.is_empty() {
        return Err("empty answer".into());
    }
    if crumb.contains("Too Many Requests") {
        return Err("Too Many Requests".into());
    }
    if crumb.len() > MAX_CRUMB_LEN || crumb.contains('<') || crumb.chars().any(char::is_whitespace)
    {
        return Err("the answer is not a crumb (an HTML or error page)".into());
    }
    Ok(crumb.to_owned())
}

fn date_in(epoch: i64, tz: Tz) -> Option<NaiveDate> {
    DateTime::from_timestamp(epoch, 0).map(|t| t.with_timezone(&tz).date_naive())
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
    earnings_timestamp_start: Option<i64>,
}

/// Parses a v7 quote answer for the tickers asked: a ticker missing from `result`, or present
/// as `quoteType: "NONE"` without a price, is unknown; one entry that does not parse or
/// validate fails only that ticker.
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

fn quote_from_entry(
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
        exchange: raw.exchange,
        market_state: raw.market_state,
        market_time: raw
            .regular_market_time
            .and_then(|t| DateTime::from_timestamp(t, 0)),
        volume: count(raw.regular_market_volume),
        earnings_date: raw.earnings_timestamp_start.and_then(|t| date_in(t, tz)),
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
    regular_market_price: Option<f64>,
    regular_market_time: Option<i64>,
    regular_market_volume: Option<f64>,
    previous_close: Option<f64>,
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
    // Only `previousClose` is yesterday's close; `chartPreviousClose` is the close before the
    // chart's range and is not used.
    let change = meta.previous_close.map(|p| price - p);
    let change_percent = match meta.previous_close {
        Some(p) if p > 0.0 => Some((price - p) / p * 100.0),
        _ => meta.regular_market_change_percent,
    };
    let quote = StockQuote {
        schema_version: SCHEMA_VERSION,
        symbol: meta.symbol.to_ascii_uppercase(),
        source: NAME.to_owned(),
        fetched_at: now,
        price,
        previous_close: meta.previous_close,
        change,
        change_percent,
        currency: meta.currency,
        exchange: meta.exchange_name,
        market_state: None,
        market_time: meta
            .regular_market_time
            .and_then(|t| DateTime::from_timestamp(t, 0)),
        volume: count(meta.regular_market_volume),
        earnings_date: None,
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

#[derive(Deserialize)]
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
pub struct OptionsPage {
    pub expiration_dates: Vec<i64>,
    underlying_price: Option<f64>,
    pages: Vec<ExpiryPage>,
}

impl OptionsPage {
    fn chain_for(&self, epoch: i64) -> Option<ExpiryChain> {
        let page = self.pages.iter().find(|p| p.expiration_date == epoch)?;
        Some(ExpiryChain {
            expiration: expiry_date(epoch)?,
            calls: page
                .calls
                .iter()
                .cloned()
                .map(RawContract::normalise)
                .collect(),
            puts: page
                .puts
                .iter()
                .cloned()
                .map(RawContract::normalise)
                .collect(),
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
        wanted_expiries(&self.expiration_dates, expirations)
            .iter()
            .filter_map(|e| self.chain_for(*e))
            .collect()
    }
}

/// Expiry dates are epoch seconds at 00:00 UTC of the expiry day.
fn expiry_date(epoch: i64) -> Option<NaiveDate> {
    DateTime::from_timestamp(epoch, 0).map(|t| t.date_naive())
}

fn wanted_expiries(all: &[i64], expirations: usize) -> &[i64] {
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
/// `earnings_date: null`. Other 404s and an empty result are an unknown symbol.
pub fn parse_earnings(
    reply: &Reply,
    ticker: &Ticker,
    tz: Tz,
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
                .filter_map(|t| date_in(*t, tz))
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
