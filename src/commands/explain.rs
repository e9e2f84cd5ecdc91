//! The `calendar`, `markets` and `ttl` commands: the market-time decisions, shown to a person (a
//! table in exchange time) or to a program (JSON, times in UTC).

use std::io::Write;

use chrono::{DateTime, Days, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::calendar::{Calendar, MarketState, Markets, XNYS};
use crate::config::HumanDuration;
use crate::market::Placement;
use crate::model::rfc3339;
use crate::ttl::{Limit, Phase, PhaseState, QuoteKind, Ttl, TtlPolicy};

/// Days shown by `calendar` when `--to` is not given.
const DEFAULT_SPAN_DAYS: u64 = 13;

fn local(t: DateTime<Utc>, tz: Tz, format: &str) -> String {
    t.with_timezone(&tz).format(format).to_string()
}

#[derive(Serialize)]
struct SessionJson {
    date: String,
    open: String,
    close: String,
    early_close: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    break_start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    break_end: Option<String>,
}

/// `calendar`: one line per session of `cal` between `from` and `to`.
pub fn calendar(
    cal: &Calendar,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    now: DateTime<Utc>,
    json: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let tz = cal.timezone();
    let from = from.unwrap_or_else(|| now.with_timezone(&tz).date_naive());
    let to = to.unwrap_or_else(|| {
        from.checked_add_days(Days::new(DEFAULT_SPAN_DAYS))
            .unwrap_or(from)
    });
    let name = if cal.id() == XNYS { "NYSE" } else { cal.id() };
    if !json {
        writeln!(
            out,
            "{name} sessions {from} to {to}, times in {}",
            tz.name()
        )?;
        writeln!(out, "{:<10}  {:<3}  {:<9}  CLOSE", "DATE", "DAY", "OPEN")?;
    }
    for s in cal.sessions(from, to) {
        if json {
            let line = SessionJson {
                date: s.date.to_string(),
                open: rfc3339(s.open),
                close: rfc3339(s.close),
                early_close: s.early_close,
                break_start: s.break_start.map(rfc3339),
                break_end: s.break_end.map(rfc3339),
            };
            writeln!(out, "{}", serde_json::to_string(&line)?)?;
        } else {
            let lunch = s.lunch().map_or(String::new(), |(start, end)| {
                format!(
                    "  break {}-{}",
                    local(start, tz, "%H:%M"),
                    local(end, tz, "%H:%M")
                )
            });
            writeln!(
                out,
                "{}  {}  {:<9}  {:<9}{}{lunch}",
                s.date,
                s.date.format("%a"),
                local(s.open, tz, "%H:%M %Z"),
                local(s.close, tz, "%H:%M %Z"),
                if s.early_close { "  early close" } else { "" }
            )?;
        }
    }
    out.flush()
}

#[derive(Serialize)]
struct MarketJson<'a> {
    market: &'a str,
    timezone: &'a str,
    hours: String,
    data_until: Option<String>,
}

/// `markets`: every market, its zone, regular hours and how far its data goes.
pub fn markets(markets: &Markets, json: bool, out: &mut dyn Write) -> std::io::Result<()> {
    if !json {
        writeln!(
            out,
            "{:<6}  {:<20}  {:<32}  DATA UNTIL",
            "MARKET", "ZONE", "HOURS (LOCAL)"
        )?;
    }
    for cal in markets.iter() {
        let until = cal.valid_until().map(|d| d.to_string());
        if json {
            let line = MarketJson {
                market: cal.id(),
                timezone: cal.timezone().name(),
                hours: cal.regular_hours(),
                data_until: until,
            };
            writeln!(out, "{}", serde_json::to_string(&line)?)?;
        } else {
            writeln!(
                out,
                "{:<6}  {:<20}  {:<32}  {}",
                cal.id(),
                cal.timezone().name(),
                cal.regular_hours(),
                until.as_deref().unwrap_or("rules (no end)")
            )?;
        }
    }
    out.flush()
}

#[derive(Serialize)]
struct TtlJson {
    at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ticker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    calendar: Option<String>,
    market: &'static str,
    next_open: Option<String>,
    next_close: Option<String>,
    stock_ttl_s: u64,
    options_ttl_s: u64,
    earnings_ttl_s: u64,
}

/// The ticker `ttl --ticker` explains, and why it is on its market.
pub struct Subject<'a> {
    pub ticker: &'a str,
    pub placement: Placement<'a>,
}

/// The close that ends the trading stretch open at `t` (the session's close, even past a
/// break; for FX the Friday's).
fn close_of_stretch(cal: &Calendar, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match cal.state_at(t) {
        MarketState::Open { session, until } if session.break_start == Some(until) => {
            Some(session.close)
        }
        MarketState::Open { until, .. } => Some(until),
        MarketState::Break { session } => Some(session.close),
        MarketState::Closed { .. } | MarketState::AlwaysOpen => None,
    }
}

/// The next open after `t` and the close of the stretch open at or next after `t`; none on a
/// market that never closes.
fn next_open_and_close(
    cal: &Calendar,
    at: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let next_open_after = |t: DateTime<Utc>| match cal.state_at(t) {
        MarketState::Closed { next } => Some(next.open),
        _ => None,
    };
    match cal.state_at(at) {
        MarketState::AlwaysOpen => (None, None),
        MarketState::Closed { next } => (Some(next.open), close_of_stretch(cal, next.open)),
        MarketState::Break { session } => (session.break_end, Some(session.close)),
        MarketState::Open { .. } => {
            let close = close_of_stretch(cal, at);
            (close.and_then(next_open_after), close)
        }
    }
}

