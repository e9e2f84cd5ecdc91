//! What every provider is: the [`Provider`] trait, what it answers per ticker ([`Fetched`]), how
//! it fails ([`ProviderError`], [`SetupError`]), and small helpers the parsers share. The
//! providers and the chains built from them depend on this; it depends on none of them.

use async_trait::async_trait;
use chrono_tz::Tz;

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

    /// Most requests it takes at once (`max_concurrency`): how many fetches a job keeps going.
    fn max_concurrency(&self) -> usize;

    /// Quotes for a batch of tickers, one result per ticker asked, in any order.
    async fn quotes(&self, tickers: &[Ticker]) -> Vec<(Ticker, TickerResult<StockQuote>)>;

    /// The chain for the `expirations` nearest expiries (0 = all).
    async fn options(&self, ticker: &Ticker, expirations: usize) -> TickerResult<OptionsChain>;

    /// The next earnings date, as a date in `zone` (the listing's own time zone).
    async fn earnings(&self, ticker: &Ticker, zone: Tz) -> TickerResult<Earnings>;
}

/// A provider that cannot be set up (bad replay directory, TLS setup).
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct SetupError {
    pub key: String,
    pub message: String,
}
