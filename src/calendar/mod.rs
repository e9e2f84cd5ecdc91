//! Market time: when each market trades. A market is named by its ISO MIC as `exchange_calendars`
//! names it (`XNYS`, `XLON`, `XTKS`, ...), or `24/7` (crypto: always open) or `FX` (currency
//! pairs: Sunday 17:00 to Friday 17:00 New York time). The NYSE follows its rules (`nyse`);
//! the other exchanges follow shipped data (`table`); 24/7 and FX are rules of their own.
//!
//! Every function takes the instant it decides for: nothing here reads a clock. Times are computed
//! from the local wall clock through chrono-tz, so DST changes need no special cases.

mod nyse;
mod session;
mod table;

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Days, Duration, NaiveDate, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;

pub use session::{Closure, Session};
pub use table::TableError;

use session::local_instant;

/// The New York Stock Exchange, whose rules the US listings follow.
pub const XNYS: &str = "XNYS";
/// Crypto: trades every second of every day.
pub const ALWAYS_OPEN: &str = "24/7";
/// Spot currency pairs: the FX week.
pub const FX: &str = "FX";

/// More closed days in a row than this cannot happen: NYSE rules close at most 4 days around a
/// weekend, unscheduled closures at most 4, `market.extra_holidays` is capped well below, and the
/// longest closure in the shipped data is under two weeks.
const MAX_CLOSED_RUN_DAYS: u64 = 400;

/// Sessions that abut (one closes as the next opens, as FX days do) are one stretch of trading;
/// a week holds at most this many.
const MAX_ABUTTING_SESSIONS: usize = 7;

/// The FX week opens Sunday and closes Friday at this New York time.
const FX_TURN: NaiveTime = NaiveTime::from_hms_opt(17, 0, 0).unwrap();

/// The shipped exchange data, one `(MIC, file)` per file in `src/calendar/markets/`.
const SHIPPED: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/markets.rs"));

/// Where a market stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarketState {
    /// Trading in `session`, until `until`: its break or its close, or the close of the last of
    /// the sessions that abut it.
    Open {
        session: Session,
        until: DateTime<Utc>,
    },
    /// In `session`'s lunch break.
    Break { session: Session },
    /// Between sessions; `next` is the next one to open.
    Closed { next: Session },
    /// Always trading: no boundary at all.
    AlwaysOpen,
}

#[derive(Debug, Clone)]
enum Rules {
    Nyse(nyse::Nyse),
    Table(table::Table),
    /// One session per UTC day, 00:00 to 00:00, which abut.
    AlwaysOpen,
    /// One session per weekday in New York, from 17:00 the day before to 17:00.
    FxWeek,
}

/// One market's calendar.
#[derive(Debug, Clone)]
pub struct Calendar {
    id: String,
    rules: Rules,
}

impl Calendar {
    /// The NYSE by its rules, in `tz` (America/New_York unless configured otherwise), closed on
    /// `extra_holidays` too.
    pub fn nyse_in(tz: Tz, extra_holidays: impl IntoIterator<Item = NaiveDate>) -> Calendar {
        Calendar {
            id: XNYS.to_owned(),
            rules: Rules::Nyse(nyse::Nyse::new(tz, extra_holidays)),
        }
    }

    /// The NYSE in America/New_York with no operator-added holidays.
    pub fn nyse() -> Calendar {
        Calendar::nyse_in(chrono_tz::America::New_York, [])
    }

    pub fn always_open() -> Calendar {
        Calendar {
            id: ALWAYS_OPEN.to_owned(),
            rules: Rules::AlwaysOpen,
        }
    }

    pub fn fx() -> Calendar {
        Calendar {
            id: FX.to_owned(),
            rules: Rules::FxWeek,
        }
    }

    /// A market from a data file in the shipped format.
    pub fn from_data(id: &str, text: &str) -> Result<Calendar, TableError> {
        Ok(Calendar {
            id: id.to_owned(),
            rules: Rules::Table(table::Table::parse(text)?),
        })
    }

    /// The market's name: `XNYS`, `XLON`, `24/7`, `FX`, ...
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn timezone(&self) -> Tz {
        match &self.rules {
            Rules::Nyse(n) => n.timezone(),
            Rules::Table(t) => t.timezone(),
            Rules::AlwaysOpen => chrono_tz::UTC,
            Rules::FxWeek => chrono_tz::America::New_York,
        }
    }

    /// The last day the market's data covers; `None` for markets that are rules.
    pub fn valid_until(&self) -> Option<NaiveDate> {
        match &self.rules {
            Rules::Table(t) => Some(t.valid_until()),
            _ => None,
        }
    }

    /// The data's last day when `t` is past it (the market then follows its regular week with no
    /// holidays); `None` while the data covers `t`, and always for rule-based markets.
    pub fn past_data(&self, t: DateTime<Utc>) -> Option<NaiveDate> {
        let last = self.valid_until()?;
        (t.with_timezone(&self.timezone()).date_naive() > last).then_some(last)
    }

    /// The data file's fingerprint of its sessions, `(count, sha256)`, for verification.
    pub fn data_check(&self) -> Option<(usize, &str)> {
        match &self.rules {
            Rules::Table(t) => t.check(),
            _ => None,
        }
    }

    /// Regular hours in words, for people.
    pub fn regular_hours(&self) -> String {
        match &self.rules {
            Rules::Nyse(_) => "09:30-16:00 (early closes 13:00)".to_owned(),
            Rules::Table(t) => t.regular_hours(),
            Rules::AlwaysOpen => "always open".to_owned(),
            Rules::FxWeek => "Sun 17:00 - Fri 17:00".to_owned(),
        }
    }

