//! Market-data providers behind one seam, and the fallback chains that config builds from them.
//!
//! # Layout
//! - [`http`]: the shared HTTP client and each provider's limits: concurrency, token bucket,
//!   retries with backoff, `Retry-After`, rate-limit headers, the body cap; [`breaker`]: the
//!   circuit breaker.
//! - [`api`]: the `Provider` trait and what providers answer; every provider builds on it.
//! - [`yahoo`], [`polygon`], [`tradier`], [`finnhub`]: the live APIs; [`replay`]: recorded
//!   responses, offline.
//!
//! A provider answers per ticker: found, unknown (the API does not know the symbol: not an
//! error, not cached), or an error. The chain for a data kind asks its providers in order, each
//! for the tickers the previous ones did not deliver.

pub mod api;
mod breaker;
pub mod finnhub;
pub mod http;
pub mod polygon;
pub mod replay;
pub mod tradier;
pub mod yahoo;

use std::sync::Arc;

use chrono_tz::Tz;

use crate::config::{ProviderName, Settings};
use crate::model::{Earnings, OptionsChain, StockQuote};
use crate::ticker::Ticker;

pub use api::{Fetched, Provider, ProviderError, SetupError, TickerResult, comma_separated, count};

/// The configured fallback chains.
pub struct Providers {
    stock: Vec<Arc<dyn Provider>>,
    options: Vec<Arc<dyn Provider>>,
    earnings: Vec<Arc<dyn Provider>>,
    expirations: usize,
}

impl Providers {
    /// Builds each configured provider once (chains share instances, and with them limits and
    /// breakers) on one HTTP client.
    pub fn from_settings(settings: &Settings) -> Result<Providers, SetupError> {
        let p = &settings.provider;
        let client = http::client(p).map_err(|message| SetupError {
            key: "provider".into(),
            message,
        })?;
        let tz: Tz = settings.market.timezone.0;
        let mut built: Vec<(ProviderName, Arc<dyn Provider>)> = Vec::new();
        let mut get = |name: ProviderName| -> Result<Arc<dyn Provider>, SetupError> {
            if let Some((_, provider)) = built.iter().find(|(n, _)| *n == name) {
                return Ok(provider.clone());
            }
            let provider: Arc<dyn Provider> = match name {
                ProviderName::Yahoo => Arc::new(yahoo::Yahoo::new(p, tz)?),
                ProviderName::Polygon => Arc::new(polygon::Polygon::new(client.clone(), p, tz)),
                ProviderName::Tradier => Arc::new(tradier::Tradier::new(client.clone(), p)),
                ProviderName::Finnhub => Arc::new(finnhub::Finnhub::new(client.clone(), p, tz)),
                ProviderName::Replay => {
                    Arc::new(replay::Replay::load(p.replay.dir.as_deref(), tz)?)
                }
            };
            built.push((name, provider.clone()));
            Ok(provider)
        };
        let mut chain =
            |names: &[ProviderName]| names.iter().map(|n| get(*n)).collect::<Result<Vec<_>, _>>();
        Ok(Providers {
            stock: chain(&p.stock)?,
            options: chain(&p.options)?,
            earnings: chain(&p.earnings)?,
            expirations: settings.jobs.options.expirations.unwrap_or(0) as usize,
        })
    }

    /// Requests the stock chain's providers take at once, together.
    pub fn stock_concurrency(&self) -> usize {
        concurrency(&self.stock)
    }

    /// Requests the options chain's providers take at once, together.
    pub fn options_concurrency(&self) -> usize {
        concurrency(&self.options)
    }

    /// Requests the earnings chain's providers take at once, together.
    pub fn earnings_concurrency(&self) -> usize {
        concurrency(&self.earnings)
    }

    /// Symbols per quote request of the first stock provider (what a job should batch by).
    pub fn quote_batch(&self) -> usize {
        self.stock.first().map_or(1, |p| p.quote_batch())
    }

    /// Quotes through the stock chain: each provider gets the tickers the previous ones failed
    /// or did not know, in its own batch size. A ticker no provider found is an error if any
    /// provider failed on it (an outage is not an unknown symbol), else unknown.
    pub async fn quotes(&self, tickers: &[Ticker]) -> Vec<(Ticker, TickerResult<StockQuote>)> {
        let mut results = Vec::with_capacity(tickers.len());
        // Tickers not found yet, with the first error a provider gave for each.
        let mut pending: Vec<(Ticker, Option<ProviderError>)> =
            tickers.iter().map(|t| (t.clone(), None)).collect();
        for provider in &self.stock {
            if pending.is_empty() {
                break;
            }
            let mut still = Vec::new();
            for batch in pending.chunks(provider.quote_batch().max(1)) {
                let asked: Vec<Ticker> = batch.iter().map(|(t, _)| t.clone()).collect();
                let mut answers = provider.quotes(&asked).await;
                for (ticker, earlier) in batch {
                    let answer = answers
                        .iter()
                        .position(|(t, _)| t == ticker)
                        .map(|i| answers.swap_remove(i).1);
                    match answer {
                        Some(Ok(Fetched::Found(q))) => {
                            results.push((ticker.clone(), Ok(Fetched::Found(q))))
                        }
                        Some(Err(e)) => still.push((ticker.clone(), earlier.clone().or(Some(e)))),
                        Some(Ok(Fetched::Unknown)) | None => {
                            still.push((ticker.clone(), earlier.clone()))
                        }
                    }
                }
            }
            pending = still;
        }
        results.extend(
            pending
                .into_iter()
                .map(|(t, error)| (t, error.map_or(Ok(Fetched::Unknown), Err))),
        );
        results
    }

    pub async fn options(&self, ticker: &Ticker) -> TickerResult<OptionsChain> {
        let expirations = self.expirations;
        first_found(&self.options, |p| {
            let ticker = ticker.clone();
            async move { p.options(&ticker, expirations).await }
        })
        .await
    }

    /// The next earnings date through the earnings chain, as a date in `zone`, the listing's own
    /// time zone (an ASX report falls on a Sydney date).
    pub async fn earnings(&self, ticker: &Ticker, zone: Tz) -> TickerResult<Earnings> {
        first_found(&self.earnings, |p| {
            let ticker = ticker.clone();
            async move { p.earnings(&ticker, zone).await }
        })
        .await
    }
}

fn concurrency(chain: &[Arc<dyn Provider>]) -> usize {
    chain.iter().map(|p| p.max_concurrency()).sum()
}

/// Asks each provider in turn until one finds the ticker. The result is the first find; else
/// the first error (so an outage is not mistaken for an unknown symbol); else unknown.
async fn first_found<T, F, Fut>(chain: &[Arc<dyn Provider>], ask: F) -> TickerResult<T>
where
    F: Fn(Arc<dyn Provider>) -> Fut,
    Fut: Future<Output = TickerResult<T>>,
{
    let mut first_error = None;
    for provider in chain {
        match ask(provider.clone()).await {
            Ok(Fetched::Found(v)) => return Ok(Fetched::Found(v)),
            Ok(Fetched::Unknown) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(Fetched::Unknown), Err)
}
