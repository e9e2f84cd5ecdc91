//! What Yahoo's recordings say about when and where an instrument trades: extended-hours prices,
//! the listing metadata the market is resolved from, and earnings dates in the listing's zone.

use super::*;

use chrono_tz::America::New_York;
use chrono_tz::Australia::Sydney;
use finance_cache_warmer::model::Listing;

/// The quote of `symbol` from a recorded v7 answer, through the Yahoo provider.
async fn v7_quote(file: &str, symbol: &str) -> StockQuote {
    let server = MockServer::start().await;
    yahoo_session(&server).await;
    Mock::given(path("/v7/finance/quote"))
        .respond_with(json(fixture(&format!("yahoo/{file}"))))
        .mount(&server)
        .await;
    let results = providers(&settings(&server)).quotes(&[t(symbol)]).await;
    found(quote_of(&results, symbol)).clone()
}

/// The quote of `symbol` from a recorded v8 chart: the crumb is refused (with the 429 text
/// Yahoo sends), so the provider falls back to the chart.
async fn chart_quote(file: &str, symbol: &str) -> StockQuote {
    let server = MockServer::start().await;
    Mock::given(path("/cookie"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(path("/v1/test/getcrumb"))
        .respond_with(
            ResponseTemplate::new(429).set_body_raw("Too Many Requests\r\n", "text/plain"),
        )
        .mount(&server)
        .await;
    Mock::given(path(format!("/v8/finance/chart/{symbol}")))
        .respond_with(json(fixture(&format!("yahoo/{file}"))))
        .expect(1)
        .mount(&server)
        .await;
    let results = providers(&settings(&server)).quotes(&[t(symbol)]).await;
    found(quote_of(&results, symbol)).clone()
}

fn listing(quote_type: &str, exchange: &str, timezone: &str) -> Listing {
    Listing {
        quote_type: Some(quote_type.into()),
        exchange: Some(exchange.into()),
        timezone: Some(timezone.into()),
    }
}

/// The seven fields this value adds to a quote, as written to the cache.
fn extended_fields(q: &StockQuote) -> serde_json::Value {
    let value = serde_json::to_value(q).unwrap();
    let fields = [
        "pre_market_price",
        "pre_market_change_percent",
        "pre_market_time",
        "post_market_price",
        "post_market_change_percent",
        "post_market_time",
        "calendar",
    ];
    fields
        .iter()
        .map(|f| (f.to_string(), value[f].clone()))
        .collect()
}

#[tokio::test]
async fn extended_hours_prices_are_read_from_the_v7_quote_and_null_when_absent() {
    let null = serde_json::Value::Null;
    for (file, state, pre, post) in [
        (
            "quote_v7_AAPL_PRE_preMarketPrice_2021-02-10_rawbody.json",
            "PRE",
            serde_json::json!([136.4, 0.2867432, "2021-02-10T09:52:08Z"]),
            serde_json::json!([null, null, null]),
        ),
        (
            "quote_v7_AAPL_PRE_preMarketPrice_2025-10-01_wire.json",
            "PRE",
            serde_json::json!([255.1, 0.18458202, "2025-10-01T13:16:56Z"]),
            serde_json::json!([null, null, null]),
        ),
        (
            "quote_v7_AAPL_POST_postMarketPrice_2025-10-15_wire.json",
            "POST",
            serde_json::json!([null, null, null]),
            serde_json::json!([249.38, 0.016045779, "2025-10-15T21:37:42Z"]),
        ),
        (
            "quote_v7_AAPL_POSTPOST_postMarketPrice_2025-10-30_wire.json",
            "POSTPOST",
            serde_json::json!([null, null, null]),
            serde_json::json!([270.75, 0.38931692, "2025-10-29T23:59:56Z"]),
        ),
        (
            "quote_v7_AAPL_CLOSED_weekend_2025-10-11_wire.json",
            "CLOSED",
            serde_json::json!([null, null, null]),
            serde_json::json!([245.4, 0.0529986, "2025-10-10T23:59:58Z"]),
        ),
        (
            "quote_v7_AAPL_REGULAR_2025-10-28_wire.json",
            "REGULAR",
            serde_json::json!([null, null, null]),
            serde_json::json!([null, null, null]),
        ),
    ] {
        let q = v7_quote(file, "AAPL").await;
        assert_eq!(q.market_state.as_deref(), Some(state), "{file}");
        let got = extended_fields(&q);
        let triple = |side: &str| {
            serde_json::json!([
                got[format!("{side}_market_price")],
                got[format!("{side}_market_change_percent")],
                got[format!("{side}_market_time")]
            ])
        };
        assert_eq!((triple("pre"), triple("post")), (pre, post), "{file}");
        // Providers leave the market to the stock job; the field is written all the same.
        assert_eq!(got["calendar"], null, "{file}");
        assert_eq!(q.listing, listing("EQUITY", "NMS", "America/New_York"));
        assert_schema("stock", &serde_json::to_value(&q).unwrap());
    }
}

#[tokio::test]
async fn the_listing_is_what_each_recorded_quote_says_about_where_it_trades() {
    for (file, symbol, expected) in [
        (
            "quote_v7_OCDO.L_LSE_REGULAR_2025-02-17.json",
            "OCDO.L",
            listing("EQUITY", "LSE", "Europe/London"),
        ),
        (
            "quote_v7_EURUSD=X_CCY_CURRENCY_2025-02-17.json",
            "EURUSD=X",
            listing("CURRENCY", "CCY", "Europe/London"),
        ),
        (
            "quote_BTC-USD_crypto.json",
            "BTC-USD",
            listing("CRYPTOCURRENCY", "CCC", "UTC"),
        ),
        (
            "quote_v7_GS2C.DE_XETRA_REGULAR_2025-10-27_wire.json",
            "GS2C.DE",
            listing("EQUITY", "GER", "Europe/Berlin"),
        ),
        (
            "quote_v7_ORSTED.CO_CPH_REGULAR_2025-02-17.json",
            "ORSTED.CO",
            listing("EQUITY", "CPH", "Europe/Copenhagen"),
        ),
        (
            "quote_v7_7203.T_JPX_Tokyo_REGULAR_2026-05-28_reserialized.json",
            "7203.T",
            listing("EQUITY", "JPX", "Asia/Tokyo"),
        ),
        (
            "quote_v7_APS.AX_ASX_POSTPOST_2022-05-02.json",
            "APS.AX",
            listing("EQUITY", "ASX", "Australia/Sydney"),
        ),
        (
            "quote_v7_0P000071W8.TO_TOR_MUTUALFUND_CLOSED_2025-02-17.json",
            "0P000071W8.TO",
            listing("MUTUALFUND", "TOR", "America/Toronto"),
        ),
        (
            "quote_v7_GC=F_CMX_FUTURE_REGULAR_2025-02-17.json",
            "GC=F",
            listing("FUTURE", "CMX", "America/New_York"),
        ),
    ] {
        let q = v7_quote(file, symbol).await;
        assert_eq!(q.listing, expected, "{file}");
        // The cached exchange is the same word as the listing's.
        assert_eq!(q.exchange, expected.exchange, "{file}");
        let value = serde_json::to_value(&q).unwrap();
        assert!(value.get("listing").is_none(), "the listing is not cached");
        assert_schema("stock", &value);
    }
}

#[tokio::test]
async fn the_chart_fallback_reads_the_listing_from_its_meta_and_has_no_extended_hours() {
    for (file, symbol, expected) in [
        (
            "chart_v8_WSU.DE_XETRA_1d_2025-02-20.json",
            "WSU.DE",
            listing("EQUITY", "GER", "Europe/Berlin"),
        ),
        (
            "chart_v8_OCDO.L_LSE_1d_2025-02-20.json",
            "OCDO.L",
            listing("EQUITY", "LSE", "Europe/London"),
        ),
        (
            "chart_BTC-USD_1d_2020-01-01_2020-01-03.json",
            "BTC-USD",
            listing("CRYPTOCURRENCY", "CCC", "UTC"),
        ),
    ] {
        let q = chart_quote(file, symbol).await;
        assert_eq!(q.listing, expected, "{file}");
        let got = extended_fields(&q);
        assert!(
            got.as_object().unwrap().values().all(|v| v.is_null()),
            "{file}: {got}"
        );
        assert_schema("stock", &serde_json::to_value(&q).unwrap());
    }
}

#[tokio::test]
async fn a_quotes_earnings_date_is_a_date_in_its_own_exchanges_zone() {
    // earningsTimestampStart 1612836000 is 02:00 on 9 February in London, and still the 8th in
    // New York, the configured market zone.
    let q = v7_quote(
        "quote_v7_OCDO.L_LSE_REGULAR_2021-02-10_rawbody.json",
        "OCDO.L",
    )
    .await;
    assert_eq!(q.listing.timezone.as_deref(), Some("Europe/London"));
    assert_eq!(q.earnings_date, Some("2021-02-09".parse().unwrap()));
    // A US listing's zone is the configured one: its date is as before.
    let aapl = v7_quote("quote_AAPL_2026-10.json", "AAPL").await;
    assert_eq!(aapl.earnings_date, Some("2026-10-29".parse().unwrap()));
}

#[tokio::test]
async fn calendar_events_dates_are_read_in_the_zone_asked_for() {
    let server = MockServer::start().await;
    yahoo_session(&server).await;
    Mock::given(path("/v10/finance/quoteSummary/SPOT"))
        .and(query_param("modules", "calendarEvents"))
        .respond_with(json(fixture("yahoo/quoteSummary_calendarEvents_SPOT.json")))
        .mount(&server)
        .await;
    let p = providers(&settings(&server));
    // earningsDate 1738675800 is 08:30 on 4 February in New York, 00:30 on the 5th in Sydney:
    // read for an ASX listing, the report falls on the Sydney date.
    for (zone, date) in [(New_York, "2025-02-04"), (Sydney, "2025-02-05")] {
        let e = p.earnings(&t("SPOT"), zone).await;
        let e = found(&e);
        let date = Some(date.parse().unwrap());
        assert_eq!(
            (e.earnings_date, e.earnings_date_end),
            (date, date),
            "{zone}"
        );
        assert_schema("earnings", &serde_json::to_value(e).unwrap());
    }
}

#[tokio::test]
async fn non_finite_or_negative_extended_hours_prices_are_rejected() {
    let q = v7_quote(
        "quote_v7_AAPL_PRE_preMarketPrice_2025-10-01_wire.json",
        "AAPL",
    )
    .await;
    assert_eq!(q.validate(&t("AAPL")), Ok(()));
    for (field, value) in [
        ("pre_market_price", f64::NAN),
        ("pre_market_price", -1.0),
        ("post_market_price", f64::INFINITY),
        ("pre_market_change_percent", f64::NAN),
        ("post_market_change_percent", f64::NEG_INFINITY),
    ] {
        let mut spoilt = q.clone();
        let slot = match field {
            "pre_market_price" => &mut spoilt.extended_hours.pre_market_price,
            "post_market_price" => &mut spoilt.extended_hours.post_market_price,
            "pre_market_change_percent" => &mut spoilt.extended_hours.pre_market_change_percent,
            _ => &mut spoilt.extended_hours.post_market_change_percent,
        };
        *slot = Some(value);
        let reason = spoilt.validate(&t("AAPL")).unwrap_err();
        assert!(reason.starts_with(field), "{field}: {reason}");
    }
}

#[tokio::test]
async fn the_documented_stock_value_is_what_the_parser_writes_and_older_values_still_parse() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cache-format.md"))
        .unwrap();
    let example = doc
        .split("`finance:cache:stock:{T}`:")
        .nth(1)
        .and_then(|rest| rest.split("```json").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("the stock example in docs/cache-format.md");
    let documented: serde_json::Value = serde_json::from_str(example).unwrap();
    assert_schema("stock", &documented);
    // The example is the AAPL recording as the daemon writes it (its market filled in).
    let recorded = v7_quote("quote_AAPL_2026-10.json", "AAPL").await;
    let mut written = serde_json::to_value(&recorded).unwrap();
    written["fetched_at"] = documented["fetched_at"].clone();
    written["calendar"] = "XNYS".into();
    assert_eq!(documented, written);

    // A value cached before the extended-hours fields and `calendar` existed still reads.
    let mut older = written;
    for field in extended_fields(&recorded).as_object().unwrap().keys() {
        older.as_object_mut().unwrap().remove(field);
    }
    let read: StockQuote = serde_json::from_value(older).unwrap();
    assert_eq!(
        (
            read.price,
            read.extended_hours.post_market_price,
            read.calendar
        ),
        (recorded.price, None, None)
    );
}
