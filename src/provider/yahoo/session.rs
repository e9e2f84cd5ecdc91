//! Yahoo's session: its own HTTP client and cookie jar, the crumb bound to them, and every way
//! Yahoo has of refusing one.
//!
//! Yahoo judges clients by User-Agent and headers, so this client sends a browser's, not the
//! keyed providers' honest one, and keeps its cookies to itself. Whatever goes wrong while
//! getting a session (the cookie host blocked by DNS or down, a 429 on either request, a crumb
//! that is an error page, a consent wall) ends the same way: no crumb for a while, quotes from
//! the crumb-free chart endpoint, one warning. A new session starts from an empty jar, so a
//! cookie Yahoo has flagged does not outlive the session it belonged to.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, ACCEPT_LANGUAGE, HeaderMap, HeaderValue, ORIGIN, REFERER};
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use super::consent::{self, PAGE_ACCEPT, is_consent_page};
use super::parse::NAME;
use crate::config::ProviderSettings;
use crate::provider::api::ProviderError;
use crate::provider::http::{Policy, Reply, Upstream, client_builder, describe, endpoint_url};

/// After Yahoo refuses a session (or an endpoint), quotes use the chart for this long before it
/// is asked again, so a blocked IP does not hammer it.
pub(super) const REFUSAL_BACKOFF: Duration = Duration::from_secs(300);
/// Longest plausible crumb (they are 11 characters); anything longer is an error page.
const MAX_CRUMB_LEN: usize = 64;
/// Where the crumb request says it comes from, as Yahoo's own pages do.
const FINANCE_ORIGIN: &str = "https://finance.yahoo.com";
const LANGUAGE: &str = "en-US,en;q=0.9";

/// The one session all of Yahoo's workers share, and where it comes from.
pub(super) struct Sessions {
    /// What a fresh client (and with it an empty cookie jar) is built from.
    settings: ProviderSettings,
    base: Url,
    cookie_url: Url,
    state: Mutex<Session>,
}

#[derive(Default)]
struct Session {
    crumb: Option<String>,
    /// Bumped on every new crumb, so a 401 invalidates only the crumb it was sent with.
    generation: u64,
    /// Until when no session is asked for, and why the last attempt failed.
    refused: Option<(Instant, String)>,
    /// The jar has had a session's cookies in it; the next session starts from an empty one.
    jar_used: bool,
}

/// Builds Yahoo's client: the shared transport settings, `provider.yahoo.user_agent`, browser
/// headers, a cookie jar of its own, and redirects followed except into a consent page (which
/// is then recognised instead of parsed as a cookie answer).
pub(super) fn client(p: &ProviderSettings) -> Result<reqwest::Client, String> {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT_LANGUAGE, HeaderValue::from_static(LANGUAGE));
    client_builder(p)
        .user_agent(p.yahoo.user_agent.as_str())
        .default_headers(headers)
        .cookie_provider(Arc::new(reqwest::cookie::Jar::default()))
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            if is_consent_page(attempt.url()) || attempt.previous().len() >= 10 {
                attempt.stop()
            } else {
                attempt.follow()
            }
        }))
        .build()
        .map_err(|e| describe(&e))
}

/// Why there is no session; said once per refusal, then not asked again for a while.
enum Refusal {
    Failed(String),
    /// Sent to the consent pages, and walking them did not give a session.
    ConsentWall(String),
}

impl Sessions {
    pub(super) fn new(p: &ProviderSettings) -> Sessions {
        Sessions {
            settings: p.clone(),
            base: p.yahoo.base_url.0.clone(),
            cookie_url: p.yahoo.cookie_url.0.clone(),
            state: Mutex::new(Session::default()),
        }
    }

