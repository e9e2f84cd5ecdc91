//! Massive (formerly Polygon.io) as it behaves since the rebrand: `next_url`s on either host are
//! followed on the configured base, a chain too long to page is an error, contracts that are
//! neither calls nor puts are left out, and earnings come from the Benzinga dataset.

use super::*;

use chrono_tz::America::New_York;

const CHAIN: &str = "polygon/v3_snapshot_options_chain_AAPL.mock.json";

fn page_with_next(next_url: &str) -> serde_json::Value {
    let mut page: serde_json::Value = serde_json::from_slice(&fixture(CHAIN)).unwrap();
    page["next_url"] = next_url.into();
    page
}

fn polygon_options(server: &MockServer) -> Providers {
    let mut s = settings(server);
    s.provider.options = vec![ProviderName::Polygon];
    s.provider.earnings = vec![ProviderName::Polygon];
    providers(&s)
}

#[tokio::test]
async fn a_next_url_on_the_other_host_is_followed_on_the_configured_base() {
    let server = MockServer::start().await;
    // The answer names api.polygon.io while the config says another base (api.massive.com in
    // production, this server here): its path and query go to the configured base, with the
    // key as a header, as Massive's own client does.
    let page1 =
        page_with_next("https://api.polygon.io/v3/snapshot/options/AAPL?cursor=YXA9MTAyMjgxODgw");
    Mock::given(path("/v3/snapshot/options/AAPL"))
        .and(query_param_is_missing("cursor"))
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
        .respond_with(json(fixture(CHAIN)))
        .expect(1)
        .mount(&server)
        .await;
    let chain = polygon_options(&server).options(&t("AAPL")).await;
    assert_eq!(found(&chain).chains[0].calls.len(), 1);
}

#[tokio::test]
async fn a_chain_longer_than_the_page_cap_is_an_error_not_a_truncated_chain() {
    let server = MockServer::start().await;
    let looping = page_with_next(&format!(
        "{}/v3/snapshot/options/AAPL?cursor=again",
        server.uri()
    ));
    Mock::given(path("/v3/snapshot/options/AAPL"))
        .respond_with(json(serde_json::to_vec(&looping).unwrap()))
        .expect(40)
        .mount(&server)
        .await;
    let e = polygon_options(&server)
        .options(&t("AAPL"))
        .await
        .unwrap_err();
    assert!(matches!(e, ProviderError::Invalid { .. }), "{e}");
    assert!(e.to_string().contains("runs past 40 pages"), "{e}");
}

#[tokio::test]
async fn a_contract_that_is_neither_call_nor_put_is_left_out() {
    // The spec: contract_type "Can be 'put', 'call', or in some rare cases, 'other'".
    let mut other: serde_json::Value = serde_json::from_slice(&fixture(CHAIN)).unwrap();
    other["results"][0]["details"]["contract_type"] = "other".into();
    let server = MockServer::start().await;
    Mock::given(path("/v3/snapshot/options/AAPL"))
        .respond_with(json(serde_json::to_vec(&other).unwrap()))
        .mount(&server)
        .await;
    let chain = polygon_options(&server).options(&t("AAPL")).await;
    let chain = found(&chain);
    assert!(
        chain
            .chains
            .iter()
            .all(|c| c.calls.is_empty() && c.puts.is_empty()),
        "{chain:?}"
    );
}

#[tokio::test]
async fn earnings_come_from_benzinga_with_confirmed_and_projected_dates() {
    let server = MockServer::start().await;
    Mock::given(path("/benzinga/v1/earnings"))
        .and(query_param("ticker", "GFAI"))
        .and(query_param("sort", "date.asc"))
        .and(query_param("limit", "1"))
        .and(header(
            "authorization",
            format!("Bearer {POLYGON_KEY}").as_str(),
        ))
        .respond_with(json(fixture(
            "massive/benzinga_v1_earnings_200_openapi_example.json",
        )))
        .expect(1)
        .mount(&server)
        .await;
    let p = polygon_options(&server);
    let e = p.earnings(&t("GFAI"), New_York).await;
    let e = found(&e);
    // The documentation example: date 2029-09-24, confirmed, at 07:00 Eastern.
    assert_eq!(e.earnings_date, Some("2029-09-24".parse().unwrap()));
    assert_eq!(e.earnings_date_end, e.earnings_date);
    assert_eq!(e.is_estimate, Some(false));
    assert_eq!(serde_json::to_value(e).unwrap()["earnings_time"], "bmo");
    assert_eq!(e.source, "polygon");
    assert_schema("earnings", &serde_json::to_value(e).unwrap());
    let date_gte = &server.received_requests().await.unwrap()[0];
    assert!(
        date_gte.url.query_pairs().any(|(k, _)| k == "date.gte"),
        "{}",
        date_gte.url
    );
    // A listing outside the US is not Massive's: unknown, for the next provider.
    assert_eq!(
        p.earnings(&t("OCDO.L"), chrono_tz::Europe::London).await,
        Ok(Fetched::Unknown)
    );
}
