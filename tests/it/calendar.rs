//! The NYSE calendar against published references, for every date from 2000-01-01 to 2035-12-31.
//!
//! Sources:
//! - `tests/data/XNYS.csv`: every closed weekday and every session with other hours, exported
//!   from the `exchange_calendars` package 4.13.2 (XNYS), which encodes the NYSE's published
//!   holiday and early-close schedules and its unscheduled closures (generator:
//!   `tests/data/market_data.py`, which also writes the other markets' data).
//! - NYSE, "Holidays & Trading Hours" (https://www.nyse.com/markets/hours-calendars), for the
//!   2025-2027 schedules spelled out in `nyse_published_schedules_2025_to_2027`.
//! - NYSE press releases for the unscheduled closures: 2001-09-11..14 (September 11),
//!   2004-06-11 (Reagan), 2007-01-02 (Ford), 2012-10-29/30 (Hurricane Sandy), 2018-12-05
//!   (G. H. W. Bush), 2025-01-09 (Carter).

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::America::New_York;
use finance_cache_warmer::calendar::{Calendar, Closure, MarketState};

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// What the reference says about a weekday: closed, or closing at this New York time.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expected {
    Closed,
    ClosesAt(NaiveTime),
}

/// The reference's exceptions to the regular week: `closed,<date>` and
/// `special,<date>,<open>,,,<close>`.
fn reference() -> BTreeMap<NaiveDate, Expected> {
    let text = include_str!("../data/XNYS.csv");
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let expected = match fields[0] {
                "closed" => Expected::Closed,
                "special" => {
                    assert_eq!(fields[2], "09:30", "{line}: the NYSE always opens at 09:30");
                    Expected::ClosesAt(NaiveTime::parse_from_str(fields[5], "%H:%M").unwrap())
                }
                _ => return None,
            };
            Some((date(fields[1]), expected))
        })
        .collect()
}

