//! Polygon.io, now Massive (keyed): the single-ticker snapshot for quotes and the options chain
//! snapshot, paginated through `next_url`. The key travels in an `Authorization: Bearer` header,
//! never in a URL, and is re-attached (as a header) to every `next_url`, which is followed only
//! on the configured host. Polygon has no earnings calendar in its standard plans.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use url::Url;

use crate::config::ProviderSettings;
use crate::model::{
    Earnings, ExpiryChain, ExtendedHours, Listing, OptionContract, OptionsChain, SCHEMA_VERSION,
    StockQuote, in_the_money,
};
use crate::provider::api::{Fetched, Provider, ProviderError, TickerResult, count};
use crate::provider::http::{Reply, Upstream, bearer, endpoint_url};
use crate::ticker::Ticker;

const NAME: &str = "polygon";
/// Contracts per page: the API's maximum.
const PAGE_LIMIT: &str = "250";
/// Pages followed for one chain at most, so a runaway `next_url` cannot loop forever.
const MAX_PAGES: usize = 40;

pub struct Polygon {
    upstream: Upstream,
    base: Url,
    auth: HeaderMap,
    tz: Tz,
}

impl Polygon {
    pub fn new(client: reqwest::Client, p: &ProviderSettings, tz: Tz) -> Polygon {
        Polygon {
            upstream: Upstream::new(NAME, client, p, p.polygon.limits()),
            base: p.polygon.base_url.0.clone(),
            auth: bearer(p.polygon.api_key.as_ref().map_or("", |k| k.expose())),
            tz,
        }
    }

    async fn quote(&self, ticker: &Ticker) -> TickerResult<StockQuote> {
        let url = endpoint_url(
            &self.base,
            &[
                "v2",
                "snapshot",
                "locale",
                "us",
                "markets",
                "stocks",
                "tickers",
                ticker.as_str(),
            ],
            &[],
        );
        let reply = self.upstream.get("snapshot", &url, &self.auth).await?;
        parse_snapshot(&reply, ticker, Utc::now())
    }

    /// Only `next_url`s on the configured host are followed: the key must not go elsewhere.
    fn same_origin(&self, next: &str) -> Result<Url, ProviderError> {
        let url = Url::parse(next)
            .map_err(|e| ProviderError::malformed(NAME, "options", format!("bad next_url: {e}")))?;
        if url.origin() != self.base.origin() {
            return Err(ProviderError::malformed(
                NAME,
                "options",
                "next_url points to another host",
            ));
        }
        Ok(url)
    }
}

