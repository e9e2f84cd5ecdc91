//! A market whose sessions are data: a regular week as dated templates, and the days that depart
//! from it, in the files `tests/data/market_data.py` generates from `exchange_calendars` (one
//! per market in `src/calendar/markets/`). Any market whose sessions fit that shape (one session
//! a day, an optional break) needs a file, not code.
//!
//! Past the file's last valid day the regular week goes on without holidays: a calendar that
//! has run out of data still opens and closes at the right times on ordinary days.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate, NaiveTime};
use chrono_tz::Tz;

use super::session::{Closure, Session, local_instant};

/// One day's hours, exchange local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hours {
    open: NaiveTime,
    lunch: Option<(NaiveTime, NaiveTime)>,
    close: NaiveTime,
}

/// A market's sessions from its data file.
#[derive(Debug, Clone)]
pub struct Table {
    tz: Tz,
    /// Monday first: whether the regular week trades that day.
    weekmask: [bool; 7],
    /// The last day the data covers.
    valid_until: NaiveDate,
    /// Regular hours from each date on, oldest first (never empty).
    templates: Vec<(NaiveDate, Hours)>,
    closed: BTreeSet<NaiveDate>,
    special: BTreeMap<NaiveDate, Hours>,
    /// The file's own fingerprint of its expanded sessions: (count, SHA-256 hex).
    check: Option<(usize, String)>,
}

/// A data file that cannot be read, with the line that is wrong.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct TableError {
    pub line: usize,
    pub reason: String,
}

impl Table {
    pub fn parse(text: &str) -> Result<Table, TableError> {
        let mut tz = None;
        let mut weekmask = None;
        let mut valid_until = None;
        let mut templates = Vec::new();
        let mut closed = BTreeSet::new();
        let mut special = BTreeMap::new();
        let mut check = None;
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let err = |reason: String| TableError {
                line: line_no,
                reason,
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split(',').collect();
            let date = |n: usize| -> Result<NaiveDate, TableError> {
                let field = fields.get(n).copied().unwrap_or("");
                field
                    .parse()
                    .map_err(|_| err(format!("{field:?} is not a date (YYYY-MM-DD)")))
            };
            match (fields[0], fields.len()) {
                ("tz", 2) => {
                    tz = Some(
                        fields[1]
                            .parse::<Tz>()
                            .map_err(|_| err(format!("unknown time zone {:?}", fields[1])))?,
                    )
                }
                ("weekmask", 2) if fields[1].len() == 7 => {
                    let mut mask = [false; 7];
                    for (day, c) in mask.iter_mut().zip(fields[1].chars()) {
                        *day = match c {
                            '1' => true,
                            '0' => false,
                            _ => return Err(err(format!("weekmask {:?}", fields[1]))),
                        };
                    }
                    weekmask = Some(mask);
                }
                ("valid", 3) => {
                    let (first, last) = (date(1)?, date(2)?);
                    if last < first {
                        return Err(err(format!("valid from {first} to {last}")));
                    }
                    valid_until = Some(last);
                }
                ("template", 6) => templates.push((date(1)?, hours(&fields[2..]).map_err(err)?)),
                ("special", 6) => {
                    special.insert(date(1)?, hours(&fields[2..]).map_err(err)?);
                }
                ("closed", 2) => {
                    closed.insert(date(1)?);
                }
                ("check", 3) => {
                    let count = fields[1]
                        .parse()
                        .map_err(|_| err(format!("session count {:?}", fields[1])))?;
                    check = Some((count, fields[2].to_owned()));
                }
                _ => return Err(err(format!("unexpected line {line:?}"))),
            }
        }
        let missing = |what: &str| TableError {
            line: 0,
            reason: format!("no {what} line"),
        };
        if templates.is_empty() {
            return Err(missing("template"));
        }
        templates.sort_by_key(|(from, _)| *from);
        Ok(Table {
            tz: tz.ok_or_else(|| missing("tz"))?,
            weekmask: weekmask.ok_or_else(|| missing("weekmask"))?,
            valid_until: valid_until.ok_or_else(|| missing("valid"))?,
            templates,
            closed,
            special,
            check,
        })
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The last day the data covers.
    pub fn valid_until(&self) -> NaiveDate {
        self.valid_until
    }

    /// The file's fingerprint of its sessions, `(count, sha256)`, for verification.
    pub fn check(&self) -> Option<(usize, &str)> {
        self.check.as_ref().map(|(n, h)| (*n, h.as_str()))
    }

    /// The regular hours in force on `date`.
    fn template(&self, date: NaiveDate) -> Hours {
        let i = self.templates.partition_point(|(from, _)| *from <= date);
        self.templates[i.saturating_sub(1)].1
    }

    /// The regular hours of the latest template, as "09:00-11:30, 12:30-15:30".
    pub fn regular_hours(&self) -> String {
        let h = self.templates[self.templates.len() - 1].1;
        let fmt = |t: NaiveTime| t.format("%H:%M").to_string();
        match h.lunch {
            Some((start, end)) => format!(
                "{}-{}, {}-{}",
                fmt(h.open),
                fmt(start),
                fmt(end),
                fmt(h.close)
            ),
            None => format!("{}-{}", fmt(h.open), fmt(h.close)),
        }
    }

    pub fn closure(&self, date: NaiveDate) -> Option<Closure> {
        if self.special.contains_key(&date) {
            return None;
        }
        if !self.weekmask[date.weekday().num_days_from_monday() as usize] {
            return Some(Closure::Weekend);
        }
        self.closed
            .contains(&date)
            .then_some(Closure::Holiday("exchange holiday"))
    }

    pub fn session(&self, date: NaiveDate) -> Option<Session> {
        if self.closure(date).is_some() {
            return None;
        }
        let regular = self.template(date);
        let hours = self.special.get(&date).copied().unwrap_or(regular);
        let at = |t: NaiveTime| local_instant(self.tz, date, t);
        Some(Session {
            date,
            open: at(hours.open),
            break_start: hours.lunch.map(|(start, _)| at(start)),
            break_end: hours.lunch.map(|(_, end)| at(end)),
            close: at(hours.close),
            early_close: hours.close < regular.close,
        })
    }
}

/// `<open>,<break start>,<break end>,<close>`, breaks empty or both given.
fn hours(fields: &[&str]) -> Result<Hours, String> {
    let time = |s: &str| {
        NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| format!("{s:?} is not a time (HH:MM)"))
    };
    let lunch = match (fields[1], fields[2]) {
        ("", "") => None,
        (start, end) => Some((time(start)?, time(end)?)),
    };
    let hours = Hours {
        open: time(fields[0])?,
        lunch,
        close: time(fields[3])?,
    };
    let ordered = match hours.lunch {
        Some((start, end)) => hours.open < start && start < end && end < hours.close,
        None => hours.open < hours.close,
    };
    if !ordered {
        return Err(format!("hours {fields:?} are not in order"));
    }
    Ok(hours)
}
