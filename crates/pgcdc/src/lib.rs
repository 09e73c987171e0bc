//! pgcdc as a library: the run loop and commands behind the `pgcdc` binary.
//!
//! - [`cli`]: flags and subcommands.
//! - [`config`]: the one configuration type, from `pgcdc.toml`, dlt's files, the
//!   environment and `--set`.
//! - [`commands`]: `init`, `run`, `snapshot`, `status`, `drop`.
//! - [`run`]: the run loop (a change source → batches → destination → confirm), with
//!   the PostgreSQL stream and SQL pages as its sources.
//! - [`snapshot`]: the initial copy through exported snapshots.
//! - [`batch`], [`metrics`]: Arrow row buffers; the Prometheus endpoint.

pub mod batch;
pub mod cli;
pub mod commands;
pub mod config;
mod dlt;
pub mod metrics;
pub mod run;
pub mod snapshot;
mod streamed;

pub use cli::Command;
