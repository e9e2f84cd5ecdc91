//! Redis access: one auto-reconnecting, multiplexed connection shared by every job, to a single
//! server, a Redis Cluster, or the primary Redis Sentinel names.
//!
//! Every Redis command of the daemon is here: the jobs, the runner, `status` and `demo` ask for
//! typed reads and writes and never see a connection.
//!
//! The redis crate's connections reconnect in the background but hand the failing command's
//! error back to its caller, so idempotent commands go through `Store::retry`. Its default
//! timeouts (1 s connect, 500 ms per reply) are too short for big pipelines; ours come from
//! `[redis]`. A cluster cannot run a pipeline across slots, nor a `SCAN` of the whole keyspace on
//! one node: `Store::batch` and [`KeyScan`] hide both differences.

mod clients;
mod error;
mod events;
mod handle;
mod lock;
mod orphans;
mod reads;
mod scan;
mod sentinel;
mod sets;
mod stream;

pub use clients::COMMAND_RETRIES;
pub use error::{StoreError, is_transient};
pub use events::KeyEvents;
pub use handle::Store;
pub use lock::{Fence, Fenced, Lock, hostname};
pub use orphans::{MissingPage, PageMembers, SCRIPT_PAGE_MAX};
pub use reads::CachedKey;
pub use scan::KeyScan;
pub use sets::{IndexEntry, SetChange};
pub use stream::{Consumer, GroupState, Request};
