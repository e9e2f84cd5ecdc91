//! How a Redis command fails, and which failures are worth retrying.

use redis::RedisError;

/// A Redis failure, naming the server (never its password).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A client that cannot be built from the settings; the message names the key.
    #[error("{0}")]
    Client(String),
    #[error("cannot connect to Redis at {address}: {source}")]
    Unreachable { address: String, source: RedisError },
    #[error("Redis at {address}: {what} failed: {source}")]
    Command {
        address: String,
        what: &'static str,
        source: RedisError,
    },
}

impl StoreError {
    /// True when the server could not be reached at all (exit code 3), as opposed to a command
    /// the server refused.
    pub fn is_unreachable(&self) -> bool {
        match self {
            StoreError::Unreachable { .. } => true,
            StoreError::Command { source, .. } => is_transient(source),
            StoreError::Client(_) => false,
        }
    }
}

/// A failure of the connection rather than of the command. `READONLY` counts: the server was
/// a primary and has been demoted (a failover), so the data is to be written elsewhere, which
/// under Sentinel the next attempt finds.
pub fn is_transient(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
}

/// `NOSCRIPT`: the server has lost its scripts (a restart or a failover empties the cache), so
/// the script is loaded and the call sent again.
pub(super) fn is_no_script(e: &RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}
