//! Every upstream response parser, fed arbitrary input: it may reject, it must never panic.
//! Inputs are random JSON, random bytes, and the recorded fixtures with random parts replaced
//! (which reaches the deeper parsing paths that random JSON rarely does).

use crate::support;

use chrono::Utc;
use finance_cache_warmer::provider::http::Reply;
use finance_cache_warmer::provider::{polygon, tradier, yahoo};
use finance_cache_warmer::ticker::Ticker;
use proptest::prelude::*;
use serde_json::Value;
use support::fixture;

const FIXTURES: &[&str] = &[
    "yahoo/quote_AAPL_2026-10.json",
    "yahoo/quote_AAPL_BABA_multi_symbol.json",
    "yahoo/quote_SI_delisted_quoteType_NONE.json",
    "yahoo/chart_AAPL_1d_2022-02-22_recorded_2026-10.json",
    "yahoo/chart_LUCYW_null_currency_no_bars.json",
    "yahoo/options_CRON_nearest_expiry.json",
    "yahoo/options_EURUSD=X_no_options.json",
    "yahoo/quoteSummary_calendarEvents_AAPL.json",
    "yahoo/quoteSummary_calendarEvents_QQQ_404_no_fundamentals.json",
    "polygon/v2_snapshot_stocks_ticker_AAPL.mock.json",
    "polygon/v3_snapshot_options_chain_AAPL.mock.json",
    "tradier/markets_quotes_PLTR_single_symbol_object.json",
    "tradier/markets_quotes_SPY_and_option_with_greeks.json",
    "tradier/markets_options_expirations_PLTR.json",
];

/// Runs every parser over one body with a few statuses.
fn parse_everything(body: &[u8]) {
    let tz = chrono_tz::America::New_York;
    let now = Utc::now();
    let asked: Vec<Ticker> = ["AAPL", "BABA", "PLTR", "SPY", "CRON"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    for status in [200, 404, 401, 500] {
        let reply = || Reply::recorded(status, body.to_vec());
        for ticker in &asked {
            let _ = yahoo::parse_chart(&reply(), ticker, now);
            let _ = yahoo::parse_options_page(&reply(), ticker)
                .map(|p| p.map(|p| p.recorded_chains(0)));
            let _ = yahoo::parse_earnings(&reply(), ticker, tz, "yahoo", now);
            let _ = polygon::parse_snapshot(&reply(), ticker, now);
            let _ = polygon::parse_options_page(&reply(), ticker);
            let _ =
                tradier::parse_chain(&reply(), ticker, "2024-12-20".parse().unwrap(), Some(10.0));
        }
        let _ = yahoo::parse_quotes(&reply(), &asked, tz, "yahoo", now);
        let _ = tradier::parse_quotes(&reply(), &asked, now);
        let _ = tradier::parse_expirations(&reply());
    }
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[A-Za-z0-9 .:_-]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("AAPL"),
            Just("NONE"),
            Just("call"),
            Just("2024-12-20"),
            Just("<html>")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let keys = prop_oneof![
            "[a-z]{1,8}",
            Just("quoteResponse".to_owned()),
            Just("result".to_owned()),
            Just("symbol".to_owned()),
            Just("optionChain".to_owned()),
            Just("quoteSummary".to_owned()),
            Just("ticker".to_owned()),
            Just("results".to_owned()),
            Just("quotes".to_owned()),
            Just("options".to_owned()),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Replaces the value at the `pick`-th node (in document order) of `doc` with `new`.
fn replace_nth(doc: &mut Value, pick: &mut usize, new: &Value) {
    if *pick == 0 {
        *doc = new.clone();
        return;
    }
    *pick -= 1;
    match doc {
        Value::Array(items) => items.iter_mut().for_each(|v| replace_nth(v, pick, new)),
        Value::Object(map) => map.values_mut().for_each(|v| replace_nth(v, pick, new)),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn random_json_never_panics_a_parser(v in any_json()) {
        parse_everything(&serde_json::to_vec(&v).unwrap());
    }

    #[test]
    fn random_bytes_never_panic_a_parser(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        parse_everything(&bytes);
    }

    #[test]
    fn mutated_recordings_never_panic_a_parser(which in 0..FIXTURES.len(), at in 0usize..4000, new in any_json()) {
        let mut doc: Value = serde_json::from_slice(&fixture(FIXTURES[which])).unwrap();
        let mut pick = at;
        replace_nth(&mut doc, &mut pick, &new);
        parse_everything(&serde_json::to_vec(&doc).unwrap());
    }

    #[test]
    fn truncated_recordings_never_panic_a_parser(which in 0..FIXTURES.len(), cut in 0.0..1.0f64) {
        let body = fixture(FIXTURES[which]);
        parse_everything(&body[..(body.len() as f64 * cut) as usize]);
    }

    #[test]
    fn the_ticker_validator_never_panics_and_accepts_only_the_safe_alphabet(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        if let Ok(t) = Ticker::parse(&bytes) {
            prop_assert!(!t.as_str().is_empty() && t.as_str().len() <= 20);
            prop_assert!(t.as_str().bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b".-^=".contains(&b)));
        }
    }
}
