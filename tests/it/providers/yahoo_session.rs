//! Yahoo as it behaves in 2025-26: every way of not getting a session ends in prices from the
//! chart; a refusing endpoint is asked once, not once per ticker; a new session starts from an
//! empty cookie jar; Yahoo's client sends a browser's headers, the others their own; the consent
//! wall is walked through. Bodies no recording holds (Yahoo's 401 texts) are the ones the
//! provider notes quote from the public clients' issue trackers.

use super::*;

use chrono_tz::America::New_York;

const CHART: &str = "yahoo/chart_AAPL_1d_2022-02-22_recorded_2026-10.json";
/// Yahoo's 401 for an account or address it will not serve (sstrickx/yahoofinance-api #229,
/// printing-press-library #1296, as quoted in the provider notes).
const NOT_ENTITLED: &str = r#"{"finance":{"result":null,"error":{"code":"Unauthorized","description":"User is unable to access this feature - https://bit.ly/yahoo-finance-api-feedback"}}}"#;

async fn chart(server: &MockServer, expect: u64) {
    Mock::given(path("/v8/finance/chart/AAPL"))
        .and(query_param("range", "1d"))
        .and(query_param_is_missing("crumb"))
        .respond_with(json(fixture(CHART)))
        .expect(expect)
        .mount(server)
        .await;
}

async fn requests_to(server: &MockServer, p: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == p)
        .collect()
}

fn from_chart(results: &[(Ticker, TickerResult<StockQuote>)]) {
    let q = found(quote_of(results, "AAPL"));
    assert_eq!((q.price, q.currency.as_deref()), (333.69, Some("USD")));
}

#[tokio::test]
async fn a_failing_cookie_endpoint_serves_prices_from_the_chart_and_is_not_retried_per_batch() {
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for failure in ["503", "429", "refused", "timeout"] {
        let server = MockServer::start().await;
        let mut s = settings(&server);
        s.provider.max_retries = 4;
        s.provider.timeout = "500ms".parse().unwrap();
        match failure {
            "refused" => {
                // What a DNS block of fc.yahoo.com or a dead proxy looks like: no answer at all.
                s.provider.yahoo.cookie_url =
                    HttpUrl(format!("http://127.0.0.1:{closed_port}/").parse().unwrap());
            }
            _ => {
                let answer = match failure {
                    "503" => ResponseTemplate::new(503),
                    "429" => ResponseTemplate::new(429),
                    _ => ResponseTemplate::new(404).set_delay(Duration::from_secs(2)),
                };
                Mock::given(path("/cookie"))
                    .respond_with(answer)
                    .expect(1)
                    .mount(&server)
                    .await;
            }
        }
        Mock::given(path("/v1/test/getcrumb"))
            .respond_with(ResponseTemplate::new(500))
            .expect(0)
            .mount(&server)
            .await;
        Mock::given(path("/v7/finance/quote"))
            .respond_with(ResponseTemplate::new(500))
            .expect(0)
            .mount(&server)
            .await;
        chart(&server, 2).await;
        let p = providers(&s);
        // Two batches: the second does not ask for a cookie again (the back-off), nor wait.
        for _ in 0..2 {
            from_chart(&p.quotes(&[t("AAPL")]).await);
        }
        let e = p.options(&t("AAPL")).await.unwrap_err();
        assert!(
            e.to_string().starts_with("yahoo: no crumb: "),
            "{failure}: {e}"
        );
    }
}

