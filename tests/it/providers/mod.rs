//! Each provider against a local HTTP server (wiremock) serving the recorded responses in
//! `tests/fixtures/` byte for byte. Where a test needs a body no recording holds (an error page,
//! a 401), it uses the body the provider notes document, and says so.

mod finnhub;
mod keyed;
mod limits;
mod markets;
mod massive;
mod replay;
mod yahoo;
mod yahoo_session;

use crate::support;

use std::time::{Duration, Instant};

use finance_cache_warmer::config::{HttpUrl, ProviderName, Secret, Settings};
use finance_cache_warmer::model::StockQuote;
use finance_cache_warmer::provider::{Fetched, ProviderError, Providers, TickerResult};
use finance_cache_warmer::ticker::Ticker;
use support::{assert_schema, fixture};
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const CRUMB: &str = "haT3oykhHqZ"; // tests/fixtures/yahoo/getcrumb_ok.txt
const POLYGON_KEY: &str = "pk_SECRET_0123456789";
const TRADIER_TOKEN: &str = "tk_SECRET_9876543210";

fn t(symbol: &str) -> Ticker {
    symbol.parse().unwrap()
}

fn url(server: &MockServer, suffix: &str) -> HttpUrl {
    HttpUrl(format!("{}{suffix}", server.uri()).parse().unwrap())
}

/// Defaults pointed at `server`, with fast failure so tests do not wait on backoff.
fn settings(server: &MockServer) -> Settings {
    let mut s = Settings::defaults().unwrap();
    let p = &mut s.provider;
    p.yahoo.base_url = url(server, "");
    p.yahoo.cookie_url = url(server, "/cookie");
    p.yahoo.requests_per_second = 0.0;
    p.polygon.base_url = url(server, "");
    p.polygon.api_key = Some(Secret::new(POLYGON_KEY));
    p.polygon.requests_per_second = 0.0;
    p.tradier.base_url = url(server, "");
    p.tradier.token = Some(Secret::new(TRADIER_TOKEN));
    p.tradier.requests_per_second = 0.0;
    p.max_retries = 0;
    p.timeout = "2s".parse().unwrap();
    s
}

fn providers(s: &Settings) -> Providers {
    Providers::from_settings(s).unwrap()
}

fn json(body: Vec<u8>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body, "application/json;charset=utf-8")
}

/// Mounts Yahoo's cookie and crumb endpoints answering as recorded.
async fn yahoo_session(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/cookie"))
        .respond_with(
            ResponseTemplate::new(404).insert_header("set-cookie", "A3=d=AQABBrecorded; Path=/"),
        )
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/test/getcrumb"))
        .and(header("cookie", "A3=d=AQABBrecorded"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(fixture("yahoo/getcrumb_ok.txt"), "text/plain"),
        )
        .mount(server)
        .await;
}

fn found<T: std::fmt::Debug>(r: &TickerResult<T>) -> &T {
    match r {
        Ok(Fetched::Found(v)) => v,
        other => panic!("expected a value, got {other:?}"),
    }
}

fn quote_of<'a>(
    results: &'a [(Ticker, TickerResult<StockQuote>)],
    symbol: &str,
) -> &'a TickerResult<StockQuote> {
    &results
        .iter()
        .find(|(t, _)| t.as_str() == symbol)
        .unwrap()
        .1
}
