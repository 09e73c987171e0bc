//! Configuration: one [`Config`] type, built in two stages.
//!
//! Stage one (`layers`) gathers a raw TOML document in layers — defaults < `pgcdc.toml`
//! (or, when there is none, dlt's `.dlt/config.toml` + `.dlt/secrets.toml`, translated) <
//! environment (`PGCDC__SECTION__KEY`, dlt's `SOURCES__PG_REPLICATION__CREDENTIALS`) <
//! `--set section.key=value` flags — and deserialises it strictly into `raw`'s shape:
//! an unknown key is an error that names it. Stage two (`validate`) checks the raw
//! values into the runtime [`Config`] (parsed connection settings with libpq's `PG*` for
//! parts the URL leaves out, checked names; the destination resolved from its URL by
//! [`pgcdc_sink::DestinationSpec`]), so the rest of the program never sees an unchecked
//! value. This module knows no destination: `[destination]` is the sink crate's.
//!
//! Secrets: the password is only ever held inside [`tokio_postgres::Config`], whose
//! `Debug` redacts it; object-storage keys inside the sink's redacting types; messages
//! built here go through [`redact`], and [`Config::secrets`] lists what to redact.

mod layers;
mod raw;
mod runtime;
#[cfg(test)]
mod tests;
mod validate;

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use toml::{Table, Value};

use pgcdc_core::{MetaColumns, ValuePolicy};
use pgcdc_sink::Target;
use pgcdc_source::catalog::Hints;

pub(crate) use layers::set_path;
pub use pgcdc_source::connect::{password_of, redact};
pub use runtime::{BatchConfig, Publish, Reader, SnapshotConfig, SourceConfig};

/// The validated runtime configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The source database.
    pub source: SourceConfig,
    /// The destination, resolved from its URL by the sink crate (opened by the commands).
    pub destination: Target,
    /// Metadata column names.
    pub meta: MetaColumns,
    /// Batching.
    pub batch: BatchConfig,
    /// Snapshot.
    pub snapshot: SnapshotConfig,
    /// Value policies.
    pub types: ValuePolicy,
    /// Column hints by table and column.
    pub columns: Hints,
    /// Where to serve Prometheus metrics during `run` (`metrics.listen`).
    pub metrics_listen: Option<String>,
    /// Where the configuration came from, for messages.
    pub origin: String,
}

/// How to find the configuration.
pub struct LoadOptions {
    /// `--config` path.
    pub path: Option<PathBuf>,
    /// `--set key=value` overrides.
    pub sets: Vec<String>,
    /// Directory to look for `pgcdc.toml` / `.dlt/` in.
    pub dir: PathBuf,
}

impl Config {
    /// The catalog projection every path (stream, snapshot, init's checks) applies: the
    /// type policies, column hints, keys kept when updates/deletes are published, and
    /// the metadata column names reserved.
    pub fn catalog(&self) -> pgcdc_source::catalog::Catalog {
        let p = self.source.publish;
        pgcdc_source::catalog::Catalog::new(self.types)
            .with_hints(self.columns.clone())
            .with_rules(
                p.update || p.delete,
                self.meta.names().iter().map(|n| n.to_string()).collect(),
            )
    }

    /// Every secret of the configuration (database password, object-storage keys), for
    /// [`redact`]ing messages.
    pub fn secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .source
            .pg
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .into_iter()
            .collect();
        out.extend(self.destination.secrets());
        out
    }

    /// Loads and validates the configuration from all layers.
    pub fn load(opts: &LoadOptions) -> Result<Config> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let (doc, origin) = layers::base_document(opts)?;
        Self::from_document(doc, origin, &env, &opts.sets)
    }

    /// A configuration from the text of a `pgcdc.toml` (or, with `dlt`, of dlt's
    /// `config.toml` and `secrets.toml` concatenated), over the environment `env` and the
    /// `--set`s: the loader without reading configuration files (for tests and fuzzing).
    pub fn from_text(
        text: &str,
        dlt: bool,
        env: &[(String, String)],
        sets: &[String],
    ) -> Result<Config> {
        let doc: Table =
            toml::from_str(text).map_err(|e| anyhow!("configuration: {}", e.message()))?;
        let doc = if dlt {
            crate::dlt::from_dlt(&doc)?
        } else {
            doc
        };
        Self::from_document(doc, "text".into(), env, sets)
    }

    fn from_document(
        mut doc: Table,
        origin: String,
        env: &[(String, String)],
        sets: &[String],
    ) -> Result<Config> {
        let env = env.to_vec();
        layers::apply_env(&mut doc, &env)?;
        layers::apply_sets(&mut doc, sets)?;
        let raw: raw::RawConfig = Value::Table(doc)
            .try_into()
            .map_err(|e: toml::de::Error| anyhow!("configuration ({origin}): {}", e.message()))?;
        validate::validate(raw, &env, origin)
    }
}
