//! Tradier (keyed): batched quotes, expirations, and one chain request per expiry with greeks.
//! The token travels as `Authorization: Bearer`; `Accept: application/json` (Tradier answers XML
//! otherwise). Tradier turns a one-element list into a bare object (`quotes.quote` for one
//! symbol), so every list is read as "one or many". Expirations and chains are asked with
//! `includeAllRoots=true`, without which weekly roots (SPXW, RUTW) and adjusted roots (AAPL1)
//! are missing. Tradier has no earnings calendar. Its `X-Ratelimit-*` headers pace requests
//! (in [`crate::provider::http`]).

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use crate::config::ProviderSettings;
use crate::model::{
    Earnings, ExpiryChain, ExtendedHours, Greeks, Listing, OptionContract, OptionsChain,
    SCHEMA_VERSION, StockQuote, in_the_money,
};
use crate::provider::api::{
    Fetched, Provider, ProviderError, TickerResult, comma_separated, count,
};
use crate::provider::http::{Reply, Upstream, bearer, endpoint_url};
use crate::ticker::Ticker;

const NAME: &str = "tradier";

pub struct Tradier {
    upstream: Upstream,
    base: Url,
    headers: HeaderMap,
    quote_batch: usize,
}

impl Tradier {
    pub fn new(client: reqwest::Client, p: &ProviderSettings) -> Tradier {
        let mut headers = bearer(p.tradier.token.as_ref().map_or("", |k| k.expose()));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        Tradier {
            upstream: Upstream::new(NAME, client, p, p.tradier.limits()),
            base: p.tradier.base_url.0.clone(),
            headers,
            quote_batch: p.tradier.quote_batch as usize,
        }
    }

    async fn get(
        &self,
        endpoint: &'static str,
        path: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Reply, ProviderError> {
        let url = endpoint_url(&self.base, path, query);
        self.upstream.get(endpoint, &url, &self.headers).await
    }
}

#[async_trait]
impl Provider for Tradier {
    fn name(&self) -> &'static str {
        NAME
    }

    fn quote_batch(&self) -> usize {
        self.quote_batch
    }

    fn max_concurrency(&self) -> usize {
        self.upstream.max_concurrency()
    }

    async fn quotes(&self, tickers: &[Ticker]) -> Vec<(Ticker, TickerResult<StockQuote>)> {
        let symbols = comma_separated(tickers);
        let reply = self
            .get(
                "quote",
                &["v1", "markets", "quotes"],
                &[("symbols", &symbols), ("greeks", "false")],
            )
            .await;
        match reply {
            Ok(reply) => parse_quotes(&reply, tickers, Utc::now()),
            Err(e) => tickers
                .iter()
                .map(|t| (t.clone(), Err(e.clone())))
                .collect(),
        }
    }

    async fn options(&self, ticker: &Ticker, expirations: usize) -> TickerResult<OptionsChain> {
        let symbol = ticker.as_str();
        let reply = self
            .get(
                "expirations",
                &["v1", "markets", "options", "expirations"],
                &[("symbol", symbol), ("includeAllRoots", "true")],
            )
            .await?;
        let dates = parse_expirations(&reply)?;
        // The chain carries no underlying price; the quote does (and decides in_the_money).
        let underlying_price = match self.quotes(std::slice::from_ref(ticker)).await.pop() {
            Some((_, Ok(Fetched::Found(q)))) => Some(q.price),
            _ => None,
        };
        let wanted = if expirations == 0 {
            dates.len()
        } else {
            expirations.min(dates.len())
        };
        let mut chains = Vec::with_capacity(wanted);
        for date in &dates[..wanted] {
            let expiration = date.to_string();
            let reply = self
                .get(
                    "chains",
                    &["v1", "markets", "options", "chains"],
                    &[
                        ("symbol", symbol),
                        ("expiration", &expiration),
                        ("greeks", "true"),
                        ("includeAllRoots", "true"),
                    ],
                )
                .await?;
            chains.push(parse_chain(&reply, ticker, *date, underlying_price)?);
        }
        let chain = OptionsChain {
            schema_version: SCHEMA_VERSION,
            symbol: ticker.to_string(),
            source: NAME.to_owned(),
            fetched_at: Utc::now(),
            underlying_price,
            expirations: dates,
            chains,
        };
        chain
            .validate(ticker)
            .map_err(|reason| ProviderError::invalid(NAME, ticker, reason))?;
        Ok(Fetched::Found(chain))
    }

