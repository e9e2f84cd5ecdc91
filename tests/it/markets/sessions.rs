//! Each shipped market's sessions, 2000 (or its first session) to 2035, against what
//! `exchange_calendars` 4.13.2 computed: every open, break and close, 0 mismatches (the file's
//! `check` line is the generator's fingerprint of its full schedule). Then the rule-based NYSE
//! against its own exchange_calendars data, a calendar past its data, and days an operator of
//! each market would check by hand.

use std::collections::BTreeMap;

use chrono::{NaiveTime, TimeZone};
use finance_cache_warmer::calendar::{Calendar, Closure, MarketState, Markets};

use super::{date, fingerprint};

/// The first day of a data file's `valid` line.
fn first_day(text: &str) -> chrono::NaiveDate {
    let line = text.lines().find(|l| l.starts_with("valid,")).unwrap();
    date(line.split(',').nth(1).unwrap())
}

fn shipped(id: &str) -> String {
    let path = format!(
        "{}/src/calendar/markets/{id}.csv",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_shipped_market_reproduces_exchange_calendars_exactly() {
    let markets = Markets::new(Calendar::nyse());
    let mut sessions = BTreeMap::new();
    for cal in markets.iter().filter(|c| c.valid_until().is_some()) {
        let text = shipped(cal.id());
        let (want_count, want_hash) = cal.data_check().expect("every file has its check line");
        let (count, hash, head) = fingerprint(cal, first_day(&text), cal.valid_until().unwrap());
        assert_eq!(
            (count, hash.as_str()),
            (want_count, want_hash),
            "{}: the expanded sessions differ from exchange_calendars'; first: {head:?}",
            cal.id()
        );
        assert_eq!(cal.valid_until(), Some(date("2035-12-31")), "{}", cal.id());
        sessions.insert(cal.id().to_owned(), count);
    }
    // The counts exchange_calendars 4.13.2 gives for 2000-2035: the data really was read.
    let expected: BTreeMap<String, usize> = [
        ("XAMS", 9210),
        ("XASX", 9110),
        ("XCSE", 9009),
        ("XETR", 9151),
        ("XHKG", 8877),
        ("XLON", 9097),
        ("XMIL", 9138),
        ("XOSL", 9035),
        ("XPAR", 9211),
        ("XSTO", 9041),
        ("XSWX", 9041),
        ("XTKS", 8814),
        ("XTSE", 9037),
    ]
    .into_iter()
    .map(|(id, n)| (id.to_owned(), n))
    .collect();
    assert_eq!(sessions, expected);
}

#[test]
fn the_nyse_rules_agree_with_its_exchange_calendars_data_on_every_day() {
    let text = include_str!("../../data/XNYS.csv");
    let data = Calendar::from_data("XNYS", text).unwrap();
    let rules = Calendar::nyse();
    let (first, last) = (first_day(text), date("2035-12-31"));
    let (want_count, want_hash) = data.data_check().unwrap();
    let (count, hash, head) = fingerprint(&rules, first, last);
    assert_eq!((count, hash.as_str()), (want_count, want_hash), "{head:?}");
    assert_eq!(count, 9049);
    for day in first.iter_days().take_while(|d| *d <= last) {
        assert_eq!(rules.session(day), data.session(day), "{day}");
    }
}

#[test]
fn past_its_data_a_market_follows_its_regular_week() {
    // A data file in the shipped format whose data ends mid-2026 and lists no holiday after.
    let text = "tz,Europe/London\nweekmask,1111100\nvalid,2026-01-02,2026-06-30\n\
                template,2026-01-02,08:00,,,16:30\nclosed,2026-04-03\n";
    let cal = Calendar::from_data("XLON", text).unwrap();
    let london = chrono_tz::Europe::London;
    let at = |y, m, d, h| london.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap().to_utc();
    assert_eq!(cal.past_data(at(2026, 6, 30, 23)), None);
    assert_eq!(cal.past_data(at(2026, 7, 1, 0)), Some(date("2026-06-30")));
    // Christmas Day 2026 is a Friday: without data it is an ordinary day, and nothing fails.
    let xmas = cal.session(date("2026-12-25")).unwrap();
    assert_eq!(xmas.open, at(2026, 12, 25, 8));
    assert!(matches!(
        cal.state_at(at(2026, 12, 25, 12)),
        MarketState::Open { .. }
    ));
    assert_eq!(cal.closure(date("2026-12-26")), Some(Closure::Weekend));
    assert_eq!(
        cal.closure(date("2026-04-03")),
        Some(Closure::Holiday("exchange holiday"))
    );
}

#[test]
fn a_broken_data_file_names_its_line() {
    for (text, wants) in [
        ("tz,Mars/Olympus\n", "line 1: unknown time zone"),
        (
            "tz,UTC\nweekmask,1111100\nvalid,2026-01-01,2026-12-31\ntemplate,2026-01-01,17:00,,,09:00\n",
            "line 4: hours",
        ),
        (
            "tz,UTC\nclosed,2026-13-01\n",
            "line 2: \"2026-13-01\" is not a date",
        ),
        ("tz,UTC\nweekmask,1111100\n", "no template line"),
    ] {
        let err = Calendar::from_data("XTST", text).unwrap_err().to_string();
        assert!(err.contains(wants), "{err}");
    }
}

#[test]
fn days_the_exchanges_publish() {
    let markets = Markets::new(Calendar::nyse());
    let local = |id: &str, day: &str| {
        let cal = markets.get(id).unwrap();
        cal.session(date(day)).map(|s| {
            let tz = cal.timezone();
            let hm =
                |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&tz).format("%H:%M").to_string();
            let lunch = s.lunch().map(|(a, b)| format!("{}-{}", hm(a), hm(b)));
            (hm(s.open), lunch, hm(s.close))
        })
    };
    let hours = |open: &str, lunch: Option<&str>, close: &str| {
        Some((open.to_owned(), lunch.map(str::to_owned), close.to_owned()))
    };
    // London: Christmas Eve closes at 12:30; Boxing Day on a Saturday moves to Monday the 28th.
    assert_eq!(local("XLON", "2026-12-24"), hours("08:00", None, "12:30"));
    assert_eq!(local("XLON", "2026-12-25"), None);
    assert_eq!(local("XLON", "2026-12-28"), None);
    assert_eq!(local("XLON", "2026-12-29"), hours("08:00", None, "16:30"));
    // Xetra: closed on Christmas Eve and New Year's Eve.
    assert_eq!(local("XETR", "2026-12-24"), None);
    assert_eq!(local("XETR", "2026-12-31"), None);
    // Tokyo: the lunch break, and the close moved from 15:00 to 15:30 on 2024-11-05.
    assert_eq!(
        local("XTKS", "2024-11-01"),
        hours("09:00", Some("11:30-12:30"), "15:00")
    );
    assert_eq!(
        local("XTKS", "2024-11-05"),
        hours("09:00", Some("11:30-12:30"), "15:30")
    );
    assert_eq!(local("XTKS", "2026-12-31"), None);
    // Hong Kong: the open moved from 10:00 to 09:30 on 2011-03-07; Christmas Eve is a half day
    // that ends at the lunch break.
    assert_eq!(
        local("XHKG", "2011-03-04"),
        hours("10:00", Some("12:00-13:00"), "16:00")
    );
    assert_eq!(
        local("XHKG", "2011-03-07"),
        hours("09:30", Some("12:00-13:00"), "16:00")
    );
    assert_eq!(local("XHKG", "2026-12-24"), hours("09:30", None, "12:00"));
    // Sydney: Christmas Eve closes at 14:10.
    assert_eq!(local("XASX", "2026-12-24"), hours("10:00", None, "14:10"));
    let regular = NaiveTime::from_hms_opt(16, 30, 0).unwrap();
    let xlon = markets.get("XLON").unwrap();
    let s = xlon.session(date("2026-12-24")).unwrap();
    assert!(s.early_close && s.close.with_timezone(&xlon.timezone()).time() < regular);
}