    /// The current crumb, fetching cookie and crumb first if there is none. The session lock is
    /// held while fetching, so concurrent callers wait for one refresh instead of each doing one.
    pub(super) async fn crumb(&self, upstream: &Upstream) -> Result<(String, u64), ProviderError> {
        let mut session = self.state.lock().await;
        if let Some(crumb) = &session.crumb {
            return Ok((crumb.clone(), session.generation));
        }
        if let Some((until, why)) = &session.refused
            && Instant::now() < *until
        {
            return Err(crumb_refused(why));
        }
        if session.jar_used {
            match client(&self.settings) {
                Ok(fresh) => upstream.replace_client(fresh),
                Err(e) => {
                    tracing::warn!(provider = NAME, error = %e, "could not rebuild Yahoo's client; keeping the old cookie jar")
                }
            }
        }
        session.jar_used = true;
        match self.new_session(upstream).await {
            Ok(crumb) => {
                session.crumb = Some(crumb.clone());
                session.generation += 1;
                session.refused = None;
                Ok((crumb, session.generation))
            }
            Err(refusal) => {
                let why = match refusal {
                    Refusal::Failed(why) => {
                        tracing::warn!(provider = NAME, reason = %why, retry_in_s = REFUSAL_BACKOFF.as_secs(), "Yahoo refused a crumb; quotes use the chart endpoint meanwhile");
                        why
                    }
                    Refusal::ConsentWall(why) => {
                        tracing::error!(provider = NAME, reason = %why, retry_in_s = REFUSAL_BACKOFF.as_secs(), "Yahoo sends this host to its consent wall (an EU address) and accepting it failed: no crumb, so quotes come from the chart endpoint and options and earnings cannot come from Yahoo; use a keyed provider for them");
                        format!("behind Yahoo's consent wall: {why}")
                    }
                };
                let error = crumb_refused(&why);
                session.refused = Some((Instant::now() + REFUSAL_BACKOFF, why));
                Err(error)
            }
        }
    }

    pub(super) async fn forget_crumb(&self, generation: u64) {
        let mut session = self.state.lock().await;
        if session.generation == generation {
            session.crumb = None;
        }
    }

    /// One attempt at each: the cookie page, then the crumb. Neither is retried: Yahoo refuses
    /// them to whole address ranges, and a retry only deepens the refusal.
    async fn new_session(&self, upstream: &Upstream) -> Result<String, Refusal> {
        let mut page = HeaderMap::new();
        page.insert(ACCEPT, HeaderValue::from_static(PAGE_ACCEPT));
        // The cookie endpoint answers 404, but with the session cookies the crumb is bound to.
        let cookie = upstream
            .get_with("cookie", &self.cookie_url, &page, Policy::Once)
            .await
            .map_err(|e| Refusal::Failed(format!("the cookie request failed: {e}")))?;
        if let Some(consent) = consent_redirect(&cookie, &self.cookie_url) {
            tracing::info!(
                provider = NAME,
                "Yahoo asks for consent (an EU address); accepting it as its own clients do"
            );
            consent::accept(upstream, consent)
                .await
                .map_err(Refusal::ConsentWall)?;
        }
        let mut from_finance = HeaderMap::new();
        from_finance.insert(ORIGIN, HeaderValue::from_static(FINANCE_ORIGIN));
        from_finance.insert(
            REFERER,
            HeaderValue::from_static("https://finance.yahoo.com/"),
        );
        let url = endpoint_url(&self.base, &["v1", "test", "getcrumb"], &[]);
        let reply = upstream
            .get_with("crumb", &url, &from_finance, Policy::Once)
            .await
            .map_err(|e| Refusal::Failed(format!("the crumb request failed: {e}")))?;
        match reply.status {
            200 => valid_crumb(&reply.text()).map_err(Refusal::Failed),
            status => Err(Refusal::Failed(format!(
                "the crumb request answered HTTP {status}"
            ))),
        }
    }
}

/// Where a redirect the client stopped at leads, if that is a consent page.
fn consent_redirect(reply: &Reply, from: &Url) -> Option<Url> {
    if !(300..400).contains(&reply.status) {
        return None;
    }
    let url = from.join(reply.location.as_deref()?).ok()?;
    is_consent_page(&url).then_some(url)
}

fn crumb_refused(why: &str) -> ProviderError {
    ProviderError::Unavailable {
        provider: NAME,
        message: format!(
            "no crumb: {why} (asked again {}s after the refusal)",
            REFUSAL_BACKOFF.as_secs()
        ),
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
