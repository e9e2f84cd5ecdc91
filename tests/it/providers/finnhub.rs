//! Finnhub's earnings calendar: one request for the whole watchlist, the key only in a header,
//! a ticker the window does not list cached as "no date", and `earnings = ["finnhub", "yahoo"]`
//! as a chain.

use super::*;

use chrono_tz::America::New_York;
use redis::AsyncCommands;
use support::{assert_ttl, conn, fcw, redis, run, summary};

const FINNHUB_KEY: &str = "fh_SECRET_5555555555";
const AAPL_WINDOW: &str = "finnhub/calendar_earnings_symbol-AAPL_2026-05-27_wire.json";

fn finnhub(server: &MockServer) -> Settings {
    let mut s = settings(server);
    s.provider.finnhub.base_url = url(server, "");
    s.provider.finnhub.api_key = Some(Secret::new(FINNHUB_KEY));
    s.provider.finnhub.requests_per_second = 0.0;
    s.provider.earnings = vec![ProviderName::Finnhub, ProviderName::Yahoo];
    s
}

#[tokio::test]
async fn one_calendar_request_serves_every_ticker_and_the_window_is_90_days() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v1/calendar/earnings"))
        .and(header("x-finnhub-token", FINNHUB_KEY))
        .and(query_param_is_missing("symbol"))
        .and(query_param_is_missing("token"))
        .respond_with(json(fixture(AAPL_WINDOW)))
        .expect(1)
        .mount(&server)
        .await;
    let p = providers(&finnhub(&server));
    let aapl = p.earnings(&t("AAPL"), New_York).await;
    let aapl = found(&aapl);
    assert_eq!(aapl.earnings_date, Some("2026-07-29".parse().unwrap()));
    assert_eq!(
        (aapl.earnings_date_end, aapl.is_estimate),
        (aapl.earnings_date, None)
    );
    let value = serde_json::to_value(aapl).unwrap();
    assert_eq!(
        (value["earnings_time"].as_str(), value["source"].as_str()),
        (Some("amc"), Some("finnhub"))
    );
    assert_schema("earnings", &value);
    // A US ticker the window does not list has no report in it: data, not an error.
    let msft = p.earnings(&t("MSFT"), New_York).await;
    let msft = found(&msft);
    assert_eq!((msft.earnings_date, msft.earnings_time), (None, None));

    let asked = &server.received_requests().await.unwrap()[0];
    let param = |k: &str| {
        asked
            .url
            .query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.parse::<chrono::NaiveDate>().unwrap())
            .unwrap()
    };
    assert_eq!((param("to") - param("from")).num_days(), 90);
    assert!(!asked.url.as_str().contains(FINNHUB_KEY));
}

#[tokio::test]
async fn the_earliest_report_in_the_window_is_the_next_one() {
    let server = MockServer::start().await;
    // Finnhub's documentation example lists two AAPL reports, the later first.
    Mock::given(path("/api/v1/calendar/earnings"))
        .respond_with(json(fixture(
            "finnhub/calendar_earnings_official_docs_sampleResponse.json",
        )))
        .mount(&server)
        .await;
    let e = providers(&finnhub(&server))
        .earnings(&t("AAPL"), New_York)
        .await;
    assert_eq!(found(&e).earnings_date, Some("2019-10-30".parse().unwrap()));
}

#[tokio::test]
async fn listings_outside_the_us_and_a_refused_key_go_on_to_yahoo() {
    let server = MockServer::start().await;
    yahoo_session(&server).await;
    // The body Finnhub sends for an endpoint the plan does not include.
    Mock::given(path("/api/v1/calendar/earnings"))
        .respond_with(ResponseTemplate::new(403).set_body_raw(
            fixture("finnhub/error_403_you_dont_have_access_candle_2026-05-23_wire.json"),
            "application/json",
        ))
        .expect(1)
        .mount(&server)
        .await;
    for sym in ["AAPL", "OCDO.L"] {
        Mock::given(path(format!("/v10/finance/quoteSummary/{sym}")))
            .respond_with(json(fixture(&format!(
                "yahoo/quoteSummary_calendarEvents_{sym}.json"
            ))))
            .expect(1)
            .mount(&server)
            .await;
    }
    let p = providers(&finnhub(&server));
    let ocdo = p.earnings(&t("OCDO.L"), chrono_tz::Europe::London).await;
    assert_eq!(found(&ocdo).source, "yahoo", "not asked of Finnhub at all");
    let aapl = p.earnings(&t("AAPL"), New_York).await;
    assert_eq!(found(&aapl).source, "yahoo");
}

#[tokio::test]
async fn a_thousand_ticker_watchlist_costs_one_calendar_request() {
    let server = redis().await;
    let members: Vec<Vec<u8>> = std::iter::once(b"AAPL".to_vec())
        .chain((0..999).map(|i| format!("T{i:03}").into_bytes()))
        .collect();
    let refs: Vec<&[u8]> = members.iter().map(Vec::as_slice).collect();
    support::watchlist(&server, &refs).await;
    let upstream = MockServer::start().await;
    Mock::given(path("/api/v1/calendar/earnings"))
        .and(header("x-finnhub-token", FINNHUB_KEY))
        .respond_with(json(fixture(AAPL_WINDOW)))
        .expect(1)
        .mount(&upstream)
        .await;
    let mut cmd = fcw();
    cmd.args(["once", "earnings", "--at", "2026-12-02T16:00:00Z"])
        .env("FCW_REDIS__URL", server.url())
        .env("FCW_PROVIDER__EARNINGS", "finnhub,yahoo")
        .env("FCW_PROVIDER__FINNHUB__BASE_URL", upstream.uri())
        .env("FCW_PROVIDER__FINNHUB__API_KEY", FINNHUB_KEY)
        .env("FCW_PROVIDER__YAHOO__BASE_URL", upstream.uri())
        .env("FCW_LOG__FORMAT", "json")
        .env("FCW_LOG__LEVEL", "debug")
        .env("FCW_SERVER__LISTEN", "");
    let (code, out, err) = run(&mut cmd);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        summary(&err, "earnings")["written"].as_u64(),
        Some(1000),
        "{err}"
    );
    assert!(
        !err.contains(FINNHUB_KEY) && !out.contains(FINNHUB_KEY),
        "the key is in the output"
    );
    let mut c = conn(&server).await;
    let aapl: String = c.get("finance:cache:earnings:AAPL").await.unwrap();
    let aapl: serde_json::Value = serde_json::from_str(&aapl).unwrap();
    assert_eq!(
        (
            aapl["earnings_date"].as_str(),
            aapl["earnings_time"].as_str()
        ),
        (Some("2026-07-29"), Some("amc"))
    );
    let none: String = c.get("finance:cache:earnings:T500").await.unwrap();
    let none: serde_json::Value = serde_json::from_str(&none).unwrap();
    assert!(none["earnings_date"].is_null(), "{none}");
    assert_ttl(
        &mut c,
        "finance:cache:earnings:T500",
        86_400,
        "no earnings date in the window: ttl.earnings_unknown",
    )
    .await;
}
