//! `check-config`: the effective config as TOML, secrets hidden; with `--connect`, a `PING`.

use std::io::Write;

use crate::commands::common::{AppError, connect};
use crate::config::Settings;
use crate::shutdown::Shutdown;

/// Prints the effective config; with `connect`, appends the Redis check as TOML comments so the
/// output stays valid TOML.
pub async fn check_config(
    settings: &Settings,
    check: bool,
    shutdown: &Shutdown,
    out: &mut dyn Write,
) -> Result<(), AppError> {
    out.write_all(settings.to_redacted_toml().as_bytes())?;
    if check {
        let store = connect(settings, shutdown).await?;
        let version = store.server_version().await?;
        writeln!(
            out,
            "\n# redis: PONG from {} (redis_version {version})",
            store.address()
        )?;
    }
    out.flush()?;
    Ok(())
}
