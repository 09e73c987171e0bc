//! The command line: flags and subcommands (clap).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Change data capture from PostgreSQL into analytics storage, exactly once.
#[derive(Debug, Parser)]
#[command(name = "pgcdc", version, about)]
pub struct Cli {
    /// Configuration file (default: ./pgcdc.toml, else dlt's .dlt/config.toml + secrets.toml).
    #[arg(long, short = 'c', global = true)]
    pub config: Option<PathBuf>,
    /// Override a setting, e.g. --set source.slot=orders_cdc (repeatable; beats files and env).
    #[arg(long = "set", value_name = "KEY=VALUE", global = true)]
    pub sets: Vec<String>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// More logging (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines on stderr look.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
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
