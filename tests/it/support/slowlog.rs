//! What a test's own `redis-server` was sent, read back from its slow log (with the threshold
//! at 0: every command clients sent, each with its arguments).

/// Logs every command from now on (`SLOWLOG`, threshold 0).
pub async fn log_every_command(c: &mut redis::aio::MultiplexedConnection) {
    log_commands_slower_than(c, 0, 100_000).await;
}

/// Logs, from now on, the commands that take more than `micros` of server time, the last `len`
/// of them, and empties the log.
pub async fn log_commands_slower_than(
    c: &mut redis::aio::MultiplexedConnection,
    micros: i64,
    len: i64,
) {
    for (name, value) in [
        ("slowlog-max-len", len),
        ("slowlog-log-slower-than", micros),
    ] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query_async(c)
            .await
            .unwrap();
    }
    let _: () = redis::cmd("SLOWLOG")
        .arg("RESET")
        .query_async(c)
        .await
        .unwrap();
}

/// One command in the slow log.
pub struct Logged {
    /// Its server time.
    #[allow(dead_code)] // read by the integrity bench, which shares these helpers
    pub micros: u64,
    /// The command and its arguments (Redis keeps the first 32, and says how many more).
    pub args: Vec<Vec<u8>>,
    /// `ip:port` of the client that sent it; `?:0` for a command a script ran.
    pub client: Vec<u8>,
}

/// Everything in the slow log, oldest last.
pub async fn slow_log(c: &mut redis::aio::MultiplexedConnection) -> Vec<Logged> {
    type Entry = (i64, i64, u64, Vec<Vec<u8>>, Vec<u8>, Vec<u8>);
    let log: Vec<Entry> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(-1)
        .query_async(c)
        .await
        .unwrap();
    log.into_iter()
        .map(|(_, _, micros, args, client, _)| Logged {
            micros,
            args,
            client,
        })
        .collect()
}

/// The commands clients sent since [`log_every_command`], each as its arguments; not those that
/// scripts ran.
pub async fn commands_sent(c: &mut redis::aio::MultiplexedConnection) -> Vec<Vec<Vec<u8>>> {
    slow_log(c)
        .await
        .into_iter()
        .filter(|e| e.client != b"?:0")
        .map(|e| e.args)
        .collect()
}
