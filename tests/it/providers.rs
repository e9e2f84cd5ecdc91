//! Each provider against a local HTTP server (wiremock) serving the recorded responses in
//! `tests/fixtures/` byte for byte. Where a test needs a body no recording holds (an error page,
//! a 401), it uses the body the provider notes document, and says so.

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

#[tokio::test]
async fn yahoo_quotes_are_batched_with_one_shared_crumb() {
    let server = MockServer::start().await;
    yahoo_session(&server).await;
    Mock::given(path("/v7/finance/quote"))
        .and(query_param("symbols", "AAPL,BABA"))
        .and(query_param("crumb", CRUMB))
        .respond_with(json(fixture("yahoo/quote_AAPL_BABA_multi_symbol.json")))
        .expect(2)
        .mount(&server)
        .await;
    let s = settings(&server);
    let p = providers(&s);
    assert_eq!(p.quote_batch(), 50);
    for _ in 0..2 {
        let results = p.quotes(&[t("AAPL"), t("BABA")]).await;
        let aapl = found(quote_of(&results, "AAPL"));
        assert_eq!((aapl.price, aapl.source.as_str()), (244.6, "yahoo"));
        assert_eq!(
            found(quote_of(&results, "BABA")).exchange.as_deref(),
            Some("NYQ")
        );
        assert_schema("stock", &serde_json::to_value(aapl).unwrap());
    }
    let crumbs = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/v1/test/getcrumb")
        .count();
    assert_eq!(crumbs, 1, "one crumb for both calls");
}

#[tokio::test]
async fn the_next_earnings_date_in_a_quote_is_earnings_timestamp_start() {
    let server = MockServer::start().await;
    yahoo_session(&server).await;
    Mock::given(path("/v7/finance/quote"))
        .respond_with(json(fixture("yahoo/quote_AAPL_2026-10.json")))
        .mount(&server)
        .await;
    let results = providers(&settings(&server)).quotes(&[t("AAPL")]).await;
    let q = found(quote_of(&results, "AAPL"));
    // earningsTimestamp (2026-07-30) is the last report; earningsTimestampStart the next.
    assert_eq!(q.earnings_date, Some("2026-10-29".parse().unwrap()));
    assert_eq!(
        (q.price, q.previous_close, q.volume),
        (333.69, Some(330.32), Some(31_878_433))
    );
    assert_eq!(q.market_state.as_deref(), Some("CLOSED"));
}

