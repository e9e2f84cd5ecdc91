//! How long a warmed value lives: its market's TTL, jittered, never shorter than the time until
//! the job's next run can have rewritten it, never longer than `ttl.earnings_max`.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::calendar::Calendar;
use crate::jobs::job::{JobName, RunContext};
use crate::schedule::next_fire;
use crate::ttl::{QuoteKind, Ttl, TtlPolicy, jitter_seed};

/// Added to a value's [`horizon`] when it is written: the scheduler wakes and a write lands a
/// little after the instants the horizon counts to. It also lets a run right after another (or
/// at the same `--at` instant) find the values that one wrote fresh.
const SCHEDULING_SLACK: Duration = Duration::from_secs(1);

/// The TTL a value for `key` gets when written at `now`: its policy TTL, jittered, but at least
/// until the next run can rewrite it (`horizon`), and at most `ttl.earnings_max`, the longest a
/// value may live (start-up makes sure every schedule's runs are closer together than that).
pub(super) fn lifetime(
    ctx: &RunContext,
    key: &str,
    ttl: Ttl,
    now: DateTime<Utc>,
    horizon: Duration,
) -> Duration {
    let policy = &ctx.shared.policy;
    // Whole seconds, rounded up: a value must outlive its horizon.
    let horizon = horizon + SCHEDULING_SLACK;
    let horizon = Duration::from_secs(horizon.as_secs() + u64::from(horizon.subsec_nanos() > 0));
    ttl.jittered(policy.jitter, jitter_seed(key, now))
        .max(horizon)
        .min(policy.earnings.max)
}

/// How long a value of `job` must still live at `now` for no reader to miss it: until the job's
/// next run, which may start as late as the next fire time after this run's timeout, has
/// rewritten it within its own timeout. Values are written to live [`SCHEDULING_SLACK`] longer
/// than this.
pub(super) fn horizon(ctx: &RunContext, job: JobName, now: DateTime<Utc>) -> Duration {
    let settings = &ctx.shared.settings;
    let job = job.settings(settings);
    let timeout = job.timeout.get();
    let run_ends = now + chrono::Duration::from_std(timeout).unwrap_or_default();
    next_fire(job.schedule.cron(), settings.market.timezone.0, run_ends)
        .and_then(|next| (next - now).to_std().ok())
        .map_or(timeout, |until_next| until_next + timeout)
}

/// Quote TTLs decided once per market for one instant: the thousand tickers of one market in a
/// page or a write batch share one calendar lookup.
pub(super) struct QuoteTtls<'c> {
    kind: QuoteKind,
    pub(super) at: DateTime<Utc>,
    decided: Vec<(&'c Calendar, Ttl)>,
}

impl<'c> QuoteTtls<'c> {
    pub(super) fn new(kind: QuoteKind, at: DateTime<Utc>) -> QuoteTtls<'c> {
        QuoteTtls {
            kind,
            at,
            decided: Vec::new(),
        }
    }

    pub(super) fn on(&mut self, policy: &TtlPolicy, calendar: &'c Calendar) -> Ttl {
        if let Some((_, ttl)) = self
            .decided
            .iter()
            .find(|(c, _)| std::ptr::eq(*c, calendar))
        {
            return *ttl;
        }
        let ttl = policy.quote(self.kind, calendar, self.at).1;
        self.decided.push((calendar, ttl));
        ttl
    }
}
