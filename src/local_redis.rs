//! A private `redis-server` child process on a free loopback port, with no persistence.
//!
//! `demo` runs against one so it never touches a real server, and the test suite uses the same
//! code to own servers it can stop, restart and configure (TLS, ACL users) at will. The child is
//! killed and reaped when the handle is dropped, so a panicking test or an interrupted demo
//! leaves neither a running server nor a zombie (`<defunct>`) behind, even where no init reaps
//! orphans (a container whose PID 1 is the program itself).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a fresh `redis-server` may take to log that it is ready; it normally takes ~10 ms.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Polling interval while waiting for that line.
const READY_POLL: Duration = Duration::from_millis(10);
/// Attempts at finding a free port: another process may take the one we picked before the
/// child binds it.
const PORT_ATTEMPTS: usize = 5;

/// TLS material for a `rediss://` server: its certificate and key, and the CA clients trust.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// How to start the child.
#[derive(Debug, Clone)]
pub struct LocalRedisOptions {
    /// The `redis-server` binary; a bare name is looked up on `PATH`.
    pub binary: PathBuf,
    /// Serve TLS only (on the chosen port) when set.
    pub tls: Option<TlsFiles>,
    /// More `--name value` arguments, e.g. `["--requirepass", "secret"]`.
    pub extra_args: Vec<String>,
}

impl Default for LocalRedisOptions {
    fn default() -> Self {
        LocalRedisOptions {
            binary: PathBuf::from("redis-server"),
            tls: None,
            extra_args: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LocalRedisError {
    #[error(
        "cannot start {} ({source}); install Redis (e.g. `apt-get install redis-server`) or pass a Redis URL",
        binary.display()
    )]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot prepare a directory for redis-server: {0}")]
    Io(#[from] std::io::Error),
    #[error("redis-server did not become ready on port {port}: {log_tail}")]
    NotReady { port: u16, log_tail: String },
}

/// A running (or stopped) private `redis-server`.
pub struct LocalRedis {
    options: LocalRedisOptions,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl LocalRedis {
    /// Starts a server on a free port and waits until it accepts connections.
    pub async fn start(options: LocalRedisOptions) -> Result<LocalRedis, LocalRedisError> {
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            let dir = std::env::temp_dir().join(format!("fcw-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let mut server = LocalRedis {
                options: options.clone(),
                port,
                dir,
                child: None,
            };
            match server.spawn().await {
                Ok(()) => return Ok(server),
                Err(e @ LocalRedisError::Spawn { .. }) => return Err(e),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.expect("at least one attempt was made"))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL a client uses: `redis://127.0.0.1:PORT/0`, or `rediss://localhost:PORT/0` for TLS
    /// (the certificate names `localhost`).
    pub fn url(&self) -> String {
        match self.options.tls {
            Some(_) => format!("rediss://localhost:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server (as a crash would) and reaps it. SIGKILL ends even a paused (SIGSTOP)
    /// server at once, so the wait is a matter of milliseconds.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            kill_and_reap(child);
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers, as a stuck server.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .arg(which)
                .arg(pid.to_string())
                .status();
        }
    }

    /// Starts the server again on the same port, empty (it keeps nothing on disk).
    pub async fn restart(&mut self) -> Result<(), LocalRedisError> {
        self.stop();
        self.spawn().await
    }

    /// Starts the server again on the same port with other `extra_args` (another password,
    /// say), as an operator's restart with a new configuration would.
    pub async fn restart_with(&mut self, extra_args: Vec<String>) -> Result<(), LocalRedisError> {
        self.options.extra_args = extra_args;
        self.restart().await
    }

    async fn spawn(&mut self) -> Result<(), LocalRedisError> {
        let log = self.dir.join("redis.log");
        let _ = std::fs::remove_file(&log);
        let mut cmd = Command::new(&self.options.binary);
        cmd.arg("--bind").arg("127.0.0.1");
        match &self.options.tls {
            Some(tls) => {
                cmd.args(["--port", "0", "--tls-port", &self.port.to_string()])
                    .arg("--tls-cert-file")
                    .arg(&tls.cert)
                    .arg("--tls-key-file")
                    .arg(&tls.key)
                    .arg("--tls-ca-cert-file")
                    .arg(&tls.ca)
                    .args(["--tls-auth-clients", "no"]);
            }
            None => {
                cmd.args(["--port", &self.port.to_string()]);
            }
        }
        cmd.args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .args(&self.options.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().map_err(|source| LocalRedisError::Spawn {
            binary: self.options.binary.clone(),
            source,
        })?;
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Ready to accept connections") {
                self.child = Some(child);
                return Ok(());
            }
            let exited = matches!(child.try_wait(), Ok(Some(_)));
            if exited || tokio::time::Instant::now() >= deadline {
                kill_and_reap(child);
                return Err(LocalRedisError::NotReady {
                    port: self.port,
                    log_tail: tail(&text),
                });
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// The server's log, for diagnosing a failed test.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// SIGKILL, then `wait`: a killed child nobody waits for stays a zombie until its parent exits,
/// and after that until an init reaps it, which not every container has.
fn kill_and_reap(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().rev().take(5).collect();
    if lines.is_empty() {
        return "no log output".into();
    }
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}
