//! The watchlist, a page at a time, turned into the tickers a run must fetch: each placed on
//! its market (its symbol, else the market the stock job recorded for it), then one pipelined
//! `PTTL` read drops those whose key is still fresh (refresh-ahead). What is due waits in a
//! queue the fetches draw from.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::Span;

use super::lifetime::{QuoteTtls, horizon, lifetime};
use crate::calendar::Calendar;
use crate::codec;
use crate::jobs::job::{JobError, JobName, RunContext, RunReport};
use crate::keys::{self, CacheKind};
use crate::market::Placement;
use crate::metrics;
use crate::model::Earnings;
use crate::ticker::Ticker;
use crate::traces;
use crate::ttl::QuoteKind;
use crate::watchlist::WatchlistReader;

/// A ticker to fetch, the market its keys follow, and the span of the page it came from.
pub(super) struct Due<'c> {
    pub(super) ticker: Ticker,
    pub(super) placement: Placement<'c>,
    pub(super) span: Span,
}

/// The stock key's own record of the market, without reading the rest of the value.
#[derive(serde::Deserialize)]
struct RecordedMarket {
    calendar: Option<String>,
}

/// Any cached value's `fetched_at`, without reading the rest into memory.
#[derive(serde::Deserialize)]
struct Stamp {
    fetched_at: DateTime<Utc>,
}

/// The watchlist's pages and the due tickers read from them and not yet fetched.
pub(super) struct Pages<'c> {
    job: JobName,
    kind: CacheKind,
    quote_kind: QuoteKind,
    reader: WatchlistReader,
    page_size: usize,
    queue: VecDeque<Due<'c>>,
    done: bool,
}

