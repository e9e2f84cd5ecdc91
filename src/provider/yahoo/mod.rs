//! Yahoo Finance: no key, no contract, best-effort; the fallback behind keyed providers.
//!
//! Quote, options and quoteSummary need a crumb bound to Yahoo's session cookies
//! ([`session`]): one shared session, refreshed by one task at a time, refreshed once on a 401
//! `Invalid Crumb`. When there is no session, or the quote endpoint answers 429 or an HTML page,
//! quotes come from the chart endpoint, which needs no crumb; options and earnings cannot. A 401
//! that is not about the crumb ("User is unable to access this feature") stops that endpoint
//! being asked for a while instead of once per ticker. Parsing is in free functions so the
//! replay provider reads recordings exactly the same way.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::Utc;
use chrono_tz::Tz;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use tokio::time::Instant;
use url::Url;

use crate::config::ProviderSettings;
use crate::model::{Earnings, OptionsChain, StockQuote};
use crate::provider::api::{
    Fetched, Provider, ProviderError, SetupError, TickerResult, comma_separated,
};
use crate::provider::http::{Policy, Reply, Upstream, endpoint_url};
use crate::ticker::Ticker;

mod consent;
mod parse;
mod session;

use parse::{NAME, wanted_expiries};
use session::{REFUSAL_BACKOFF, Sessions};

pub use parse::{OptionsPage, parse_chart, parse_earnings, parse_options_page, parse_quotes};

/// Parameters Yahoo's own clients send for plain numbers and US formatting.
const PLAIN: [(&str, &str); 3] = [("formatted", "false"), ("lang", "en-US"), ("region", "US")];

pub struct Yahoo {
    upstream: Upstream,
    base: Url,
    quote_batch: usize,
    tz: Tz,
    session: Sessions,
    /// Endpoints Yahoo refused outright (a 401 that is not about the crumb), and until when
    /// they are not asked.
    refused: std::sync::Mutex<HashMap<&'static str, Instant>>,
}

impl Yahoo {
    pub fn new(p: &ProviderSettings, tz: Tz) -> Result<Yahoo, SetupError> {
        let client = session::client(p).map_err(|message| SetupError {
            key: "provider.yahoo".into(),
            message,
        })?;
        Ok(Yahoo {
            upstream: Upstream::new(NAME, client, p, p.yahoo.limits()),
            base: p.yahoo.base_url.0.clone(),
            quote_batch: p.yahoo.quote_batch as usize,
            tz,
            session: Sessions::new(p),
            refused: Default::default(),
        })
    }

    /// GETs an endpoint that needs the crumb; a 401 about the crumb or cookie refreshes it once,
    /// any other 401 refuses the endpoint for [`REFUSAL_BACKOFF`].
    async fn get_with_crumb(
        &self,
        endpoint: &'static str,
        url: &Url,
        policy: Policy,
    ) -> Result<Reply, ProviderError> {
        if let Some(until) = self.refused.lock().expect("refused lock").get(endpoint)
            && Instant::now() < *until
        {
            return Err(endpoint_refused(endpoint));
        }
        for attempt in 0..2 {
            let (crumb, generation) = self.session.crumb(&self.upstream).await?;
            let mut with_crumb = url.clone();
            with_crumb.query_pairs_mut().append_pair("crumb", &crumb);
            let reply = self
                .upstream
                .get_with(endpoint, &with_crumb, &HeaderMap::new(), policy)
                .await?;
            if reply.status != 401 {
                return Ok(reply);
            }
            let text = reply.text();
            if text.contains("Invalid Crumb") || text.contains("Invalid Cookie") {
                if attempt == 0 {
                    tracing::info!(provider = NAME, "crumb rejected; refreshing the session");
                    self.session.forget_crumb(generation).await;
                    continue;
                }
                return Ok(reply);
            }
            self.refuse(endpoint, &reply);
            return Err(endpoint_refused(endpoint));
        }
        unreachable!("the second attempt always returns")
    }

