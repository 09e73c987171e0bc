//! pgcdc as a library: the pipeline and commands behind the `pgcdc` binary.
//!
//! - [`cli`]: flags and subcommands.
//! - [`config`]: the one configuration type, from `pgcdc.toml`, dlt's files, the
//!   environment and `--set`.
//! - [`commands`]: `init`, `run`, `snapshot`, `status`, `drop`.
//! - [`pipeline`]: the run loop (stream or SQL pages → batches → destination → confirm).
//! - [`snapshot`]: the initial copy through exported snapshots.
//! - [`batch`], [`metrics`]: Arrow row buffers; the Prometheus endpoint.

pub mod batch;
pub mod cli;
pub mod commands;
pub mod config;
mod dlt;
pub mod metrics;
pub mod pipeline;
pub mod snapshot;
mod streamed;

pub use cli::Command;