impl<'c> Pages<'c> {
    pub(super) fn new(ctx: &RunContext, job: JobName, quote_kind: QuoteKind) -> Pages<'c> {
        let scheduler = &ctx.shared.settings.scheduler;
        Pages {
            job,
            kind: job.cache_kind().expect("a warming job"),
            quote_kind,
            reader: match &ctx.options.requested {
                Some(tickers) => WatchlistReader::requested(ctx.shared.store.clone(), tickers),
                None => WatchlistReader::new(
                    ctx.shared.store.clone(),
                    scheduler.scan_count,
                    ctx.options.shard,
                ),
            },
            page_size: scheduler.batch_size as usize,
            queue: VecDeque::new(),
            done: false,
        }
    }

    /// Whether the watchlist has been read to its end (or the run was told to stop).
    pub(super) fn done(&self) -> bool {
        self.done
    }

    pub(super) fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Up to `n` due tickers, oldest first.
    pub(super) fn take(&mut self, n: usize) -> Vec<Due<'c>> {
        let n = n.min(self.queue.len());
        self.queue.drain(..n).collect()
    }

    /// Reads the next page and queues what is due in it. On shutdown, reads nothing more: the
    /// run finishes what it has and is reported interrupted.
    pub(super) async fn read_next(
        &mut self,
        ctx: &'c RunContext,
        report: &mut RunReport,
    ) -> Result<(), JobError> {
        if ctx.stop_new_work.is_cancelled() {
            report.interrupted = true;
            self.done = true;
            return Ok(());
        }
        let Some(page) = self.reader.next_batch(self.page_size).await? else {
            self.done = true;
            return Ok(());
        };
        let asked = page.len();
        let placed = self.place(ctx, page).await?;
        let due = match ctx.options.force {
            true => placed,
            false => self.not_fresh(ctx, placed, ctx.options.now()).await?,
        };
        let skipped = (asked - due.len()) as u64;
        report.skipped_fresh += skipped;
        report.fetched += due.len() as u64;
        ctx.progress.advance(skipped, report.failed);
        let span =
            tracing::info_span!(target: traces::TARGET, "batch", tickers = asked, due = due.len());
        self.queue
            .extend(due.into_iter().map(|(ticker, placement)| Due {
                ticker,
                placement,
                span: span.clone(),
            }));
        Ok(())
    }

    /// The reader's counts, into the run's report.
    pub(super) fn finish(&self, report: &mut RunReport) {
        let counts = &self.reader.counts;
        report.seen = counts.seen;
        report.invalid = counts.invalid;
        report.duplicates = counts.duplicates;
        if self.reader.unlogged_invalid() > 0 {
            tracing::warn!(
                more = self.reader.unlogged_invalid(),
                "more invalid watchlist members were skipped without being logged"
            );
        }
    }

    /// Places each ticker of `page` on its market: by its symbol, else by the market the stock
    /// job recorded in its stock key (from the provider's metadata), else the NYSE. A `--force`d
    /// stock run skips the read: the quotes it fetches place their tickers.
    async fn place(
        &self,
        ctx: &'c RunContext,
        page: Vec<Ticker>,
    ) -> Result<Vec<(Ticker, Placement<'c>)>, JobError> {
        let markets = &ctx.shared.markets;
        let placements: Vec<Option<Placement<'c>>> =
            page.iter().map(|t| markets.by_symbol(t.as_str())).collect();
        let unplaced: Vec<&Ticker> = page
            .iter()
            .zip(&placements)
            .filter(|(_, p)| p.is_none())
            .map(|(t, _)| t)
            .collect();
        let read = !(unplaced.is_empty() || ctx.options.force && self.kind == CacheKind::Stock);
        let mut recorded = if read {
            let keys: Vec<String> = unplaced
                .iter()
                .map(|t| keys::cache(CacheKind::Stock, t))
                .collect();
            ctx.shared
                .store
                .get_each("GET stock markets", &keys)
                .await?
        } else {
            vec![None; unplaced.len()]
        }
        .into_iter();
        let now = ctx.options.now();
        let mut markets_seen: Vec<&Calendar> = Vec::new();
        let mut placed = Vec::with_capacity(page.len());
        for (ticker, placement) in page.into_iter().zip(placements) {
            let placement = placement.unwrap_or_else(|| {
                let market = recorded
                    .next()
                    .flatten()
                    .and_then(|v| codec::decode(&v, codec::MAX_JSON_BYTES).ok())
                    .and_then(|v| serde_json::from_slice::<RecordedMarket>(&v).ok())
                    .and_then(|r| r.calendar);
                markets.by_record(market.as_deref())
            });
            if !markets_seen
                .iter()
                .any(|c| std::ptr::eq(*c, placement.calendar))
            {
                markets_seen.push(placement.calendar);
                notice_past_data(ctx, placement.calendar, now);
            }
            placed.push((ticker, placement));
        }
        Ok(placed)
    }

    /// Drops the tickers whose key is fresh: it will outlive the next run (see [`horizon`]) and
    /// keeps more than `refresh_ahead` of the TTL it would be written with now (for earnings,
    /// the TTL of its *cached* date), and, with `max_age`, its value will not have grown older
    /// than that by the next run. A key of another type than a string (an `HSET` by someone
    /// else) is due: the write replaces it.
    async fn not_fresh(
        &self,
        ctx: &'c RunContext,
        placed: Vec<(Ticker, Placement<'c>)>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Ticker, Placement<'c>)>, JobError> {
        let job = self.job.settings(&ctx.shared.settings);
        let max_age = job.max_age.map(|a| a.get());
        let horizon = horizon(ctx, self.job, now);
        let keys: Vec<String> = placed
            .iter()
            .map(|(t, _)| keys::cache(self.kind, t))
            .collect();
        // Per key: its PTTL, and its value (earnings, whose date decides the TTL, or for max_age
        // its fetched_at) or just its type.
        let read_values = self.kind == CacheKind::Earnings || max_age.is_some();
        let cached_keys = ctx
            .shared
            .store
            .cached_keys("PTTL batch", &keys, read_values)
            .await?;
        let policy = &ctx.shared.policy;
        let mut quote_ttls = QuoteTtls::new(self.quote_kind, now);
        let mut due = Vec::with_capacity(placed.len());
        for (((ticker, placement), key), cached) in placed.into_iter().zip(&keys).zip(cached_keys) {
            let cal = placement.calendar;
            if let Some(kind) = &cached.foreign_type {
                tracing::warn!(key = %key, r#type = %kind, "a cache key holds another type than a string; it is refetched and overwritten");
                due.push((ticker, placement));
                continue;
            }
            let remaining_ms = cached.pttl_ms;
            let cached = cached
                .value
                .and_then(|v| codec::decode(&v, codec::MAX_JSON_BYTES).ok());
            let policy_ttl = match self.kind {
                // An empty chain's long TTL is not known before the value is read: the quote
                // TTL is the shorter estimate, so the key is refetched no later than it should.
                CacheKind::Stock | CacheKind::Options => quote_ttls.on(policy, cal),
                CacheKind::Earnings => {
                    match cached
                        .as_deref()
                        .and_then(|v| serde_json::from_slice::<Earnings>(v).ok())
                    {
                        Some(e) => policy.earnings.ttl(cal, now, e.earnings_date),
                        // Unreadable or missing: refresh.
                        None => {
                            due.push((ticker, placement));
                            continue;
                        }
                    }
                }
            };
            let full = lifetime(ctx, key, policy_ttl, now, horizon);
            let too_old = max_age.is_some_and(|max_age| {
                // Ages are real time: `fetched_at` is when the value was fetched, even under
                // `--at`. A run may have fetched it as late as its timeout after it started,
                // so a value is old once it is within a timeout of max_age: the daily run after
                // the one that fetched it refetches it.
                cached
                    .as_deref()
                    .and_then(|v| serde_json::from_slice::<Stamp>(v).ok())
                    .and_then(|stamp| (Utc::now() - stamp.fetched_at).to_std().ok())
                    .is_none_or(|age| age + job.timeout.get() >= max_age)
            });
            let remaining = u64::try_from(remaining_ms).map(Duration::from_millis);
            let fresh = remaining
                .is_ok_and(|left| left >= horizon && left > full.mul_f64(job.refresh_ahead));
            if too_old || !fresh {
                due.push((ticker, placement));
            }
        }
        Ok(due)
    }
}

/// Says once per process and market (a log line, and `fcw_market_calendar_expired`) that the
/// market's shipped data has run out at `now`: it then follows its regular week, without holidays,
/// until a release brings newer data.
fn notice_past_data(ctx: &RunContext, calendar: &Calendar, now: DateTime<Utc>) {
    let Some(last) = calendar.past_data(now) else {
        return;
    };
    let mut noticed = ctx
        .shared
        .past_data_noticed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if noticed.insert(calendar.id().to_owned()) {
        metrics::market_calendar_expired(calendar.id());
        tracing::warn!(
            market = calendar.id(),
            data_until = %last,
            then = "its regular week, without holidays, until an upgrade ships newer data",
            "the market's calendar data has run out"
        );
    }
}
