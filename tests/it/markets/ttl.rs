//! The TTL policy on every market, as properties: at any instant from 2000 to 2035, and densely
//! in the weeks where Europe's and the US's clocks change on different dates (March and late
//! October), a TTL stays within its floor and its phase's cap and never outlives the boundary it
//! is capped at (a lunch break, a close, a reopening, the end of US extended hours), and that
//! boundary really is where the phase changes.

use chrono::{DateTime, Duration, TimeZone, Utc};
use finance_cache_warmer::calendar::{Calendar, MarketState, Markets};
use finance_cache_warmer::config::Settings;
use finance_cache_warmer::startup;
use finance_cache_warmer::ttl::{Limit, PhaseState, QuoteKind, TtlPolicy, phase};
use proptest::prelude::*;

/// Parsed once: the properties ask for thousands of decisions.
fn markets() -> &'static Markets {
    static MARKETS: std::sync::LazyLock<Markets> =
        std::sync::LazyLock::new(|| Markets::new(Calendar::nyse()));
    &MARKETS
}

/// The default policy, with US extended hours on when `extended`.
fn policy(extended: bool) -> TtlPolicy {
    let mut s = Settings::defaults().unwrap();
    if extended {
        s.ttl.extended = Some("5m".parse().unwrap());
    }
    startup::ttl_policy(&s.ttl)
}

fn between(first: DateTime<Utc>, last: DateTime<Utc>) -> impl Strategy<Value = DateTime<Utc>> {
    (first.timestamp()..last.timestamp()).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap())
}

fn utc(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
}

/// 2000 to 2035, or the weeks of 2026 and 2027 when Europe and the US are an hour apart from
/// their usual distance.
fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
    prop_oneof![
        between(utc(2000, 1, 3), utc(2035, 12, 31)),
        between(utc(2026, 3, 6), utc(2026, 4, 1)),
        between(utc(2026, 10, 23), utc(2026, 11, 3)),
        between(utc(2027, 3, 12), utc(2027, 3, 30)),
        between(utc(2027, 10, 29), utc(2027, 11, 9)),
    ]
}