#[tokio::test]
async fn a_crumb_refused_with_too_many_requests_in_a_200_body_serves_the_chart() {
    let server = MockServer::start().await;
    Mock::given(path("/cookie"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    // yfinance #2441: the crumb's value was "Too Many Requests\r\n" with status 200.
    Mock::given(path("/v1/test/getcrumb"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw("Edge: Too Many Requests\r\n", "text/plain"),
        )
        .expect(1)
        .mount(&server)
        .await;
    chart(&server, 1).await;
    let p = providers(&settings(&server));
    from_chart(&p.quotes(&[t("AAPL")]).await);
    let e = p.earnings(&t("AAPL"), New_York).await.unwrap_err();
    assert!(e.to_string().contains("Too Many Requests"), "{e}");
}

#[tokio::test]
async fn a_429_or_an_html_page_from_the_quote_endpoint_serves_that_batch_from_the_chart() {
    // A 429 keeps the quote endpoint unasked for its Retry-After (else a minute): one request
    // for both batches. An HTML page is asked again by the next batch.
    for (refusal, asked) in [
        (ResponseTemplate::new(429), 1),
        (
            ResponseTemplate::new(429).insert_header("retry-after", "0"),
            2,
        ),
        // iprak/yahoofinance #164: the 2025 block answered the quote endpoint with text/html.
        (
            ResponseTemplate::new(200)
                .set_body_raw("<html><body>Will be right back</body></html>", "text/html"),
            2,
        ),
    ] {
        let server = MockServer::start().await;
        yahoo_session(&server).await;
        Mock::given(path("/v7/finance/quote"))
            .respond_with(refusal)
            .expect(asked)
            .mount(&server)
            .await;
        chart(&server, 2).await;
        let mut s = settings(&server);
        s.provider.max_retries = 4;
        let p = providers(&s);
        // No retries, no provider-wide pause: straight on to the chart.
        let started = Instant::now();
        for _ in 0..2 {
            from_chart(&p.quotes(&[t("AAPL")]).await);
        }
        // A provider-wide pause would take 1 s doubling per retry: 15 s over four.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn a_401_that_is_not_about_the_crumb_stops_that_endpoint_after_one_request() {
    let server = MockServer::start().await;
    yahoo_session(&server).await;
    for endpoint in ["/v7/finance/options/", "/v10/finance/quoteSummary/"] {
        Mock::given(wiremock::matchers::path_regex(format!("^{endpoint}")))
            .respond_with(ResponseTemplate::new(401).set_body_raw(NOT_ENTITLED, "application/json"))
            .expect(1)
            .mount(&server)
            .await;
    }
    let p = providers(&settings(&server));
    let tickers: Vec<Ticker> = ["AAPL", "MSFT", "QQQ", "SPY", "TSLA"].map(t).to_vec();
    for ticker in &tickers {
        for e in [
            p.options(ticker).await.unwrap_err(),
            p.earnings(ticker, New_York).await.unwrap_err(),
        ] {
            assert!(matches!(e, ProviderError::Unavailable { .. }), "{e}");
            assert!(
                e.to_string()
                    .contains("Yahoo refuses this client (HTTP 401)"),
                "{e}"
            );
        }
    }
    // The session was fine: one crumb, no refresh for a 401 that is not about it.
    assert_eq!(requests_to(&server, "/v1/test/getcrumb").await.len(), 1);
}

#[tokio::test]
async fn a_refreshed_session_starts_from_an_empty_cookie_jar() {
    let server = MockServer::start().await;
    Mock::given(path("/cookie"))
        .respond_with(ResponseTemplate::new(404).insert_header("set-cookie", "A3=d=first; Path=/"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/cookie"))
        .respond_with(ResponseTemplate::new(404).insert_header("set-cookie", "A3=d=second; Path=/"))
        .mount(&server)
        .await;
    let old = String::from_utf8(fixture("yahoo/getcrumb_ok_2024.txt")).unwrap();
    Mock::given(path("/v1/test/getcrumb"))
        .and(header("cookie", "A3=d=first"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(old.clone(), "text/plain"))
        .mount(&server)
        .await;
    Mock::given(path("/v1/test/getcrumb"))
        .and(header("cookie", "A3=d=second"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(fixture("yahoo/getcrumb_ok.txt"), "text/plain"),
        )
        .mount(&server)
        .await;
    // The stale-session 401 as the provider notes quote it (no recording saved).
    Mock::given(path("/v7/finance/quote"))
        .and(query_param("crumb", old.trim()))
        .respond_with(ResponseTemplate::new(401).set_body_raw(
            r#"{"finance":{"result":null,"error":{"code":"Unauthorized","description":"Invalid Cookie"}}}"#,
            "application/json;charset=utf-8",
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/v7/finance/quote"))
        .and(query_param("crumb", CRUMB))
        .and(header("cookie", "A3=d=second"))
        .respond_with(json(fixture("yahoo/quote_QQQ_etf.json")))
        .expect(1)
        .mount(&server)
        .await;
    let results = providers(&settings(&server)).quotes(&[t("QQQ")]).await;
    assert_eq!(found(quote_of(&results, "QQQ")).symbol, "QQQ");
    let cookies = requests_to(&server, "/cookie").await;
    assert_eq!(cookies.len(), 2);
    assert!(
        cookies[1].headers.get("cookie").is_none(),
        "the old cookie went to the new session: {:?}",
        cookies[1].headers.get("cookie")
    );
}

#[tokio::test]
async fn yahoo_sends_a_browser_s_headers_and_the_keyed_providers_their_own() {
    let server = MockServer::start().await;
    yahoo_session(&server).await;
    Mock::given(path("/v7/finance/quote"))
        .respond_with(json(fixture("yahoo/quote_QQQ_etf.json")))
        .mount(&server)
        .await;
    Mock::given(path("/v2/snapshot/locale/us/markets/stocks/tickers/AAPL"))
        .respond_with(json(fixture(
            "polygon/v2_snapshot_stocks_ticker_AAPL.mock.json",
        )))
        .mount(&server)
        .await;
    let mut s = settings(&server);
    s.provider.yahoo.user_agent = "Mozilla/5.0 (X11; Linux x86_64) Chrome/142.0.0.0".into();
    let p = providers(&s);
    found(quote_of(&p.quotes(&[t("QQQ")]).await, "QQQ"));
    let mut polygon = s.clone();
    polygon.provider.stock = vec![ProviderName::Polygon];
    found(quote_of(
        &providers(&polygon).quotes(&[t("AAPL")]).await,
        "AAPL",
    ));

    let get = |r: &Request, name: &str| {
        r.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    for p in ["/cookie", "/v1/test/getcrumb", "/v7/finance/quote"] {
        let r = &requests_to(&server, p).await[0];
        assert_eq!(get(r, "user-agent"), s.provider.yahoo.user_agent, "{p}");
        assert_eq!(get(r, "accept-language"), "en-US,en;q=0.9", "{p}");
    }
    let cookie = &requests_to(&server, "/cookie").await[0];
    assert!(
        get(cookie, "accept").starts_with("text/html"),
        "{}",
        get(cookie, "accept")
    );
    let crumb = &requests_to(&server, "/v1/test/getcrumb").await[0];
    assert_eq!(get(crumb, "origin"), "https://finance.yahoo.com");
    assert_eq!(get(crumb, "referer"), "https://finance.yahoo.com/");
    let keyed = &requests_to(
        &server,
        "/v2/snapshot/locale/us/markets/stocks/tickers/AAPL",
    )
    .await[0];
    assert_eq!(get(keyed, "user-agent"), s.provider.user_agent);
    assert_eq!(get(keyed, "accept-language"), "");
    assert_eq!(
        get(keyed, "cookie"),
        "",
        "the keyed providers have no cookie jar"
    );
}

#[tokio::test]
async fn the_chart_s_previous_close_falls_back_to_chart_previous_close_for_a_one_day_range() {
    // The recording is a one-day period query (`range` empty): its chartPreviousClose is the
    // close before that period. Set to the `range` the fallback asks for, the same answer's
    // chartPreviousClose is the previous session's close.
    let mut one_day: serde_json::Value = serde_json::from_slice(&fixture(CHART)).unwrap();
    one_day["chart"]["result"][0]["meta"]["range"] = "1d".into();
    let server = MockServer::start().await;
    Mock::given(path("/cookie"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    Mock::given(path("/v8/finance/chart/AAPL"))
        .respond_with(json(serde_json::to_vec(&one_day).unwrap()))
        .mount(&server)
        .await;
    let results = providers(&settings(&server)).quotes(&[t("AAPL")]).await;
    let q = found(quote_of(&results, "AAPL"));
    assert_eq!(q.previous_close, Some(167.3));
    assert_eq!(q.change.map(|c| (c * 100.0).round() / 100.0), Some(166.39));
}

/// Mounts the recorded consent flow (tests/fixtures/SOURCES.md) on `server`: each Location the
/// recording names on Yahoo's hosts points at the same path and query here, and the cookies
/// copyConsent sets for `.yahoo.com` are set for this host.
async fn consent_flow(server: &MockServer) {
    const SESSION: &str = "3_cc-session_dcf322f7-c2b7-4e77-9e32-36143f8f7c5d";
    let here = server.uri();
    Mock::given(path("/cookie"))
        .respond_with(ResponseTemplate::new(307).insert_header(
            "location",
            format!("{here}/consent?brandType=nonEu&gcrumb=GoNrer0&done=https%3A%2F%2Ffinance.yahoo.com%2Fquote%2FAAPL"),
        ))
        .expect(1)
        .mount(server)
        .await;
    Mock::given(path("/consent"))
        .respond_with(ResponseTemplate::new(302).insert_header(
            "location",
            format!("{here}/v2/collectConsent?sessionId={SESSION}"),
        ))
        .expect(1)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/collectConsent"))
        .and(query_param("sessionId", SESSION))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            fixture("yahoo/consent_collectConsent_form_UK_2025-02-16.html"),
            "text/html;charset=UTF-8",
        ))
        .expect(1)
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/collectConsent"))
        .and(wiremock::matchers::body_string(format!(
            "csrfToken=GoNrer0&sessionId={SESSION}&originalDoneUrl=https%3A%2F%2Ffinance.yahoo.com%2Fquote%2FAAPL%3Fguccounter%3D1&namespace=yahoo&agree=agree&agree=agree"
        )))
        .respond_with(ResponseTemplate::new(302).insert_header(
            "location",
            format!("{here}/copyConsent?sessionId={SESSION}&lang=en-GB"),
        ))
        .expect(1)
        .mount(server)
        .await;
    Mock::given(path("/copyConsent"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("set-cookie", "A3=d=AQABBKvcsWcCEIGLkyl67hr2YX7XekV46j4FEgABCAErs2fZZ_bPb2UB9qMAAAcIq9yxZ63aZoI&S=AQAAAtFJa---IoVh8DRgGhGzVr4; Path=/")
                .insert_header("location", format!("{here}/quote/AAPL?guccounter=1")),
        )
        .expect(1)
        .mount(server)
        .await;
}

#[tokio::test]
async fn the_consent_wall_is_accepted_as_yahoo_s_own_clients_do() {
    let server = MockServer::start().await;
    consent_flow(&server).await;
    Mock::given(path("/v1/test/getcrumb"))
        .and(wiremock::matchers::header_regex(
            "cookie",
            "A3=d=AQABBKvcsWcC",
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(fixture("yahoo/getcrumb_ok.txt"), "text/plain"),
        )
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
async fn a_consent_wall_that_cannot_be_passed_says_so_and_prices_come_from_the_chart() {
    let server = MockServer::start().await;
    Mock::given(path("/cookie"))
        .respond_with(
            ResponseTemplate::new(307)
                .insert_header("location", format!("{}/consent?brandType=eu", server.uri())),
        )
        .mount(&server)
        .await;
    // A consent page without the form (its layout changed): nothing to accept.
    Mock::given(path("/consent"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw("<html><body>Before you continue</body></html>", "text/html"),
        )
        .expect(1)
        .mount(&server)
        .await;
    chart(&server, 1).await;
    let p = providers(&settings(&server));
    from_chart(&p.quotes(&[t("AAPL")]).await);
    let e = p.options(&t("AAPL")).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("behind Yahoo's consent wall: the consent page has no consent form"),
        "{e}"
    );
}
