//! Massive, formerly Polygon.io (keyed): the single-ticker snapshot for quotes, the options chain
//! snapshot paginated through `next_url`, and earnings from the Benzinga partner dataset
//! (`/benzinga/v1/earnings`, a separate entitlement; built from Massive's documentation, as no
//! recorded answer exists). The key travels in an `Authorization: Bearer` header, never in a
//! URL. A `next_url` is followed the way Massive's own client does: its path and query on the
//! configured base, so the key never goes to a host the config did not name, and paging keeps
//! working while answers name api.polygon.io and api.massive.com interchangeably. Quotes stay one
//! ticker per request: the multi-ticker snapshot has no recorded answer to build on.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use url::Url;

use crate::config::ProviderSettings;
use crate::model::{
    Earnings, EarningsTime, ExpiryChain, ExtendedHours, Listing, OptionContract, OptionsChain,
    SCHEMA_VERSION, StockQuote, in_the_money,
};
use crate::provider::api::{Fetched, Provider, ProviderError, TickerResult, count};
use crate::provider::http::{Reply, Upstream, bearer, endpoint_url};
use crate::ticker::Ticker;

const NAME: &str = "polygon";
/// Contracts per page: the API's maximum.
const PAGE_LIMIT: &str = "250";
/// Pages followed for one chain at most (10,000 contracts), so a runaway `next_url` cannot loop
/// forever; a chain longer than that is an error, never a silently truncated chain.
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

    /// A `next_url`'s path and query on the configured base: the key goes only where the
    /// config says, whatever host the answer names.
    fn on_base(&self, next: &str) -> Result<Url, ProviderError> {
        let next = Url::parse(next)
            .map_err(|e| ProviderError::malformed(NAME, "options", format!("bad next_url: {e}")))?;
        let mut url = self.base.clone();
        url.set_path(&format!(
            "{}{}",
            self.base.path().trim_end_matches('/'),
            next.path()
        ));
        url.set_query(next.query());
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

    fn max_concurrency(&self) -> usize {
        self.upstream.max_concurrency()
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
        for page in 0.. {
            if page == MAX_PAGES {
                return Err(ProviderError::invalid(
                    NAME,
                    ticker,
                    format!(
                        "the chain runs past {MAX_PAGES} pages of {PAGE_LIMIT} contracts; not cached truncated (set jobs.options.expirations)"
                    ),
                ));
            }
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
                Some(next) if !enough => url = self.on_base(&next)?,
                _ => break,
            }
        }
        let chain = collected.finish(ticker, expirations, Utc::now());
        chain
            .validate(ticker)
            .map_err(|reason| ProviderError::invalid(NAME, ticker, reason))?;
        Ok(Fetched::Found(chain))
    }

    /// The next report on or after today, from the Benzinga dataset. Massive covers US
    /// listings: one in another zone is unknown here, for the next provider.
    async fn earnings(&self, ticker: &Ticker, zone: Tz) -> TickerResult<Earnings> {
        if zone != self.tz {
            return Ok(Fetched::Unknown);
        }
        let today = Utc::now().with_timezone(&self.tz).date_naive().to_string();
        let url = endpoint_url(
            &self.base,
            &["benzinga", "v1", "earnings"],
            &[
                ("ticker", ticker.as_str()),
                ("date.gte", &today),
                ("sort", "date.asc"),
                ("limit", "1"),
            ],
        );
        let reply = self.upstream.get("earnings", &url, &self.auth).await?;
        parse_earnings(&reply, ticker, Utc::now())
    }
}

// ---- Benzinga earnings ----------------------------------------------------------------------

#[derive(Deserialize)]
struct EarningsPage {
    #[serde(default)]
    results: Vec<RawEarnings>,
}

#[derive(Deserialize)]
struct RawEarnings {
    ticker: String,
    date: NaiveDate,
    /// `projected` or `confirmed`.
    date_status: Option<String>,
    /// `HH:MM:SS`, US Eastern time.
    time: Option<String>,
}

/// Parses a Benzinga earnings answer: its first report is the next one; none is "no report
/// ahead", which is data.
pub fn parse_earnings(
    reply: &Reply,
    ticker: &Ticker,
    now: DateTime<Utc>,
) -> TickerResult<Earnings> {
    if reply.status != 200 {
        return Err(ProviderError::status(NAME, reply.status, "earnings"));
    }
    let page: EarningsPage = reply.json(NAME, "earnings")?;
    let next = page
        .results
        .into_iter()
        .find(|r| r.ticker.eq_ignore_ascii_case(ticker.as_str()));
    Ok(Fetched::Found(Earnings {
        schema_version: SCHEMA_VERSION,
        symbol: ticker.to_string(),
        source: NAME.to_owned(),
        fetched_at: now,
        earnings_date: next.as_ref().map(|r| r.date),
        earnings_date_end: next.as_ref().map(|r| r.date),
        is_estimate: next
            .as_ref()
            .and_then(|r| r.date_status.as_deref())
            .and_then(|s| match s {
                "projected" => Some(true),
                "confirmed" => Some(false),
                _ => None,
            }),
        earnings_time: next.and_then(|r| r.time.as_deref().and_then(session_of)),
    }))
}

/// Where an Eastern clock time falls in the US trading day: before 09:30, from 16:00, or in
/// between.
fn session_of(time: &str) -> Option<EarningsTime> {
    let time = chrono::NaiveTime::parse_from_str(time, "%H:%M:%S").ok()?;
    let open = chrono::NaiveTime::from_hms_opt(9, 30, 0)?;
    let close = chrono::NaiveTime::from_hms_opt(16, 0, 0)?;
    Some(if time < open {
        EarningsTime::Bmo
    } else if time >= close {
        EarningsTime::Amc
    } else {
        EarningsTime::Dmh
    })
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
            // "call", "put", or in rare cases "other", which is neither side of a chain.
            let is_call = match c.details.contract_type.to_ascii_lowercase().as_str() {
                "call" => true,
                "put" => false,
                _ => continue,
            };
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
