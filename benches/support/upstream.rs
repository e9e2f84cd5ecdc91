//! Local upstream answers the benchmarks share: Yahoo's options and quoteSummary endpoints in
//! the recorded shapes, relabelled per request, a record of when each request arrived, and
//! Yahoo mounted whole with the daemon's settings for it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wiremock::matchers::{path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::support::{RecordedQuotes, fixture, mount_yahoo_session};

/// Mounts Yahoo on `upstream`, every answer after `latency`: its session, the recorded quotes,
/// chains relabelled per ticker and expiry, and the recorded quoteSummary.
pub async fn mount_yahoo(upstream: &MockServer, latency: Duration) {
    mount_yahoo_session(upstream).await;
    Mock::given(path("/v7/finance/quote"))
        .respond_with(RecordedQuotes::new(latency))
        .mount(upstream)
        .await;
    Mock::given(path_regex("^/v7/finance/options/"))
        .respond_with(RecordedChains::new(latency))
        .mount(upstream)
        .await;
    Mock::given(path_regex("^/v10/finance/quoteSummary/"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(
                    fixture("yahoo/quoteSummary_calendarEvents_AAPL.json"),
                    "application/json",
                )
                .set_delay(latency),
        )
        .mount(upstream)
        .await;
}

/// The daemon's settings for every kind from Yahoo on `upstream`, without a rate limit.
pub fn yahoo_env(upstream: &MockServer) -> Vec<(&'static str, String)> {
    vec![
        ("FCW_PROVIDER__STOCK", "yahoo".into()),
        ("FCW_PROVIDER__OPTIONS", "yahoo".into()),
        ("FCW_PROVIDER__EARNINGS", "yahoo".into()),
        ("FCW_PROVIDER__YAHOO__BASE_URL", upstream.uri()),
        (
            "FCW_PROVIDER__YAHOO__COOKIE_URL",
            format!("{}/cookie", upstream.uri()),
        ),
        ("FCW_PROVIDER__YAHOO__REQUESTS_PER_SECOND", "0".into()),
    ]
}

/// Answers a Yahoo v7 options request for whatever ticker it names: the recorded AAPL chain
/// (`tests/fixtures/yahoo/options_AAPL_nearest_expiry.json`, 102 contracts) relabelled with the
/// ticker and, for a dated request, with the requested expiry, so each ticker gets as many
/// full expiries as it asks for. The recording is split once around what changes, so the
/// server side of a benchmark costs a copy per answer.
pub struct RecordedChains {
    /// The recording, split at each `"AAPL` (the ticker's place) and at the chain's
    /// `expirationDate` value (the expiry's place), the expiry's piece last of its own.
    pieces: Vec<String>,
    holes: Vec<ChainHole>,
    recorded_expiry: String,
    delay: Duration,
}

#[derive(Clone, Copy)]
enum ChainHole {
    Ticker,
    Expiry,
}

impl RecordedChains {
    pub fn new(delay: Duration) -> RecordedChains {
        let text = String::from_utf8(fixture("yahoo/options_AAPL_nearest_expiry.json")).unwrap();
        let recorded: serde_json::Value = serde_json::from_str(&text).unwrap();
        let expiry = recorded["optionChain"]["result"][0]["options"][0]["expirationDate"]
            .as_i64()
            .unwrap()
            .to_string();
        let expiry_at = format!("\"expirationDate\":{expiry}");
        let (mut pieces, mut holes) = (vec![String::new()], Vec::new());
        let mut rest = text.as_str();
        loop {
            let ticker = rest
                .find("\"AAPL")
                .map(|i| (i, "\"AAPL".len(), ChainHole::Ticker));
            let date = rest
                .find(&expiry_at)
                .map(|i| (i, expiry_at.len(), ChainHole::Expiry));
            let Some((at, len, hole)) = [ticker, date].into_iter().flatten().min_by_key(|h| h.0)
            else {
                pieces.last_mut().unwrap().push_str(rest);
                break;
            };
            let last = pieces.last_mut().unwrap();
            last.push_str(&rest[..at]);
            match hole {
                ChainHole::Ticker => last.push('"'),
                ChainHole::Expiry => last.push_str("\"expirationDate\":"),
            }
            holes.push(hole);
            pieces.push(String::new());
            rest = &rest[at + len..];
        }
        RecordedChains {
            pieces,
            holes,
            recorded_expiry: expiry,
            delay,
        }
    }

    /// The answer for `ticker`, dated `expiry` (else the recorded one).
    pub fn body_for(&self, ticker: &str, expiry: Option<&str>) -> String {
        let expiry = expiry.unwrap_or(&self.recorded_expiry);
        let mut body =
            String::with_capacity(self.pieces.iter().map(String::len).sum::<usize>() * 2);
        for (piece, hole) in self
            .pieces
            .iter()
            .zip(self.holes.iter().map(Some).chain([None]))
        {
            body.push_str(piece);
            match hole {
                Some(ChainHole::Ticker) => body.push_str(ticker),
                Some(ChainHole::Expiry) => body.push_str(expiry),
                None => {}
            }
        }
        body
    }
}

impl wiremock::Respond for RecordedChains {
    fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
        let ticker = request.url.path().rsplit('/').next().unwrap_or("AAPL");
        let date = request
            .url
            .query_pairs()
            .find(|(k, _)| k == "date")
            .map(|(_, v)| v.into_owned());
        wiremock::ResponseTemplate::new(200)
            .set_body_raw(self.body_for(ticker, date.as_deref()), "application/json")
            .set_delay(self.delay)
    }
}

/// When each request of a run arrived at the upstream.
#[derive(Clone, Default)]
pub struct Arrivals(Arc<Mutex<Vec<Instant>>>);

impl Arrivals {
    /// Records the arrival of each request `inner` answers, then answers as it does.
    pub fn counting<R: wiremock::Respond>(&self, inner: R) -> Counted<R> {
        Counted {
            inner,
            arrivals: self.clone(),
        }
    }

    pub fn take(&self) -> Vec<Instant> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// The most requests that arrived within any `window`: when every answer takes `window`, the
/// most that were in flight at once.
pub fn most_within(mut arrivals: Vec<Instant>, window: Duration) -> usize {
    arrivals.sort();
    let mut first = 0;
    let mut most = 0;
    for (last, at) in arrivals.iter().enumerate() {
        while *at - arrivals[first] >= window {
            first += 1;
        }
        most = most.max(last + 1 - first);
    }
    most
}

pub struct Counted<R> {
    inner: R,
    arrivals: Arrivals,
}

impl<R: wiremock::Respond> wiremock::Respond for Counted<R> {
    fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
        self.arrivals.0.lock().unwrap().push(Instant::now());
        self.inner.respond(request)
    }
}
