//! The HTTP client the keyed providers share, and the limits each provider is held to.
//!
//! reqwest has no default timeouts and no body-size cap, and its errors print the full URL; this
//! module adds all three defences. Each provider gets an [`Upstream`]: at most `max_concurrency`
//! requests in flight, a token bucket, retries with capped exponential backoff and full jitter,
//! `Retry-After` honoured, a provider-wide pause after a 429, pacing by `X-Ratelimit-*` headers
//! where a provider sends them, and a circuit breaker. Yahoo builds its own client on the same
//! [`client_builder`] (its own User-Agent and cookie jar) and swaps it in when its session resets.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::Instrument;
use url::Url;

use crate::config::{Limits, ProviderSettings};
use crate::metrics;
use crate::provider::api::ProviderError;
use crate::provider::breaker::Breaker;
use crate::traces;

mod reply;
pub use reply::{Reply, parse_retry_after};

/// First backoff step after a failed attempt; it doubles per attempt ...
const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// ... up to this cap. The sleep is uniform in [0, step] ("full jitter") so many workers that
/// failed together do not retry together.
const BACKOFF_CAP: Duration = Duration::from_secs(10);
/// A 429 without `Retry-After` pauses the whole provider, first for this long, doubling with
/// each consecutive 429 ...
const PAUSE_BASE: Duration = Duration::from_secs(1);
/// ... up to this.
const PAUSE_CAP: Duration = Duration::from_secs(60);
/// How long a 429 without `Retry-After` keeps an endpoint with somewhere else to go unasked
/// ([`Policy::RetryExcept429`]).
const ENDPOINT_PAUSE: Duration = Duration::from_secs(60);
/// The longest `Retry-After` we obey; a longer one is treated as this (the run's own timeout
/// still bounds everything).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Idle pooled connections are closed after this, below common load-balancer idle timeouts.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);
/// The longest a provider's own `X-Ratelimit-Expiry` may hold it back: its windows are one
/// minute, so a later expiry is a clock disagreement, not a reason to stop for longer.
const MAX_RATE_WINDOW: Duration = Duration::from_secs(60);

/// What every provider's client has: rustls, gzip, connect/read/total timeouts, pooled
/// connections closed before a load balancer drops them. No cookies: only Yahoo needs them, in
/// its own jar.
pub fn client_builder(p: &ProviderSettings) -> reqwest::ClientBuilder {
    crate::tls::install_crypto_provider();
    reqwest::Client::builder()
        .gzip(true)
        .connect_timeout(p.connect_timeout.get())
        .read_timeout(p.timeout.get())
        .timeout(p.timeout.get())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
}

/// The client the keyed providers share, with the configured `provider.user_agent`.
pub fn client(p: &ProviderSettings) -> Result<reqwest::Client, String> {
    client_builder(p)
        .user_agent(p.user_agent.as_str())
        .build()
        .map_err(|e| describe(&e))
}

/// How [`Upstream::get_with`] treats failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Retry with backoff; a 429 pauses the whole provider.
    Retry,
    /// One attempt, and a 429 concerns this endpoint only (Yahoo's crumb endpoint refuses whole
    /// IP ranges while the data endpoints still answer).
    Once,
    /// Retry timeouts, resets and 5xx, but hand a 429 straight back as a reply, pausing only
    /// this endpoint (for its `Retry-After`, else a minute; meanwhile it answers `Unavailable`
    /// at once): the caller has another endpoint to go to (Yahoo's quote -> its chart).
    RetryExcept429,
}

/// `base` with path segments appended (each percent-encoded as needed) and a query.
pub fn endpoint_url(base: &Url, segments: &[&str], query: &[(&str, &str)]) -> Url {
    let mut url = base.clone();
    url.path_segments_mut()
        .expect("config only accepts http(s) base URLs")
        .pop_if_empty()
        .extend(segments);
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    url
}

/// `Authorization: Bearer <key>`, marked sensitive so it is never printed.
pub(crate) fn bearer(key: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {key}")) {
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    headers
}

/// One provider's connection to the outside world.
pub struct Upstream {
    provider: &'static str,
    /// Replaced whole when a provider resets its session (a clone is cheap: it is a handle).
    client: RwLock<reqwest::Client>,
    max_body: u64,
    max_retries: u32,
    /// Bounds requests in flight to this provider, to `max_concurrency`.
    slots: Semaphore,
    max_concurrency: usize,
    /// Requests per second; `None` is unlimited.
    bucket: Option<DefaultDirectRateLimiter>,
    breaker: Breaker,
    pause: Mutex<Pause>,
    /// Endpoints a 429 paused on their own ([`Policy::RetryExcept429`]), until when.
    endpoint_pauses: Mutex<HashMap<&'static str, Instant>>,
}

