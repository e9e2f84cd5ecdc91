//! What bounds a provider: Retry-After, a 429 that pauses it, the breaker, oversized bodies
//! and timeouts.

use super::*;

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
async fn tradier_s_rate_limit_headers_hold_the_next_request_until_its_window_ends() {
    let server = MockServer::start().await;
    // The headers Tradier sends with every answer (recorded in
    // tests/fixtures/tradier/cassettes), here with the minute used up and 1.5 s of it left.
    let expiry = (chrono::Utc::now() + chrono::Duration::milliseconds(1500)).timestamp_millis();
    let body = || {
        json(fixture(
            "tradier/markets_quotes_PLTR_single_symbol_object.json",
        ))
    };
    let (responder, arrivals) = sequence(
        body()
            .insert_header("X-Ratelimit-Allowed", "60")
            .insert_header("X-Ratelimit-Used", "60")
            .insert_header("X-Ratelimit-Available", "0")
            .insert_header("X-Ratelimit-Expiry", expiry.to_string().as_str()),
        body(),
    );
    Mock::given(path("/v1/markets/quotes"))
        .respond_with(responder)
        .mount(&server)
        .await;
    let mut s = settings(&server);
    s.provider.stock = vec![ProviderName::Tradier];
    let p = providers(&s);
    for _ in 0..2 {
        assert_eq!(
            found(quote_of(&p.quotes(&[t("PLTR")]).await, "PLTR")).price,
            25.5
        );
    }
    let arrivals = arrivals.lock().unwrap();
    let gap = arrivals[1] - arrivals[0];
    assert!(
        gap >= Duration::from_millis(1300),
        "the second request came {gap:?} after the first"
    );
}
