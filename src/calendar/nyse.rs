//! The NYSE by its rules: which days are sessions, and when each opens and closes.
//!
//! Regular sessions run 09:30-16:00 in the exchange's time zone (America/New_York), Monday to
//! Friday, except holidays. Holidays follow the exchange's rules with weekend observance; early
//! closes (13:00) follow the rules below; closures no rule predicts (days of mourning,
//! emergencies) are data, plus `market.extra_holidays` for ones an operator adds. Every date from
//! 2000-01-01 to 2035-12-31 is checked against a reference in `tests/it/calendar.rs`. Times are
//! computed from the local wall clock through chrono-tz, so DST changes need no special cases.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;

use super::session::{Closure, Session, local_instant};

/// Regular session hours, exchange local time.
const OPEN: NaiveTime = NaiveTime::from_hms_opt(9, 30, 0).unwrap();
const CLOSE: NaiveTime = NaiveTime::from_hms_opt(16, 0, 0).unwrap();
const EARLY_CLOSE: NaiveTime = NaiveTime::from_hms_opt(13, 0, 0).unwrap();
/// US extended hours on session days: pre-market from 04:00, post-market to 20:00 (17:00 after
/// an early close), as the exchanges' extended sessions and Yahoo's PRE/POST states run.
const PRE_MARKET: NaiveTime = NaiveTime::from_hms_opt(4, 0, 0).unwrap();
const POST_MARKET_END: NaiveTime = NaiveTime::from_hms_opt(20, 0, 0).unwrap();
const EARLY_POST_MARKET_END: NaiveTime = NaiveTime::from_hms_opt(17, 0, 0).unwrap();

/// Closures that no rule predicts, as the NYSE announced them.
const UNSCHEDULED_CLOSURES: &[((i32, u32, u32), &str)] = &[
    ((2001, 9, 11), "September 11 attacks"),
    ((2001, 9, 12), "September 11 attacks"),
    ((2001, 9, 13), "September 11 attacks"),
    ((2001, 9, 14), "September 11 attacks"),
    ((2004, 6, 11), "National Day of Mourning for Ronald Reagan"),
    ((2007, 1, 2), "National Day of Mourning for Gerald Ford"),
    ((2012, 10, 29), "Hurricane Sandy"),
    ((2012, 10, 30), "Hurricane Sandy"),
    (
        (2018, 12, 5),
        "National Day of Mourning for George H. W. Bush",
    ),
    ((2025, 1, 9), "National Day of Mourning for Jimmy Carter"),
];

/// Early closes that no rule predicts.
const UNSCHEDULED_EARLY_CLOSES: &[(i32, u32, u32)] = &[(2003, 12, 26)];

/// The NYSE's rules, in the exchange's time zone.
#[derive(Debug, Clone)]
pub struct Nyse {
    tz: Tz,
    extra_holidays: BTreeSet<NaiveDate>,
}

impl Nyse {
    pub fn new(tz: Tz, extra_holidays: impl IntoIterator<Item = NaiveDate>) -> Nyse {
        Nyse {
            tz,
            extra_holidays: extra_holidays.into_iter().collect(),
        }
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// Why `date` has no session, or `None` when it has one.
    pub fn closure(&self, date: NaiveDate) -> Option<Closure> {
        if matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
            return Some(Closure::Weekend);
        }
        if let Some(name) = holiday(date) {
            return Some(Closure::Holiday(name));
        }
        if let Some((_, reason)) = UNSCHEDULED_CLOSURES
            .iter()
            .find(|(ymd, _)| ymd_is(*ymd, date))
        {
            return Some(Closure::Unscheduled(reason));
        }
        if self.extra_holidays.contains(&date) {
            return Some(Closure::Extra);
        }
        None
    }

    /// The session on `date`, if the exchange trades that day.
    pub fn session(&self, date: NaiveDate) -> Option<Session> {
        if self.closure(date).is_some() {
            return None;
        }
        let early_close = is_early_close(date);
        Some(Session {
            date,
            open: self.instant(date, OPEN),
            break_start: None,
            break_end: None,
            close: self.instant(date, if early_close { EARLY_CLOSE } else { CLOSE }),
            early_close,
        })
    }

    /// The extended-hours window around `session`: pre-market start to post-market end.
    pub fn extended(&self, session: &Session) -> (DateTime<Utc>, DateTime<Utc>) {
        let end = if session.early_close {
            EARLY_POST_MARKET_END
        } else {
            POST_MARKET_END
        };
        (
            self.instant(session.date, PRE_MARKET),
            self.instant(session.date, end),
        )
    }

    fn instant(&self, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
        local_instant(self.tz, date, time)
    }
}

fn ymd_is((y, m, d): (i32, u32, u32), date: NaiveDate) -> bool {
    date.year() == y && date.month() == m && date.day() == d
}

