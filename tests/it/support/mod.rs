//! Helpers shared by the integration tests (and the benchmarks, which include this folder):
//! the binary under test, throwaway `redis-server`s and Clusters, recorded data, and local
//! upstreams.

mod binary;
mod cluster;
mod data;
mod sentinel;
mod servers;
mod slowlog;
mod upstream;

pub use binary::*;
pub use cluster::*;
pub use data::*;
pub use sentinel::*;
pub use servers::*;
pub use slowlog::*;
pub use upstream::*;
