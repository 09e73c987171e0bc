//! The runtime configuration's parts other than the destination (which is the sink
//! crate's [`pgcdc_sink::Target`]): the source, batching, the snapshot. Every value here
//! has been checked by [`super::validate`].

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Result};
use serde::Deserialize;

use pgcdc_source::tls::TlsOptions;

/// Which operations the publication publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publish {
    /// INSERT
    pub insert: bool,
    /// UPDATE
    pub update: bool,
    /// DELETE
    pub delete: bool,
    /// TRUNCATE
    pub truncate: bool,
}

impl Publish {
    pub(super) fn parse(s: &str) -> Result<Publish> {
        let mut p = Publish {
            insert: false,
            update: false,
            delete: false,
            truncate: false,
        };
        for op in s.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            match op.to_ascii_lowercase().as_str() {
                "insert" => p.insert = true,
                "update" => p.update = true,
                "delete" => p.delete = true,
                "truncate" => p.truncate = true,
                other => bail!(
                    "source.publish: '{other}' is not an operation; use a comma-separated list of insert, update, delete, truncate"
                ),
            }
        }
        if !(p.insert || p.update || p.delete || p.truncate) {
            bail!("source.publish is empty; list at least one of insert, update, delete, truncate");
        }
        Ok(p)
    }

    /// The `publish = '...'` option value.
    pub fn as_option(&self) -> String {
        let mut v = Vec::new();
        for (on, name) in [
            (self.insert, "insert"),
            (self.update, "update"),
            (self.delete, "delete"),
            (self.truncate, "truncate"),
        ] {
            if on {
                v.push(name);
            }
        }
        v.join(", ")
    }
}

/// Where and what to read.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Connection settings (password redacted in Debug).
    pub pg: tokio_postgres::Config,
    /// TLS: sslmode, root and client certificates.
    pub tls: TlsOptions,
    /// Replication slot name (lowercase letters, digits, underscore).
    pub slot: String,
    /// Publication name.
    pub publication: String,
    /// Schema of the tables.
    pub schema: String,
    /// Tables to publish; None = the whole schema.
    pub tables: Option<Vec<String>>,
    /// Published operations.
    pub publish: Publish,
    /// Per-table column allow-lists.
    pub include_columns: BTreeMap<String, Vec<String>>,
    /// Warn when the slot retains more WAL than this (bytes; 0 = never).
    pub max_retained_wal_bytes: u64,
    /// `run --follow`: write a heartbeat into the WAL this often (None = never).
    pub heartbeat_interval: Option<Duration>,
    /// How `run` reads the slot.
    pub reader: Reader,
    /// Ask pgoutput for binary values (PostgreSQL 14+) when every published column's
    /// binary form can be read; false: always text.
    pub binary: bool,
}

/// Batching of the run loop.
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    /// A batch is committed at the first transaction end after this many rows.
    pub max_rows: usize,
    /// ... or after this many bytes of buffered Arrow data (also the memory bound).
    pub max_bytes: usize,
    /// In `--follow` mode, commit at least this often when data is waiting.
    pub flush_interval: Duration,
}

/// The initial snapshot.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotConfig {
    /// Parallel connections reading chunks.
    pub workers: usize,
    /// Chunk size in MiB of heap pages.
    pub chunk_mb: usize,
    /// dlt's `persist_snapshots`: copy tables into `_dlt_…` tables in the source first.
    pub persist_tables: bool,
    /// Create those copies UNLOGGED (no WAL).
    pub unlogged: bool,
}

/// How `run` reads the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reader {
    /// The streaming replication protocol (`START_REPLICATION`): server decoding and
    /// pgcdc's work overlap, and large transactions arrive in pieces.
    #[default]
    Stream,
    /// Mini-batch runs read pages through the SQL interface
    /// (`pg_logical_slot_peek_binary_changes`): about half of pgcdc's CPU; not for `--follow`.
    Sql,
}
