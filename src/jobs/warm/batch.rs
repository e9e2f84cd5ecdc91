//! Values on their way to the cache: serialised as they arrive into the open write batch, which
//! closes at `scheduler.batch_size` values or `scheduler.write_batch_bytes`, whichever comes
//! first, and is then written whole through the run's lock fence while the fetches go on.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;

use chrono::NaiveDate;
use tokio::sync::mpsc;

use super::lifetime::{QuoteTtls, horizon, lifetime};
use crate::calendar::Calendar;
use crate::codec;
use crate::jobs::job::{JobError, JobName, RunContext, RunReport};
use crate::keys::{self, CacheKind};
use crate::market::Placement;
use crate::metrics;
use crate::model::{Earnings, OptionsChain, StockQuote};
use crate::provider::{Fetched, TickerResult};
use crate::store::{COMMAND_RETRIES, Fenced};
use crate::ticker::Ticker;
use crate::ttl::QuoteKind;

/// A value ready for the cache.
pub(super) enum CacheValue {
    /// Boxed: a quote is several times the size of the other variants' inline parts.
    Stock(Box<StockQuote>),
    Options(OptionsChain),
    Earnings(Earnings),
}

/// What a value's TTL is decided from when its batch closes (the serialised value is all that
/// is kept of it).
enum TtlBasis<'c> {
    /// The quote rules on this market's clock.
    Quote(&'c Calendar),
    /// A chain without expiries.
    OptionsNone,
    /// Until the earnings date, on this market's calendar.
    Earnings(&'c Calendar, Option<NaiveDate>),
}

impl CacheValue {
    /// The market the value's keys follow: where `placement` put its ticker, or, for a quote
    /// placed by default, where its own metadata lists it. A quote records that market.
    fn settle<'c>(&mut self, ctx: &'c RunContext, placement: Placement<'c>) -> TtlBasis<'c> {
        let placed = placement.calendar;
        match self {
            CacheValue::Stock(quote) => {
                let calendar = match placement.source.by_name() {
                    true => placed,
                    false => ctx
                        .shared
                        .markets
                        .by_listing(&quote.listing)
                        .map_or(placed, |p| p.calendar),
                };
                quote.calendar = Some(calendar.id().to_owned());
                TtlBasis::Quote(calendar)
            }
            CacheValue::Options(chain) if chain.expirations.is_empty() => TtlBasis::OptionsNone,
            CacheValue::Options(_) => TtlBasis::Quote(placed),
            CacheValue::Earnings(e) => TtlBasis::Earnings(placed, e.earnings_date),
        }
    }

    fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        // Sized near the value's JSON (a contract is about 180 bytes), so a chain is written
        // once instead of copied at every doubling of its buffer.
        let estimate = match self {
            CacheValue::Options(v) => {
                let contracts: usize = v.chains.iter().map(|c| c.calls.len() + c.puts.len()).sum();
                256 + 192 * contracts
            }
            CacheValue::Stock(_) | CacheValue::Earnings(_) => 512,
        };
        let mut json = Vec::with_capacity(estimate);
        match self {
            CacheValue::Stock(v) => serde_json::to_writer(&mut json, v)?,
            CacheValue::Options(v) => v.write_json(&mut json),
            CacheValue::Earnings(v) => serde_json::to_writer(&mut json, v)?,
        }
        Ok(json)
    }
}

/// One value of the open batch: its key, its stored bytes and what its TTL follows.
struct Pending<'c> {
    key: String,
    stored: Vec<u8>,
    basis: TtlBasis<'c>,
    market: &'c str,
}

/// `SETEX` arguments per key: the TTL in seconds and the stored value.
pub(super) type Writes = Vec<(String, Vec<Vec<u8>>)>;

/// The batch being filled.
pub(super) struct WriteBatch<'c> {
    job: JobName,
    kind: CacheKind,
    quote_kind: QuoteKind,
    values: Vec<Pending<'c>>,
    bytes: usize,
    max_values: usize,
    max_bytes: usize,
}

