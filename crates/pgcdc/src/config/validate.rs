//! Stage two of loading: the raw document checked into the runtime [`Config`]. Every
//! message names the setting and says what to write instead. The source URL is parsed
//! as libpq would (`pgcdc_source::connect::connection_config`, with the `PG*`
//! variables); the `[destination]` table is checked and resolved by the sink crate
//! ([`pgcdc_sink::DestinationSpec::parse`]).

use std::time::Duration;

use anyhow::{bail, Result};

use pgcdc_source::connect::connection_config;

use super::raw::{RawConfig, RawSource};
use super::{BatchConfig, Config, Publish, SnapshotConfig, SourceConfig};

/// The runtime configuration from the raw document, `env` (for `PG*`) and where the
/// document came from.
pub(super) fn validate(raw: RawConfig, env: &[(String, String)], origin: String) -> Result<Config> {
    let source = source_config(raw.source, env)?;
    if raw.batch.max_rows == 0 || raw.batch.max_mb == 0 {
        bail!("batch.max_rows and batch.max_mb must be at least 1");
    }
    let destination = raw.destination.parse()?;
    destination.check_source(&source.pg, &source.schema)?;
    Ok(Config {
        meta: destination.meta().clone(),
        source,
        destination,
        batch: BatchConfig {
            max_rows: raw.batch.max_rows,
            max_bytes: raw.batch.max_mb << 20,
            flush_interval: Duration::from_millis(raw.batch.flush_interval_ms.max(10)),
        },
        snapshot: SnapshotConfig {
            workers: raw.snapshot.workers.max(1),
            chunk_mb: raw.snapshot.chunk_mb.max(1),
            persist_tables: raw.snapshot.persist_tables,
            unlogged: raw.snapshot.unlogged,
        },
        types: raw.types,
        columns: raw.columns,
        metrics_listen: raw.metrics.listen.filter(|l| !l.is_empty()),
        origin,
    })
}

/// `[source]`: the connection (URL, then `PG*` in `env`) and the checked names.
fn source_config(s: RawSource, env: &[(String, String)]) -> Result<SourceConfig> {
    let (pg, tls) = connection_config("source.url", s.url.as_deref(), env)?;
    validate_slot_name(&s.slot)?;
    for (what, v) in [
        ("source.publication", &s.publication),
        ("source.schema", &s.schema),
    ] {
        if v.is_empty() {
            bail!("{what} must not be empty");
        }
    }
    if let Some(tables) = &s.tables {
        if tables.is_empty() {
            bail!("source.tables is an empty list; list tables, or leave it out to publish the whole schema");
        }
    }
    for (t, cols) in &s.include_columns {
        if cols.is_empty() {
            bail!("source.include_columns.{t} is empty; list at least the key columns");
        }
    }
    Ok(SourceConfig {
        pg,
        tls,
        publish: Publish::parse(&s.publish)?,
        slot: s.slot,
        publication: s.publication,
        schema: s.schema,
        tables: s.tables,
        include_columns: s.include_columns,
        max_retained_wal_bytes: s.max_retained_wal_mb.saturating_mul(1 << 20),
        heartbeat_interval: (s.heartbeat_interval_s > 0)
            .then(|| Duration::from_secs(s.heartbeat_interval_s)),
        reader: s.reader,
        binary: s.binary,
    })
}

/// Slot names are restricted by PostgreSQL to lowercase letters, digits and underscores.
fn validate_slot_name(slot: &str) -> Result<()> {
    let ok = !slot.is_empty()
        && slot.len() <= 63
        && slot
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        bail!(
            "source.slot '{slot}' is not a valid replication slot name: use 1-63 lowercase letters, digits and underscores"
        );
    }
    Ok(())
}