/// The rule-based holiday observed on `date`, if any.
fn holiday(date: NaiveDate) -> Option<&'static str> {
    let year = date.year();
    let fixed = |month, day| NaiveDate::from_ymd_opt(year, month, day).expect("a real date");
    let nth = |month, weekday, n| {
        NaiveDate::from_weekday_of_month_opt(year, month, weekday, n)
            .expect("every month has 4 of each weekday")
    };
    let last_monday_of_may = NaiveDate::from_weekday_of_month_opt(year, 5, Weekday::Mon, 5)
        .unwrap_or_else(|| nth(5, Weekday::Mon, 4));

    // New Year's Day on a Sunday is observed Monday; on a Saturday it is not observed at all
    // (NYSE Rule 7.2: no Friday observance at the end of a year).
    let new_year = fixed(1, 1);
    let new_year = match new_year.weekday() {
        Weekday::Sun => Some(fixed(1, 2)),
        Weekday::Sat => None,
        _ => Some(new_year),
    };
    let candidates = [
        (new_year, "New Year's Day"),
        (Some(nth(1, Weekday::Mon, 3)), "Martin Luther King Jr. Day"),
        (Some(nth(2, Weekday::Mon, 3)), "Washington's Birthday"),
        (Some(easter_sunday(year) - Days::new(2)), "Good Friday"),
        (Some(last_monday_of_may), "Memorial Day"),
        ((year >= 2022).then(|| observed(fixed(6, 19))), "Juneteenth"),
        (Some(observed(fixed(7, 4))), "Independence Day"),
        (Some(nth(9, Weekday::Mon, 1)), "Labor Day"),
        (Some(thanksgiving(year)), "Thanksgiving Day"),
        (Some(observed(fixed(12, 25))), "Christmas Day"),
    ];
    candidates
        .into_iter()
        .find(|(day, _)| *day == Some(date))
        .map(|(_, name)| name)
}

/// A Saturday holiday is observed on Friday, a Sunday one on Monday.
fn observed(date: NaiveDate) -> NaiveDate {
    match date.weekday() {
        Weekday::Sat => date - Days::new(1),
        Weekday::Sun => date + Days::new(1),
        _ => date,
    }
}

fn thanksgiving(year: i32) -> NaiveDate {
    NaiveDate::from_weekday_of_month_opt(year, 11, Weekday::Thu, 4)
        .expect("November has 4 Thursdays")
}

/// Whether a session on `date` closes at 13:00.
fn is_early_close(date: NaiveDate) -> bool {
    let (year, month, day, weekday) = (date.year(), date.month(), date.day(), date.weekday());
    let before_independence_day = month == 7
        && day == 3
        && match weekday {
            Weekday::Mon | Weekday::Tue | Weekday::Thu => true,
            // A Wednesday July 3 became an early close in 2013; before that, when July 4 fell on
            // a Thursday, the Friday after it closed early instead.
            Weekday::Wed => year >= 2013,
            _ => false,
        };
    let friday_after_independence_day =
        month == 7 && day == 5 && weekday == Weekday::Fri && year < 2013;
    let day_after_thanksgiving = date == thanksgiving(year) + Days::new(1);
    // Christmas Eve on a Friday is the observed Christmas holiday, on a weekend there is no session.
    let christmas_eve = month == 12 && day == 24 && weekday.number_from_monday() <= 4;
    before_independence_day
        || friday_after_independence_day
        || day_after_thanksgiving
        || christmas_eve
        || UNSCHEDULED_EARLY_CLOSES
            .iter()
            .any(|ymd| ymd_is(*ymd, date))
}

/// Easter Sunday in the Gregorian calendar (the anonymous algorithm, Meeus/Jones/Butcher).
fn easter_sunday(year: i32) -> NaiveDate {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32).expect("Easter is in March or April")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn easter_matches_known_dates() {
        for (year, want) in [
            (2000, "2000-04-23"),
            (2008, "2008-03-23"),
            (2019, "2019-04-21"),
            (2026, "2026-04-05"),
            (2035, "2035-03-25"),
        ] {
            assert_eq!(easter_sunday(year), date(want), "{year}");
        }
    }

    #[test]
    fn observance_rules() {
        let cal = Nyse::new(chrono_tz::America::New_York, []);
        // New Year's Day on a Saturday (2022): not observed on Friday 2021-12-31.
        assert!(cal.session(date("2021-12-31")).is_some());
        // On a Sunday (2023): observed Monday.
        assert_eq!(
            cal.closure(date("2023-01-02")),
            Some(Closure::Holiday("New Year's Day"))
        );
        // Juneteenth from 2022 only; on a Saturday (2027) observed Friday.
        assert!(cal.session(date("2021-06-18")).is_some());
        assert_eq!(
            cal.closure(date("2027-06-18")),
            Some(Closure::Holiday("Juneteenth"))
        );
        assert_eq!(
            cal.closure(date("2026-07-03")),
            Some(Closure::Holiday("Independence Day"))
        );
        assert_eq!(
            cal.closure(date("2025-01-09")),
            Some(Closure::Unscheduled(
                "National Day of Mourning for Jimmy Carter"
            ))
        );
    }

    #[test]
    fn extra_holidays_close_the_market() {
        let cal = Nyse::new(chrono_tz::America::New_York, [date("2026-12-01")]);
        assert_eq!(cal.closure(date("2026-12-01")), Some(Closure::Extra));
        let plain = Nyse::new(chrono_tz::America::New_York, []);
        assert!(plain.session(date("2026-12-01")).is_some());
    }
}
