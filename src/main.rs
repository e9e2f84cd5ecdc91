//! The `finance-cache-warmer` binary: parses the command line, loads the config, sets up logging,
//! runs the command and turns its outcome into the documented exit code.

use std::process::ExitCode;

use clap::Parser;
use finance_cache_warmer::cli::{Cli, Command};
use finance_cache_warmer::commands as app;
use finance_cache_warmer::config::{self, LogFormat};
use finance_cache_warmer::output::UntilClosed;
use finance_cache_warmer::shutdown::{self, Shutdown};
use finance_cache_warmer::telemetry;

// jemalloc instead of glibc's malloc: a warming run allocates and frees a few hundred small
// strings and buffers per ticker, and jemalloc does that with 8 % less CPU per ticker for 2 to 4
// MiB more peak memory per job (measured side by side, docs/performance.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = UntilClosed::new(std::io::stdout().lock());
    if let Some(done) = app::without_config(&cli.command, &mut out) {
        return match done {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(e.exit_code())
            }
        };
    }

    let mut settings = match config::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("config error: {e}");
            return ExitCode::from(2);
        }
    };
    settings.log.format = if matches!(cli.command, Command::Demo { .. }) {
        // The demo is read by a person at a terminal.
        LogFormat::Pretty
    } else {
        telemetry::effective_format(settings.log.format)
    };
    let traces = telemetry::init(&settings.log, settings.telemetry.otlp_endpoint.as_ref());

    // `run` keeps a worker thread per core for its concurrent jobs and endpoints. The one-shot
    // commands run on one thread: a run waits on the network far more than it computes, and
    // one thread spares it the wakeups between threads (see docs/performance.md).
    let runtime = match cli.command {
        Command::Run => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    }
    .enable_all()
    .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::from(1);
        }
    };
    let stop_deadline = settings.scheduler.shutdown_grace.get() + shutdown::STOP_MARGIN;
    let result = runtime.block_on(async {
        let shutdown = Shutdown::listen(stop_deadline)?;
        app::execute(
            cli.command,
            cli.config.as_deref(),
            settings,
            shutdown,
            &mut out,
        )
        .await
    });
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = e.exit_code();
            tracing::error!(exit_code = code, "{e}");
            ExitCode::from(code)
        }
    };
    drop(runtime);
    traces.shutdown();
    code
}
