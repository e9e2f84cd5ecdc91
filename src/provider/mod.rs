//! Market-data providers behind one seam, and the fallback chains that config builds from them.
//!
//! # Layout
//! - [`http`]: the shared HTTP client and each provider's limits: concurrency, token bucket,
//!   retries with backoff, `Retry-After`, the circuit breaker, the body cap.
//! - [`yahoo`], [`polygon`], [`tradier`]: the live APIs; [`replay`]: recorded responses, offline.
//!
//! A provider answers per ticker: found, unknown (the API does not know the symbol: not an
//! error, not cached), or an error. The chain for a data kind asks its providers in order, each
//! for the tickers the previous ones did not deliver.

pub mod http;
pub mod polygon;
pub mod replay;
pub mod tradier;
pub mod yahoo;

use std::sync::Arc;

use async_trait::async_trait;
use chrono_tz::Tz;

use crate::config::{ProviderName, Settings};
use crate::model::{Earnings, OptionsChain, StockQuote};
use crate::ticker::Ticker;

/// What a provider said about one ticker.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched<T> {
    Found(T),
    /// The provider does not know the symbol (delisted, mistyped): nothing is written.
    Unknown,
}

impl<T> Fetched<T> {
    /// Applies `f` to a found value.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Fetched<U> {
        match self {
            Fetched::Found(v) => Fetched::Found(f(v)),
            Fetched::Unknown => Fetched::Unknown,
        }
    }
}

pub type TickerResult<T> = Result<Fetched<T>, ProviderError>;

/// A provider failure, never carrying a secret: URLs are not included and keys travel in headers.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    #[error("{provider} {endpoint}: timed out")]
    Timeout {
        provider: &'static str,
        endpoint: &'static str,
    },
    #[error("{provider} {endpoint}: {message}")]
    Transport {
        provider: &'static str,
        endpoint: &'static str,
        message: String,
    },
    #[error("{provider} {endpoint}: HTTP {status}")]
    Status {
        provider: &'static str,
        endpoint: &'static str,
        status: u16,
    },
    #[error("{provider} {endpoint}: the answer exceeds the {limit}-byte limit (provider.max_body)")]
    TooLarge {
        provider: &'static str,
        endpoint: &'static str,
        limit: u64,
    },
    #[error("{provider} {endpoint}: malformed answer: {message}")]
    Malformed {
        provider: &'static str,
        endpoint: &'static str,
        message: String,
    },
    #[error("{provider}: {symbol}: rejected: {reason}")]
    Invalid {
        provider: &'static str,
        symbol: String,
        reason: String,
    },
    #[error("{provider}: not authorised (HTTP {status}); check its API key or token")]
    Unauthorized { provider: &'static str, status: u16 },
    #[error("{provider}: {message}")]
    Unavailable {
        provider: &'static str,
        message: String,
    },
    #[error("{provider}: circuit breaker open after repeated failures")]
    BreakerOpen { provider: &'static str },
    #[error("{provider} has no {kind} data")]
    Unsupported {
        provider: &'static str,
        kind: &'static str,
    },
}

impl ProviderError {
    /// A ticker's answer that failed validation.
    pub fn invalid(provider: &'static str, ticker: &Ticker, reason: String) -> ProviderError {
        ProviderError::Invalid {
            provider,
            symbol: ticker.to_string(),
            reason,
        }
    }

    /// An answer that is not what the endpoint sends.
    pub fn malformed(
        provider: &'static str,
        endpoint: &'static str,
        message: impl Into<String>,
    ) -> ProviderError {
        ProviderError::Malformed {
            provider,
            endpoint,
            message: message.into(),
        }
    }

    /// A status the provider cannot use as data: 401 and 403 are the key's fault.
    pub fn status(provider: &'static str, status: u16, endpoint: &'static str) -> ProviderError {
        match status {
            401 | 403 => ProviderError::Unauthorized { provider, status },
            status => ProviderError::Status {
                provider,
                endpoint,
                status,
            },
        }
    }

    /// Worth retrying the same request: the provider may answer next time.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Timeout { .. } | ProviderError::Transport { .. } => true,
            ProviderError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// A count (volume, open interest) that providers send as a JSON number: kept when it is a
/// finite, non-negative number, rounded to a whole one.
pub fn count(v: Option<f64>) -> Option<u64> {
    v.filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v.round() as u64)
}

/// `AAPL,MSFT,...`: the symbols parameter of batched quote requests.
pub fn comma_separated(tickers: &[Ticker]) -> String {
    tickers
        .iter()
        .map(Ticker::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// One market-data API.
#[async_trait]
pub trait Provider: Send + Sync {
    fn name(&self) -> &'static str;

    /// Most tickers one `quotes` call should carry.
    fn quote_batch(&self) -> usize;

    /// Quotes for a batch of tickers, one result per ticker asked, in any order.
    async fn quotes(&self, tickers: &[Ticker]) -> Vec<(Ticker, TickerResult<StockQuote>)>;

    /// The chain for the `expirations` nearest expiries (0 = all).
    async fn options(&self, ticker: &Ticker, expirations: usize) -> TickerResult<OptionsChain>;

    /// The next earnings date.
    async fn earnings(&self, ticker: &Ticker) -> TickerResult<Earnings>;
}

/// The configured fallback chains.
pub struct Providers {
    stock: Vec<Arc<dyn Provider>>,
    options: Vec<Arc<dyn Provider>>,
    earnings: Vec<Arc<dyn Provider>>,
    expirations: usize,
}

/// A provider that cannot be set up (bad replay directory, TLS setup).
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct SetupError {
    pub key: String,
    pub message: String,
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
                ProviderName::Yahoo => Arc::new(yahoo::Yahoo::new(client.clone(), p, tz)),
                ProviderName::Polygon => Arc::new(polygon::Polygon::new(client.clone(), p, tz)),
                ProviderName::Tradier => Arc::new(tradier::Tradier::new(client.clone(), p)),
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

    pub async fn earnings(&self, ticker: &Ticker) -> TickerResult<Earnings> {
        first_found(&self.earnings, |p| {
            let ticker = ticker.clone();
            async move { p.earnings(&ticker).await }
        })
        .await
    }
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
