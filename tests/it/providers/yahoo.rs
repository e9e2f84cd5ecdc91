//! Yahoo: batched quotes under one crumb, its refusals, options chains and earnings.

use super::*;

use chrono_tz::America::New_York;

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
    let aapl = p.earnings(&t("AAPL"), New_York).await;
    let aapl = found(&aapl);
    // earningsDate [2025-04-30 06:59 EDT, 2025-05-05 08:00 EDT]: an estimated window.
    assert_eq!(aapl.earnings_date, Some("2025-04-30".parse().unwrap()));
    assert_eq!(aapl.earnings_date_end, Some("2025-05-05".parse().unwrap()));
    assert_eq!(aapl.is_estimate, Some(true));
    assert_schema("earnings", &serde_json::to_value(aapl).unwrap());
    let spot = p.earnings(&t("SPOT"), New_York).await;
    let spot = found(&spot);
    assert_eq!(
        (spot.earnings_date, spot.earnings_date_end),
        (
            Some("2025-02-04".parse().unwrap()),
            Some("2025-02-04".parse().unwrap())
        )
    );
    for sym in ["QQQ", "EURUSD=X"] {
        let none = p.earnings(&t(sym), New_York).await;
        let none = found(&none);
        assert_eq!(
            (none.earnings_date, none.earnings_date_end),
            (None, None),
            "{sym}: no earnings is data"
        );
        assert_schema("earnings", &serde_json::to_value(none).unwrap());
    }
    assert_eq!(p.earnings(&t("QQQX"), New_York).await, Ok(Fetched::Unknown));
    assert_eq!(p.earnings(&t("ZZZZ"), New_York).await, Ok(Fetched::Unknown));
}