    async fn earnings(&self, _ticker: &Ticker, _zone: Tz) -> TickerResult<Earnings> {
        Err(ProviderError::Unsupported {
            provider: NAME,
            kind: "earnings",
        })
    }
}

fn ok_json<T: DeserializeOwned>(reply: &Reply, endpoint: &'static str) -> Result<T, ProviderError> {
    match reply.status {
        200 => reply.json(NAME, endpoint),
        status => Err(ProviderError::status(NAME, status, endpoint)),
    }
}

/// A Tradier list: absent or null, one bare element, or an array.
fn one_or_many(value: Option<Value>) -> Vec<Value> {
    match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(one) => vec![one],
    }
}

#[derive(Deserialize)]
struct QuotesEnvelope {
    quotes: Option<QuotesBody>,
}

#[derive(Deserialize)]
struct QuotesBody {
    quote: Option<Value>,
}

#[derive(Deserialize)]
struct RawQuote {
    symbol: String,
    last: Option<f64>,
    prevclose: Option<f64>,
    change: Option<f64>,
    change_percentage: Option<f64>,
    volume: Option<f64>,
    /// Milliseconds since the epoch.
    trade_date: Option<i64>,
    exch: Option<String>,
    /// `stock`, `etf`, `option` in the recordings.
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// Parses a quotes answer for the tickers asked; a symbol missing from it is unknown.
pub fn parse_quotes(
    reply: &Reply,
    asked: &[Ticker],
    now: DateTime<Utc>,
) -> Vec<(Ticker, TickerResult<StockQuote>)> {
    let entries = ok_json::<QuotesEnvelope>(reply, "quote")
        .map(|e| one_or_many(e.quotes.and_then(|q| q.quote)));
    let entries = match entries {
        Ok(entries) => entries,
        Err(e) => return asked.iter().map(|t| (t.clone(), Err(e.clone()))).collect(),
    };
    asked
        .iter()
        .map(|ticker| {
            let entry = entries.iter().find(|e| {
                e.get("symbol")
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.eq_ignore_ascii_case(ticker.as_str()))
            });
            let result = match entry {
                None => Ok(Fetched::Unknown),
                Some(entry) => quote_from_entry(entry.clone(), ticker, now),
            };
            (ticker.clone(), result)
        })
        .collect()
}

fn quote_from_entry(entry: Value, ticker: &Ticker, now: DateTime<Utc>) -> TickerResult<StockQuote> {
    let raw: RawQuote = serde_json::from_value(entry)
        .map_err(|e| ProviderError::invalid(NAME, ticker, e.to_string()))?;
    let Some(price) = raw.last else {
        return Ok(Fetched::Unknown);
    };
    let quote = StockQuote {
        schema_version: SCHEMA_VERSION,
        symbol: raw.symbol.to_ascii_uppercase(),
        source: NAME.to_owned(),
        fetched_at: now,
        price,
        previous_close: raw.prevclose,
        change: raw.change,
        change_percent: raw.change_percentage,
        currency: None,
        exchange: raw.exch.clone(),
        market_state: None,
        market_time: raw.trade_date.and_then(DateTime::from_timestamp_millis),
        volume: count(raw.volume),
        // The recorded quotes carry no extended-hours fields.
        extended_hours: ExtendedHours::default(),
        calendar: None,
        earnings_date: None,
        listing: Listing {
            quote_type: raw.kind,
            exchange: raw.exch,
            timezone: None,
        },
    };
    quote
        .validate(ticker)
        .map_err(|reason| ProviderError::invalid(NAME, ticker, reason))?;
    Ok(Fetched::Found(quote))
}

