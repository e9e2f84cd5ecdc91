//! Yahoo Finance: no key, no contract, best-effort.
//!
//! Quote, options and quoteSummary need a crumb bound to Yahoo's session cookies: one shared
//! session, refreshed by one task at a time, refreshed once on a 401 `Invalid Crumb`. Yahoo
//! refuses the crumb to whole IP ranges (429 or an HTML page from `getcrumb`) while the chart
//! endpoint still answers without one, so quotes fall back to it; options and earnings cannot.
//! Parsing is in free functions so the replay provider reads recordings exactly the same way.

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use chrono_tz::Tz;
use reqwest::header::HeaderMap;
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use crate::config::ProviderSettings;
use crate::model::{Earnings, OptionsChain, StockQuote};
use crate::provider::api::{Fetched, Provider, ProviderError, TickerResult, comma_separated};
use crate::provider::http::{Policy, Reply, Upstream, endpoint_url};
use crate::ticker::Ticker;

mod parse;

use parse::{NAME, wanted_expiries};

pub use parse::{OptionsPage, parse_chart, parse_earnings, parse_options_page, parse_quotes};

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

    async fn earnings(&self, ticker: &Ticker, zone: Tz) -> TickerResult<Earnings> {
        let mut query = vec![("modules", "calendarEvents")];
        query.extend(PLAIN);
        let url = endpoint_url(
            &self.base,
            &["v10", "finance", "quoteSummary", ticker.as_str()],
            &query,
        );
        let reply = self.get_with_crumb("earnings", &url).await?;
        parse_earnings(&reply, ticker, zone, NAME, Utc::now())
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
