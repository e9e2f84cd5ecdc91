//! The `calendar` and `ttl` commands: the market-time decisions, shown to a person (a table in
//! exchange time) or to a program (JSON, times in UTC).

use std::io::Write;

use chrono::{DateTime, Days, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::calendar::{Calendar, MarketState, Session};
use crate::config::HumanDuration;
use crate::model::rfc3339;
use crate::ttl::{Limit, QuotePolicy, Ttl, TtlPolicy};

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
}

/// `calendar`: one line per session between `from` and `to`.
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
    if !json {
        writeln!(out, "NYSE sessions {from} to {to}, times in {}", tz.name())?;
        writeln!(out, "{:<10}  {:<3}  {:<9}  CLOSE", "DATE", "DAY", "OPEN")?;
    }
    for s in cal.sessions(from, to) {
        if json {
            let line = SessionJson {
                date: s.date.to_string(),
                open: rfc3339(s.open),
                close: rfc3339(s.close),
                early_close: s.early_close,
            };
            writeln!(out, "{}", serde_json::to_string(&line)?)?;
        } else {
            writeln!(
                out,
                "{}  {}  {:<9}  {:<9}{}",
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
struct TtlJson {
    at: String,
    market: &'static str,
    next_open: String,
    next_close: String,
    stock_ttl_s: u64,
    options_ttl_s: u64,
    earnings_ttl_s: u64,
}

/// `ttl`: the decision at `at` for each kind of key, and why.
pub fn ttl(
    cal: &Calendar,
    policy: &TtlPolicy,
    at: DateTime<Utc>,
    earnings_date: Option<NaiveDate>,
    json: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let tz = cal.timezone();
    let state = cal.state_at(at);
    let (open, next_open, next_close): (bool, Session, Session) = match state {
        MarketState::Open { session } => (true, cal.next_session_after(session.date), session),
        MarketState::Closed { next } => (false, next, next),
    };
    let stock = policy.stock.ttl(cal, at);
    let options = policy.options.ttl(cal, at);
    let earnings = policy.earnings.ttl(cal, at, earnings_date);
    if json {
        let report = TtlJson {
            at: rfc3339(at),
            market: if open { "open" } else { "closed" },
            next_open: rfc3339(next_open.open),
            next_close: rfc3339(next_close.close),
            stock_ttl_s: stock.secs(),
            options_ttl_s: options.secs(),
            earnings_ttl_s: earnings.secs(),
        };
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
        return out.flush();
    }
    let when =
        |t: DateTime<Utc>| format!("{} ({})", rfc3339(t), local(t, tz, "%a %Y-%m-%d %H:%M %Z"));
    writeln!(out, "at:          {}", when(at))?;
    writeln!(out, "market:      {}", if open { "open" } else { "closed" })?;
    writeln!(out, "next_open:   {}", when(next_open.open))?;
    let early = if next_close.early_close {
        ", early close"
    } else {
        ""
    };
    writeln!(out, "next_close:  {}{early}", when(next_close.close))?;
    let quote_reason = |t: &Ttl, p: &QuotePolicy, section: &str| {
        let (cap_key, cap, boundary) = if open {
            ("open", p.open, "until the close")
        } else {
            ("closed", p.closed, "until the next open")
        };
        match t.limit {
            Limit::Policy => format!(
                "capped by {section}.{cap_key} ({})",
                HumanDuration::new(cap)
            ),
            Limit::Boundary => boundary.to_owned(),
            Limit::Floor => format!("raised to {section}.min ({})", HumanDuration::new(p.min)),
        }
    };
    writeln!(
        out,
        "stock:       {:>8} s  {}",
        stock.secs(),
        quote_reason(&stock, &policy.stock, "ttl")
    )?;
    let options_reason = quote_reason(&options, &policy.options, "ttl.options");
    writeln!(
        out,
        "options:     {:>8} s  {options_reason}",
        options.secs()
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