#[derive(Default)]
struct Pause {
    until: Option<Instant>,
    consecutive_429: u32,
}

impl Upstream {
    pub fn new(
        provider: &'static str,
        client: reqwest::Client,
        p: &ProviderSettings,
        limits: Limits,
    ) -> Upstream {
        Upstream {
            provider,
            client: RwLock::new(client),
            max_body: p.max_body.0,
            max_retries: p.max_retries,
            slots: Semaphore::new(limits.max_concurrency.max(1) as usize),
            max_concurrency: limits.max_concurrency.max(1) as usize,
            bucket: bucket(limits.requests_per_second),
            breaker: Breaker::new(provider, p.breaker_failures, p.breaker_cooldown.get()),
            pause: Mutex::new(Pause::default()),
            endpoint_pauses: Mutex::default(),
        }
    }

    pub fn provider(&self) -> &'static str {
        self.provider
    }

    pub fn max_concurrency(&self) -> usize {
        self.max_concurrency
    }

    /// Sends every later request through `client` (Yahoo: a new cookie jar); requests in flight
    /// finish on the old one.
    pub fn replace_client(&self, client: reqwest::Client) {
        *self.client.write().expect("client lock") = client;
    }

    /// GETs `url`, retrying timeouts, resets, 5xx and 429. Any other status comes back as a
    /// [`Reply`] for the provider to interpret (a 404 can be data).
    pub async fn get(
        &self,
        endpoint: &'static str,
        url: &Url,
        headers: &HeaderMap,
    ) -> Result<Reply, ProviderError> {
        self.get_with(endpoint, url, headers, Policy::Retry).await
    }

    pub async fn get_with(
        &self,
        endpoint: &'static str,
        url: &Url,
        headers: &HeaderMap,
        policy: Policy,
    ) -> Result<Reply, ProviderError> {
        self.request(endpoint, url, headers, None, policy).await
    }

    /// POSTs a form once (Yahoo's consent form).
    pub async fn post_form(
        &self,
        endpoint: &'static str,
        url: &Url,
        headers: &HeaderMap,
        form: &[(String, String)],
    ) -> Result<Reply, ProviderError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        self.request(endpoint, url, headers, Some(&body), Policy::Once)
            .await
    }

    /// One request and its retries, as one `upstream request` span: provider, endpoint, the
    /// final status (or why there was none) and the retries; never the URL.
    async fn request(
        &self,
        endpoint: &'static str,
        url: &Url,
        headers: &HeaderMap,
        form: Option<&str>,
        policy: Policy,
    ) -> Result<Reply, ProviderError> {
        let span = tracing::info_span!(
            target: traces::TARGET,
            "upstream request",
            provider = self.provider,
            endpoint,
            status = tracing::field::Empty,
            retries = 0u32,
        );
        let result = self
            .attempts(endpoint, url, headers, form, policy)
            .instrument(span.clone())
            .await;
        match &result {
            Ok(reply) => span.record("status", reply.status),
            Err(e) => span.record("status", status_of(e)),
        };
        result
    }

    async fn attempts(
        &self,
        endpoint: &'static str,
        url: &Url,
        headers: &HeaderMap,
        form: Option<&str>,
        policy: Policy,
    ) -> Result<Reply, ProviderError> {
        let max_retries = match policy {
            Policy::Retry | Policy::RetryExcept429 => self.max_retries,
            Policy::Once => 0,
        };
        let mut attempt = 0;
        loop {
            self.breaker.admit()?;
            self.throttle().await;
            // A 429 pauses the whole provider; the next attempt waits that out instead of backing off.
            let (outcome, paused) = {
                let _slot = self
                    .slots
                    .acquire()
                    .await
                    .expect("the semaphore is never closed");
                // Both inside the slot: a request that queued for it behind one answered 429
                // waits out the pause that answer set, instead of going out right after it.
                self.wait_out_pause().await;
                if policy == Policy::RetryExcept429 && self.endpoint_paused(endpoint) {
                    return Err(ProviderError::Unavailable {
                        provider: self.provider,
                        message: format!("{endpoint}: rate limited (429); not asked meanwhile"),
                    });
                }
                let outcome = self.send(endpoint, url, headers, form).await;
                let paused =
                    policy == Policy::Retry && matches!(&outcome, Ok(reply) if reply.status == 429);
                if let Ok(reply) = &outcome {
                    if paused {
                        self.pause_after_429(reply.retry_after);
                    } else if let Some((available, left)) = reply.rate_window {
                        self.pace(available, left);
                    }
                }
                (outcome, paused)
            };
            metrics::upstream_request(self.provider, endpoint, status_class(&outcome));
            let error = match outcome {
                Ok(reply) if reply.status == 429 && policy == Policy::RetryExcept429 => {
                    self.breaker.failure();
                    self.pause_endpoint(endpoint, reply.retry_after);
                    return Ok(reply);
                }
                Ok(reply) if reply.status == 429 || reply.status >= 500 => ProviderError::Status {
                    provider: self.provider,
                    endpoint,
                    status: reply.status,
                },
                Ok(reply) => {
                    self.breaker.success();
                    self.pause.lock().expect("pause lock").consecutive_429 = 0;
                    return Ok(reply);
                }
                Err(e) if e.is_retryable() => e,
                Err(e) => return Err(e),
            };
            self.breaker.failure();
            if attempt >= max_retries {
                return Err(error);
            }
            attempt += 1;
            tracing::Span::current().record("retries", attempt);
            metrics::upstream_retry(self.provider, endpoint);
            tracing::debug!(provider = self.provider, endpoint, attempt, error = %error, "retrying");
            if !paused {
                tokio::time::sleep(full_jitter(attempt)).await;
            }
        }
    }

    async fn send(
        &self,
        endpoint: &'static str,
        url: &Url,
        headers: &HeaderMap,
        form: Option<&str>,
    ) -> Result<Reply, ProviderError> {
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                ProviderError::Timeout {
                    provider: self.provider,
                    endpoint,
                }
            } else {
                ProviderError::Transport {
                    provider: self.provider,
                    endpoint,
                    message: describe(&e),
                }
            }
        };
        let client = self.client.read().expect("client lock").clone();
        let request = match form {
            None => client.get(url.clone()),
            Some(form) => client
                .post(url.clone())
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(form.to_owned()),
        };
        let mut response = request
            .headers(headers.clone())
            .send()
            .await
            .map_err(transport)?;
        let too_large = ProviderError::TooLarge {
            provider: self.provider,
            endpoint,
            limit: self.max_body,
        };
        if response.content_length().is_some_and(|n| n > self.max_body) {
            return Err(too_large);
        }
        let status = response.status().as_u16();
        let mut reply = Reply::head(status, response.headers());
        // With gzip the length is unknown until decoded, so count what arrives and stop at the
        // cap instead of buffering the rest.
        // Sized from the announced length (a plain answer's exact size), so a 50 KB chain is
        // not copied again each time the buffer grows.
        let announced = response.content_length().unwrap_or(0).min(self.max_body);
        let mut body = Vec::with_capacity(usize::try_from(announced).unwrap_or(0));
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() as u64 + chunk.len() as u64 > self.max_body {
                return Err(too_large);
            }
            body.extend_from_slice(&chunk);
        }
        reply.body = body;
        Ok(reply)
    }

    /// Spreads what is left of the provider's own window over the time it has left: the next
    /// request goes out no sooner than `left / available` from now, and none before the window
    /// ends once nothing is available. Tradier sends these headers; the token bucket still
    /// applies on top.
    fn pace(&self, available: u64, left: Duration) {
        let left = left.min(MAX_RATE_WINDOW);
        let wait = if available == 0 {
            left
        } else {
            left / u32::try_from(available).unwrap_or(u32::MAX)
        };
        if wait.is_zero() {
            return;
        }
        let until = Instant::now() + wait;
        let mut pause = self.pause.lock().expect("pause lock");
        pause.until = Some(pause.until.map_or(until, |u| u.max(until)));
        if available == 0 {
            tracing::info!(
                provider = self.provider,
                pause_ms = wait.as_millis() as u64,
                "the provider's rate-limit window is used up; waiting for the next one"
            );
        }
    }

    /// Pauses the whole provider after a 429: for `Retry-After` when given, else for a delay
    /// that doubles with each consecutive 429.
    fn pause_after_429(&self, given: Option<Duration>) {
        let mut pause = self.pause.lock().expect("pause lock");
        let wait = match given {
            Some(d) => d.min(MAX_RETRY_AFTER),
            None => PAUSE_BASE
                .saturating_mul(1 << pause.consecutive_429.min(16))
                .min(PAUSE_CAP),
        };
        pause.consecutive_429 += 1;
        let until = Instant::now() + wait;
        pause.until = Some(pause.until.map_or(until, |u| u.max(until)));
        tracing::warn!(
            provider = self.provider,
            pause_ms = wait.as_millis() as u64,
            retry_after = given.is_some(),
            "rate limited (429); pausing requests to this provider"
        );
    }

    /// After a 429 on an endpoint whose caller has another to go to: that endpoint alone waits
    /// out its `Retry-After` (else [`ENDPOINT_PAUSE`]).
    fn pause_endpoint(&self, endpoint: &'static str, given: Option<Duration>) {
        let wait = given.unwrap_or(ENDPOINT_PAUSE).min(MAX_RETRY_AFTER);
        self.endpoint_pauses
            .lock()
            .expect("endpoint pause lock")
            .insert(endpoint, Instant::now() + wait);
        tracing::info!(
            provider = self.provider,
            endpoint,
            pause_ms = wait.as_millis() as u64,
            "rate limited (429) on this endpoint; it is not asked meanwhile"
        );
    }

    fn endpoint_paused(&self, endpoint: &'static str) -> bool {
        self.endpoint_pauses
            .lock()
            .expect("endpoint pause lock")
            .get(endpoint)
            .is_some_and(|until| Instant::now() < *until)
    }

    async fn wait_out_pause(&self) {
        let until = self.pause.lock().expect("pause lock").until;
        if let Some(until) = until
            && until > Instant::now()
        {
            metrics::rate_limit_wait(self.provider);
            tokio::time::sleep_until(until).await;
        }
    }

    async fn throttle(&self) {
        if let Some(bucket) = &self.bucket
            && bucket.check().is_err()
        {
            metrics::rate_limit_wait(self.provider);
            bucket.until_ready().await;
        }
    }
}

