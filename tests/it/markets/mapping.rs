//! Which market each recorded instrument lands on. Every Yahoo recording (v7 quotes and v8
//! charts, tests/fixtures/yahoo/) names its instrument's type, exchange and zone; each maps to
//! its own market by its symbol, and the metadata alone says the same wherever it names a
//! market we ship. Then the symbol rules on their own, and `[markets.tickers]`.

use crate::support;

use finance_cache_warmer::calendar::{Calendar, Markets};
use finance_cache_warmer::market::{Resolver, Source};
use finance_cache_warmer::model::Listing;
use support::{fcw, run};

fn resolver(overrides: &[(&str, &str)]) -> Resolver {
    let overrides = overrides
        .iter()
        .map(|(t, m)| ((*t).to_owned(), (*m).to_owned()));
    Resolver::new(Markets::new(Calendar::nyse()), overrides).unwrap()
}

/// Every recorded instrument: its symbol and listing, from the file as recorded.
fn recorded() -> Vec<(String, Listing, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/yahoo");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let text = support::fixture(&format!("yahoo/{name}"));
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text) else {
            continue;
        };
        let s = |v: &serde_json::Value, k: &str| v[k].as_str().map(str::to_owned);
        if name.starts_with("quote") {
            for e in v["quoteResponse"]["result"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let listing = Listing {
                    quote_type: s(e, "quoteType"),
                    exchange: s(e, "exchange"),
                    timezone: s(e, "exchangeTimezoneName"),
                };
                if listing.exchange.is_some() {
                    out.push((s(e, "symbol").unwrap(), listing, name.clone()));
                }
            }
        } else if name.starts_with("chart") {
            let meta = &v["chart"]["result"][0]["meta"];
            let listing = Listing {
                quote_type: s(meta, "instrumentType"),
                exchange: s(meta, "exchangeName"),
                timezone: s(meta, "exchangeTimezoneName"),
            };
            out.push((s(meta, "symbol").unwrap(), listing, name));
        }
    }
    out
}

#[test]
fn every_recorded_instrument_maps_to_its_market() {
    let r = resolver(&[]);
    let expected = |symbol: &str| match symbol {
        "OCDO.L" | "TSCO.L" => "XLON",
        "GS2C.DE" | "WSU.DE" => "XETR",
        "ORSTED.CO" => "XCSE",
        "AZT.OL" => "XOSL",
        "LDO.MI" => "XMIL",
        "0P000071W8.TO" => "XTSE",
        "7203.T" => "XTKS",
        "APS.AX" => "XASX",
        "EURUSD=X" => "FX",
        "BTC-USD" => "24/7",
        // US listings, and what we ship no calendar for (Johannesburg, Jakarta, COMEX futures,
        // a Cboe index): the NYSE.
        _ => "XNYS",
    };
    let all = recorded();
    assert!(all.len() >= 40, "{} recordings", all.len());
    let mut foreign = 0;
    for (symbol, listing, file) in &all {
        let placed = r.resolve(symbol, Some(listing));
        assert_eq!(
            placed.calendar.id(),
            expected(symbol),
            "{file}: {symbol} {listing:?}"
        );
        // The metadata alone agrees wherever it names a shipped market.
        if let Some(by_listing) = r.by_listing(listing) {
            assert_eq!(
                by_listing.calendar.id(),
                expected(symbol),
                "{file}: {listing:?}"
            );
        }
        if expected(symbol) != "XNYS" {
            foreign += 1;
            assert!(
                r.by_listing(listing).is_some(),
                "{file}: the recorded metadata of {symbol} names no market"
            );
        }
    }
    assert!(foreign >= 15, "{foreign} non-US recordings");
    // A US listing is placed by its exchange code; what we cannot place falls to the NYSE.
    let source = |symbol: &str| {
        let (_, listing, _) = all.iter().find(|(s, _, _)| s == symbol).unwrap();
        r.resolve(symbol, Some(listing)).source
    };
    assert_eq!(source("AAPL"), Source::Metadata("exchange"));
    assert_eq!(source("OCDO.L"), Source::Suffix(".L"));
    assert_eq!(source("EURUSD=X"), Source::Suffix("=X"));
    assert_eq!(source("BTC-USD"), Source::CryptoPair);
    assert_eq!(source("SBK.JO"), Source::Default);
    assert_eq!(source("GC=F"), Source::Default);
}

#[test]
fn symbols_alone_place_suffixes_and_crypto_pairs_but_not_share_classes() {
    let r = resolver(&[]);
    for (symbol, market) in [
        ("OCDO.L", Some("XLON")),
        ("SAP.DE", Some("XETR")),
        ("MC.PA", Some("XPAR")),
        ("ASML.AS", Some("XAMS")),
        ("NESN.SW", Some("XSWX")),
        ("NOVO-B.CO", Some("XCSE")),
        ("VOLV-B.ST", Some("XSTO")),
        ("EQNR.OL", Some("XOSL")),
        ("ENI.MI", Some("XMIL")),
        ("SHOP.TO", Some("XTSE")),
        ("7203.T", Some("XTKS")),
        ("0005.HK", Some("XHKG")),
        ("BHP.AX", Some("XASX")),
        ("EURUSD=X", Some("FX")),
        ("BTC-USD", Some("24/7")),
        ("ETH-EUR", Some("24/7")),
        ("BRK-B", None),
        ("BF-B", None),
        ("AAPL", None),
        ("^GSPC", None),
    ] {
        assert_eq!(
            r.by_symbol(symbol)
                .map(|p| p.calendar.id().to_owned())
                .as_deref(),
            market,
            "{symbol}"
        );
    }
    assert_eq!(r.resolve("BRK-B", None).calendar.id(), "XNYS");
    assert_eq!(r.resolve("BRK-B", None).source, Source::Default);
}

#[test]
fn config_overrides_come_first_and_name_known_markets_only() {
    let r = resolver(&[("xyz", "XLON"), ("OCDO.L", "XNYS")]);
    let xyz = r.resolve("XYZ", None);
    assert_eq!((xyz.calendar.id(), xyz.source), ("XLON", Source::Override));
    assert_eq!(r.resolve("OCDO.L", None).calendar.id(), "XNYS");
    assert_eq!(
        resolver(&[("ABC", "fx")])
            .resolve("ABC", None)
            .calendar
            .id(),
        "FX"
    );
    let err = Resolver::new(
        Markets::new(Calendar::nyse()),
        [("XYZ".to_owned(), "XLSE".to_owned())],
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown market \"XLSE\""), "{err}");
    // The config says so before anything runs, naming the key.
    for (var, value, key) in [
        ("FCW_MARKETS__TICKERS__XYZ", "XLSE", "markets.tickers.XYZ"),
        ("FCW_TTL__MARKETS__XLSE__OPEN", "5m", "ttl.markets.XLSE"),
    ] {
        let (code, _, err) = run(fcw().arg("check-config").env(var, value));
        assert_eq!(code, Some(2), "{var}: {err}");
        // Environment variables arrive lower-cased.
        let said = err.to_ascii_lowercase();
        assert!(said.contains(&key.to_ascii_lowercase()), "{err}");
        assert!(said.contains("unknown market"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one message: {err}");
    }
}
