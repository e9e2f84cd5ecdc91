//! An upstream's answer as the providers read it: status, body, and what its headers say about
//! content type, retrying and the provider's rate window.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, LOCATION, RETRY_AFTER};
use serde::Deserialize;

use crate::provider::api::ProviderError;

/// An answer that was not retried away: a success or a status the provider must interpret.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    content_type: Option<String>,
    pub(super) retry_after: Option<Duration>,
    /// `X-Ratelimit-Available` and when its window ends (`X-Ratelimit-Expiry`), when sent.
    pub(super) rate_window: Option<(u64, Duration)>,
    /// `Location` of a redirect the client did not follow.
    pub location: Option<String>,
}

impl Reply {
    /// The parts of an answer its headers carry; the body follows once read.
    pub(super) fn head(status: u16, headers: &HeaderMap) -> Reply {
        let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
        Reply {
            status,
            body: Vec::new(),
            content_type: header(CONTENT_TYPE).map(str::to_owned),
            retry_after: header(RETRY_AFTER).and_then(parse_retry_after),
            rate_window: rate_window(headers),
            location: header(LOCATION).map(str::to_owned),
        }
    }

    /// A reply from a recording (the replay provider), read by the same parsers.
    pub fn recorded(status: u16, body: Vec<u8>) -> Reply {
        Reply {
            status,
            body,
            content_type: Some("application/json".into()),
            retry_after: None,
            rate_window: None,
            location: None,
        }
    }

    /// An HTML page where data was expected: an error, a block or a consent page.
    pub fn is_html(&self) -> bool {
        self.content_type
            .as_deref()
            .is_some_and(|ct| ct.to_ascii_lowercase().contains("html"))
    }

    /// Decodes a JSON body, refusing another content type (an HTML error page, say).
    /// Types may borrow from the body (raw JSON slices).
    pub fn json<'a, T: Deserialize<'a>>(
        &'a self,
        provider: &'static str,
        endpoint: &'static str,
    ) -> Result<T, ProviderError> {
        let malformed = |message: String| ProviderError::Malformed {
            provider,
            endpoint,
            message,
        };
        if let Some(ct) = &self.content_type
            && !ct.to_ascii_lowercase().contains("json")
        {
            return Err(malformed(format!("expected JSON, got content type {ct:?}")));
        }
        // Checked as UTF-8 once, whole: parsing from a `str` then skips checking each string
        // of the answer again (see docs/performance.md).
        let text = std::str::from_utf8(&self.body)
            .map_err(|e| malformed(format!("the body is not UTF-8: {e}")))?;
        serde_json::from_str(text).map_err(|e| malformed(e.to_string()))
    }

    /// The body as text, for the few plain-text endpoints.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `X-Ratelimit-Available` and the time left until `X-Ratelimit-Expiry` (epoch milliseconds),
/// when both are present and the expiry is ahead.
fn rate_window(headers: &HeaderMap) -> Option<(u64, Duration)> {
    let number =
        |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
    let available = number("x-ratelimit-available")?;
    let expiry = number("x-ratelimit-expiry")?;
    let now = u64::try_from(chrono::Utc::now().timestamp_millis()).ok()?;
    let left = Duration::from_millis(expiry.checked_sub(now)?);
    Some((available, left))
}

/// `Retry-After` as delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (when.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .to_std()
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        let d = parse_retry_after(&soon).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn a_body_that_is_not_utf8_is_malformed_and_names_its_endpoint() {
        let body = [&br#"{"symbol":"A"#[..], &[0xff], br#""}"#].concat();
        let parsed = Reply::recorded(200, body).json::<serde_json::Value>("yahoo", "quote");
        match parsed {
            Err(ProviderError::Malformed {
                provider: "yahoo",
                endpoint: "quote",
                message,
            }) => assert!(message.contains("not UTF-8"), "{message}"),
            other => panic!("{other:?}"),
        }
        let good = Reply::recorded(200, r#"{"symbol":"Aé"}"#.as_bytes().to_vec())
            .json::<serde_json::Value>("yahoo", "quote")
            .unwrap();
        assert_eq!(good["symbol"], "Aé");
    }
}