/// Checks one decision: bounds, boundary, and that the phase changes at the boundary.
fn check(
    cal: &Calendar,
    p: &TtlPolicy,
    kind: QuoteKind,
    at: DateTime<Utc>,
) -> Result<(), TestCaseError> {
    let (ph, t) = p.quote(kind, cal, at);
    let q = p.quote_policy(kind, cal.id());
    let cap = q.cap(ph.state);
    let id = cal.id();
    prop_assert!(
        t.duration >= q.min && t.duration <= cap.max(q.min),
        "{id} {at}: {t:?}"
    );
    match ph.until {
        None => {
            prop_assert_eq!(cal.state_at(at), MarketState::AlwaysOpen);
            prop_assert_eq!(t.limit, Limit::Policy);
        }
        Some(until) => {
            prop_assert!(until > at, "{id} {at}: the phase ends before it starts");
            if t.limit != Limit::Floor {
                let end = at + Duration::from_std(t.duration).unwrap();
                prop_assert!(end <= until, "{id} {at} + {:?} crosses {until}", t.duration);
                let before = phase(cal, end - Duration::seconds(1), q.extended.is_some());
                prop_assert_eq!(
                    before.state,
                    ph.state,
                    "{} {} changes phase before {}",
                    id,
                    at,
                    until
                );
            }
            let after = phase(cal, until, q.extended.is_some());
            prop_assert_ne!(
                after.state,
                ph.state,
                "{} {}: no change at {}",
                id,
                at,
                until
            );
        }
    }
    if kind == QuoteKind::Options {
        prop_assert_ne!(
            ph.state,
            PhaseState::Extended,
            "options keys ignore extended hours"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn quote_ttls_never_cross_their_markets_boundaries(at in any_instant()) {
        let (markets, p) = (markets(), policy(false));
        for cal in markets.iter() {
            check(cal, &p, QuoteKind::Stock, at)?;
            check(cal, &p, QuoteKind::Options, at)?;
        }
    }

    #[test]
    fn us_extended_hours_are_a_phase_of_their_own_for_stock_keys(at in any_instant()) {
        let (markets, p) = (markets(), policy(true));
        let nyse = markets.xnys();
        check(nyse, &p, QuoteKind::Stock, at)?;
        check(nyse, &p, QuoteKind::Options, at)?;
        // Other markets have no extended hours.
        let london = markets.get("XLON").unwrap();
        prop_assert_ne!(p.quote(QuoteKind::Stock, london, at).0.state, PhaseState::Extended);
    }
}

#[test]
fn every_session_of_2026_opens_and_closes_to_the_second_on_every_market() {
    let markets = markets();
    let second = Duration::seconds(1);
    for cal in markets.iter().filter(|c| c.id() != "24/7") {
        for s in cal.sessions("2026-01-01".parse().unwrap(), "2026-12-31".parse().unwrap()) {
            let open = |t| matches!(cal.state_at(t), MarketState::Open { .. });
            let (id, date) = (cal.id(), s.date);
            // FX days abut: only the week's first open and last close are turns.
            let turn_before = !open(s.open - second);
            assert!(open(s.open), "{id} {date} at the open");
            assert!(
                open(s.close - second) || cal.id() == "FX",
                "{id} {date} before the close"
            );
            if cal.id() != "FX" {
                assert!(turn_before, "{id} {date} before the open");
                assert!(!open(s.close), "{id} {date} at the close");
            }
            if let Some((start, end)) = s.lunch() {
                assert!(open(start - second), "{id} {date} before the break");
                assert!(
                    matches!(cal.state_at(start), MarketState::Break { .. }),
                    "{id} {date}"
                );
                assert!(
                    matches!(cal.state_at(end - second), MarketState::Break { .. }),
                    "{id} {date}"
                );
                assert!(open(end), "{id} {date} after the break");
            }
        }
    }
}

#[test]
fn extended_hours_run_from_04_00_to_20_00_new_york_and_17_00_after_an_early_close() {
    let (markets, p) = (markets(), policy(true));
    let nyse = markets.xnys();
    let ny = |d: u32, h: u32, m: u32| {
        chrono_tz::America::New_York
            .with_ymd_and_hms(2026, 12, d, h, m, 0)
            .unwrap()
            .to_utc()
    };
    let at = |t| {
        let (ph, ttl) = p.quote(QuoteKind::Stock, nyse, t);
        (ph.state, ttl.secs())
    };
    // Wednesday 2 December 2026.
    assert_eq!(
        at(ny(2, 3, 0)),
        (PhaseState::Closed, 3600),
        "03:00: until 04:00"
    );
    assert_eq!(
        at(ny(2, 3, 30)),
        (PhaseState::Closed, 1800),
        "03:30: to the pre-market"
    );
    assert_eq!(
        at(ny(2, 4, 0)),
        (PhaseState::Extended, 300),
        "pre-market: extended = 5m"
    );
    assert_eq!(at(ny(2, 9, 28)), (PhaseState::Extended, 120), "to the open");
    assert_eq!(at(ny(2, 12, 0)), (PhaseState::Open, 600));
    assert_eq!(at(ny(2, 16, 0)), (PhaseState::Extended, 300), "post-market");
    assert_eq!(at(ny(2, 19, 58)), (PhaseState::Extended, 120), "to 20:00");
    assert_eq!(at(ny(2, 20, 0)), (PhaseState::Closed, 3600));
    // Christmas Eve closes at 13:00; its post-market ends at 17:00; Christmas Day has none.
    assert_eq!(at(ny(24, 16, 58)), (PhaseState::Extended, 120));
    assert_eq!(at(ny(24, 17, 0)), (PhaseState::Closed, 3600));
    assert_eq!(
        at(ny(25, 4, 30)),
        (PhaseState::Closed, 3600),
        "a holiday has no pre-market"
    );
    // Options keys ignore extended hours; without `ttl.extended` stock keys do too.
    assert_eq!(
        p.quote(QuoteKind::Options, nyse, ny(2, 4, 0)).0.state,
        PhaseState::Closed
    );
    let off = policy(false).quote(QuoteKind::Stock, nyse, ny(2, 16, 0));
    assert_eq!((off.0.state, off.1.secs()), (PhaseState::Closed, 3600));
}
