//! The daemon's scheduler: one small loop per enabled job, firing on its cron schedule read in
//! the exchange's time zone.
//!
//! croner computes each next fire time in the zone itself, so "09:35 on weekdays" stays 09:35 New
//! York time across DST changes (tokio-cron-scheduler 0.15 keeps the UTC offset it saw when the
//! job was created, and starts overlapping runs). A run is a task of its own: a tick that finds
//! the previous run still going is skipped and counted, never stacked.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use tokio::task::JoinHandle;

use std::sync::Arc;

use crate::health::Health;
use crate::jobs::{self, JobName, RunOptions};
use crate::metrics;
use crate::notify;
use crate::runner::Runner;
use crate::schedule::next_fire;
use crate::shutdown::Shutdown;

/// Runs every enabled job on its schedule until shutdown, then waits for the runs in flight
/// (each bounded by `scheduler.shutdown_grace`). Its own loop beats `health` and the systemd
/// watchdog: if the runtime wedges or a job loop dies, the beats stop and the service manager
/// (or a liveness probe) restarts the process.
pub async fn run(runner: Runner, shutdown: Shutdown, health: Arc<Health>) {
    let settings = &runner.shared().settings;
    let tz = settings.market.timezone.0;
    let mut loops = Vec::new();
    for job in JobName::ALL {
        let job_settings = job.settings(settings);
        if !job_settings.enabled {
            tracing::info!(job = %job, "disabled (jobs.{job}.enabled = false)");
            continue;
        }
        let (cron, run_on_start) = (
            job_settings.schedule.cron().clone(),
            job_settings.run_on_start,
        );
        tracing::info!(job = %job, schedule = job_settings.schedule.as_str(), timezone = tz.name(), next = next_fire(&cron, tz, Utc::now()).map(crate::model::rfc3339), "scheduled");
        let runner = runner.clone();
        let start = move || -> JoinHandle<()> {
            let runner = runner.clone();
            tokio::spawn(async move {
                runner.run(jobs::named(job), RunOptions::default()).await;
            })
        };
        loops.push(tokio::spawn(job_loop(
            job,
            cron,
            tz,
            run_on_start,
            shutdown.clone(),
            Arc::new(Utc::now),
            start,
        )));
    }
    health.beat();
    notify::ready();
    loop {
        tokio::select! {
            _ = shutdown.requested() => break,
            _ = tokio::time::sleep(health.interval()) => {}
        }
        if loops.iter().any(|l| l.is_finished()) {
            tracing::error!(
                "a job loop ended unexpectedly; no more heartbeats, so the process gets restarted"
            );
            shutdown.requested().await;
            break;
        }
        health.beat();
        notify::watchdog();
    }
    notify::stopping();
    for handle in loops {
        let _ = handle.await;
    }
}

/// The wall clock fire times are read on: [`Utc::now`] in the daemon, a steppable one in tests.
pub type WallClock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// How often a waiting job loop reads the wall clock: a step of it, either way, is noticed
/// within this long.
const CLOCK_CHECK: std::time::Duration = std::time::Duration::from_secs(1);
/// A wall clock this far behind where the monotonic clock says it should be has been stepped
/// back (an NTP step, an operator's `date -s`), not merely slewed.
const CLOCK_STEP: chrono::Duration = chrono::Duration::seconds(1);