/// `ttl`: the decision at `at` for each kind of key on `cal`'s market, and why.
pub fn ttl(
    cal: &Calendar,
    subject: Option<&Subject<'_>>,
    policy: &TtlPolicy,
    at: DateTime<Utc>,
    earnings_date: Option<NaiveDate>,
    json: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let tz = cal.timezone();
    let (stock_phase, stock) = policy.quote(QuoteKind::Stock, cal, at);
    let (options_phase, options) = policy.quote(QuoteKind::Options, cal, at);
    let earnings = policy.earnings.ttl(cal, at, earnings_date);
    let (next_open, next_close) = next_open_and_close(cal, at);
    if json {
        let report = TtlJson {
            at: rfc3339(at),
            ticker: subject.map(|s| s.ticker.to_owned()),
            calendar: subject.map(|_| cal.id().to_owned()),
            market: stock_phase.state.as_str(),
            next_open: next_open.map(rfc3339),
            next_close: next_close.map(rfc3339),
            stock_ttl_s: stock.secs(),
            options_ttl_s: options.secs(),
            earnings_ttl_s: earnings.secs(),
        };
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
        return out.flush();
    }
    let when =
        |t: DateTime<Utc>| format!("{} ({})", rfc3339(t), local(t, tz, "%a %Y-%m-%d %H:%M %Z"));
    let never = || "never (always open)".to_owned();
    writeln!(out, "at:          {}", when(at))?;
    if let Some(s) = subject {
        writeln!(out, "ticker:      {}", s.ticker)?;
        writeln!(
            out,
            "calendar:    {} ({})",
            cal.id(),
            s.placement.source.describe()
        )?;
    }
    writeln!(out, "market:      {}", stock_phase.state.as_str())?;
    writeln!(out, "next_open:   {}", next_open.map_or_else(never, when))?;
    writeln!(out, "next_close:  {}", next_close.map_or_else(never, when))?;
    let section = |kind: &str| match (policy.markets.contains_key(cal.id()), kind) {
        (true, _) => format!("ttl.markets.{}", cal.id()),
        (false, "options") => "ttl.options".to_owned(),
        (false, _) => "ttl".to_owned(),
    };
    let quote_reason = |t: &Ttl, phase: Phase, kind: QuoteKind, name: &str| {
        let p = policy.quote_policy(kind, cal.id());
        let cap_key = match phase.state {
            PhaseState::Open => "open",
            PhaseState::Break | PhaseState::Closed => "closed",
            PhaseState::Extended => "extended",
        };
        let cap_section = if phase.state == PhaseState::Extended {
            "ttl".to_owned()
        } else {
            section(name)
        };
        match t.limit {
            Limit::Policy => format!(
                "capped by {cap_section}.{cap_key} ({})",
                HumanDuration::new(p.cap(phase.state))
            ),
            Limit::Boundary => format!("until {}", boundary(cal, phase)),
            Limit::Floor => format!(
                "raised to {}.min ({})",
                section(name),
                HumanDuration::new(p.min)
            ),
        }
    };
    writeln!(
        out,
        "stock:       {:>8} s  {}",
        stock.secs(),
        quote_reason(&stock, stock_phase, QuoteKind::Stock, "stock")
    )?;
    let options_reason = quote_reason(&options, options_phase, QuoteKind::Options, "options");
    writeln!(
        out,
        "options:     {:>8} s  {options_reason} (an empty chain: ttl.options.none, {})",
        options.secs(),
        HumanDuration::new(policy.options_none)
    )?;
    let earnings_reason = match (earnings_date, earnings.limit) {
        (None, _) => "no known earnings date: ttl.earnings_unknown".to_owned(),
        (Some(d), Limit::Boundary) => format!("until the start of {d} ({})", tz.name()),
        (Some(_), Limit::Policy) => "capped by ttl.earnings_max".to_owned(),
        (Some(_), Limit::Floor) => {
            "raised to ttl.earnings_min (the date is today, past or too close)".to_owned()
        }
    };
    writeln!(
        out,
        "earnings:    {:>8} s  {earnings_reason}",
        earnings.secs()
    )?;
    if policy.jitter > 0.0 {
        writeln!(
            out,
            "jitter:      each key's TTL is up to {:.0}% shorter than shown",
            policy.jitter * 100.0
        )?;
    }
    out.flush()
}

/// What the phase's end is, in words.
fn boundary(cal: &Calendar, phase: Phase) -> &'static str {
    let at_open = phase
        .until
        .is_some_and(|t| matches!(cal.state_at(t), MarketState::Open { .. }));
    match phase.state {
        PhaseState::Open
            if phase
                .until
                .is_some_and(|t| matches!(cal.state_at(t), MarketState::Break { .. })) =>
        {
            "the lunch break"
        }
        PhaseState::Open => "the close",
        PhaseState::Break => "the break ends",
        PhaseState::Closed if at_open => "the next open",
        PhaseState::Closed => "the pre-market opens",
        PhaseState::Extended if at_open => "the open",
        PhaseState::Extended => "the post-market ends",
    }
}