#[derive(Deserialize)]
struct ExpirationsEnvelope {
    expirations: Option<ExpirationsBody>,
}

#[derive(Deserialize)]
struct ExpirationsBody {
    date: Option<Value>,
}

/// The listed expiries, sorted; none for an instrument without options.
pub fn parse_expirations(reply: &Reply) -> Result<Vec<NaiveDate>, ProviderError> {
    let envelope: ExpirationsEnvelope = ok_json(reply, "expirations")?;
    let mut dates = one_or_many(envelope.expirations.and_then(|e| e.date))
        .into_iter()
        .map(|v| {
            serde_json::from_value::<NaiveDate>(v)
                .map_err(|e| ProviderError::malformed(NAME, "expirations", e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    dates.sort_unstable();
    dates.dedup();
    Ok(dates)
}

#[derive(Deserialize)]
struct ChainEnvelope {
    options: Option<ChainBody>,
}

#[derive(Deserialize)]
struct ChainBody {
    option: Option<Value>,
}

#[derive(Deserialize)]
struct RawOption {
    symbol: String,
    underlying: Option<String>,
    strike: f64,
    option_type: String,
    expiration_date: NaiveDate,
    last: Option<f64>,
    bid: Option<f64>,
    ask: Option<f64>,
    volume: Option<f64>,
    open_interest: Option<f64>,
    greeks: Option<RawGreeks>,
}

#[derive(Deserialize)]
struct RawGreeks {
    delta: Option<f64>,
    gamma: Option<f64>,
    theta: Option<f64>,
    vega: Option<f64>,
    rho: Option<f64>,
    mid_iv: Option<f64>,
}

/// Parses the chain for one expiry; every contract must be on `ticker` and that expiry.
pub fn parse_chain(
    reply: &Reply,
    ticker: &Ticker,
    expiration: NaiveDate,
    underlying_price: Option<f64>,
) -> Result<ExpiryChain, ProviderError> {
    let envelope: ChainEnvelope = ok_json(reply, "chains")?;
    let mut chain = ExpiryChain {
        expiration,
        calls: Vec::new(),
        puts: Vec::new(),
    };
    for value in one_or_many(envelope.options.and_then(|o| o.option)) {
        let raw: RawOption = serde_json::from_value(value)
            .map_err(|e| ProviderError::invalid(NAME, ticker, e.to_string()))?;
        if raw
            .underlying
            .as_deref()
            .is_some_and(|u| !u.eq_ignore_ascii_case(ticker.as_str()))
            || raw.expiration_date != expiration
        {
            return Err(ProviderError::invalid(
                NAME,
                ticker,
                format!(
                    "contract {} is not on {ticker} expiring {expiration}",
                    raw.symbol
                ),
            ));
        }
        let is_call = raw.option_type.eq_ignore_ascii_case("call");

        let contract = OptionContract {
            contract_symbol: raw.symbol,
            strike: raw.strike,
            last_price: raw.last,
            bid: raw.bid,
            ask: raw.ask,
            volume: count(raw.volume),
            open_interest: count(raw.open_interest),
            implied_volatility: raw.greeks.as_ref().and_then(|g| g.mid_iv),
            in_the_money: in_the_money(is_call, raw.strike, underlying_price),
            greeks: raw.greeks.map(|g| Greeks {
                delta: g.delta,
                gamma: g.gamma,
                theta: g.theta,
                vega: g.vega,
                rho: g.rho,
            }),
        };
        if is_call {
            chain.calls.push(contract)
        } else {
            chain.puts.push(contract)
        }
    }
    Ok(chain)
}