/// One job's loop: a run on start if asked, then one per fire time. A tick that finds the last
/// run still going is skipped, not stacked. Fire times follow the wall clock: when it jumps
/// forward the passed ones are skipped, not caught up; when it moves back they are recomputed
/// from the new reading (so slots already run may run again), rather than waiting out the step.
pub async fn job_loop<F>(
    job: JobName,
    cron: Cron,
    tz: Tz,
    run_on_start: bool,
    shutdown: Shutdown,
    clock: WallClock,
    start: F,
) where
    F: Fn() -> JoinHandle<()>,
{
    let mut current = run_on_start.then(&start);
    // The last reading of the wall clock, and when it was taken by the monotonic one.
    let (mut wall, mut read_at) = (clock(), tokio::time::Instant::now());
    let mut next = next_fire(&cron, tz, wall);
    loop {
        let Some(at) = next else {
            tracing::warn!(job = %job, "the schedule has no future fire time; the job stops being scheduled");
            break;
        };
        let wait = (at - wall).to_std().unwrap_or_default().min(CLOCK_CHECK);
        tokio::select! {
            _ = shutdown.requested() => break,
            _ = tokio::time::sleep(wait) => {}
        }
        let now = clock();
        let expected = wall + chrono::Duration::from_std(read_at.elapsed()).unwrap_or_default();
        (wall, read_at) = (now, tokio::time::Instant::now());
        if now + CLOCK_STEP < expected {
            tracing::warn!(job = %job, back_s = (expected - now).num_seconds(), "the wall clock moved back; fire times are recomputed from it");
            next = next_fire(&cron, tz, now);
            continue;
        }
        if now < at {
            continue;
        }
        if current.as_ref().is_some_and(|run| !run.is_finished()) {
            metrics::run_skipped_overlap(job.as_str());
            tracing::info!(job = %job, tick = %at, "the previous run is still going; this tick is skipped");
        } else {
            current = Some(start());
        }
        // Occurrences that passed while we were away are skipped, not caught up.
        next = next_fire(&cron, tz, at.max(now));
    }
    if let Some(run) = current {
        let _ = run.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Schedule;
    use std::sync::Mutex;
    use std::time::Duration;

    /// A wall clock that runs with tokio's (paused) clock from `base`, shifted by what the test
    /// steps it by.
    fn steppable(base: DateTime<Utc>) -> (WallClock, Arc<Mutex<chrono::Duration>>) {
        let step = Arc::new(Mutex::new(chrono::Duration::zero()));
        let started = tokio::time::Instant::now();
        let shift = step.clone();
        let clock: WallClock = Arc::new(move || {
            base + *shift.lock().unwrap() + chrono::Duration::from_std(started.elapsed()).unwrap()
        });
        (clock, step)
    }

    /// Runs an every-second job loop on `clock`, recording the wall time of each run it starts.
    fn every_second(clock: WallClock, shutdown: Shutdown) -> Arc<Mutex<Vec<DateTime<Utc>>>> {
        let fired = Arc::new(Mutex::new(Vec::new()));
        let (runs, now) = (fired.clone(), clock.clone());
        let start = move || {
            runs.lock().unwrap().push(now());
            tokio::spawn(async {})
        };
        let cron = Schedule::parse("* * * * * *").unwrap().cron().clone();
        let tz = chrono_tz::America::New_York;
        tokio::spawn(job_loop(
            JobName::Stock,
            cron,
            tz,
            false,
            shutdown,
            clock,
            start,
        ));
        fired
    }

    #[tokio::test(start_paused = true)]
    async fn a_wall_clock_stepped_back_does_not_stall_the_schedule() {
        let (clock, step) = steppable(utc("2026-12-02T15:00:00.500Z"));
        let shutdown = Shutdown::default();
        let fired = every_second(clock, shutdown.clone());
        tokio::time::sleep(Duration::from_millis(3_100)).await;
        assert_eq!(fired.lock().unwrap().len(), 3);
        // NTP steps the clock back a minute: the job goes on firing every second, re-running
        // slots of the repeated minute, instead of waiting the minute out.
        *step.lock().unwrap() = chrono::Duration::seconds(-60);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let runs = fired.lock().unwrap().clone();
        assert!(runs.len() >= 3 + 4, "{runs:?}");
        assert!(runs[3] < utc("2026-12-02T15:00:00Z"), "{runs:?}");
        shutdown.trigger(crate::shutdown::Signal::Terminate);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wall_clock_stepped_forward_skips_the_passed_slots_and_goes_on() {
        let (clock, step) = steppable(utc("2026-12-02T15:00:00.500Z"));
        let shutdown = Shutdown::default();
        let fired = every_second(clock, shutdown.clone());
        tokio::time::sleep(Duration::from_millis(2_100)).await;
        *step.lock().unwrap() = chrono::Duration::hours(1);
        tokio::time::sleep(Duration::from_millis(3_000)).await;
        let runs = fired.lock().unwrap().clone();
        // Two before, then one per second from 16:00: the hour in between is not caught up.
        assert!((4..=6).contains(&runs.len()), "{runs:?}");
        assert!(runs[2] >= utc("2026-12-02T16:00:00Z"), "{runs:?}");
        shutdown.trigger(crate::shutdown::Signal::Terminate);
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn new_york_schedules_keep_new_york_time_across_both_2026_dst_changes() {
        let ny = chrono_tz::America::New_York;
        let weekdays_0935 = Schedule::parse("0 35 9 * * Mon-Fri").unwrap();
        // Friday before spring forward (EST, UTC-5) -> Monday after (EDT, UTC-4).
        assert_eq!(
            next_fire(weekdays_0935.cron(), ny, utc("2026-03-06T15:00:00Z")),
            Some(utc("2026-03-09T13:35:00Z"))
        );
        assert_eq!(
            next_fire(weekdays_0935.cron(), ny, utc("2026-03-05T15:00:00Z")),
            Some(utc("2026-03-06T14:35:00Z"))
        );
        // Friday before fall back (EDT) -> Monday after (EST).
        assert_eq!(
            next_fire(weekdays_0935.cron(), ny, utc("2026-10-30T14:00:00Z")),
            Some(utc("2026-11-02T14:35:00Z"))
        );
        assert_eq!(
            next_fire(weekdays_0935.cron(), ny, utc("2026-10-29T14:00:00Z")),
            Some(utc("2026-10-30T13:35:00Z"))
        );
        // Every five minutes straight through the changes: never a gap of an hour, never twice.
        let five = Schedule::parse("0 */5 * * * *").unwrap();
        for (from, to) in [
            ("2026-03-08T06:30:00Z", "2026-03-08T07:30:00Z"),
            ("2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z"),
        ] {
            let mut t = utc(from);
            while t < utc(to) {
                let next = next_fire(five.cron(), ny, t).unwrap();
                assert_eq!(next - t, chrono::Duration::minutes(5), "after {t}");
                t = next;
            }
        }
        // 01:30 daily on the fall-back day fires once (01:30 happens twice on the wall clock).
        let daily_0130 = Schedule::parse("0 30 1 * * *").unwrap();
        let first = next_fire(daily_0130.cron(), ny, utc("2026-11-01T04:00:00Z")).unwrap();
        let second = next_fire(daily_0130.cron(), ny, first).unwrap();
        assert_eq!(first, utc("2026-11-01T05:30:00Z"));
        assert_eq!(second, utc("2026-11-02T06:30:00Z"));
        // 02:30 does not exist on the spring-forward day: it runs just after the gap, once.
        let daily_0230 = Schedule::parse("0 30 2 * * *").unwrap();
        let spring = next_fire(daily_0230.cron(), ny, utc("2026-03-08T05:00:00Z")).unwrap();
        assert!(
            spring >= utc("2026-03-08T07:00:00Z") && spring <= utc("2026-03-08T07:30:00Z"),
            "{spring}"
        );
        assert_eq!(
            next_fire(daily_0230.cron(), ny, spring),
            Some(utc("2026-03-09T06:30:00Z"))
        );
    }
}
