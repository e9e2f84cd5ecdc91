//! The integration tests, one binary with a module per area (linking the crate once, not once
//! per file). Each test starts what it needs (a `redis-server`, a Cluster, a local upstream
//! serving recorded answers) on free ports, and runs the real binary or the library against it.

mod support;

mod calendar;
mod chaos;
mod cli;
mod cluster;
mod config;
mod console;
mod deploy;
mod footprint;
mod freshness;
mod integrity;
mod jobs;
mod layering;
mod markets;
mod ops;
mod parsers_fuzz;
mod providers;
mod redis_access;
mod requests;
mod runner;
mod security;
mod sentinel;
mod status;
mod ttl;
