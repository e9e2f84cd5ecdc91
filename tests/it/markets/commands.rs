//! The market-time commands: `markets`, `calendar --market` with lunch breaks, and `ttl --ticker`
//! on a ticker's own market, with `[ttl.markets.*]` and `ttl.extended` from the config.

use crate::support;

use support::{fcw, run};

fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn markets_lists_every_market_with_its_zone_hours_and_data_end() {
    let (code, out, err) = run(fcw().args(["markets", "--json"]));
    assert_eq!(code, Some(0), "{err}");
    let markets = json_lines(&out);
    let ids: Vec<&str> = markets
        .iter()
        .map(|m| m["market"].as_str().unwrap())
        .collect();
    for id in [
        "XNYS", "24/7", "FX", "XLON", "XETR", "XPAR", "XAMS", "XSWX", "XCSE", "XSTO", "XOSL",
        "XMIL", "XTSE", "XTKS", "XHKG", "XASX",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    let tokyo = markets.iter().find(|m| m["market"] == "XTKS").unwrap();
    assert_eq!(
        tokyo,
        &serde_json::json!({"market": "XTKS", "timezone": "Asia/Tokyo", "hours": "09:00-11:30, 12:30-15:30", "data_until": "2035-12-31"})
    );
    let nyse = markets.iter().find(|m| m["market"] == "XNYS").unwrap();
    assert_eq!(
        nyse["data_until"],
        serde_json::Value::Null,
        "rules have no end"
    );
    let (code, text, _) = run(fcw().arg("markets"));
    assert_eq!(code, Some(0));
    assert!(
        text.lines()
            .any(|l| l.starts_with("XHKG") && l.contains("09:30-12:00, 13:00-16:00")),
        "{text}"
    );
}

#[test]
fn calendar_lists_another_markets_sessions_with_their_breaks() {
    let (code, out, err) = run(fcw().args([
        "calendar",
        "--market",
        "XHKG",
        "--from",
        "2026-12-23",
        "--to",
        "2026-12-28",
        "--json",
    ]));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        json_lines(&out),
        [
            serde_json::json!({"date": "2026-12-23", "open": "2026-12-23T01:30:00Z", "close": "2026-12-23T08:00:00Z", "early_close": false, "break_start": "2026-12-23T04:00:00Z", "break_end": "2026-12-23T05:00:00Z"}),
            // Christmas Eve: a half day that ends at the lunch break, so no break.
            serde_json::json!({"date": "2026-12-24", "open": "2026-12-24T01:30:00Z", "close": "2026-12-24T04:00:00Z", "early_close": true}),
            serde_json::json!({"date": "2026-12-28", "open": "2026-12-28T01:30:00Z", "close": "2026-12-28T08:00:00Z", "early_close": false, "break_start": "2026-12-28T04:00:00Z", "break_end": "2026-12-28T05:00:00Z"}),
        ]
    );
    let (code, text, _) = run(fcw().args([
        "calendar",
        "--market",
        "XTKS",
        "--from",
        "2026-12-30",
        "--to",
        "2026-12-30",
    ]));
    assert_eq!(code, Some(0));
    assert!(
        text.starts_with("XTKS sessions 2026-12-30 to 2026-12-30, times in Asia/Tokyo"),
        "{text}"
    );
    assert!(
        text.contains("09:00 JST  15:30 JST  break 11:30-12:30"),
        "{text}"
    );
    let (code, _, err) = run(fcw().args(["calendar", "--market", "XLSE"]));
    assert_eq!(code, Some(2));
    assert!(
        err.contains("unknown market") && err.contains("XLSE") && err.contains("XLON"),
        "{err}"
    );
    // Market names are matched in any case.
    let (code, _, err) = run(fcw().args([
        "calendar",
        "--market",
        "xtks",
        "--from",
        "2026-12-30",
        "--to",
        "2026-12-30",
    ]));
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn ttl_explains_a_tickers_own_market_and_its_config() {
    let ttl = |ticker: &str, at: &str, env: &[(&str, &str)]| {
        let (code, out, err) = run(fcw()
            .args(["ttl", "--ticker", ticker, "--at", at, "--json"])
            .envs(env.iter().copied()));
        assert_eq!(code, Some(0), "{err}");
        serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()
    };
    // Friday 14:00 GMT: London trades until 16:30; with [ttl.markets.XLON] open = 15m its keys
    // get 15 minutes, and other markets keep [ttl].
    let v = ttl(
        "OCDO.L",
        "2026-12-04T14:00:00Z",
        &[("FCW_TTL__MARKETS__XLON__OPEN", "15m")],
    );
    assert_eq!(
        v,
        serde_json::json!({"at": "2026-12-04T14:00:00Z", "ticker": "OCDO.L", "calendar": "XLON", "market": "open",
            "next_open": "2026-12-07T08:00:00Z", "next_close": "2026-12-04T16:30:00Z",
            "stock_ttl_s": 900, "options_ttl_s": 900, "earnings_ttl_s": 86_400})
    );
    let v = ttl(
        "AAPL",
        "2026-12-04T15:00:00Z",
        &[("FCW_TTL__MARKETS__XLON__OPEN", "15m")],
    );
    assert_eq!(
        (v["calendar"].as_str(), v["stock_ttl_s"].as_u64()),
        (Some("XNYS"), Some(600))
    );
    // Friday 16:00 New York: the FX week ends at 17:00, and a `[markets.tickers]` override
    // places a ticker on it.
    let v = ttl(
        "ABC",
        "2026-12-04T21:00:00Z",
        &[("FCW_MARKETS__TICKERS__ABC", "FX")],
    );
    assert_eq!(
        (
            v["calendar"].as_str(),
            v["market"].as_str(),
            v["stock_ttl_s"].as_u64()
        ),
        (Some("FX"), Some("open"), Some(600))
    );
    let v = ttl("EURUSD=X", "2026-12-04T21:55:00Z", &[]);
    assert_eq!(
        (v["stock_ttl_s"].as_u64(), v["next_open"].as_str()),
        (Some(300), Some("2026-12-06T22:00:00Z"))
    );
    // US extended hours: 17:00 New York is post-market with ttl.extended, closed without.
    let v = ttl(
        "AAPL",
        "2026-12-02T22:00:00Z",
        &[("FCW_TTL__EXTENDED", "5m")],
    );
    assert_eq!(
        (
            v["market"].as_str(),
            v["stock_ttl_s"].as_u64(),
            v["options_ttl_s"].as_u64()
        ),
        (Some("extended"), Some(300), Some(3600))
    );
    let v = ttl("AAPL", "2026-12-02T22:00:00Z", &[]);
    assert_eq!(
        (v["market"].as_str(), v["stock_ttl_s"].as_u64()),
        (Some("closed"), Some(3600))
    );
    // The text form names the market and why the ticker is on it.
    let (code, out, _) =
        run(fcw().args(["ttl", "--ticker", "BTC-USD", "--at", "2026-12-05T12:00:00Z"]));
    assert_eq!(code, Some(0));
    assert!(out.contains("calendar:    24/7 (crypto pair)"), "{out}");
    assert!(out.contains("next_close:  never (always open)"), "{out}");
    assert!(out.contains("600 s  capped by ttl.open (10m)"), "{out}");
    let (code, _, err) = run(fcw().args(["ttl", "--ticker", "not a ticker!"]));
    assert_eq!(code, Some(2));
    assert!(err.contains("ttl --ticker"), "{err}");
}
