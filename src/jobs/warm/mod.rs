//! The warming jobs (`stock`, `options`, `earnings`): watchlist in, cache keys out.
//!
//! Per batch of tickers: each is placed on its market (its symbol, else the market the stock job
//! recorded for it), one pipelined `PTTL` read skips keys that are still fresh (refresh-ahead),
//! the providers are asked for the rest with bounded concurrency, and every value that came back
//! valid is written with one `SETEX` batch through the run's lock fence (a batch lands whole, or
//! not at all once another run holds the lock), its TTL on its own market's clock. A ticker that
//! failed writes nothing, so its last good value stays until it expires: stale beats wrong.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tracing::Instrument;

use crate::calendar::Calendar;
use crate::codec;
use crate::jobs::job::{Job, JobError, JobName, RunContext, RunReport};
use crate::keys::{self, CacheKind};
use crate::market::Placement;
use crate::metrics;
use crate::model::{Earnings, OptionsChain, StockQuote};
use crate::provider::{Fetched, TickerResult};
use crate::schedule::next_fire;
use crate::store::{COMMAND_RETRIES, Fenced};
use crate::ticker::Ticker;
use crate::traces;
use crate::ttl::{QuoteKind, Ttl, TtlPolicy, jitter_seed};
use crate::watchlist::WatchlistReader;

/// Quote requests (or per-ticker chain/earnings requests) a run keeps in flight. Each
/// provider's own `max_concurrency` is the real bound; this only caps the futures waiting for it.
const IN_FLIGHT: usize = 32;

pub struct WarmJob {
    kind: CacheKind,
}

impl WarmJob {
    pub fn new(kind: CacheKind) -> WarmJob {
        WarmJob { kind }
    }
}

/// A value ready for the cache.
enum CacheValue {
    /// Boxed: a quote is several times the size of the other variants' inline parts.
    Stock(Box<StockQuote>),
    Options(OptionsChain),
    Earnings(Earnings),
}

/// Each ticker of a batch and the market whose clock its keys follow.
type Places<'c> = HashMap<Ticker, Placement<'c>>;

/// The stock key's own record of the market, without reading the rest of the value.
#[derive(serde::Deserialize)]
struct RecordedMarket {
    calendar: Option<String>,
}

/// A batch's quote TTLs, decided once per market: every value of a batch is decided for the same
/// instant, so the thousand tickers of one market share one calendar lookup.
struct QuoteTtls<'c> {
    kind: QuoteKind,
    at: DateTime<Utc>,
    decided: Vec<(&'c Calendar, Ttl)>,
}

impl<'c> QuoteTtls<'c> {
    fn new(kind: QuoteKind, at: DateTime<Utc>) -> QuoteTtls<'c> {
        QuoteTtls {
            kind,
            at,
            decided: Vec::new(),
        }
    }

    fn on(&mut self, policy: &TtlPolicy, calendar: &'c Calendar) -> Ttl {
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

impl CacheValue {
    /// The value's TTL on the market it is on (`placement`; a fresh quote's own metadata places
    /// it where its symbol does not). A quote records the market it was placed on.
    fn ttl<'c>(
        &mut self,
        ctx: &'c RunContext,
        placement: Placement<'c>,
        quote_ttls: &mut QuoteTtls<'c>,
    ) -> (Ttl, &'c Calendar) {
        let (markets, policy) = (&ctx.shared.markets, &ctx.shared.policy);
        let placed = placement.calendar;
        match self {
            CacheValue::Stock(quote) => {
                let calendar = match placement.source.by_name() {
                    true => placed,
                    false => markets
                        .by_listing(&quote.listing)
                        .map_or(placed, |p| p.calendar),
                };
                quote.calendar = Some(calendar.id().to_owned());
                (quote_ttls.on(policy, calendar), calendar)
            }
            CacheValue::Options(chain) if chain.expirations.is_empty() => {
                (policy.options_none(), placed)
            }
            CacheValue::Options(_) => (quote_ttls.on(policy, placed), placed),
            CacheValue::Earnings(e) => {
                let ttl = policy.earnings.ttl(placed, quote_ttls.at, e.earnings_date);
                (ttl, placed)
            }
        }
    }

    fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        match self {
            CacheValue::Stock(v) => serde_json::to_vec(v),
            CacheValue::Options(v) => serde_json::to_vec(v),
            CacheValue::Earnings(v) => serde_json::to_vec(v),
        }
    }
}

#[async_trait]
impl Job for WarmJob {
    fn name(&self) -> JobName {
        match self.kind {
            CacheKind::Stock => JobName::Stock,
            CacheKind::Options => JobName::Options,
            CacheKind::Earnings => JobName::Earnings,
        }
    }

