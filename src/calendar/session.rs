//! What every calendar is made of: sessions, why a day has none, and local wall-clock times
//! read in a market's zone.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// Why a day has no session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closure {
    Weekend,
    /// An exchange holiday (its name, where the rules know it).
    Holiday(&'static str),
    /// A closure shipped as data (its reason).
    Unscheduled(&'static str),
    /// A date from `market.extra_holidays`.
    Extra,
}

impl Closure {
    pub fn describe(self) -> &'static str {
        match self {
            Closure::Weekend => "weekend",
            Closure::Holiday(name) | Closure::Unscheduled(name) => name,
            Closure::Extra => "market.extra_holidays",
        }
    }
}

/// One trading session, labelled with the exchange-local date it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub date: NaiveDate,
    pub open: DateTime<Utc>,
    /// The lunch break, where the market has one (Tokyo, Hong Kong).
    pub break_start: Option<DateTime<Utc>>,
    pub break_end: Option<DateTime<Utc>>,
    pub close: DateTime<Utc>,
    /// Closes before the market's regular close.
    pub early_close: bool,
}

impl Session {
    /// The lunch break, when it has one.
    pub fn lunch(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        self.break_start.zip(self.break_end)
    }
}

/// A wall-clock time on `date` in `tz`, as UTC.
pub(super) fn local_instant(tz: Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let local = date.and_time(time);
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
        // In a DST gap (no market opens or closes in one): read the wall clock with the offset in
        // force before the gap, which lands as far past the gap's end as the time is past its
        // start.
        LocalResult::None => {
            let before = tz.offset_from_utc_datetime(&(local - Duration::days(1)));
            (local - Duration::seconds(before.fix().local_minus_utc().into())).and_utc()
        }
    }
}
