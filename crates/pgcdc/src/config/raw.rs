//! The raw configuration document: the shape of `pgcdc.toml`, deserialised strictly
//! (an unknown key is an error that names it), with the defaults of every key. Nothing
//! here is checked beyond its type; [`super::validate`] does that. The `[destination]`
//! table is the sink crate's [`DestinationSpec`], passed through whole.

use std::collections::BTreeMap;

use serde::Deserialize;

use pgcdc_core::ValuePolicy;
use pgcdc_sink::DestinationSpec;
use pgcdc_source::catalog::Hints;

use super::Reader;

/// The raw document, as written by users. Field docs are the reference for `pgcdc.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawConfig {
    pub(super) source: RawSource,
    /// `[destination]`: read, checked and resolved by the sink crate.
    pub(super) destination: DestinationSpec,
    pub(super) batch: RawBatch,
    pub(super) snapshot: RawSnapshot,
    pub(super) types: ValuePolicy,
    /// Column hints: `[columns.<table>.<column>]` (dlt's `columns`).
    pub(super) columns: Hints,
    pub(super) metrics: RawMetrics,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawMetrics {
    /// `host:port` to serve Prometheus metrics on (`GET /metrics`); off when unset.
    pub(super) listen: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSnapshot {
    pub(super) workers: usize,
    pub(super) chunk_mb: usize,
    pub(super) persist_tables: bool,
    pub(super) unlogged: bool,
}

impl Default for RawSnapshot {
    fn default() -> Self {
        // Two connections per core keeps COPY busy while rows are encoded; capped so a
        // large machine does not open dozens of connections by default.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        RawSnapshot {
            workers: (cores * 2).clamp(2, 16),
            chunk_mb: 64,
            persist_tables: false,
            unlogged: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSource {
    pub(super) url: Option<String>,
    pub(super) slot: String,
    pub(super) publication: String,
    pub(super) schema: String,
    pub(super) tables: Option<Vec<String>>,
    pub(super) publish: String,
    pub(super) include_columns: BTreeMap<String, Vec<String>>,
    pub(super) max_retained_wal_mb: u64,
    pub(super) heartbeat_interval_s: u64,
    pub(super) reader: Reader,
    pub(super) binary: bool,
}

impl Default for RawSource {
    fn default() -> Self {
        RawSource {
            url: None,
            slot: "pgcdc".into(),
            publication: "pgcdc".into(),
            schema: "public".into(),
            tables: None,
            publish: "insert, update, delete, truncate".into(),
            include_columns: BTreeMap::new(),
            max_retained_wal_mb: 1024,
            heartbeat_interval_s: 0,
            reader: Reader::Stream,
            binary: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawBatch {
    pub(super) max_rows: usize,
    pub(super) max_mb: usize,
    pub(super) flush_interval_ms: u64,
}

impl Default for RawBatch {
    fn default() -> Self {
        RawBatch {
            max_rows: 500_000,
            max_mb: 64,
            flush_interval_ms: 1000,
        }
    }
}