#[tokio::test]
async fn a_stale_crumb_is_refreshed_once_on_401() {
    let server = MockServer::start().await;
    Mock::given(path("/cookie"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    // The first crumb (recorded 2024), then the current one (recorded 2025).
    let old = String::from_utf8(fixture("yahoo/getcrumb_ok_2024.txt")).unwrap();
    Mock::given(path("/v1/test/getcrumb"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(old.clone(), "text/plain"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/v1/test/getcrumb"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(fixture("yahoo/getcrumb_ok.txt"), "text/plain"),
        )
        .mount(&server)
        .await;
    // Yahoo's 401 body for a stale crumb, as quoted in the provider notes (no recording saved).
    Mock::given(path("/v7/finance/quote"))
        .and(query_param("crumb", old.trim()))
        .respond_with(ResponseTemplate::new(401).set_body_raw(
            r#"{"finance":{"result":null,"error":{"code":"Unauthorized","description":"Invalid Crumb"}}}"#,
            "application/json;charset=utf-8",
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/v7/finance/quote"))
        .and(query_param("crumb", CRUMB))
        .respond_with(json(fixture("yahoo/quote_QQQ_etf.json")))
        .expect(1)
        .mount(&server)
        .await;
    let results = providers(&settings(&server)).quotes(&[t("QQQ")]).await;
    assert_eq!(found(quote_of(&results, "QQQ")).symbol, "QQQ");
}

#[tokio::test]
async fn a_refused_crumb_falls_back_to_the_chart_for_prices() {
    // 429 "Too Many Requests" (the text Yahoo sends) and an HTML page are both "no crumb".
    for refusal in [
        ResponseTemplate::new(429).set_body_raw("Too Many Requests\r\n", "text/plain"),
        ResponseTemplate::new(200)
            .set_body_raw("<html><body>Will be right back</body></html>", "text/html"),
        ResponseTemplate::new(200).set_body_raw("", "text/plain"),
    ] {
        let server = MockServer::start().await;
        Mock::given(path("/cookie"))
            .respond_with(ResponseTemplate::new(404))
            .mount(&server)
            .await;
        Mock::given(path("/v1/test/getcrumb"))
            .respond_with(refusal)
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(path("/v7/finance/quote"))
            .respond_with(ResponseTemplate::new(500))
            .expect(0)
            .mount(&server)
            .await;
        Mock::given(path("/v8/finance/chart/AAPL"))
            .and(query_param("range", "1d"))
            .and(query_param_is_missing("crumb"))
            .respond_with(json(fixture(
                "yahoo/chart_AAPL_1d_2022-02-22_recorded_2026-10.json",
            )))
            .expect(2)
            .mount(&server)
            .await;
        let p = providers(&settings(&server));
        for _ in 0..2 {
            let results = p.quotes(&[t("AAPL")]).await;
            let q = found(quote_of(&results, "AAPL"));
            assert_eq!((q.price, q.currency.as_deref()), (333.69, Some("USD")));
            // chartPreviousClose is the close before the chart's range, not yesterday's.
            assert_eq!(q.previous_close, None);
            assert_schema("stock", &serde_json::to_value(q).unwrap());
        }
        // Options and earnings need the crumb: they fail, clearly, and write nothing.
        let e = p.options(&t("AAPL")).await.unwrap_err();
        assert!(matches!(e, ProviderError::Unavailable { .. }), "{e}");
        assert!(e.to_string().starts_with("yahoo: no crumb"), "{e}");
    }
}

#[tokio::test]
async fn unknown_and_delisted_symbols_are_unknown_not_errors() {
    let server = MockServer::start().await;
    yahoo_session(&server).await;
    for (symbols, file) in [
        ("SIX", "quote_SIX_unknown_symbol_empty_result.json"),
        ("SI", "quote_SI_delisted_quoteType_NONE.json"),
        ("AAPL,NONEXIST", "quote_AAPL_NONEXIST_mixed_2022.json"),
    ] {
        Mock::given(path("/v7/finance/quote"))
            .and(query_param("symbols", symbols))
            .respond_with(json(fixture(&format!("yahoo/{file}"))))
            .mount(&server)
            .await;
    }
    let p = providers(&settings(&server));
    assert_eq!(p.quotes(&[t("SIX")]).await[0].1, Ok(Fetched::Unknown));
    assert_eq!(p.quotes(&[t("SI")]).await[0].1, Ok(Fetched::Unknown));
    let mixed = p.quotes(&[t("AAPL"), t("NONEXIST")]).await;
    assert_eq!(found(quote_of(&mixed, "AAPL")).price, 160.07);
    assert_eq!(*quote_of(&mixed, "NONEXIST"), Ok(Fetched::Unknown));
}

#[tokio::test]
async fn a_sparse_quote_keeps_only_what_it_has() {
    let server = MockServer::start().await;
    yahoo_session(&server).await;
    Mock::given(path("/v7/finance/quote"))
        .respond_with(json(fixture("yahoo/quote_MSFT_fields_beta.json")))
        .mount(&server)
        .await;
    let results = providers(&settings(&server)).quotes(&[t("MSFT")]).await;
    let q = found(quote_of(&results, "MSFT"));
    assert_eq!(
        (q.price, q.previous_close, q.currency.as_deref()),
        (408.43, None, None)
    );
    assert_schema("stock", &serde_json::to_value(q).unwrap());
}

#[tokio::test]
async fn yahoo_options_nearest_expiry_and_negative_answers() {
    let server = MockServer::start().await;
    yahoo_session(&server).await;
    for (sym, file) in [
        ("AAPL", "options_AAPL_nearest_expiry.json"),
        ("EURUSD=X", "options_EURUSD=X_no_options.json"),
        ("BTC-USD", "options_BTC-USD_no_options.json"),
    ] {
        Mock::given(path(format!("/v7/finance/options/{sym}")))
            .and(query_param_is_missing("date"))
            .and(query_param("crumb", CRUMB))
            .respond_with(json(fixture(&format!("yahoo/{file}"))))
            .mount(&server)
            .await;
    }
    let mut s = settings(&server);
    s.jobs.options.expirations = Some(1);
    let p = providers(&s);
    let chain = p.options(&t("AAPL")).await;
    let chain = found(&chain);
    assert_eq!(chain.underlying_price, Some(245.55));
    assert_eq!(chain.expirations.len(), 20);
    assert_eq!(chain.chains.len(), 1);
    assert_eq!(chain.chains[0].expiration, "2025-02-28".parse().unwrap());
    assert_eq!(
        (chain.chains[0].calls.len(), chain.chains[0].puts.len()),
        (54, 48)
    );
    let first = &chain.chains[0].calls[0];
    assert_eq!(
        (
            first.contract_symbol.as_str(),
            first.strike,
            first.in_the_money
        ),
        ("AAPL250228C00110000", 110.0, Some(true))
    );
    assert_schema("options", &serde_json::to_value(chain).unwrap());

    // No options is data: an empty chain, cached so the app stops asking.
    for sym in ["EURUSD=X", "BTC-USD"] {
        let none = p.options(&t(sym)).await;
        let none = found(&none);
        assert!(
            none.expirations.is_empty() && none.chains.is_empty(),
            "{none:?}"
        );
        assert_schema("options", &serde_json::to_value(none).unwrap());
    }
}

#[tokio::test]
async fn a_chain_answer_for_another_expiry_is_rejected() {
    let server = MockServer::start().await;
    yahoo_session(&server).await;
    Mock::given(path("/v7/finance/options/AAPL"))
        .and(query_param_is_missing("date"))
        .respond_with(json(fixture("yahoo/options_AAPL_nearest_expiry.json")))
        .mount(&server)
        .await;
    // Asked for the second listed expiry, Yahoo answers for an expired date (recorded 2026).
    Mock::given(path("/v7/finance/options/AAPL"))
        .and(query_param("date", "1741305600"))
        .respond_with(json(fixture(
            "yahoo/options_AAPL_date_1646092800_expired_2026.json",
        )))
        .expect(1)
        .mount(&server)
        .await;
    let mut s = settings(&server);
    s.jobs.options.expirations = Some(2);
    let e = providers(&s).options(&t("AAPL")).await.unwrap_err();
    assert!(matches!(e, ProviderError::Invalid { .. }), "{e}");
}

#[tokio::test]
async fn earnings_come_from_calendar_events_and_404s_mean_none_or_unknown() {
    let server = MockServer::start().await;
    yahoo_session(&server).await;
    for (sym, status, file) in [
        ("AAPL", 200, "quoteSummary_calendarEvents_AAPL.json"),
        ("SPOT", 200, "quoteSummary_calendarEvents_SPOT.json"),
        (
            "QQQ",
            404,
            "quoteSummary_calendarEvents_QQQ_404_no_fundamentals.json",
        ),
        (
            "EURUSD=X",
            404,
            "quoteSummary_calendarEvents_EURUSD=X_404_no_fundamentals.json",
        ),
        (
            "QQQX",
            404,
            "quoteSummary_bad_symbol_404_quote_not_found.json",
        ),
        (
            "ZZZZ",
            404,
            "quoteSummary_empty_symbol_404_empty_result.json",
        ),
    ] {
        Mock::given(path(format!("/v10/finance/quoteSummary/{sym}")))
            .and(query_param("modules", "calendarEvents"))
            .respond_with(
                ResponseTemplate::new(status)
                    .set_body_raw(fixture(&format!("yahoo/{file}")), "application/json"),
            )
            .mount(&server)
            .await;
    }
    let p = providers(&settings(&server));
    let aapl = p.earnings(&t("AAPL")).await;
    let aapl = found(&aapl);
    // earningsDate [2025-04-30 06:59 EDT, 2025-05-05 08:00 EDT]: an estimated window.
    assert_eq!(aapl.earnings_date, Some("2025-04-30".parse().unwrap()));
    assert_eq!(aapl.earnings_date_end, Some("2025-05-05".parse().unwrap()));
    assert_eq!(aapl.is_estimate, Some(true));
    assert_schema("earnings", &serde_json::to_value(aapl).unwrap());
    let spot = p.earnings(&t("SPOT")).await;
    let spot = found(&spot);
    assert_eq!(
        (spot.earnings_date, spot.earnings_date_end),
        (
            Some("2025-02-04".parse().unwrap()),
            Some("2025-02-04".parse().unwrap())
        )
    );
    for sym in ["QQQ", "EURUSD=X"] {
        let none = p.earnings(&t(sym)).await;
        let none = found(&none);
        assert_eq!(
            (none.earnings_date, none.earnings_date_end),
            (None, None),
            "{sym}: no earnings is data"
        );
        assert_schema("earnings", &serde_json::to_value(none).unwrap());
    }
    assert_eq!(p.earnings(&t("QQQX")).await, Ok(Fetched::Unknown));
    assert_eq!(p.earnings(&t("ZZZZ")).await, Ok(Fetched::Unknown));
}

/// When each request to one endpoint arrived.
type Arrivals = std::sync::Arc<std::sync::Mutex<Vec<Instant>>>;

/// Answers `first` once, then `rest`, noting when each request arrived.
struct Sequence {
    first: ResponseTemplate,
    rest: ResponseTemplate,
    arrivals: Arrivals,
}

impl wiremock::Respond for Sequence {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut arrivals = self.arrivals.lock().unwrap();
        arrivals.push(Instant::now());
        if arrivals.len() == 1 {
            self.first.clone()
        } else {
            self.rest.clone()
        }
    }
}

fn sequence(first: ResponseTemplate, rest: ResponseTemplate) -> (Sequence, Arrivals) {
    let arrivals = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    (
        Sequence {
            first,
            rest,
            arrivals: arrivals.clone(),
        },
        arrivals,
    )
}

/// Yahoo with the crumb refused, so quotes go to the chart endpoint.
async fn yahoo_without_crumb(server: &MockServer) {
    Mock::given(path("/cookie"))
        .respond_with(ResponseTemplate::new(404))
        .mount(server)
        .await;
    Mock::given(path("/v1/test/getcrumb"))
        .respond_with(ResponseTemplate::new(429))
        .mount(server)
        .await;
}

#[tokio::test]
async fn retry_after_is_honoured_in_seconds_and_as_an_http_date() {
    for (as_date, at_least) in [(false, 900), (true, 1500)] {
        // An HTTP date has one-second resolution: "in three seconds" is at least two away.
        let retry_after = if as_date {
            (chrono::Utc::now() + chrono::Duration::seconds(3))
                .to_rfc2822()
                .replace("+0000", "GMT")
        } else {
            "1".to_owned()
        };
        let server = MockServer::start().await;
        yahoo_without_crumb(&server).await;
        let chart = json(fixture(
            "yahoo/chart_AAPL_1d_2022-02-22_recorded_2026-10.json",
        ));
        let (responder, arrivals) = sequence(
            ResponseTemplate::new(429).insert_header("retry-after", retry_after.as_str()),
            chart,
        );
        Mock::given(path("/v8/finance/chart/AAPL"))
            .respond_with(responder)
            .mount(&server)
            .await;
        let mut s = settings(&server);
        s.provider.max_retries = 2;
        let results = providers(&s).quotes(&[t("AAPL")]).await;
        assert_eq!(found(quote_of(&results, "AAPL")).price, 333.69);
        let arrivals = arrivals.lock().unwrap();
        assert_eq!(arrivals.len(), 2);
        let gap = arrivals[1] - arrivals[0];
        assert!(
            gap >= Duration::from_millis(at_least),
            "retried after {gap:?}; Retry-After was {retry_after}"
        );
    }
}

/// Yahoo with the crumb refused: AAPL's chart answers `first` once and then the recording,
/// QQQ's chart the recording. Returns when each symbol's requests arrived.
async fn aapl_answered_then_qqq(
    server: &MockServer,
    first: ResponseTemplate,
) -> (Arrivals, Arrivals) {
    yahoo_without_crumb(server).await;
    let chart = || {
        json(fixture(
            "yahoo/chart_AAPL_1d_2022-02-22_recorded_2026-10.json",
        ))
    };
    let (aapl, aapl_arrivals) = sequence(first, chart());
    Mock::given(path("/v8/finance/chart/AAPL"))
        .respond_with(aapl)
        .mount(server)
        .await;
    let (qqq, qqq_arrivals) = sequence(chart(), chart());
    Mock::given(path("/v8/finance/chart/QQQ"))
        .respond_with(qqq)
        .mount(server)
        .await;
    (aapl_arrivals, qqq_arrivals)
}

#[tokio::test]
async fn a_429_without_retry_after_pauses_the_whole_provider() {
    let server = MockServer::start().await;
    let (aapl_arrivals, qqq_arrivals) =
        aapl_answered_then_qqq(&server, ResponseTemplate::new(429)).await;
    // No retries: the AAPL call returns as soon as its 429 has paused the provider.
    let p = providers(&settings(&server));
    let aapl = p.quotes(&[t("AAPL")]).await;
    assert!(
        matches!(aapl[0].1, Err(ProviderError::Status { status: 429, .. })),
        "{aapl:?}"
    );
    // Another symbol, asked right after: it waits out the provider-wide pause too.
    let qqq = p.quotes(&[t("QQQ")]).await;
    // The recorded chart is AAPL's; asked for QQQ it is another symbol's answer: rejected.
    assert!(
        matches!(qqq[0].1, Err(ProviderError::Invalid { .. })),
        "{qqq:?}"
    );
    let first_429 = aapl_arrivals.lock().unwrap()[0];
    let qqq_at = qqq_arrivals.lock().unwrap()[0];
    assert!(
        qqq_at - first_429 >= Duration::from_millis(900),
        "QQQ went out {:?} after the 429",
        qqq_at - first_429
    );
}

#[tokio::test]
async fn a_request_queued_behind_a_429_waits_out_its_retry_after() {
    let server = MockServer::start().await;
    // The 429 comes slowly, so by then QQQ is waiting for the provider's one slot.
    let (aapl_arrivals, qqq_arrivals) = aapl_answered_then_qqq(
        &server,
        ResponseTemplate::new(429)
            .insert_header("retry-after", "1")
            .set_delay(Duration::from_millis(200)),
    )
    .await;
    let mut s = settings(&server);
    s.provider.yahoo.max_concurrency = 1;
    let p = providers(&s);
    let (aapl_only, qqq_only) = ([t("AAPL")], [t("QQQ")]);
    let (aapl, _) = tokio::join!(p.quotes(&aapl_only), p.quotes(&qqq_only));
    assert!(
        matches!(aapl[0].1, Err(ProviderError::Status { status: 429, .. })),
        "{aapl:?}"
    );
    // QQQ went out a second after the 429 arrived, not as soon as the slot was free.
    let gap = qqq_arrivals.lock().unwrap()[0] - aapl_arrivals.lock().unwrap()[0];
    assert!(
        gap >= Duration::from_millis(1150),
        "QQQ went out {gap:?} after AAPL, whose answer (after 200 ms) asked for a second"
    );
}

#[tokio::test]
async fn the_breaker_opens_hands_over_to_the_fallback_and_closes_again() {
    let server = MockServer::start().await;
    yahoo_session(&server).await;
    Mock::given(path_regex_polygon_snapshot())
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(3)
        .mount(&server)
        .await;
    Mock::given(path("/v2/snapshot/locale/us/markets/stocks/tickers/AAPL"))
        .respond_with(json(fixture(
            "polygon/v2_snapshot_stocks_ticker_AAPL.mock.json",
        )))
        .mount(&server)
        .await;
    Mock::given(path("/v7/finance/quote"))
        .respond_with(json(fixture("yahoo/quote_AAPL_2026-10.json")))
        .mount(&server)
        .await;
    let mut s = settings(&server);
    s.provider.stock = vec![ProviderName::Polygon, ProviderName::Yahoo];
    s.provider.breaker_failures = 3;
    s.provider.breaker_cooldown = "1s".parse().unwrap();
    let p = providers(&s);
    // Three failures open polygon's breaker; yahoo answers each time.
    for _ in 0..5 {
        let results = p.quotes(&[t("AAPL")]).await;
        assert_eq!(found(quote_of(&results, "AAPL")).source, "yahoo");
    }
    let polygon_calls = |reqs: &[Request]| {
        reqs.iter()
            .filter(|r| r.url.path().starts_with("/v2/"))
            .count()
    };
    assert_eq!(
        polygon_calls(&server.received_requests().await.unwrap()),
        3,
        "no calls while open"
    );
    // After the cooldown one trial goes through; polygon answers again and stays in charge.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let results = p.quotes(&[t("AAPL")]).await;
        if found(quote_of(&results, "AAPL")).source == "polygon" {
            break;
        }
        assert!(Instant::now() < deadline, "the breaker never closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let results = p.quotes(&[t("AAPL")]).await;
    assert_eq!(found(quote_of(&results, "AAPL")).price, 159.99);
}

fn path_regex_polygon_snapshot() -> wiremock::matchers::PathRegexMatcher {
    wiremock::matchers::path_regex("^/v2/snapshot/")
}

#[tokio::test]
async fn one_unknown_ticker_does_not_open_the_breaker_for_the_others() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/snapshot/locale/us/markets/stocks/tickers/NOPE"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(path("/v2/snapshot/locale/us/markets/stocks/tickers/AAPL"))
        .respond_with(json(fixture(
            "polygon/v2_snapshot_stocks_ticker_AAPL.mock.json",
        )))
        .mount(&server)
        .await;
    let mut s = settings(&server);
    s.provider.stock = vec![ProviderName::Polygon];
    s.provider.breaker_failures = 2;
    let p = providers(&s);
    for _ in 0..5 {
        let results = p.quotes(&[t("NOPE"), t("AAPL")]).await;
        assert_eq!(*quote_of(&results, "NOPE"), Ok(Fetched::Unknown));
        assert_eq!(found(quote_of(&results, "AAPL")).source, "polygon");
    }
}

#[tokio::test]
async fn oversized_bodies_and_timeouts_are_errors_not_data() {
    let server = MockServer::start().await;
    yahoo_session(&server).await;
    Mock::given(path("/v7/finance/options/AAPL"))
        .respond_with(json(fixture("yahoo/options_AAPL_nearest_expiry.json")))
        .mount(&server)
        .await;
    Mock::given(path("/v7/finance/quote"))
        .respond_with(json(fixture("yahoo/quote_QQQ_etf.json")).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let mut s = settings(&server);
    s.provider.max_body = "16KiB".parse().unwrap(); // the recording is 33 KB
    s.provider.timeout = "500ms".parse().unwrap();
    let p = providers(&s);
    let e = p.options(&t("AAPL")).await.unwrap_err();
    assert!(
        matches!(e, ProviderError::TooLarge { limit: 16_384, .. }),
        "{e}"
    );
    let results = p.quotes(&[t("QQQ")]).await;
    assert!(
        matches!(
            quote_of(&results, "QQQ"),
            Err(ProviderError::Timeout { .. })
        ),
        "{results:?}"
    );
}

#[tokio::test]
async fn polygon_quotes_and_chains_with_the_key_in_a_header() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/snapshot/locale/us/markets/stocks/tickers/AAPL"))
        .and(header(
            "authorization",
            format!("Bearer {POLYGON_KEY}").as_str(),
        ))
        .respond_with(json(fixture(
            "polygon/v2_snapshot_stocks_ticker_AAPL.mock.json",
        )))
        .expect(1)
        .mount(&server)
        .await;
    let mut s = settings(&server);
    s.provider.stock = vec![ProviderName::Polygon];
    s.provider.options = vec![ProviderName::Polygon];
    let p = providers(&s);
    let results = p.quotes(&[t("AAPL")]).await;
    let q = found(quote_of(&results, "AAPL"));
    assert_eq!(
        (q.price, q.previous_close, q.change, q.volume),
        (159.99, Some(163.64), Some(-3.65), Some(68_840_127))
    );
    assert_schema("stock", &serde_json::to_value(q).unwrap());

    // Page 1 is the recorded chain snapshot with a `next_url`, the field every recorded v3 list
    // answer carries when there is more (tests/fixtures/polygon/v3_quotes_SPY_limit50.json);
    // page 2 is the recorded chain again. The key must follow as a header, never in the URL.
    let mut page1: serde_json::Value =
        serde_json::from_slice(&fixture("polygon/v3_snapshot_options_chain_AAPL.mock.json"))
            .unwrap();
    page1["next_url"] = format!(
        "{}/v3/snapshot/options/AAPL?cursor=YXA9MTAyMjgxODgw",
        server.uri()
    )
    .into();
    Mock::given(path("/v3/snapshot/options/AAPL"))
        .and(query_param_is_missing("cursor"))
        .and(query_param("limit", "250"))
        .and(header(
            "authorization",
            format!("Bearer {POLYGON_KEY}").as_str(),
        ))
        .respond_with(json(serde_json::to_vec(&page1).unwrap()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/v3/snapshot/options/AAPL"))
        .and(query_param("cursor", "YXA9MTAyMjgxODgw"))
        .and(header(
            "authorization",
            format!("Bearer {POLYGON_KEY}").as_str(),
        ))
        .respond_with(json(fixture(
            "polygon/v3_snapshot_options_chain_AAPL.mock.json",
        )))
        .expect(1)
        .mount(&server)
        .await;
    let chain = p.options(&t("AAPL")).await;
    let chain = found(&chain);
    assert_eq!(chain.underlying_price, Some(159.9606));
    assert_eq!(chain.expirations, vec!["2023-06-16".parse().unwrap()]);
    let c = &chain.chains[0].calls[0];
    assert_eq!(
        chain.chains[0].calls.len(),
        1,
        "the contract repeated on page 2 counts once"
    );
    assert_eq!(
        (
            c.contract_symbol.as_str(),
            c.strike,
            c.bid,
            c.ask,
            c.open_interest
        ),
        (
            "AAPL230616C00150000",
            150.0,
            Some(28.9),
            Some(29.25),
            Some(8133)
        )
    );
    assert_eq!(c.in_the_money, Some(true));
    assert_eq!(c.greeks.as_ref().unwrap().delta, Some(0.6436614934293701));
    assert_schema("options", &serde_json::to_value(chain).unwrap());
    for r in server.received_requests().await.unwrap() {
        assert!(
            !r.url.as_str().contains(POLYGON_KEY),
            "key in a URL: {}",
            r.url
        );
    }
}

#[tokio::test]
async fn a_next_url_to_another_host_is_not_followed() {
    let server = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    let mut page1: serde_json::Value =
        serde_json::from_slice(&fixture("polygon/v3_snapshot_options_chain_AAPL.mock.json"))
            .unwrap();
    page1["next_url"] = format!(
        "{}/v3/snapshot/options/AAPL?cursor=abc",
        elsewhere.uri().replace("127.0.0.1", "localhost")
    )
    .into();
    Mock::given(path("/v3/snapshot/options/AAPL"))
        .respond_with(json(serde_json::to_vec(&page1).unwrap()))
        .mount(&server)
        .await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&elsewhere)
        .await;
    let mut s = settings(&server);
    s.provider.options = vec![ProviderName::Polygon];
    let e = providers(&s).options(&t("AAPL")).await.unwrap_err();
    assert!(
        e.to_string().contains("next_url points to another host"),
        "{e}"
    );
}

#[tokio::test]
async fn tradier_quotes_one_or_many_and_chains_with_greeks() {
    let server = MockServer::start().await;
    let bearer = format!("Bearer {TRADIER_TOKEN}");
    Mock::given(path("/v1/markets/quotes"))
        .and(query_param("symbols", "PLTR"))
        .and(header("authorization", bearer.as_str()))
        .and(header("accept", "application/json"))
        .respond_with(json(fixture(
            "tradier/markets_quotes_PLTR_single_symbol_object.json",
        )))
        .mount(&server)
        .await;
    Mock::given(path("/v1/markets/quotes"))
        .and(query_param("symbols", "SPY"))
        .respond_with(json(fixture(
            "tradier/markets_quotes_SPY_and_option_with_greeks.json",
        )))
        .mount(&server)
        .await;
    Mock::given(path("/v1/markets/options/expirations"))
        .and(query_param("symbol", "PLTR"))
        .respond_with(json(fixture(
            "tradier/markets_options_expirations_PLTR.json",
        )))
        .mount(&server)
        .await;
    // The only recorded chain is for 2024-12-20, the 12th listed expiry.
    Mock::given(path("/v1/markets/options/chains"))
        .and(query_param("symbol", "PLTR"))
        .and(query_param("greeks", "true"))
        .respond_with(json(fixture(
            "tradier/markets_options_chains_PLTR_2024-12-20.json",
        )))
        .mount(&server)
        .await;
    let mut s = settings(&server);
    s.provider.stock = vec![ProviderName::Tradier];
    s.provider.options = vec![ProviderName::Tradier];
    s.jobs.options.expirations = Some(1);
    let p = providers(&s);
    let one = p.quotes(&[t("PLTR")]).await;
    let pltr = found(quote_of(&one, "PLTR"));
    assert_eq!(
        (pltr.price, pltr.previous_close, pltr.exchange.as_deref()),
        (25.5, Some(25.22), Some("N"))
    );
    assert_schema("stock", &serde_json::to_value(pltr).unwrap());
    let many = p.quotes(&[t("SPY")]).await;
    assert_eq!(found(quote_of(&many, "SPY")).price, 547.94);

    // Asked for the nearest expiry (2024-06-28), the server answers with 2024-12-20 contracts:
    // rejected, nothing written.
    let e = p.options(&t("PLTR")).await.unwrap_err();
    assert!(
        matches!(e, ProviderError::Invalid { .. }) && e.to_string().contains("expiring 2024-06-28"),
        "{e}"
    );

    // The recorded chain read for its own expiry.
    use finance_cache_warmer::provider::http::Reply;
    use finance_cache_warmer::provider::tradier::{parse_chain, parse_expirations};
    let dates = parse_expirations(&Reply::recorded(
        200,
        fixture("tradier/markets_options_expirations_PLTR.json"),
    ))
    .unwrap();
    assert_eq!(
        (dates.len(), dates[11]),
        (19, "2024-12-20".parse().unwrap())
    );
    let chain = parse_chain(
        &Reply::recorded(
            200,
            fixture("tradier/markets_options_chains_PLTR_2024-12-20.json"),
        ),
        &t("PLTR"),
        dates[11],
        Some(25.5),
    )
    .unwrap();
    assert_eq!((chain.calls.len(), chain.puts.len()), (16, 16));
    let call = &chain.calls[0];
    assert_eq!(
        (
            call.contract_symbol.as_str(),
            call.strike,
            call.in_the_money
        ),
        ("PLTR241220C00003000", 3.0, Some(true))
    );
    assert_eq!(call.implied_volatility, Some(2.686959));
    assert_eq!(
        call.greeks.as_ref().unwrap().rho,
        Some(0.022676015688011687)
    );
}

#[tokio::test]
async fn keys_never_appear_in_errors() {
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let server = MockServer::start().await;
    Mock::given(path("/v2/snapshot/locale/us/markets/stocks/tickers/E401"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    Mock::given(path("/v2/snapshot/locale/us/markets/stocks/tickers/E500"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    Mock::given(path("/v2/snapshot/locale/us/markets/stocks/tickers/EJSON"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("{not json", "application/json"))
        .mount(&server)
        .await;
    Mock::given(path("/v2/snapshot/locale/us/markets/stocks/tickers/EHTML"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("<html></html>", "text/html"))
        .mount(&server)
        .await;
    Mock::given(path("/v2/snapshot/locale/us/markets/stocks/tickers/ESLOW"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    Mock::given(path("/v2/snapshot/locale/us/markets/stocks/tickers/EBIG"))
        .respond_with(json(fixture("yahoo/options_AAPL_nearest_expiry.json")))
        .mount(&server)
        .await;
    Mock::given(path("/v1/markets/quotes"))
        .respond_with(ResponseTemplate::new(403))
        .mount(&server)
        .await;
    let mut s = settings(&server);
    s.provider.stock = vec![ProviderName::Polygon, ProviderName::Tradier];
    s.provider.timeout = "500ms".parse().unwrap();
    s.provider.max_body = "4KiB".parse().unwrap();
    let mut messages = Vec::new();
    for sym in ["E401", "E500", "EJSON", "EHTML", "ESLOW", "EBIG"] {
        for (_, result) in providers(&s).quotes(&[t(sym)]).await {
            let e = result.unwrap_err();
            messages.push(format!("{e} | {e:?}"));
        }
    }
    let mut dead = settings(&server);
    dead.provider.polygon.base_url =
        HttpUrl(format!("http://127.0.0.1:{closed_port}").parse().unwrap());
    dead.provider.stock = vec![ProviderName::Polygon];
    for (_, result) in providers(&dead).quotes(&[t("AAPL")]).await {
        let e = result.unwrap_err();
        messages.push(format!("{e} | {e:?}"));
    }
    assert_eq!(messages.len(), 7);
    for m in &messages {
        assert!(
            !m.contains(POLYGON_KEY) && !m.contains(TRADIER_TOKEN) && !m.contains("SECRET"),
            "{m}"
        );
    }
    assert!(
        messages[0].starts_with("polygon: not authorised (HTTP 401)"),
        "{}",
        messages[0]
    );
    assert!(
        messages.iter().any(|m| m.contains("HTTP 500")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("expected JSON, got content type")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("timed out")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("4096-byte limit")),
        "{messages:?}"
    );
    assert!(
        messages[6].contains("polygon snapshot: ")
            && messages[6].to_lowercase().contains("connect"),
        "{}",
        messages[6]
    );
    // The settings themselves never show the keys either.
    let shown = format!("{s:?}{}", s.to_redacted_toml());
    assert!(!shown.contains(POLYGON_KEY) && !shown.contains(TRADIER_TOKEN));
}

#[tokio::test]
async fn replay_maps_any_ticker_onto_a_recording() {
    let mut s = Settings::defaults().unwrap();
    s.provider.stock = vec![ProviderName::Replay];
    s.provider.options = vec![ProviderName::Replay];
    s.provider.earnings = vec![ProviderName::Replay];
    let p = providers(&s);
    let results = p.quotes(&[t("AAPL"), t("ZZZZ"), t("BRK-B")]).await;
    let aapl = found(quote_of(&results, "AAPL"));
    assert_eq!(
        (aapl.price, aapl.source.as_str()),
        (333.69, "replay"),
        "its own recording"
    );
    for sym in ["ZZZZ", "BRK-B"] {
        let q = found(quote_of(&results, sym));
        assert_eq!((q.symbol.as_str(), q.source.as_str()), (sym, "replay"));
        assert_schema("stock", &serde_json::to_value(q).unwrap());
    }
    // Deterministic: the same ticker gets the same recording.
    let again = p.quotes(&[t("ZZZZ")]).await;
    assert_eq!(
        found(quote_of(&again, "ZZZZ")).price,
        found(quote_of(&results, "ZZZZ")).price
    );
    // Options are relabelled onto the ticker, contract symbols included.
    for sym in ["AAPL", "ZZZZ", "BRK-B", "XYZQ"] {
        let chain = p.options(&t(sym)).await;
        let chain = found(&chain);
        assert_eq!(chain.symbol, sym);
        let root: String = sym.chars().filter(char::is_ascii_alphanumeric).collect();
        for c in chain
            .chains
            .iter()
            .flat_map(|c| c.calls.iter().chain(&c.puts))
        {
            assert!(
                c.contract_symbol.starts_with(&root),
                "{}",
                c.contract_symbol
            );
        }
        assert_schema("options", &serde_json::to_value(chain).unwrap());
    }
    let qqq = p.earnings(&t("QQQ")).await;
    assert_eq!(
        found(&qqq).earnings_date,
        None,
        "QQQ's recording is a 404 no-fundamentals"
    );
    let abbv = p.earnings(&t("ABBV")).await;
    assert!(found(&abbv).earnings_date.is_some());
    assert_schema("earnings", &serde_json::to_value(found(&abbv)).unwrap());
}

#[test]
fn a_replay_directory_without_recordings_is_a_setup_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("yahoo")).unwrap();
    let mut s = Settings::defaults().unwrap();
    s.provider.stock = vec![ProviderName::Replay];
    s.provider.replay.dir = Some(dir.path().to_owned());
    let e = Providers::from_settings(&s).err().unwrap();
    assert!(
        e.to_string()
            .starts_with("provider.replay.dir: no usable recordings of quotes"),
        "{e}"
    );
    // The repository's fixture directory is a valid replay directory.
    s.provider.replay.dir = Some(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures").into());
    assert!(Providers::from_settings(&s).is_ok());
}
