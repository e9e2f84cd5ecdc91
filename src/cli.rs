//! The command-line interface. Names here (commands, flags, `FCW_CONFIG`) are a contract with
//! operators and their scripts: do not rename them.

use std::path::PathBuf;

use chrono::{DateTime, FixedOffset, NaiveDate};
use clap::{Parser, Subcommand, ValueEnum};

use crate::jobs::JobName;
use crate::watchlist::Shard;

#[derive(Debug, Parser)]
#[command(
    name = "finance-cache-warmer",
    version,
    about = "Keeps a finance app's Redis cache of quotes, options chains and earnings dates warm",
    after_help = "Exit codes: 0 success, 1 a job ran but failed, 2 usage or configuration error, \
                  3 Redis unreachable, 130/143 interrupted by SIGINT/SIGTERM."
)]
pub struct Cli {
    /// TOML config file; without one, the built-in defaults and FCW_* variables apply.
    #[arg(short, long, env = "FCW_CONFIG", global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run as a daemon: every enabled job on its schedule until SIGTERM/SIGINT.
    Run,
    /// Run one job once and exit (Kubernetes CronJob mode).
    Once {
        /// The job to run.
        job: JobArg,
        /// Fetch every ticker, even those whose cached value is still fresh.
        #[arg(long)]
        force: bool,
        /// Only the tickers in shard I of N (by a stable hash of the symbol), e.g. 0/4.
        #[arg(long, value_name = "I/N", conflicts_with = "shards")]
        shard: Option<Shard>,
        /// Split into N shards and take the one in JOB_COMPLETION_INDEX (a Kubernetes Indexed Job).
        #[arg(long, value_name = "N")]
        shards: Option<u32>,
        /// The shard index for --shards; Kubernetes Indexed Jobs set it.
        #[arg(long, env = "JOB_COMPLETION_INDEX", hide = true)]
        completion_index: Option<u32>,
        /// Integrity: report what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Run the job even though its `jobs.<job>.enabled` is false.
        #[arg(long)]
        even_if_disabled: bool,
        /// Decide TTLs and freshness as if it were this instant (RFC 3339, e.g.
        /// 2026-12-24T17:55:00Z); the values are still fetched and stamped now. Default: now.
        #[arg(long, value_name = "RFC3339")]
        at: Option<DateTime<FixedOffset>>,
    },
    /// Load and validate the config, then print it as TOML with secrets shown as ***.
    CheckConfig {
        /// Also PING Redis and report its version.
        #[arg(long)]
        connect: bool,
    },
    /// List a market's sessions (open, close, lunch break) between two dates; the NYSE unless
    /// --market says otherwise.
    Calendar {
        /// The market (XNYS, XLON, XTKS, ..., 24/7, FX: see `markets`); default XNYS.
        #[arg(long, value_name = "MARKET")]
        market: Option<String>,
        /// First date (YYYY-MM-DD); default today in the exchange's time zone.
        #[arg(long, value_name = "DATE")]
        from: Option<NaiveDate>,
        /// Last date, included (YYYY-MM-DD); default two weeks after --from.
        #[arg(long, value_name = "DATE")]
        to: Option<NaiveDate>,
        /// JSON Lines, one object per session, times in UTC.
        #[arg(long)]
        json: bool,
    },
    /// List the markets: their time zone, regular hours, and how far their calendar data goes.
    Markets {
        /// JSON Lines, one object per market.
        #[arg(long)]
        json: bool,
    },
    /// Explain the TTLs the configured policy gives at an instant, on the NYSE or on a ticker's
    /// own market.
    Ttl {
        /// The ticker whose market decides (its symbol or `markets.tickers`); default the NYSE.
        #[arg(long, value_name = "TICKER")]
        ticker: Option<String>,
        /// The instant (RFC 3339, e.g. 2026-11-27T15:00:00Z); default now.
        #[arg(long, value_name = "RFC3339")]
        at: Option<DateTime<FixedOffset>>,
        /// An earnings date (YYYY-MM-DD) for the earnings TTL; without it, the "no known date" TTL.
        #[arg(long, value_name = "DATE")]
        earnings_date: Option<NaiveDate>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Is the cache warm, and if not, why: each job's last run and success, its lock and next
    /// runs, and the cache's coverage of the watchlist. Reads Redis only; exits 1 unless every
    /// enabled job succeeded within two scheduled periods and each enabled kind covers
    /// status.min_coverage of the watchlist.
    Status {
        /// One JSON object instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Print shell completions for the given shell.
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), generated from this command line's definition.
    Man,
    /// Offline end-to-end demo on a private redis-server with recorded market data.
    Demo {
        /// Use this Redis instead of starting a private redis-server. Its watchlist is filled
        /// with sample tickers, so never point this at production.
        #[arg(long, value_name = "URL")]
        redis_url: Option<String>,
    },
}

/// A job name on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JobArg {
    Stock,
    Options,
    Earnings,
    Integrity,
    All,
}

impl JobArg {
    /// The jobs to run, in order (`all`: the cheap ones first).
    pub fn jobs(self) -> Vec<JobName> {
        match self {
            JobArg::Stock => vec![JobName::Stock],
            JobArg::Options => vec![JobName::Options],
            JobArg::Earnings => vec![JobName::Earnings],
            JobArg::Integrity => vec![JobName::Integrity],
            JobArg::All => JobName::ALL.to_vec(),
        }
    }
}

impl std::fmt::Display for JobArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = self.to_possible_value().expect("no JobArg is skipped");
        f.write_str(value.get_name())
    }
}
