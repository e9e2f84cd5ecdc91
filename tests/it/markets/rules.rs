//! The markets that are rules, not data: 24/7 never closes, and the FX week runs from Sunday
//! 17:00 to Friday 17:00 New York time (not exchange_calendars' `24/5`, the UTC week, nor a
//! calendar that opens on Saturday), checked a second either side of each turn in both US DST
//! regimes. And a lunch break is a state of its own.

use chrono::{DateTime, Duration, TimeZone, Utc};
use finance_cache_warmer::calendar::{Calendar, MarketState, Markets};

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn is_open(cal: &Calendar, t: DateTime<Utc>) -> bool {
    matches!(
        cal.state_at(t),
        MarketState::Open { .. } | MarketState::AlwaysOpen
    )
}

#[test]
fn the_fx_week_turns_at_17_00_new_york_in_winter_and_summer() {
    let fx = Calendar::fx();
    let second = Duration::seconds(1);
    // (Sunday open, Friday close) in UTC: 22:00 under EST, 21:00 under EDT. The US changes
    // clocks on 2026-03-08, so that Sunday already opens at 21:00Z.
    for (open, close) in [
        ("2026-03-01T22:00:00Z", "2026-03-06T22:00:00Z"),
        ("2026-03-08T21:00:00Z", "2026-03-13T21:00:00Z"),
        ("2026-10-25T21:00:00Z", "2026-10-30T21:00:00Z"),
        ("2026-11-01T22:00:00Z", "2026-11-06T22:00:00Z"),
    ] {
        let (open, close) = (utc(open), utc(close));
        assert!(!is_open(&fx, open - second), "{open} - 1 s");
        match fx.state_at(open) {
            // Open the whole week: the daily 17:00 is no boundary.
            MarketState::Open { until, .. } => assert_eq!(until, close, "{open}"),
            other => panic!("{open}: {other:?}"),
        }
        // The daily 17:00 on Wednesday is no turn: either side, open until Friday.
        let wednesday_17 = open + Duration::days(3);
        for t in [wednesday_17 - second, wednesday_17] {
            match fx.state_at(t) {
                MarketState::Open { until, .. } => assert_eq!(until, close, "{t}"),
                other => panic!("{t}: {other:?}"),
            }
        }
        assert!(is_open(&fx, close - second), "{close} - 1 s");
        match fx.state_at(close) {
            // Reopening on Sunday at 17:00 New York (47 h later across the March change).
            MarketState::Closed { next } => {
                let ny = next.open.with_timezone(&chrono_tz::America::New_York);
                assert_eq!(ny.format("%a %H:%M").to_string(), "Sun 17:00", "{close}");
                assert!(next.open - close <= Duration::hours(49), "{close}");
            }
            other => panic!("{close}: {other:?}"),
        }
        // Saturday noon New York is closed.
        assert!(!is_open(&fx, close + Duration::hours(19)));
    }
}

#[test]
fn twenty_four_seven_never_closes() {
    let crypto = Calendar::always_open();
    let mut t = utc("2026-01-01T00:00:00Z");
    while t < utc("2027-01-01T00:00:00Z") {
        assert_eq!(crypto.state_at(t), MarketState::AlwaysOpen, "{t}");
        t += Duration::minutes(17);
    }
}

#[test]
fn a_lunch_break_is_neither_open_nor_closed() {
    let markets = Markets::new(Calendar::nyse());
    let tokyo = markets.get("XTKS").unwrap();
    let jst = chrono_tz::Asia::Tokyo;
    let at = |h, m, s| jst.with_ymd_and_hms(2026, 12, 2, h, m, s).unwrap().to_utc();
    match tokyo.state_at(at(11, 29, 59)) {
        MarketState::Open { until, .. } => assert_eq!(until, at(11, 30, 0)),
        other => panic!("{other:?}"),
    }
    match tokyo.state_at(at(11, 30, 0)) {
        MarketState::Break { session } => assert_eq!(session.break_end, Some(at(12, 30, 0))),
        other => panic!("{other:?}"),
    }
    match tokyo.state_at(at(12, 30, 0)) {
        MarketState::Open { until, .. } => assert_eq!(until, at(15, 30, 0)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        tokyo.state_at(at(15, 30, 0)),
        MarketState::Closed { .. }
    ));
}
