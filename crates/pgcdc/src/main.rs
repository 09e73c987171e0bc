//! The `pgcdc` binary: parses flags, loads the configuration, dispatches to a command.
//! All the work happens in the library crates and in [`commands`].

mod batch;
mod commands;
mod config;
mod dlt;
mod metrics;
mod pipeline;
mod snapshot;
mod streamed;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Change data capture from PostgreSQL into analytics storage, exactly once.
#[derive(Debug, Parser)]
#[command(name = "pgcdc", version, about)]
struct Cli {
    /// Configuration file (default: ./pgcdc.toml, else dlt's .dlt/config.toml + secrets.toml).
    #[arg(long, short = 'c', global = true)]
    config: Option<PathBuf>,
    /// Override a setting, e.g. --set source.slot=orders_cdc (repeatable; beats files and env).
    #[arg(long = "set", value_name = "KEY=VALUE", global = true)]
    sets: Vec<String>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    /// More logging (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create (or extend) the publication and the replication slot, and the destination checkpoint.
    Init {
        /// Do not copy the tables' existing rows (changes only, from now on).
        #[arg(long)]
        no_snapshot: bool,
        /// Drop and recreate slot and publication, and start the destination checkpoint afresh.
        #[arg(long)]
        reset: bool,
        /// dlt's behaviour: copy each table into a `_dlt_<table>_s_<snapshot>` table inside
        /// the source first and read that (dropped once copied).
        #[arg(long)]
        persist_snapshot_tables: bool,
        /// With --persist-snapshot-tables: create the copies UNLOGGED (no WAL).
        #[arg(long, requires = "persist_snapshot_tables")]
        unlogged: bool,
    },
    /// Replicate what is new since the last run (up to the WAL end at start), then stop.
    Run {
        /// Keep streaming until interrupted (SIGINT/SIGTERM end cleanly).
        #[arg(long)]
        follow: bool,
    },
    /// Copy tables' current rows again (consistent with the stream), e.g. after a table was
    /// truncated outside the publication or its destination files were lost.
    Snapshot {
        /// Table to copy (repeatable; default: every configured table).
        #[arg(long = "table", value_name = "TABLE")]
        tables: Vec<String>,
    },
    /// Show the slot, its lag and retained WAL, the checkpoint, and the published tables.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Drop the replication slot and the publication (the destination's data stays).
    Drop {
        /// Confirm.
        #[arg(long)]
        yes: bool,
    },
}

fn init_logging(format: LogFormat, verbose: u8) {
    let default = match verbose {
        0 => "pgcdc=info,pgcdc_source=info,pgcdc_sink=info,warn",
        1 => "pgcdc=debug,pgcdc_source=debug,pgcdc_sink=debug,info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, cli.verbose);
    let dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let opts = config::LoadOptions {
        path: cli.config.clone(),
        sets: cli.sets.clone(),
        dir,
    };
    let cfg = match config::Config::load(&opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(commands::dispatch(&cfg, cli.command));
    match result {
        Ok(code) => code,
        Err(e) => {
            let secrets = cfg.secrets();
            eprintln!("error: {}", config::redact(&report(&e), &secrets));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, leaving out a cause whose text the line already
/// holds (libraries such as object_store repeat their source in their own message).
fn report(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