fn bucket(requests_per_second: f64) -> Option<DefaultDirectRateLimiter> {
    if requests_per_second <= 0.0 {
        return None;
    }
    // One token every 1/rps seconds, with a burst of one second's worth (at least one).
    let period = Duration::from_secs_f64(1.0 / requests_per_second);
    let burst = NonZeroU32::new(requests_per_second.ceil() as u32).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period).map(|q| RateLimiter::direct(q.allow_burst(burst)))
}

/// Sleep before retry `attempt` (1-based): uniform in [0, min(cap, base * 2^(attempt-1))].
fn full_jitter(attempt: u32) -> Duration {
    let step = BACKOFF_BASE
        .saturating_mul(1 << (attempt - 1).min(16))
        .min(BACKOFF_CAP);
    Duration::from_millis(fastrand::u64(0..=step.as_millis() as u64))
}

/// An error and its causes on one line, without the URL (which may carry a query secret).
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    strip_urls(&text)
}

/// reqwest puts `for url (...)` in its messages; drop anything that looks like a URL.
fn strip_urls(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            let bare = word.trim_matches(|c| c == '(' || c == ')');
            if bare.starts_with("http://") || bare.starts_with("https://") {
                "<url>"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A failed request's `status` in its span: the HTTP status, else what kind of failure.
fn status_of(e: &ProviderError) -> String {
    match e {
        ProviderError::Status { status, .. } => status.to_string(),
        ProviderError::Timeout { .. } => "timeout".into(),
        ProviderError::BreakerOpen { .. } => "breaker_open".into(),
        ProviderError::TooLarge { .. } => "too_large".into(),
        _ => "error".into(),
    }
}

/// An attempt's outcome as `fcw_upstream_requests_total` labels it: its status class (`2xx`,
/// `4xx`, `5xx`, ...), or `timeout` / `error` when no status came back.
fn status_class(outcome: &Result<Reply, ProviderError>) -> &'static str {
    match outcome {
        Ok(reply) => match reply.status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        },
        Err(ProviderError::Timeout { .. }) => "timeout",
        Err(_) => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_full_jitter() {
        for attempt in 1..40 {
            assert!(full_jitter(attempt) <= BACKOFF_CAP);
        }
        assert!(full_jitter(1) <= BACKOFF_BASE);
    }

    #[test]
    fn urls_are_stripped_from_messages() {
        let text = strip_urls(
            "error sending request for url (https://api.example.com/x?apiKey=SECRET): refused",
        );
        assert_eq!(text, "error sending request for url <url> refused");
    }
}