#[test]
fn every_day_from_2000_to_2035_matches_the_reference() {
    let reference = reference();
    let cal = Calendar::nyse();
    let regular_close = NaiveTime::from_hms_opt(16, 0, 0).unwrap();
    let mut mismatches = Vec::new();
    let (mut sessions, mut closed, mut early) = (0, 0, 0);
    for day in date("2000-01-01")
        .iter_days()
        .take_while(|d| *d <= date("2035-12-31"))
    {
        let weekend = matches!(day.weekday(), Weekday::Sat | Weekday::Sun);
        let expected = match reference.get(&day) {
            _ if weekend => Expected::Closed,
            Some(e) => {
                match e {
                    Expected::Closed => closed += 1,
                    Expected::ClosesAt(_) => early += 1,
                }
                *e
            }
            None => Expected::ClosesAt(regular_close),
        };
        let actual = match cal.session(day) {
            None => Expected::Closed,
            Some(s) => {
                let open = s.open.with_timezone(&New_York);
                assert_eq!(open.date_naive(), day);
                assert_eq!(
                    open.time(),
                    NaiveTime::from_hms_opt(9, 30, 0).unwrap(),
                    "{day}"
                );
                sessions += 1;
                Expected::ClosesAt(s.close.with_timezone(&New_York).time())
            }
        };
        if actual != expected {
            mismatches.push(format!(
                "{day} {:?}: expected {expected:?}, got {actual:?} ({:?})",
                day.weekday(),
                cal.closure(day)
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    // The reference really was read: 342 closed weekdays and 79 early closes in 36 years.
    assert_eq!((closed, early), (342, 79));
    assert_eq!(sessions, 9049);
}

#[test]
fn nyse_published_schedules_2025_to_2027() {
    let cal = Calendar::nyse();
    let holidays = [
        // 2025
        "2025-01-01",
        "2025-01-09",
        "2025-01-20",
        "2025-02-17",
        "2025-04-18",
        "2025-05-26",
        "2025-06-19",
        "2025-07-04",
        "2025-09-01",
        "2025-11-27",
        "2025-12-25",
        // 2026
        "2026-01-01",
        "2026-01-19",
        "2026-02-16",
        "2026-04-03",
        "2026-05-25",
        "2026-06-19",
        "2026-07-03",
        "2026-09-07",
        "2026-11-26",
        "2026-12-25",
        // 2027
        "2027-01-01",
        "2027-01-18",
        "2027-02-15",
        "2027-03-26",
        "2027-05-31",
        "2027-06-18",
        "2027-07-05",
        "2027-09-06",
        "2027-11-25",
        "2027-12-24",
    ];
    for h in holidays {
        assert!(cal.session(date(h)).is_none(), "{h} is a holiday");
        assert_ne!(cal.closure(date(h)), Some(Closure::Weekend));
    }
    let early_closes = [
        "2025-07-03",
        "2025-11-28",
        "2025-12-24",
        "2026-11-27",
        "2026-12-24",
        "2027-11-26",
    ];
    for e in early_closes {
        let s = cal.session(date(e)).unwrap();
        assert!(s.early_close, "{e}");
        assert_eq!(
            s.close.with_timezone(&New_York).time(),
            NaiveTime::from_hms_opt(13, 0, 0).unwrap()
        );
    }
    let weekdays_2026 = date("2026-01-01")
        .iter_days()
        .take_while(|d| d.year() == 2026)
        .filter(|d| d.weekday().number_from_monday() <= 5)
        .count();
    assert_eq!(
        cal.sessions(date("2026-01-01"), date("2026-12-31")).count(),
        weekdays_2026 - 10
    );
}

#[test]
fn dst_weeks_give_the_right_utc_open_and_close() {
    let cal = Calendar::nyse();
    let utc = |s: &str| s.parse::<chrono::DateTime<Utc>>().unwrap();
    for (day, open, close) in [
        // Spring forward on Sunday 2026-03-08: EST (UTC-5) before, EDT (UTC-4) after.
        ("2026-03-06", "2026-03-06T14:30:00Z", "2026-03-06T21:00:00Z"),
        ("2026-03-09", "2026-03-09T13:30:00Z", "2026-03-09T20:00:00Z"),
        // Fall back on Sunday 2026-11-01.
        ("2026-10-30", "2026-10-30T13:30:00Z", "2026-10-30T20:00:00Z"),
        ("2026-11-02", "2026-11-02T14:30:00Z", "2026-11-02T21:00:00Z"),
        // Early close after Thanksgiving, in EST.
        ("2026-11-27", "2026-11-27T14:30:00Z", "2026-11-27T18:00:00Z"),
    ] {
        let s = cal.session(date(day)).unwrap();
        assert_eq!((s.open, s.close), (utc(open), utc(close)), "{day}");
    }
    assert!(cal.session(date("2026-03-08")).is_none() && cal.session(date("2026-11-01")).is_none());
}

#[test]
fn market_state_at_instants() {
    let cal = Calendar::nyse();
    let ny = |y, m, d, h, min| {
        New_York
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .unwrap()
            .with_timezone(&Utc)
    };
    // Wednesday before Thanksgiving 2026, after the close: next session is Friday's early one.
    match cal.state_at(ny(2026, 11, 25, 18, 24)) {
        MarketState::Closed { next } => {
            assert_eq!(next.date, date("2026-11-27"));
            assert!(next.early_close);
        }
        other => panic!("{other:?}"),
    }
    // The open instant itself is open; the close instant is closed.
    assert!(matches!(
        cal.state_at(ny(2026, 11, 27, 9, 30)),
        MarketState::Open { .. }
    ));
    match cal.state_at(ny(2026, 11, 27, 13, 0)) {
        MarketState::Closed { next } => assert_eq!(next.date, date("2026-11-30")),
        other => panic!("{other:?}"),
    }
    // Before the open on a session day.
    match cal.state_at(ny(2026, 11, 30, 4, 0)) {
        MarketState::Closed { next } => assert_eq!(next.date, date("2026-11-30")),
        other => panic!("{other:?}"),
    }
    // September 11, 2001: closed until Monday the 17th.
    match cal.state_at(ny(2001, 9, 11, 10, 0)) {
        MarketState::Closed { next } => assert_eq!(next.date, date("2001-09-17")),
        other => panic!("{other:?}"),
    }
}
