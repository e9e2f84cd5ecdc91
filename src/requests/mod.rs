//! Warm requests: the app adds `ticker=T` to the stream `finance:warmer:requests` when it adds a
//! ticker to the watchlist or misses a key, and the daemon warms that ticker's stock, options and
//! earnings keys at once instead of at the next scheduled run.
//!
//! The replicas share the stream through one consumer group, so each entry is handled by one of
//! them. The tickers of the entries read together are warmed by one run of each warming job
//! (the runner's, with the same validation, refresh-ahead, provider limits and metrics as a
//! scheduled run, but no job lock: see `RunOptions::requested`). An entry is acknowledged once
//! its ticker has been warmed, or found invalid or not on the watchlist; entries a dead or hung
//! replica left pending are claimed by another after `requests.claim_after`.
//!
//! An empty stream is read again every `requests.poll_interval` rather than with a blocking
//! `XREADGROUP`: a blocked command would hold up every other command on the one multiplexed
//! connection the daemon shares, and a connection of its own would need its own reconnects
//! and failover handling on a single server, under Sentinel and on a Cluster. At the default
//! 100 ms that is ten cheap commands a second per replica.

mod keyspace;
mod worker;

use std::time::Duration;

use tokio::time::Instant;

use crate::jobs::JobName;
use crate::keys;
use crate::runner::Runner;
use crate::shutdown::Shutdown;
use crate::store::hostname;
use worker::Worker;

/// How often entries pending at other consumers are looked for, and consumers long gone
/// forgotten.
const CLAIM_EVERY: Duration = Duration::from_secs(10);
/// After a failed read (Redis down) the next waits twice as long as the last, up to this; the
/// store logs the outage itself, once.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The warming jobs a request runs: those enabled.
fn kinds(runner: &Runner) -> Vec<JobName> {
    let settings = &runner.shared().settings;
    [JobName::Stock, JobName::Options, JobName::Earnings]
        .into_iter()
        .filter(|job| job.settings(settings).enabled)
        .collect()
}

/// Reads and warms requests until shutdown. Returns at once when requests are disabled or no
/// warming job is enabled.
pub async fn serve(runner: Runner, shutdown: Shutdown) {
    let settings = runner.shared().settings.requests.clone();
    let kinds = kinds(&runner);
    if !settings.enabled || kinds.is_empty() {
        tracing::info!("warm requests are off (requests.enabled, or no warming job enabled)");
        return;
    }
    let consumer = format!("{}-{}", hostname(), std::process::id());
    tracing::info!(stream = keys::REQUESTS, group = %settings.group, consumer = %consumer, "serving warm requests");
    let worker = Worker {
        runner,
        settings,
        consumer,
        kinds,
    };
    if worker.settings.keyspace_notifications {
        tokio::join!(
            consume(&worker, &shutdown),
            keyspace::follow(&worker, &shutdown)
        );
    } else {
        consume(&worker, &shutdown).await;
    }
}

/// Reads the stream (and claims what others left) until shutdown, warming what it reads.
async fn consume(worker: &Worker, shutdown: &Shutdown) {
    let poll = worker.settings.poll_interval.get();
    let (mut last_claim, mut wait) = (None::<Instant>, poll);
    // The last refusal logged: a server that refuses a command (an ACL without the stream's
    // commands) is said once, not ten times a second; an outage the store logs itself.
    let mut refused: Option<String> = None;
    loop {
        let claim_due = last_claim.is_none_or(|at| at.elapsed() >= CLAIM_EVERY);
        let read = match claim_due {
            true => {
                last_claim = Some(Instant::now());
                worker.claim().await
            }
            false => worker.read().await,
        };
        match read {
            Ok(entries) if !entries.is_empty() => {
                (wait, refused) = (poll, None);
                worker.handle(entries, shutdown).await;
                continue;
            }
            Ok(_) => (wait, refused) = (poll, None),
            Err(e) => {
                let message = e.to_string();
                if !e.is_unreachable() && refused.as_ref() != Some(&message) {
                    tracing::warn!(error = %message, "cannot read warm requests; trying again until Redis allows it");
                    refused = Some(message);
                }
                wait = (wait * 2).min(RETRY_MAX);
            }
        }
        tokio::select! {
            _ = shutdown.requested() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
