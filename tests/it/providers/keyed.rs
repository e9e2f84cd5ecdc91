//! The keyed providers, Polygon (Massive) and Tradier, and their keys kept out of errors.

use super::*;

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
    // The snapshot says nothing of the listing: the market comes from the symbol.
    assert_eq!(q.listing, Default::default());
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
    // Tradier's own words for the listing; it names no time zone and no extended hours.
    assert_eq!(
        (
            pltr.listing.quote_type.as_deref(),
            pltr.listing.exchange.as_deref(),
            pltr.listing.timezone.as_deref()
        ),
        (Some("stock"), Some("N"), None)
    );
    assert_eq!(
        (
            pltr.extended_hours.pre_market_price,
            pltr.extended_hours.post_market_price
        ),
        (None, None)
    );
    let many = p.quotes(&[t("SPY")]).await;
    let spy = found(quote_of(&many, "SPY"));
    assert_eq!(
        (spy.price, spy.listing.quote_type.as_deref()),
        (547.94, Some("etf"))
    );

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
async fn tradier_asks_for_every_root_of_an_underlying() {
    let server = MockServer::start().await;
    // Recorded with includeAllRoots=true: without it, weekly roots (SPXW, RUTW) and adjusted
    // ones (AAPL1) are missing from the expirations and the chains.
    Mock::given(path("/v1/markets/options/expirations"))
        .and(query_param("symbol", "AAPL"))
        .and(query_param("includeAllRoots", "true"))
        .respond_with(json(fixture(
            "tradier/markets_options_expirations_AAPL_includeAllRoots_sandbox_2023-01-06.json",
        )))
        .expect(1)
        .mount(&server)
        .await;
    // The only recorded chain is PLTR's: rejected for AAPL, but it shows what was asked.
    Mock::given(path("/v1/markets/options/chains"))
        .and(query_param("symbol", "AAPL"))
        .and(query_param("expiration", "2023-01-06"))
        .and(query_param("includeAllRoots", "true"))
        .respond_with(json(fixture(
            "tradier/markets_options_chains_PLTR_2024-12-20.json",
        )))
        .expect(1)
        .mount(&server)
        .await;
    let mut s = settings(&server);
    s.provider.options = vec![ProviderName::Tradier];
    s.jobs.options.expirations = Some(1);
    let e = providers(&s).options(&t("AAPL")).await.unwrap_err();
    assert!(matches!(e, ProviderError::Invalid { .. }), "{e}");
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
    // Finnhub's key, on an answer it refuses and on a dead host.
    Mock::given(path("/api/v1/calendar/earnings"))
        .respond_with(ResponseTemplate::new(401).set_body_raw(
            // Finnhub's body for a bad key, as finnhubio/Finnhub-API #582 quotes it.
            r#"{"error":"Invalid API key."}"#,
            "application/json",
        ))
        .mount(&server)
        .await;
    for base in [server.uri(), format!("http://127.0.0.1:{closed_port}")] {
        let mut f = settings(&server);
        f.provider.finnhub.base_url = HttpUrl(base.parse().unwrap());
        f.provider.finnhub.api_key = Some(Secret::new("fh_SECRET_42"));
        f.provider.earnings = vec![ProviderName::Finnhub];
        let e = providers(&f)
            .earnings(&t("AAPL"), chrono_tz::America::New_York)
            .await
            .unwrap_err();
        let shown = format!("{e} | {e:?} | {f:?}{}", f.to_redacted_toml());
        assert!(!shown.contains("fh_SECRET_42"), "{shown}");
    }
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
