//! `status`: is the cache warm, and if not, why. Read from Redis alone, so it works from any
//! machine and with no daemon running (the jobs may be CronJobs): each job's run record
//! ([`crate::runner::record`]), its lock, its schedule, and the cache's coverage of the watchlist.
//!
//! A job is healthy when it succeeded within two of its scheduled periods: its last success is
//! no older than the second fire time after it plus the job's timeout (the run started then has
//! had its full time to finish). Counting fire times rather than a fixed period keeps a
//! weekday-only schedule healthy over the weekend.

mod coverage;
mod export;
mod gather;
mod render;
mod report;

pub use coverage::*;
pub use export::*;
pub use gather::*;
pub use render::*;
pub use report::*;