    /// Why `date` has no session, or `None` when it has one.
    pub fn closure(&self, date: NaiveDate) -> Option<Closure> {
        match &self.rules {
            Rules::Nyse(n) => n.closure(date),
            Rules::Table(t) => t.closure(date),
            Rules::AlwaysOpen => None,
            Rules::FxWeek => {
                matches!(date.weekday(), Weekday::Sat | Weekday::Sun).then_some(Closure::Weekend)
            }
        }
    }

    /// The session on `date`, if the market trades that day.
    pub fn session(&self, date: NaiveDate) -> Option<Session> {
        match &self.rules {
            Rules::Nyse(n) => n.session(date),
            Rules::Table(t) => t.session(date),
            Rules::AlwaysOpen => {
                let open = date.and_time(NaiveTime::MIN).and_utc();
                Some(Session {
                    date,
                    open,
                    break_start: None,
                    break_end: None,
                    close: open + Duration::days(1),
                    early_close: false,
                })
            }
            Rules::FxWeek => {
                if self.closure(date).is_some() {
                    return None;
                }
                let tz = self.timezone();
                Some(Session {
                    date,
                    open: local_instant(tz, date - Days::new(1), FX_TURN),
                    break_start: None,
                    break_end: None,
                    close: local_instant(tz, date, FX_TURN),
                    early_close: false,
                })
            }
        }
    }

    /// Every session from `from` to `to`, both included.
    pub fn sessions(&self, from: NaiveDate, to: NaiveDate) -> impl Iterator<Item = Session> + '_ {
        from.iter_days()
            .take_while(move |d| *d <= to)
            .filter_map(|d| self.session(d))
    }

    /// The first session on or after `date`.
    pub fn session_on_or_after(&self, date: NaiveDate) -> Session {
        date.iter_days()
            .take(MAX_CLOSED_RUN_DAYS as usize)
            .find_map(|d| self.session(d))
            .expect("a session within MAX_CLOSED_RUN_DAYS: extra_holidays is capped")
    }

    /// The session after the one on `date` (or the first after `date` if it has none).
    pub fn next_session_after(&self, date: NaiveDate) -> Session {
        self.session_on_or_after(date.checked_add_days(Days::new(1)).unwrap_or(date))
    }

    /// Open, in a break, or closed at `t`, with the session that bounds the state.
    pub fn state_at(&self, t: DateTime<Utc>) -> MarketState {
        if matches!(self.rules, Rules::AlwaysOpen) {
            return MarketState::AlwaysOpen;
        }
        // The first session that has not closed by `t`: no session labelled before the local
        // date closes after it (FX's open the evening before only moves opens earlier).
        let today = t.with_timezone(&self.timezone()).date_naive();
        let mut session = self.session_on_or_after(today);
        while session.close <= t {
            session = self.next_session_after(session.date);
        }
        if t < session.open {
            return MarketState::Closed { next: session };
        }
        match session.lunch() {
            Some((start, end)) if start <= t && t < end => MarketState::Break { session },
            Some((start, _)) if t < start => MarketState::Open {
                session,
                until: start,
            },
            _ => MarketState::Open {
                session,
                until: self.stretch_end(session),
            },
        }
    }

    /// The close of `session`, or of the last session after it that opens as the one before
    /// closes: FX trades from Sunday evening to Friday evening without a boundary in between.
    fn stretch_end(&self, session: Session) -> DateTime<Utc> {
        let mut last = session;
        for _ in 0..MAX_ABUTTING_SESSIONS {
            let next = self.next_session_after(last.date);
            if next.open != last.close || next.lunch().is_some() {
                break;
            }
            last = next;
        }
        last.close
    }

    /// US extended hours on `session`'s day (pre-market start, post-market end); `None` for
    /// markets other than the NYSE.
    pub fn extended(&self, session: &Session) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        match &self.rules {
            Rules::Nyse(n) => Some(n.extended(session)),
            _ => None,
        }
    }

    /// Local midnight starting `date`, in UTC.
    pub fn start_of_day(&self, date: NaiveDate) -> DateTime<Utc> {
        local_instant(self.timezone(), date, NaiveTime::MIN)
    }
}

/// The name of every market there is a calendar for.
pub fn names() -> impl Iterator<Item = &'static str> {
    [XNYS, ALWAYS_OPEN, FX]
        .into_iter()
        .chain(SHIPPED.iter().map(|(id, _)| *id))
}

/// Every market the daemon knows, by name.
#[derive(Debug, Clone)]
pub struct Markets {
    by_id: BTreeMap<String, Calendar>,
}

impl Markets {
    /// `nyse` (built from the configured zone and holidays), 24/7, FX, and every shipped exchange.
    pub fn new(nyse: Calendar) -> Markets {
        let mut by_id = BTreeMap::new();
        for cal in [nyse, Calendar::always_open(), Calendar::fx()] {
            by_id.insert(cal.id.clone(), cal);
        }
        for (id, text) in SHIPPED {
            let cal = Calendar::from_data(id, text)
                .unwrap_or_else(|e| panic!("shipped market data {id}: {e}"));
            by_id.insert(cal.id.clone(), cal);
        }
        Markets { by_id }
    }

    pub fn get(&self, id: &str) -> Option<&Calendar> {
        self.by_id.get(id)
    }

    /// The NYSE, the market of last resort.
    pub fn xnys(&self) -> &Calendar {
        &self.by_id[XNYS]
    }

    /// Every market, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Calendar> {
        self.by_id.values()
    }
}
