//! The offline replay provider.

use super::*;

use chrono_tz::America::New_York;
use chrono_tz::Asia::Tokyo;
use finance_cache_warmer::model::Listing;

#[tokio::test]
async fn replay_maps_any_ticker_onto_a_recording() {
    let mut s = Settings::defaults().unwrap();
    s.provider.stock = vec![ProviderName::Replay];
    s.provider.options = vec![ProviderName::Replay];
    s.provider.earnings = vec![ProviderName::Replay];
    let p = providers(&s);
    let results = p.quotes(&[t("AAPL"), t("ZZZZ"), t("BRK-B")]).await;
    let aapl = found(quote_of(&results, "AAPL"));
    assert_eq!(
        (aapl.price, aapl.source.as_str()),
        (333.69, "replay"),
        "its own recording"
    );
    for sym in ["ZZZZ", "BRK-B"] {
        let q = found(quote_of(&results, sym));
        assert_eq!((q.symbol.as_str(), q.source.as_str()), (sym, "replay"));
        assert_schema("stock", &serde_json::to_value(q).unwrap());
    }
    // Deterministic: the same ticker gets the same recording.
    let again = p.quotes(&[t("ZZZZ")]).await;
    assert_eq!(
        found(quote_of(&again, "ZZZZ")).price,
        found(quote_of(&results, "ZZZZ")).price
    );
    // Options are relabelled onto the ticker, contract symbols included.
    for sym in ["AAPL", "ZZZZ", "BRK-B", "XYZQ"] {
        let chain = p.options(&t(sym)).await;
        let chain = found(&chain);
        assert_eq!(chain.symbol, sym);
        let root: String = sym.chars().filter(char::is_ascii_alphanumeric).collect();
        for c in chain
            .chains
            .iter()
            .flat_map(|c| c.calls.iter().chain(&c.puts))
        {
            assert!(
                c.contract_symbol.starts_with(&root),
                "{}",
                c.contract_symbol
            );
        }
        assert_schema("options", &serde_json::to_value(chain).unwrap());
    }
    let qqq = p.earnings(&t("QQQ"), New_York).await;
    assert_eq!(
        found(&qqq).earnings_date,
        None,
        "QQQ's recording is a 404 no-fundamentals"
    );
    let abbv = p.earnings(&t("ABBV"), New_York).await;
    assert!(found(&abbv).earnings_date.is_some());
    assert_schema("earnings", &serde_json::to_value(found(&abbv)).unwrap());
}

#[tokio::test]
async fn replay_keeps_a_listing_only_on_its_own_recording_and_dates_earnings_in_the_zone_asked() {
    let mut s = Settings::defaults().unwrap();
    s.provider.stock = vec![ProviderName::Replay];
    s.provider.earnings = vec![ProviderName::Replay];
    let p = providers(&s);
    let results = p.quotes(&[t("AAPL"), t("ZZZZ")]).await;
    let aapl = found(quote_of(&results, "AAPL"));
    assert_eq!(
        aapl.listing,
        Listing {
            quote_type: Some("EQUITY".into()),
            exchange: Some("NMS".into()),
            timezone: Some("America/New_York".into()),
        }
    );
    // Another instrument's recording says nothing about where ZZZZ trades.
    assert_eq!(
        found(quote_of(&results, "ZZZZ")).listing,
        Listing::default()
    );
    // GOOG's earningsDate [1745438400, 1745870400] are 16:00 New York, 05:00 next day Tokyo.
    for (zone, start, end) in [
        (New_York, "2025-04-23", "2025-04-28"),
        (Tokyo, "2025-04-24", "2025-04-29"),
    ] {
        let goog = p.earnings(&t("GOOG"), zone).await;
        let goog = found(&goog);
        assert_eq!(
            (goog.earnings_date, goog.earnings_date_end),
            (Some(start.parse().unwrap()), Some(end.parse().unwrap())),
            "{zone}"
        );
        assert_eq!(goog.source, "replay");
    }
    // A relabelled recording carries the ticker asked for.
    let other = p.earnings(&t("ZZZZ"), New_York).await;
    assert_eq!(found(&other).symbol, "ZZZZ");
}

#[test]
fn a_replay_directory_without_recordings_is_a_setup_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("yahoo")).unwrap();
    let mut s = Settings::defaults().unwrap();
    s.provider.stock = vec![ProviderName::Replay];
    s.provider.replay.dir = Some(dir.path().to_owned());
    let e = Providers::from_settings(&s).err().unwrap();
    assert!(
        e.to_string()
            .starts_with("provider.replay.dir: no usable recordings of quotes"),
        "{e}"
    );
    // The repository's fixture directory is a valid replay directory.
    s.provider.replay.dir = Some(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures").into());
    assert!(Providers::from_settings(&s).is_ok());
}
