//! The warming jobs (`stock`, `options`, `earnings`): watchlist in, cache keys out.
//!
//! A run is one pipeline. The watchlist streams in from `SSCAN` a page at a time; each page is
//! placed on its markets and stripped of the keys that are still fresh (refresh-ahead, one
//! pipelined `PTTL` read). The due tickers go to the providers with as many requests in flight
//! as the provider chain allows (its providers' own `max_concurrency` and rate limits are the
//! only bounds): a request starts as soon as one finishes, across page edges, while the next
//! page is read. Each value that comes back valid is serialised into the open write batch,
//! which closes at `scheduler.batch_size` values or `scheduler.write_batch_bytes`, and is
//! written with one `SETEX` batch through the run's lock fence (a batch lands whole, or not at
//! all once another run holds the lock), its TTLs on each value's own market's clock, while
//! the fetches go on. A ticker that failed writes nothing, so its last good value stays until
//! it expires: stale beats wrong.
//!
//! Memory is bounded by bytes, not by the watchlist: the answers in flight, the batch being
//! filled, one closed batch waiting and one being written.

mod batch;
mod lifetime;
mod page;

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::jobs::job::{Job, JobError, JobName, RunContext, RunReport};
use crate::keys::{self, CacheKind};
use crate::provider::TickerResult;
use crate::ttl::QuoteKind;
use batch::{CacheValue, WriteBatch, Writes};
use page::{Due, Pages};

/// Closed write batches waiting while another is written. One is enough for the fetches never
/// to wait on Redis unless Redis is the slower side; each more costs a batch of memory.
const WRITES_WAITING: usize = 1;

pub struct WarmJob {
    kind: CacheKind,
}

impl WarmJob {
    pub fn new(kind: CacheKind) -> WarmJob {
        WarmJob { kind }
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
        let mut report = RunReport::default();
        if ctx.progress.watched() {
            ctx.progress.set_total(self.expected(ctx).await?);
        }
        let (to_writer, batches) = mpsc::channel(WRITES_WAITING);
        let (fetched, written) = tokio::join!(
            self.fetch_all(ctx, to_writer, &mut report),
            batch::write_all(ctx, batches)
        );
        // A failed write is the cause when both stopped: the fetching stops when its batches
        // have nowhere to go.
        report.written = written?;
        fetched?;
        Ok(report)
    }
}

impl WarmJob {
    /// The quote rules this job's keys follow (earnings keys have their own).
    fn quote_kind(&self) -> QuoteKind {
        match self.kind {
            CacheKind::Options => QuoteKind::Options,
            CacheKind::Stock | CacheKind::Earnings => QuoteKind::Stock,
        }
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

    /// Reads the watchlist, fetches what is due and hands the closed write batches to the
    /// writer, until the watchlist ends, the run is told to stop, or the writer has failed.
    async fn fetch_all(
        &self,
        ctx: &RunContext,
        to_writer: mpsc::Sender<Writes>,
        report: &mut RunReport,
    ) -> Result<(), JobError> {
        let providers = &ctx.shared.providers;
        // Tickers per fetch: a quote request carries a batch of them.
        let per_fetch = match self.kind {
            CacheKind::Stock => providers.quote_batch().max(1),
            CacheKind::Options | CacheKind::Earnings => 1,
        };
        // As many fetches as the chain's providers take requests at once: each fetch holds one
        // request slot at a time, so every slot is kept busy, and none waits for a slot (so on
        // shutdown nothing queued starts a request after the signal; measured, twice as many
        // fetches were no faster).
        let window = match self.kind {
            CacheKind::Stock => providers.stock_concurrency(),
            CacheKind::Options => providers.options_concurrency(),
            CacheKind::Earnings => providers.earnings_concurrency(),
        }
        .max(1);
        let mut pages = Pages::new(ctx, self.name(), self.quote_kind());
        let mut open = WriteBatch::new(ctx, self.name(), self.quote_kind());
        let mut fetching = FuturesUnordered::new();
        loop {
            while fetching.len() < window {
                if pages.queued() < per_fetch && !pages.done() {
                    pages.read_next(ctx, report).await?;
                    continue;
                }
                let due = pages.take(per_fetch);
                if due.is_empty() {
                    break;
                }
                fetching.push(self.fetch(ctx, due));
            }
            let Some(results) = fetching.next().await else {
                break;
            };
            ctx.progress.advance(results.len() as u64, report.failed);
            for (due, result) in results {
                let closed = open.add(ctx, &due.ticker, due.placement, result, report);
                if let Some(writes) = closed
                    && to_writer.send(writes).await.is_err()
                {
                    // The writer failed; its error is the run's.
                    return Ok(());
                }
            }
        }
        if let Some(writes) = open.close(ctx) {
            // A failed writer has its own error to report.
            let _ = to_writer.send(writes).await;
        }
        pages.finish(report);
        Ok(())
    }

    /// One request's worth of tickers through the kind's provider chain, in their page's span.
    async fn fetch<'c>(
        &self,
        ctx: &'c RunContext,
        due: Vec<Due<'c>>,
    ) -> Vec<(Due<'c>, TickerResult<CacheValue>)> {
        let providers = &ctx.shared.providers;
        let span = due[0].span.clone();
        async move {
            match self.kind {
                CacheKind::Stock => {
                    let tickers: Vec<_> = due.iter().map(|d| d.ticker.clone()).collect();
                    let mut answers = providers.quotes(&tickers).await;
                    due.into_iter()
                        .filter_map(|d| {
                            let at = answers.iter().position(|(t, _)| *t == d.ticker)?;
                            let result = answers.swap_remove(at).1;
                            Some((d, result.map(|f| f.map(|q| CacheValue::Stock(Box::new(q))))))
                        })
                        .collect()
                }
                CacheKind::Options => {
                    let d = due.into_iter().next().expect("one ticker");
                    let result = providers.options(&d.ticker).await;
                    vec![(d, result.map(|f| f.map(CacheValue::Options)))]
                }
                CacheKind::Earnings => {
                    let d = due.into_iter().next().expect("one ticker");
                    // Earnings dates are days in the listing's own zone.
                    let zone = d.placement.calendar.timezone();
                    let result = providers.earnings(&d.ticker, zone).await;
                    vec![(d, result.map(|f| f.map(CacheValue::Earnings)))]
                }
            }
        }
        .instrument(span)
        .await
    }
}
