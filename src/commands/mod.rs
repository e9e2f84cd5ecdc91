//! What each command does once the configuration has loaded, a file per command. Errors are
//! typed ([`AppError`]) so the binary can map each to its documented exit code.

mod check_config;
mod common;
pub mod demo;
mod explain;
mod once;
mod run;
mod status;

use std::io::Write;
use std::path::Path;

use chrono::Utc;

use crate::cli::Command;
use crate::config::Settings;
use crate::jobs::RunOptions;
use crate::shutdown::Shutdown;
use crate::startup;
use crate::ticker::Ticker;
use crate::watchlist::Shard;

pub use common::AppError;
pub use once::run_jobs;

/// Runs one command. Command output goes to `out` (stdout in the binary); logs go to stderr.
pub async fn execute(
    command: Command,
    config_path: Option<&Path>,
    settings: Settings,
    shutdown: Shutdown,
    out: &mut dyn Write,
) -> Result<(), AppError> {
    match command {
        Command::CheckConfig { connect } => {
            check_config::check_config(&settings, connect, &shutdown, out).await
        }
        Command::Run => run::run(settings, config_path, shutdown).await,
        Command::Once {
            job,
            force,
            shard,
            shards,
            completion_index,
            dry_run,
            even_if_disabled,
            at,
        } => {
            let shard = match (shard, shards, completion_index) {
                (Some(shard), _, _) => Some(shard),
                (None, Some(count), Some(index)) => {
                    Some(Shard::new(index, count).map_err(AppError::Usage)?)
                }
                (None, Some(_), None) => {
                    return Err(AppError::Usage(
                        "--shards takes the shard index from JOB_COMPLETION_INDEX, which is not \
                         set (a Kubernetes Indexed Job sets it); use --shard I/N otherwise"
                            .into(),
                    ));
                }
                (None, None, _) => None,
            };
            let options = RunOptions {
                force,
                shard,
                dry_run,
                at: at.map(|t| t.with_timezone(&Utc)),
                requested: None,
            };
            let jobs = once::once_jobs(job, &options, even_if_disabled, &settings)?;
            once::once(settings, jobs, options, shutdown).await
        }
        Command::Calendar { from, to, .. } if from.zip(to).is_some_and(|(f, t)| f > t) => {
            Err(AppError::Usage("calendar: --from is after --to".into()))
        }
        Command::Calendar {
            market,
            from,
            to,
            json,
        } => {
            let resolver = startup::resolver(&settings);
            let cal = match market.as_deref() {
                None => resolver.markets().xnys(),
                Some(m) => resolver
                    .markets()
                    .get(&m.to_ascii_uppercase())
                    .ok_or_else(|| unknown_market(m))?,
            };
            Ok(explain::calendar(cal, from, to, Utc::now(), json, out)?)
        }
        Command::Markets { json } => {
            let resolver = startup::resolver(&settings);
            Ok(explain::markets(resolver.markets(), json, out)?)
        }
        Command::Ttl {
            ticker,
            at,
            earnings_date,
            json,
        } => {
            let resolver = startup::resolver(&settings);
            let policy = startup::ttl_policy(&settings.ttl);
            let at = at.map_or_else(Utc::now, |t| t.with_timezone(&Utc));
            let ticker = ticker
                .map(|t| {
                    Ticker::parse(t.as_bytes())
                        .map_err(|e| AppError::Usage(format!("ttl --ticker: {e}")))
                })
                .transpose()?;
            let subject = ticker.as_ref().map(|t| explain::Subject {
                ticker: t.as_str(),
                placement: resolver.resolve(t.as_str(), None),
            });
            let cal = subject
                .as_ref()
                .map_or(resolver.markets().xnys(), |s| s.placement.calendar);
            Ok(explain::ttl(
                cal,
                subject.as_ref(),
                &policy,
                at,
                earnings_date,
                json,
                out,
            )?)
        }
        Command::Demo { redis_url } => demo::run(settings, redis_url, shutdown, out).await,
        Command::Status { json } => status::status(&settings, json, &shutdown, out).await,
        Command::Completions { .. } | Command::Man => {
            without_config(&command, out).unwrap_or(Ok(()))
        }
    }
}

fn unknown_market(name: &str) -> AppError {
    let known: Vec<&str> = crate::calendar::names().collect();
    AppError::Usage(format!(
        "calendar --market: unknown market {name:?}; known: {}",
        known.join(", ")
    ))
}

/// The commands that need no configuration (`completions`, `man`): the binary runs them before
/// loading it, so a broken config cannot stop them. `None` for every other command.
pub fn without_config(command: &Command, out: &mut dyn Write) -> Option<Result<(), AppError>> {
    use clap::CommandFactory;
    let mut cli = crate::cli::Cli::command();
    let written = match command {
        Command::Completions { shell } => {
            let name = cli.get_name().to_owned();
            clap_complete::generate(*shell, &mut cli, name, out);
            Ok(())
        }
        Command::Man => clap_mangen::Man::new(cli).render(out),
        _ => return None,
    };
    Some(written.map_err(AppError::from))
}
