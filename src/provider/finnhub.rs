//! Finnhub (keyed): the earnings calendar, and nothing else here.
//!
//! `GET /api/v1/calendar/earnings?from=&to=` without a symbol answers for every US listing, so
//! one request for the window (today to today + `provider.finnhub.window`) serves the whole
//! watchlist: the first ticker asks, every other ticker of the run reads that answer. A US
//! ticker the window does not list has no earnings date in it, which is data (cached for
//! `ttl.earnings_unknown`), not an error. Listings outside the US are not in the calendar: they
//! are unknown here and go on to the next provider of the chain. The key travels in the
//! `X-Finnhub-Token` header, never in a URL.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use crate::config::ProviderSettings;
use crate::model::{Earnings, EarningsTime, OptionsChain, SCHEMA_VERSION, StockQuote};
use crate::provider::api::{Fetched, Provider, ProviderError, TickerResult};
use crate::provider::http::{Reply, Upstream, endpoint_url};
use crate::ticker::Ticker;

const NAME: &str = "finnhub";
/// An answer this long is cut short: Finnhub returns at most about 1,500 rows and drops the
/// earliest dates beyond that, so the window is asked again in halves.
const ROW_CAP: usize = 1500;
/// One calendar serves every ticker asked within this long: one run of the earnings job.
const CALENDAR_REUSE: Duration = Duration::from_secs(15 * 60);
/// A failed calendar request is not repeated for each ticker of the run: the others get the
/// same error for this long.
const FAILURE_REUSE: Duration = Duration::from_secs(60);

pub struct Finnhub {
    upstream: Upstream,
    base: Url,
    auth: HeaderMap,
    window: chrono::Duration,
    /// The US market's zone (`market.timezone`): the calendar's dates are its days, and a
    /// listing in another zone is not in the calendar.
    us_zone: Tz,
    calendar: Mutex<Option<(Instant, Result<Calendar, ProviderError>)>>,
}

/// The next report per symbol within the window asked.
#[derive(Debug, Clone)]
struct Calendar {
    by_symbol: HashMap<String, Report>,
    fetched_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy)]
struct Report {
    date: NaiveDate,
    time: Option<EarningsTime>,
}

impl Finnhub {
    pub fn new(client: reqwest::Client, p: &ProviderSettings, us_zone: Tz) -> Finnhub {
        let mut auth = HeaderMap::new();
        let key = p.finnhub.api_key.as_ref().map_or("", |k| k.expose());
        if let Ok(mut value) = HeaderValue::from_str(key) {
            value.set_sensitive(true);
            auth.insert("x-finnhub-token", value);
        }
        Finnhub {
            upstream: Upstream::new(NAME, client, p, p.finnhub.limits()),
            base: p.finnhub.base_url.0.clone(),
            auth,
            window: chrono::Duration::from_std(p.finnhub.window.get())
                .unwrap_or(chrono::Duration::days(90)),
            us_zone,
            calendar: Mutex::new(None),
        }
    }

    /// The calendar of this run: asked once, shared by every ticker while it is fresh.
    async fn calendar(&self) -> Result<Calendar, ProviderError> {
        let mut memo = self.calendar.lock().await;
        if let Some((at, result)) = memo.as_ref() {
            let reuse = if result.is_ok() {
                CALENDAR_REUSE
            } else {
                FAILURE_REUSE
            };
            if at.elapsed() < reuse {
                return result.clone();
            }
        }
        let today = Utc::now().with_timezone(&self.us_zone).date_naive();
        let result = self.window(today, today + self.window).await;
        *memo = Some((Instant::now(), result.clone()));
        result
    }

    /// The reports between `from` and `to` (inclusive), halving the window while an answer is
    /// at Finnhub's row cap.
    async fn window(&self, from: NaiveDate, to: NaiveDate) -> Result<Calendar, ProviderError> {
        let mut calendar = Calendar {
            by_symbol: HashMap::new(),
            fetched_at: Utc::now(),
        };
        let mut pending = vec![(from, to)];
        while let Some((from, to)) = pending.pop() {
            let (from_s, to_s) = (from.to_string(), to.to_string());
            let url = endpoint_url(
                &self.base,
                &["api", "v1", "calendar", "earnings"],
                &[("from", &from_s), ("to", &to_s)],
            );
            let reply = self.upstream.get("earnings", &url, &self.auth).await?;
            let rows = parse_calendar(&reply)?;
            if rows.len() >= ROW_CAP && from < to {
                let middle = from + (to - from) / 2;
                tracing::debug!(provider = NAME, %from, %to, "the calendar answer is at the row cap; asking in halves");
                pending.push((middle.succ_opt().unwrap_or(middle), to));
                pending.push((from, middle));
                continue;
            }
            for row in rows {
                calendar.add(row);
            }
        }
        Ok(calendar)
    }
}

impl Calendar {
    /// Keeps the earliest report per symbol: the next one.
    fn add(&mut self, row: Row) {
        let report = Report {
            date: row.date,
            time: match row.hour.as_deref() {
                Some("bmo") => Some(EarningsTime::Bmo),
                Some("amc") => Some(EarningsTime::Amc),
                Some("dmh") => Some(EarningsTime::Dmh),
                _ => None,
            },
        };
        self.by_symbol
            .entry(row.symbol.to_ascii_uppercase())
            .and_modify(|r| {
                if report.date < r.date {
                    *r = report;
                }
            })
            .or_insert(report);
    }

    fn earnings(&self, ticker: &Ticker) -> Earnings {
        let report = self.by_symbol.get(ticker.as_str());
        Earnings {
            schema_version: SCHEMA_VERSION,
            symbol: ticker.to_string(),
            source: NAME.to_owned(),
            fetched_at: self.fetched_at,
            earnings_date: report.map(|r| r.date),
            earnings_date_end: report.map(|r| r.date),
            // Finnhub does not say whether a date is confirmed.
            is_estimate: None,
            earnings_time: report.and_then(|r| r.time),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CalendarEnvelope {
    #[serde(default)]
    earnings_calendar: Vec<Row>,
}

#[derive(Deserialize)]
struct Row {
    symbol: String,
    date: NaiveDate,
    hour: Option<String>,
}

/// The rows of a calendar answer.
fn parse_calendar(reply: &Reply) -> Result<Vec<Row>, ProviderError> {
    match reply.status {
        200 => Ok(reply
            .json::<CalendarEnvelope>(NAME, "earnings")?
            .earnings_calendar),
        status => Err(ProviderError::status(NAME, status, "earnings")),
    }
}

#[async_trait]
impl Provider for Finnhub {
    fn name(&self) -> &'static str {
        NAME
    }

    fn quote_batch(&self) -> usize {
        1
    }

    fn max_concurrency(&self) -> usize {
        self.upstream.max_concurrency()
    }

    async fn quotes(&self, tickers: &[Ticker]) -> Vec<(Ticker, TickerResult<StockQuote>)> {
        let unsupported = ProviderError::Unsupported {
            provider: NAME,
            kind: "stock",
        };
        tickers
            .iter()
            .map(|t| (t.clone(), Err(unsupported.clone())))
            .collect()
    }

    async fn options(&self, _ticker: &Ticker, _expirations: usize) -> TickerResult<OptionsChain> {
        Err(ProviderError::Unsupported {
            provider: NAME,
            kind: "options",
        })
    }

    async fn earnings(&self, ticker: &Ticker, zone: Tz) -> TickerResult<Earnings> {
        if zone != self.us_zone {
            return Ok(Fetched::Unknown);
        }
        Ok(Fetched::Found(self.calendar().await?.earnings(ticker)))
    }
}
