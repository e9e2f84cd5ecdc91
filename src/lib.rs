//! finance-cache-warmer keeps a finance app's Redis cache of stock quotes, options chains and
//! earnings dates warm, so the app never waits on a market-data API.
//!
//! # Layout
//! - [`config`]: typed settings from defaults, a TOML file and `FCW_*` variables, validated.
//! - [`telemetry`]: JSON or pretty logs on stderr, set up once, and [`traces`] over OTLP;
//!   [`tls`]: rustls' crypto provider, chosen once for every TLS user.
//! - [`store`]: every Redis command: the shared, auto-reconnecting connection, its retry
//!   policy, typed reads and writes, and the job locks with their fences.
//! - [`keys`]: the Redis key schema; [`ticker`]: the validated ticker symbol; [`watchlist`]:
//!   `finance:watchlist` read in chunks, validated, de-duplicated and sharded.
//! - [`shutdown`]: the one SIGINT/SIGTERM signal passed down to everything.
//! - [`cli`] and [`commands`]: the commands and what each does, a file per command (the offline
//!   demo among them); [`startup`] wires the parts every run shares; `main.rs` only calls them.
//! - [`output`]: command output that ends quietly when its reader closes (`| head`).
//! - [`local_redis`]: a private `redis-server` child for `demo` and the tests.
//! - [`calendar`], [`ttl`]: market time (every market's sessions) and the TTL policy;
//!   [`market`]: which market a ticker is on.
//! - [`model`], [`codec`], [`provider`]: the cache format, how it is stored, and the
//!   market-data providers.
//! - [`jobs`], [`runner`], [`schedule`], [`scheduler`]: the jobs, how one run goes, cron
//!   schedules, and when jobs run; [`requests`]: the app's warm requests, warmed at once.
//! - [`status`], [`progress`]: what operators see (the runner keeps each job's last run in
//!   Redis for `status`).
//! - [`health`], [`server`], [`notify`], [`metrics`]: the scheduler's heartbeat, the health and
//!   metrics endpoint, systemd notifications, metrics, and [`push`]ing a `once` run's metrics to
//!   a Pushgateway.

pub mod calendar;
pub mod cli;
pub mod codec;
pub mod commands;
pub mod config;
pub mod health;
pub mod jobs;
pub mod keys;
pub mod local_redis;
pub mod market;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod output;
pub mod progress;
pub mod provider;
pub mod push;
pub mod requests;
pub mod runner;
pub mod schedule;
pub mod scheduler;
pub mod server;
pub mod shutdown;
pub mod startup;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod ticker;
pub mod tls;
pub mod traces;
pub mod ttl;
pub mod watchlist;