impl<'c> WriteBatch<'c> {
    pub(super) fn new(ctx: &RunContext, job: JobName, quote_kind: QuoteKind) -> WriteBatch<'c> {
        let scheduler = &ctx.shared.settings.scheduler;
        WriteBatch {
            job,
            kind: job.cache_kind().expect("a warming job"),
            quote_kind,
            values: Vec::new(),
            bytes: 0,
            max_values: scheduler.batch_size as usize,
            max_bytes: usize::try_from(scheduler.write_batch_bytes.0).unwrap_or(usize::MAX),
        }
    }

    /// Counts one ticker's result and adds a found value to the batch; the batch's writes when
    /// that closed it.
    pub(super) fn add(
        &mut self,
        ctx: &'c RunContext,
        ticker: &Ticker,
        placement: Placement<'c>,
        result: TickerResult<CacheValue>,
        report: &mut RunReport,
    ) -> Option<Writes> {
        let mut value = match result {
            Ok(Fetched::Found(value)) => value,
            Ok(Fetched::Unknown) => {
                report.unknown += 1;
                tracing::debug!(ticker = %ticker, "unknown symbol; nothing written");
                return None;
            }
            Err(e) => {
                report.note_failure(format!("{ticker}: {e}"));
                return None;
            }
        };
        let settings = &ctx.shared.settings;
        if let (CacheValue::Options(chain), Some(window)) =
            (&mut value, settings.jobs.options.strike_window)
        {
            chain.keep_strikes_within(window.0);
        }
        let key = keys::cache(self.kind, ticker);
        let basis = value.settle(ctx, placement);
        let json = match value.to_json() {
            Ok(json) => json,
            Err(e) => {
                report.note_failure(format!("{ticker}: cannot serialise: {e}"));
                return None;
            }
        };
        drop(value);
        let stored = match codec::encode(&settings.cache, json) {
            Ok(stored) => stored,
            Err(too_large) => {
                tracing::warn!(key = %key, size = too_large.size, limit = too_large.limit, "value too large; not written, the previous value stays");
                report.too_large += 1;
                report.note_failure(format!("{ticker}: {too_large}"));
                return None;
            }
        };
        let market = match basis {
            TtlBasis::Quote(c) | TtlBasis::Earnings(c, _) => c.id(),
            TtlBasis::OptionsNone => placement.calendar.id(),
        };
        self.bytes += key.len() + stored.len();
        self.values.push(Pending {
            key,
            stored,
            basis,
            market,
        });
        (self.values.len() >= self.max_values || self.bytes >= self.max_bytes)
            .then(|| self.close(ctx))
            .flatten()
    }

    /// Closes the batch: every value's TTL decided now, on its own market's clock (TTLs count
    /// from when values are written, not from when they were fetched). `None` when empty.
    pub(super) fn close(&mut self, ctx: &RunContext) -> Option<Writes> {
        if self.values.is_empty() {
            return None;
        }
        let now = ctx.options.now();
        let horizon = horizon(ctx, self.job, now);
        let policy = &ctx.shared.policy;
        let mut quote_ttls = QuoteTtls::new(self.quote_kind, now);
        let mut by_market: BTreeMap<&str, u64> = BTreeMap::new();
        let mut writes = Vec::with_capacity(self.values.len());
        for v in self.values.drain(..) {
            let ttl = match v.basis {
                TtlBasis::Quote(calendar) => quote_ttls.on(policy, calendar),
                TtlBasis::OptionsNone => policy.options_none(),
                TtlBasis::Earnings(calendar, date) => policy.earnings.ttl(calendar, now, date),
            };
            let ttl = lifetime(ctx, &v.key, ttl, now, horizon);
            *by_market.entry(v.market).or_default() += 1;
            writes.push((
                v.key,
                vec![ttl.as_secs().max(1).to_string().into_bytes(), v.stored],
            ));
        }
        self.bytes = 0;
        for (market, values) in by_market {
            metrics::written_by_market(self.job.as_str(), market, values);
        }
        Some(writes)
    }
}

/// Writes the closed batches as they come, each with one fenced `SETEX` batch (it lands whole,
/// or not at all once another run holds the lock); the number of values written. Stops at the
/// first batch that cannot be written: dropping `batches` stops the fetching too.
pub(super) async fn write_all(
    ctx: &RunContext,
    mut batches: mpsc::Receiver<Writes>,
) -> Result<u64, JobError> {
    let mut written = 0;
    while let Some(writes) = batches.recv().await {
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
                written += n;
            }
            Fenced::LockLost => return Err(JobError::LockLost),
        }
    }
    Ok(written)
}