    /// Stops asking `endpoint` for a while, saying why once.
    fn refuse(&self, endpoint: &'static str, reply: &Reply) {
        let until = Instant::now() + REFUSAL_BACKOFF;
        let first = self
            .refused
            .lock()
            .expect("refused lock")
            .insert(endpoint, until)
            .is_none_or(|was| was <= Instant::now());
        if first {
            tracing::warn!(
                provider = NAME,
                endpoint,
                reason = %refusal_reason(reply),
                retry_in_s = REFUSAL_BACKOFF.as_secs(),
                "Yahoo refuses this endpoint (HTTP 401); not asking it again meanwhile"
            );
        }
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

    fn max_concurrency(&self) -> usize {
        self.upstream.max_concurrency()
    }

    async fn quotes(&self, tickers: &[Ticker]) -> Vec<(Ticker, TickerResult<StockQuote>)> {
        let symbols = comma_separated(tickers);
        let mut query = vec![("symbols", symbols.as_str())];
        query.extend(PLAIN);
        let url = endpoint_url(&self.base, &["v7", "finance", "quote"], &query);
        let reply = self
            .get_with_crumb("quote", &url, Policy::RetryExcept429)
            .await;
        let reply = match reply {
            Ok(reply) if reply.status != 401 && reply.status != 429 && !reply.is_html() => reply,
            Err(e) if !matches!(e, ProviderError::Unavailable { .. }) => {
                return tickers
                    .iter()
                    .map(|t| (t.clone(), Err(e.clone())))
                    .collect();
            }
            // No crumb to be had, or the endpoint refuses this client (401, 429, an HTML page):
            // the chart needs no crumb and is throttled separately.
            _ => {
                tracing::debug!(
                    provider = NAME,
                    tickers = tickers.len(),
                    "quote endpoint unavailable; this batch comes from the chart endpoint"
                );
                let mut out = Vec::with_capacity(tickers.len());
                for t in tickers {
                    out.push((t.clone(), self.chart_quote(t).await));
                }
                return out;
            }
        };
        parse_quotes(&reply, tickers, self.tz, NAME, Utc::now())
    }

    async fn options(&self, ticker: &Ticker, expirations: usize) -> TickerResult<OptionsChain> {
        let path = ["v7", "finance", "options", ticker.as_str()];
        let first = self
            .get_with_crumb(
                "options",
                &endpoint_url(&self.base, &path, &PLAIN),
                Policy::Retry,
            )
            .await?;
        let Some(mut page) = parse_options_page(&first, ticker)? else {
            return Ok(Fetched::Unknown);
        };
        let wanted = wanted_expiries(&page.expiration_dates, expirations).to_vec();
        let mut chains = Vec::with_capacity(wanted.len());
        for epoch in wanted {
            // The undated answer already holds the nearest expiry's contracts.
            let chain = match page.take_chain(epoch) {
                Some(chain) => chain,
                None => {
                    let date = epoch.to_string();
                    let mut query = PLAIN.to_vec();
                    query.push(("date", &date));
                    let reply = self
                        .get_with_crumb(
                            "options",
                            &endpoint_url(&self.base, &path, &query),
                            Policy::Retry,
                        )
                        .await?;
                    match parse_options_page(&reply, ticker)? {
                        Some(mut dated) => dated.take_chain(epoch).ok_or_else(|| {
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
        let reply = self.get_with_crumb("earnings", &url, Policy::Retry).await?;
        parse_earnings(&reply, ticker, zone, NAME, Utc::now())
    }
}

fn endpoint_refused(endpoint: &'static str) -> ProviderError {
    ProviderError::Unavailable {
        provider: NAME,
        message: format!(
            "{endpoint}: Yahoo refuses this client (HTTP 401); not asked again for {}s",
            REFUSAL_BACKOFF.as_secs()
        ),
    }
}

/// Yahoo's own words for a refusal (`finance.error.description`), else the status.
fn refusal_reason(reply: &Reply) -> String {
    #[derive(Deserialize)]
    struct Envelope {
        finance: Finance,
    }
    #[derive(Deserialize)]
    struct Finance {
        error: Option<Description>,
    }
    #[derive(Deserialize)]
    struct Description {
        description: Option<String>,
    }
    serde_json::from_slice::<Envelope>(&reply.body)
        .ok()
        .and_then(|e| e.finance.error?.description)
        .map_or_else(
            || format!("HTTP {}", reply.status),
            |d| d.chars().take(120).collect(),
        )
}