    async fn run(&self, ctx: &RunContext) -> Result<RunReport, JobError> {
        let settings = &ctx.shared.settings;
        let mut reader = WatchlistReader::new(
            ctx.shared.store.clone(),
            settings.scheduler.scan_count,
            ctx.options.shard,
        );
        let mut report = RunReport::default();
        if ctx.progress.watched() {
            ctx.progress.set_total(self.expected(ctx).await?);
        }
        let batch_size = settings.scheduler.batch_size as usize;
        // Write-behind: batch k is written while batch k+1 is fetched, so the upstream is never
        // idle waiting on Redis. At most one write is outstanding.
        let mut writing: Option<Write<'_>> = None;
        loop {
            if ctx.stop_new_work.is_cancelled() {
                report.interrupted = true;
                break;
            }
            let Some(batch) = reader.next_batch(batch_size).await? else {
                break;
            };
            let batch_len = batch.len() as u64;
            let places = self.place(ctx, &batch).await?;
            let due = self.due(ctx, batch, &places, &mut report).await?;
            let fetched = self
                .fetch(ctx, &due, &places)
                .instrument(tracing::info_span!(
                    target: traces::TARGET,
                    "batch",
                    tickers = batch_len,
                    due = due.len()
                ));
            let results = match writing.take() {
                Some(write) => {
                    let (results, written) = tokio::join!(fetched, write);
                    report.written += written?;
                    results
                }
                None => fetched.await,
            };
            writing = self.prepare_write(ctx, results, &places, &mut report);
            ctx.progress.advance(batch_len, report.failed);
        }

        if let Some(write) = writing {
            report.written += write.await?;
        }
        report.seen = reader.counts.seen;
        report.invalid = reader.counts.invalid;
        report.duplicates = reader.counts.duplicates;
        if reader.unlogged_invalid() > 0 {
            tracing::warn!(
                more = reader.unlogged_invalid(),
                "more invalid watchlist members were skipped without being logged"
            );
        }
        Ok(report)
    }
}

/// Added to a value's [`WarmJob::horizon`] when it is written: the scheduler wakes and a write
/// lands a little after the instants the horizon counts to. It also lets a run right after
/// another (or at the same `--at` instant) find the values that one wrote fresh.
const SCHEDULING_SLACK: Duration = Duration::from_secs(1);

