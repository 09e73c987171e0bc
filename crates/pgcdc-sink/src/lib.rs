//! pgcdc destinations: where replicated changes land, exactly once.
//!
//! A destination implements the small [`Destination`] trait. The pipeline hands it Arrow
//! record batches of changelog rows per table ([`Destination::write`]) and, at transaction
//! boundaries only, a [`Checkpoint`] to commit ([`Destination::commit`]). The contract:
//!
//! - **Atomic commit.** After `commit(c)` returns, every row written since the previous
//!   commit is durable and `c` is the checkpoint [`Destination::open`] returns, in one
//!   atomic step. Before it returns, none of those rows is visible as committed.
//! - **Recovery.** `open` removes whatever an interrupted run wrote after the last commit,
//!   so replaying from the returned checkpoint never duplicates a change.
//! - **Ordering.** Rows of one table arrive in commit order (LSN order within a
//!   transaction); the pipeline reports the checkpoint to PostgreSQL only after `commit`.
//!
//! Destinations: [`files`] (changelog files, Parquet or JSONL, on a local disk or object
//! storage opened by [`store`]), and mirrors whose tables equal the source's, following
//! [`mirror`]'s rules: [`postgres`] (another PostgreSQL database) and `duckdb` (an
//! embedded DuckDB file; cargo feature `duckdb`) and `delta` (Delta Lake tables on a local
//! disk or S3; cargo feature `delta`).
//!
//! [`open`] turns the `[destination]` settings ([`DestinationSpec`]) into one of them by
//! the URL's scheme: the only place that knows which destinations exist.
#![deny(missing_docs)]

mod aws_profile;
#[cfg(feature = "delta")]
pub mod delta;
#[cfg(feature = "duckdb")]
pub mod duckdb;
mod error;
pub mod files;
#[cfg(feature = "memory")]
pub mod memory;
pub mod mirror;
mod mirror_sql;
pub mod open;
pub mod pgtext;
pub mod postgres;
pub mod sql_mirror;
pub mod store;
pub mod widening;

use arrow_array::RecordBatch;
use async_trait::async_trait;
use pgcdc_core::{Checkpoint, TableSchema};

pub use error::{Error, ErrorKind, Result};
pub use open::{DestinationSpec, Mode, Target};

/// Crash-test hook: with the `failpoints` feature, aborts the process at the point named
/// by the `PGCDC_FAILPOINT` environment variable (`name`, or `name:N` for its N-th
/// passage). Without the feature it compiles to nothing.
#[inline]
pub fn failpoint(name: &str) {
    #[cfg(feature = "failpoints")]
    {
        static PASSED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let Ok(v) = std::env::var("PGCDC_FAILPOINT") else {
            return;
        };
        let (point, nth) = match v.split_once(':') {
            Some((p, n)) => (p, n.parse::<u32>().unwrap_or(1)),
            None => (v.as_str(), 1),
        };
        if point == name && PASSED.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 >= nth {
            eprintln!("failpoint {name}: aborting");
            std::process::abort();
        }
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}

/// What a destination has committed, as read back by [`Destination::open`].
#[derive(Debug, Clone)]
pub struct Committed {
    /// The last committed checkpoint.
    pub checkpoint: Checkpoint,
    /// The latest schema seen per table (by destination table name).
    pub tables: Vec<TableSchema>,
}

/// A place changes land in. See the [crate docs](crate) for the delivery contract.
#[async_trait]
pub trait Destination: Send {
    /// Where the data goes, for messages (never contains secrets).
    fn describe(&self) -> String;

    /// Reads the committed checkpoint (None when the destination was never initialised)
    /// and removes anything written after it by an interrupted run.
    async fn open(&mut self) -> Result<Option<Committed>>;

    /// Reads the committed checkpoint without changing anything (for `status`, and to
    /// learn where to start before the slot is held).
    async fn read_committed(&mut self) -> Result<Option<Committed>>;

    /// Refuses a source table this destination cannot hold (e.g. column names its format
    /// does not allow), with a message naming what and saying what to do. `init` calls it
    /// for every replicated table before it creates anything at the source; the default
    /// accepts every table.
    fn check_table(&self, table: &TableSchema) -> Result<()> {
        let _ = table;
        Ok(())
    }

    /// Writes the first checkpoint (at `pgcdc init`). Keeps an existing one unless
    /// `replace` (`init --reset`); returns whether it wrote.
    async fn initialize(&mut self, checkpoint: &Checkpoint, replace: bool) -> Result<bool>;

    /// Adds changelog rows of `table` (schema = `table.arrow_schema(meta)`); not committed yet.
    async fn write(&mut self, table: &TableSchema, rows: RecordBatch) -> Result<()>;

    /// Makes all writes since the last commit durable together with `checkpoint`, atomically.
    async fn commit(&mut self, checkpoint: &Checkpoint) -> Result<()>;

    /// Discards all writes since the last commit (e.g. a transaction cut off by a lost
    /// connection, which will be streamed again).
    async fn rollback(&mut self) -> Result<()>;
}