#[async_trait]
impl Provider for Polygon {
    fn name(&self) -> &'static str {
        NAME
    }

    /// The single-ticker snapshot: one symbol per request.
    fn quote_batch(&self) -> usize {
        1
    }

    async fn quotes(&self, tickers: &[Ticker]) -> Vec<(Ticker, TickerResult<StockQuote>)> {
        let mut out = Vec::with_capacity(tickers.len());
        for t in tickers {
            out.push((t.clone(), self.quote(t).await));
        }
        out
    }

    async fn options(&self, ticker: &Ticker, expirations: usize) -> TickerResult<OptionsChain> {
        let today = Utc::now().with_timezone(&self.tz).date_naive().to_string();
        let mut url = endpoint_url(
            &self.base,
            &["v3", "snapshot", "options", ticker.as_str()],
            &[
                ("limit", PAGE_LIMIT),
                ("sort", "expiration_date"),
                ("order", "asc"),
                ("expiration_date.gte", &today),
            ],
        );
        let mut collected = ChainBuilder::default();
        for page in 0..MAX_PAGES {
            let reply = self.upstream.get("options", &url, &self.auth).await?;
            let parsed = match parse_options_page(&reply, ticker)? {
                Some(parsed) => parsed,
                None if page == 0 => return Ok(Fetched::Unknown),
                None => {
                    return Err(ProviderError::malformed(
                        NAME,
                        "options",
                        "a later page vanished",
                    ));
                }
            };
            let next = parsed.next_url.clone();
            collected.add(parsed);
            // Sorted by expiry: once a page shows more expiries than wanted, the rest is later.
            let enough = expirations > 0 && collected.by_expiry.len() > expirations;
            match next {
                Some(next) if !enough => url = self.same_origin(&next)?,
                _ => break,
            }
        }
        let chain = collected.finish(ticker, expirations, Utc::now());
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

// ---- v2 single-ticker snapshot ------------------------------------------------------------------

#[derive(Deserialize)]
struct SnapshotEnvelope {
    ticker: Option<Snapshot>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Snapshot {
    ticker: String,
    todays_change: Option<f64>,
    todays_change_perc: Option<f64>,
    /// Nanoseconds since the epoch.
    updated: Option<i64>,
    day: Option<Bar>,
    min: Option<Bar>,
    prev_day: Option<Bar>,
    last_trade: Option<Trade>,
}

#[derive(Deserialize)]
struct Bar {
    c: Option<f64>,
    v: Option<f64>,
}

#[derive(Deserialize)]
struct Trade {
    p: Option<f64>,
}

/// Parses a stock snapshot. The price is the last trade, else the last minute bar's close, else
/// the day's close; a 404 or a missing `ticker` is an unknown symbol.
pub fn parse_snapshot(
    reply: &Reply,
    ticker: &Ticker,
    now: DateTime<Utc>,
) -> TickerResult<StockQuote> {
    match reply.status {
        200 => {}
        404 => return Ok(Fetched::Unknown),
        _ => return Err(ProviderError::status(NAME, reply.status, "snapshot")),
    }
    let Some(s) = reply.json::<SnapshotEnvelope>(NAME, "snapshot")?.ticker else {
        return Ok(Fetched::Unknown);
    };
    let positive = |v: Option<f64>| v.filter(|p| *p > 0.0);
    let price = positive(s.last_trade.and_then(|t| t.p))
        .or_else(|| positive(s.min.as_ref().and_then(|m| m.c)))
        .or_else(|| positive(s.day.as_ref().and_then(|d| d.c)));
    let Some(price) = price else {
        return Ok(Fetched::Unknown);
    };
    let quote = StockQuote {
        schema_version: SCHEMA_VERSION,
        symbol: s.ticker.to_ascii_uppercase(),
        source: NAME.to_owned(),
        fetched_at: now,
        price,
        previous_close: s.prev_day.and_then(|d| d.c),
        change: s.todays_change,
        change_percent: s.todays_change_perc,
        currency: None,
        exchange: None,
        market_state: None,
        market_time: s.updated.map(DateTime::from_timestamp_nanos),
        volume: count(s.day.and_then(|d| d.v)),
        // The snapshot has no extended-hours fields and says nothing of the listing.
        extended_hours: ExtendedHours::default(),
        calendar: None,
        earnings_date: None,
        listing: Listing::default(),
    };
    quote
        .validate(ticker)
        .map_err(|reason| ProviderError::invalid(NAME, ticker, reason))?;
    Ok(Fetched::Found(quote))
}

// ---- v3 options chain snapshot ---------------------------------------------------------------

/// One page of the chain snapshot.
#[derive(Deserialize)]
pub struct OptionsPage {
    #[serde(default)]
    results: Vec<ContractSnapshot>,
    next_url: Option<String>,
}

#[derive(Deserialize)]
struct ContractSnapshot {
    details: Details,
    day: Option<Day>,
    greeks: Option<RawGreeks>,
    implied_volatility: Option<f64>,
    open_interest: Option<f64>,
    last_quote: Option<LastQuote>,
    last_trade: Option<LastTrade>,
    underlying_asset: Option<Underlying>,
}

#[derive(Deserialize)]
struct Details {
    contract_type: String,
    expiration_date: NaiveDate,
    strike_price: f64,
    ticker: String,
}

#[derive(Deserialize)]
struct Day {
    close: Option<f64>,
    volume: Option<f64>,
}

#[derive(Deserialize)]
struct RawGreeks {
    delta: Option<f64>,
    gamma: Option<f64>,
    theta: Option<f64>,
    vega: Option<f64>,
}

#[derive(Deserialize)]
struct LastQuote {
    bid: Option<f64>,
    ask: Option<f64>,
}

#[derive(Deserialize)]
struct LastTrade {
    price: Option<f64>,
}

#[derive(Deserialize)]
struct Underlying {
    price: Option<f64>,
    ticker: Option<String>,
}

/// Parses one page of the chain snapshot; `None` is an unknown underlying (404).
pub fn parse_options_page(
    reply: &Reply,
    ticker: &Ticker,
) -> Result<Option<OptionsPage>, ProviderError> {
    match reply.status {
        200 => {}
        404 => return Ok(None),
        _ => return Err(ProviderError::status(NAME, reply.status, "options")),
    }
    let page: OptionsPage = reply.json(NAME, "options")?;
    for c in &page.results {
        if let Some(underlying) = c
            .underlying_asset
            .as_ref()
            .and_then(|u| u.ticker.as_deref())
            && !underlying.eq_ignore_ascii_case(ticker.as_str())
        {
            return Err(ProviderError::invalid(
                NAME,
                ticker,
                format!("contract {} is on {underlying}", c.details.ticker),
            ));
        }
    }
    Ok(Some(page))
}

/// Contracts gathered across pages, by expiry.
#[derive(Default)]
struct ChainBuilder {
    underlying_price: Option<f64>,
    by_expiry: BTreeMap<NaiveDate, ExpiryChain>,
}

impl ChainBuilder {
    fn add(&mut self, page: OptionsPage) {
        for c in page.results {
            let underlying = c.underlying_asset.as_ref().and_then(|u| u.price);
            self.underlying_price = self.underlying_price.or(underlying);
            let is_call = c.details.contract_type.eq_ignore_ascii_case("call");
            let contract = OptionContract {
                contract_symbol: c.details.ticker.trim_start_matches("O:").to_owned(),
                strike: c.details.strike_price,
                last_price: c
                    .last_trade
                    .and_then(|t| t.price)
                    .or(c.day.as_ref().and_then(|d| d.close)),
                bid: c.last_quote.as_ref().and_then(|q| q.bid),
                ask: c.last_quote.as_ref().and_then(|q| q.ask),
                volume: count(c.day.and_then(|d| d.volume)),
                open_interest: count(c.open_interest),
                implied_volatility: c.implied_volatility,
                in_the_money: in_the_money(is_call, c.details.strike_price, underlying),
                greeks: c.greeks.map(|g| crate::model::Greeks {
                    delta: g.delta,
                    gamma: g.gamma,
                    theta: g.theta,
                    vega: g.vega,
                    rho: None,
                }),
            };
            let expiry = c.details.expiration_date;
            let chain = self.by_expiry.entry(expiry).or_insert_with(|| ExpiryChain {
                expiration: expiry,
                calls: Vec::new(),
                puts: Vec::new(),
            });
            let side = if is_call {
                &mut chain.calls
            } else {
                &mut chain.puts
            };
            // Pages can overlap when the data moves between requests; a contract counts once.
            if !side
                .iter()
                .any(|c| c.contract_symbol == contract.contract_symbol)
            {
                side.push(contract);
            }
        }
    }

    /// The expiries seen are the ones known; the nearest `expirations` (0 = all) are kept.
    fn finish(self, ticker: &Ticker, expirations: usize, now: DateTime<Utc>) -> OptionsChain {
        let known: Vec<NaiveDate> = self.by_expiry.keys().copied().collect();
        let keep = if expirations == 0 {
            known.len()
        } else {
            expirations
        };
        OptionsChain {
            schema_version: SCHEMA_VERSION,
            symbol: ticker.to_string(),
            source: NAME.to_owned(),
            fetched_at: now,
            underlying_price: self.underlying_price,
            expirations: known,
            chains: self.by_expiry.into_values().take(keep).collect(),
        }
    }
}