/// The TTL a value for `key` gets when written at `now`: its policy TTL, jittered, but at least
/// until the next run can rewrite it (`horizon`), and at most `ttl.earnings_max`, the longest a
/// value may live (start-up makes sure every schedule's runs are closer together than that).
fn lifetime(
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

/// Any cached value's `fetched_at`, without reading the rest into memory.
#[derive(serde::Deserialize)]
struct Stamp {
    fetched_at: DateTime<Utc>,
}

/// A batch write in flight, resolving to the number of values written.
type Write<'a> = std::pin::Pin<Box<dyn Future<Output = Result<u64, JobError>> + Send + 'a>>;

impl WarmJob {
    /// The quote rules this job's keys follow (earnings keys have their own).
    fn quote_kind(&self) -> QuoteKind {
        match self.kind {
            CacheKind::Options => QuoteKind::Options,
            CacheKind::Stock | CacheKind::Earnings => QuoteKind::Stock,
        }
    }

    /// Places each ticker of `batch` on its market: by its symbol, else by the market the stock
    /// job recorded in its stock key (from the provider's metadata), else the NYSE. A `--force`d
    /// stock run skips the read: the quotes it fetches place their tickers.
    async fn place<'c>(
        &self,
        ctx: &'c RunContext,
        batch: &[Ticker],
    ) -> Result<Places<'c>, JobError> {
        let markets = &ctx.shared.markets;
        let mut places = HashMap::with_capacity(batch.len());
        let mut unplaced = Vec::new();
        for ticker in batch {
            match markets.by_symbol(ticker.as_str()) {
                Some(p) => {
                    places.insert(ticker.clone(), p);
                }
                None => unplaced.push(ticker),
            }
        }
        let read = !(unplaced.is_empty() || ctx.options.force && self.kind == CacheKind::Stock);
        let recorded = if read {
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
        };
        for (ticker, value) in unplaced.into_iter().zip(recorded) {
            let market = value
                .and_then(|v| codec::decode(&v, codec::MAX_JSON_BYTES).ok())
                .and_then(|v| serde_json::from_slice::<RecordedMarket>(&v).ok())
                .and_then(|r| r.calendar);
            places.insert(ticker.clone(), markets.by_record(market.as_deref()));
        }
        let now = ctx.options.now();
        let mut markets_seen: Vec<&Calendar> = Vec::new();
        for p in places.values() {
            if !markets_seen.iter().any(|c| std::ptr::eq(*c, p.calendar)) {
                markets_seen.push(p.calendar);
                notice_past_data(ctx, p.calendar, now);
            }
        }
        Ok(places)
    }

    /// The tickers of `batch` that need fetching (all of them with `--force`).
    async fn due(
        &self,
        ctx: &RunContext,
        batch: Vec<Ticker>,
        places: &Places<'_>,
        report: &mut RunReport,
    ) -> Result<Vec<Ticker>, JobError> {
        let asked = batch.len();
        let due = if ctx.options.force {
            batch
        } else {
            self.not_fresh(ctx, batch, places, ctx.options.now())
                .await?
        };
        report.skipped_fresh += (asked - due.len()) as u64;
        report.fetched += due.len() as u64;
        Ok(due)
    }

    /// About how many tickers this run will go through, for its progress bar: the watchlist's
    /// size, or a shard's share of it.
    async fn expected(&self, ctx: &RunContext) -> Result<u64, JobError> {
        let members = ctx
            .shared
            .store
            .set_size("SCARD watchlist", keys::WATCHLIST)
            .await?;
        Ok(ctx
            .options
            .shard
            .map_or(members, |s| members.div_ceil(u64::from(s.count))))
    }

    /// Counts the results and turns the found values into one fenced `SETEX` batch (it lands
    /// whole or not at all); `None` when there is nothing to write.
    fn prepare_write<'a>(
        &self,
        ctx: &'a RunContext,
        results: Vec<(Ticker, TickerResult<CacheValue>)>,
        places: &Places<'a>,
        report: &mut RunReport,
    ) -> Option<Write<'a>> {
        // TTLs are computed when the values are written, not when the batch started.
        let now = ctx.options.now();
        let horizon = self.horizon(ctx, now);
        let mut writes = Vec::new();
        let settings = &ctx.shared.settings;
        let strike_window = settings.jobs.options.strike_window;
        let mut by_market: BTreeMap<&str, u64> = BTreeMap::new();
        let mut quote_ttls = QuoteTtls::new(self.quote_kind(), now);
        for (ticker, result) in results {
            match result {
                Ok(Fetched::Found(mut value)) => {
                    if let (CacheValue::Options(chain), Some(window)) = (&mut value, strike_window)
                    {
                        chain.keep_strikes_within(window.0);
                    }
                    let key = keys::cache(self.kind, &ticker);
                    let placement = places
                        .get(&ticker)
                        .copied()
                        .unwrap_or(ctx.shared.markets.fallback());
                    let (ttl, calendar) = value.ttl(ctx, placement, &mut quote_ttls);
                    let ttl = lifetime(ctx, &key, ttl, now, horizon);
                    let json = match value.to_json() {
                        Ok(json) => json,
                        Err(e) => {
                            report.note_failure(format!("{ticker}: cannot serialise: {e}"));
                            continue;
                        }
                    };
                    match codec::encode(&settings.cache, json) {
                        Ok(stored) => {
                            *by_market.entry(calendar.id()).or_default() += 1;
                            writes.push((
                                key,
                                vec![ttl.as_secs().max(1).to_string().into_bytes(), stored],
                            ))
                        }
                        Err(too_large) => {
                            tracing::warn!(key = %key, size = too_large.size, limit = too_large.limit, "value too large; not written, the previous value stays");
                            report.too_large += 1;
                            report.note_failure(format!("{ticker}: {too_large}"));
                        }
                    }
                }
                Ok(Fetched::Unknown) => {
                    report.unknown += 1;
                    tracing::debug!(ticker = %ticker, "unknown symbol; nothing written");
                }
                Err(e) => report.note_failure(format!("{ticker}: {e}")),
            }
        }
        if writes.is_empty() {
            return None;
        }
        let job = self.name().as_str();
        for (market, values) in by_market {
            metrics::written_by_market(job, market, values);
        }
        Some(Box::pin(async move {
            let n = writes.len() as u64;
            ctx.writes.in_flight.store(n, Relaxed);
            let fenced = ctx
                .fence
                .apply("SETEX batch", COMMAND_RETRIES, "SETEX", &writes)
                .await;
            ctx.writes.in_flight.store(0, Relaxed);
            match fenced? {
                Fenced::Written => {
                    ctx.writes.written.fetch_add(n, Relaxed);
                    Ok(n)
                }
                Fenced::LockLost => Err(JobError::LockLost),
            }
        }))
    }

    /// How long a value must still live at `now` for no reader to miss it: until the job's next
    /// run, which may start as late as the next fire time after this run's timeout, has
    /// rewritten it within its own timeout. Values are written to live [`SCHEDULING_SLACK`]
    /// longer than this.
    fn horizon(&self, ctx: &RunContext, now: DateTime<Utc>) -> Duration {
        let settings = &ctx.shared.settings;
        let job = self.name().settings(settings);
        let timeout = job.timeout.get();
        let run_ends = now + chrono::Duration::from_std(timeout).unwrap_or_default();
        next_fire(job.schedule.cron(), settings.market.timezone.0, run_ends)
            .and_then(|next| (next - now).to_std().ok())
            .map_or(timeout, |until_next| until_next + timeout)
    }

    /// Drops the tickers whose key is fresh: it will outlive the next run (see
    /// [`WarmJob::horizon`]) and keeps more than `refresh_ahead` of the TTL it would be written
    /// with now (for earnings, the TTL of its *cached* date), and, with `max_age`, its value will
    /// not have grown older than that by the next run. A key of another type than a string (an
    /// `HSET` by someone else) is due: the write replaces it.
    async fn not_fresh(
        &self,
        ctx: &RunContext,
        batch: Vec<Ticker>,
        places: &Places<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Ticker>, JobError> {
        let job = self.name().settings(&ctx.shared.settings);
        let max_age = job.max_age.map(|a| a.get());
        let horizon = self.horizon(ctx, now);
        let keys: Vec<String> = batch.iter().map(|t| keys::cache(self.kind, t)).collect();
        // Per key: its PTTL, and its value (earnings, whose date decides the TTL, or for max_age
        // its fetched_at) or just its type.
        let read_values = self.kind == CacheKind::Earnings || max_age.is_some();
        let cached_keys = ctx
            .shared
            .store
            .cached_keys("PTTL batch", &keys, read_values)
            .await?;
        let policy = &ctx.shared.policy;
        let xnys = ctx.shared.markets.markets().xnys();
        let mut quote_ttls = QuoteTtls::new(self.quote_kind(), now);
        let mut due = Vec::with_capacity(batch.len());
        for ((ticker, key), cached) in batch.into_iter().zip(&keys).zip(cached_keys) {
            let cal = places.get(&ticker).map_or(xnys, |p| p.calendar);
            if let Some(kind) = &cached.foreign_type {
                tracing::warn!(key = %key, r#type = %kind, "a cache key holds another type than a string; it is refetched and overwritten");
                due.push(ticker);
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
                            due.push(ticker);
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
                due.push(ticker);
            }
        }
        Ok(due)
    }

    async fn fetch(
        &self,
        ctx: &RunContext,
        due: &[Ticker],
        places: &Places<'_>,
    ) -> Vec<(Ticker, TickerResult<CacheValue>)> {
        let providers = &ctx.shared.providers;
        let xnys = ctx.shared.markets.markets().xnys();
        // Owned items: a stream over borrowed ones trips the compiler's Send analysis here.
        match self.kind {
            CacheKind::Stock => {
                let chunks: Vec<Vec<Ticker>> = due
                    .chunks(providers.quote_batch().max(1))
                    .map(<[Ticker]>::to_vec)
                    .collect();
                futures_util::stream::iter(chunks)
                    .map(|chunk| async move { providers.quotes(&chunk).await })
                    .buffer_unordered(IN_FLIGHT)
                    .flat_map(futures_util::stream::iter)
                    .map(|(t, r)| (t, r.map(|f| f.map(|q| CacheValue::Stock(Box::new(q))))))
                    .collect()
                    .await
            }
            CacheKind::Options => {
                futures_util::stream::iter(due.to_vec())
                    .map(|t| async move {
                        let r = providers.options(&t).await;
                        (t, r.map(|f| f.map(CacheValue::Options)))
                    })
                    .buffer_unordered(IN_FLIGHT)
                    .collect()
                    .await
            }
            CacheKind::Earnings => {
                futures_util::stream::iter(due.to_vec())
                    .map(|t| async move {
                        // Earnings dates are days in the listing's own zone.
                        let zone = places.get(&t).map_or(xnys, |p| p.calendar).timezone();
                        let r = providers.earnings(&t, zone).await;
                        (t, r.map(|f| f.map(CacheValue::Earnings)))
                    })
                    .buffer_unordered(IN_FLIGHT)
                    .collect()
                    .await
            }
        }
    }
}
