//! The warming jobs (`stock`, `options`, `earnings`): watchlist in, cache keys out.
//!
//! Per batch of tickers: one pipelined `PTTL` read skips keys that are still fresh
//! (refresh-ahead), the providers are asked for the rest with bounded concurrency, and every
//! value that came back valid is written with one `SETEX` batch through the run's lock fence (a
//! batch lands whole, or not at all once another run holds the lock). A ticker that failed
//! writes nothing, so its last good value stays until it expires: stale beats wrong.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;

use crate::codec;
use crate::jobs::watchlist::WatchlistReader;
use crate::jobs::{Job, JobError, JobName, RunContext, RunReport};
use crate::keys::{self, CacheKind};
use crate::lock::Fenced;
use crate::model::{Earnings, OptionsChain, StockQuote};
use crate::provider::{Fetched, TickerResult};
use crate::store::COMMAND_RETRIES;
use crate::ticker::Ticker;
use crate::ttl::{Ttl, jitter_seed};

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
    Stock(StockQuote),
    Options(OptionsChain),
    Earnings(Earnings),
}

impl CacheValue {
    fn ttl(&self, ctx: &RunContext, now: DateTime<Utc>) -> Ttl {
        let (cal, policy) = (&ctx.shared.calendar, &ctx.shared.policy);
        match self {
            CacheValue::Stock(_) => policy.stock.ttl(cal, now),
            CacheValue::Options(_) => policy.options.ttl(cal, now),
            CacheValue::Earnings(e) => policy.earnings.ttl(cal, now, e.earnings_date),
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
        if !ctx.progress.is_hidden() {
            ctx.progress.set_length(self.expected(ctx).await?);
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
            let due = self.due(ctx, batch, &mut report).await?;
            let fetched = self.fetch(ctx, &due);
            let results = match writing.take() {
                Some(write) => {
                    let (results, written) = tokio::join!(fetched, write);
                    report.written += written?;
                    results
                }
                None => fetched.await,
            };
            writing = self.prepare_write(ctx, results, &mut report);
            ctx.progress.inc(batch_len);
            if report.failed > 0 {
                ctx.progress
                    .set_message(format!("{} failed", report.failed));
            }
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

/// The type of a key that holds something other than a cached value: the answer to `TYPE`
/// when it is not `string` (or `none`, a missing key), or `GET`'s `WRONGTYPE` refusal.
fn foreign_type(reply: &redis::Value) -> Option<&str> {
    match reply {
        redis::Value::ServerError(e) if e.code() == "WRONGTYPE" => Some("not a string"),
        redis::Value::SimpleString(t) if t != "string" && t != "none" => Some(t),
        _ => None,
    }
}

/// A batch write in flight, resolving to the number of values written.
type Write<'a> = std::pin::Pin<Box<dyn Future<Output = Result<u64, JobError>> + Send + 'a>>;

impl WarmJob {
    /// The tickers of `batch` that need fetching (all of them with `--force`).
    async fn due(
        &self,
        ctx: &RunContext,
        batch: Vec<Ticker>,
        report: &mut RunReport,
    ) -> Result<Vec<Ticker>, JobError> {
        let asked = batch.len();
        let due = if ctx.options.force {
            batch
        } else {
            self.not_fresh(ctx, batch, ctx.options.now()).await?
        };
        report.skipped_fresh += (asked - due.len()) as u64;
        report.fetched += due.len() as u64;
        Ok(due)
    }

    /// About how many tickers this run will go through, for its progress bar: the watchlist's
    /// size, or a shard's share of it.
    async fn expected(&self, ctx: &RunContext) -> Result<u64, JobError> {
        let members: u64 = ctx
            .shared
            .store
            .retry("SCARD watchlist", |mut conn| async move {
                redis::cmd("SCARD")
                    .arg(keys::WATCHLIST)
                    .query_async(&mut conn)
                    .await
            })
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
        report: &mut RunReport,
    ) -> Option<Write<'a>> {
        // TTLs are computed when the values are written, not when the batch started.
        let now = ctx.options.now();
        let mut writes = Vec::new();
        let settings = &ctx.shared.settings;
        let strike_window = settings.jobs.options.strike_window;
        for (ticker, result) in results {
            match result {
                Ok(Fetched::Found(mut value)) => {
                    if let (CacheValue::Options(chain), Some(window)) = (&mut value, strike_window)
                    {
                        chain.keep_strikes_within(window.0);
                    }
                    let key = keys::cache(self.kind, &ticker);
                    let ttl = value
                        .ttl(ctx, now)
                        .jittered(ctx.shared.policy.jitter, jitter_seed(&key, now));
                    let json = match value.to_json() {
                        Ok(json) => json,
                        Err(e) => {
                            report.note_failure(format!("{ticker}: cannot serialise: {e}"));
                            continue;
                        }
                    };
                    match codec::encode(&settings.cache, json) {
                        Ok(stored) => writes.push((
                            key,
                            vec![ttl.as_secs().max(1).to_string().into_bytes(), stored],
                        )),
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

    /// Drops tickers whose key still has more than `refresh_ahead` of the TTL the policy would
    /// give it now. For earnings, "now" means the TTL of the cached earnings date. A key of
    /// another type than a string (an `HSET` by someone else) is due: the write replaces it.
    async fn not_fresh(
        &self,
        ctx: &RunContext,
        batch: Vec<Ticker>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Ticker>, JobError> {
        let refresh_ahead = self.name().settings(&ctx.shared.settings).refresh_ahead;
        let keys: Vec<String> = batch.iter().map(|t| keys::cache(self.kind, t)).collect();
        // Per key: its PTTL, then its value (earnings, whose date decides the TTL) or its type.
        let second = if self.kind == CacheKind::Earnings {
            "GET"
        } else {
            "TYPE"
        };
        let cmds: Vec<redis::Cmd> = ["PTTL", second]
            .iter()
            .flat_map(|name| keys.iter().map(|k| redis::cmd(name).arg(k).to_owned()))
            .collect();
        let mut replies = ctx.shared.store.batch_each("PTTL batch", &cmds).await?;
        let seconds = replies.split_off(keys.len());
        let policy = &ctx.shared.policy;
        let cal = &ctx.shared.calendar;
        let mut due = Vec::with_capacity(batch.len());
        for ((ticker, key), (ttl, second)) in batch
            .into_iter()
            .zip(&keys)
            .zip(replies.into_iter().zip(seconds))
        {
            if let redis::Value::ServerError(e) = &second
                && foreign_type(&second).is_none()
            {
                // Refused for another reason than the type (an ACL, say): the run's problem.
                return Err(ctx.shared.store.refused("PTTL batch", e.clone()).into());
            }
            let remaining_ms: i64 = redis::from_redis_value(ttl).unwrap_or(-2);
            if let Some(kind) = foreign_type(&second) {
                tracing::warn!(key = %key, r#type = %kind, "a cache key holds another type than a string; it is refetched and overwritten");
                due.push(ticker);
                continue;
            }
            let full = match self.kind {
                CacheKind::Stock => policy.stock.ttl(cal, now),
                CacheKind::Options => policy.options.ttl(cal, now),
                CacheKind::Earnings => {
                    let cached = redis::from_redis_value::<Option<Vec<u8>>>(second)
                        .ok()
                        .flatten()
                        .and_then(|v| codec::decode(&v, codec::MAX_JSON_BYTES).ok())
                        .and_then(|v| serde_json::from_slice::<Earnings>(&v).ok());
                    match cached {
                        Some(e) => policy.earnings.ttl(cal, now, e.earnings_date),
                        // Unreadable or missing: refresh.
                        None => {
                            due.push(ticker);
                            continue;
                        }
                    }
                }
            };
            let threshold = full.duration.mul_f64(refresh_ahead);
            if remaining_ms < 0 || Duration::from_millis(remaining_ms as u64) <= threshold {
                due.push(ticker);
            }
        }
        Ok(due)
    }

    async fn fetch(
        &self,
        ctx: &RunContext,
        due: &[Ticker],
    ) -> Vec<(Ticker, TickerResult<CacheValue>)> {
        let providers = &ctx.shared.providers;
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
                    .map(|(t, r)| (t, r.map(|f| f.map(CacheValue::Stock))))
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
                        let r = providers.earnings(&t).await;
                        (t, r.map(|f| f.map(CacheValue::Earnings)))
                    })
                    .buffer_unordered(IN_FLIGHT)
                    .collect()
                    .await
            }
        }
    }
}
