//! What a test's own `redis-server` was sent, read back from its slow log with the threshold
//! at 0: the commands clients sent, each with its arguments.

/// Logs every command from now on (`SLOWLOG`, threshold 0).
pub async fn log_every_command(c: &mut redis::aio::MultiplexedConnection) {
    for (name, value) in [("slowlog-max-len", 100_000), ("slowlog-log-slower-than", 0)] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query_async(c)
            .await
            .unwrap();
    }
}

/// The commands clients sent since [`log_every_command`], each as its arguments; not those that
/// scripts ran (logged as from client `?:0`).
pub async fn commands_sent(c: &mut redis::aio::MultiplexedConnection) -> Vec<Vec<Vec<u8>>> {
    type Entry = (i64, i64, i64, Vec<Vec<u8>>, Vec<u8>, Vec<u8>);
    let log: Vec<Entry> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(-1)
        .query_async(c)
        .await
        .unwrap();
    log.into_iter()
        .filter(|e| e.4 != b"?:0")
        .map(|e| e.3)
        .collect()
}
