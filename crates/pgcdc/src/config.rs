//! Configuration: one [`Config`] type, built in two stages.
//!
//! Stage one gathers a raw TOML document in layers — defaults < `pgcdc.toml` (or, when
//! there is none, dlt's `.dlt/config.toml` + `.dlt/secrets.toml`, translated) <
//! environment (`PGCDC__SECTION__KEY`, dlt's `SOURCES__PG_REPLICATION__CREDENTIALS`,
//! libpq's `PG*` for parts the URL leaves out) < `--set section.key=value` flags — and
//! deserialises it strictly: an unknown key is an error that names it. Stage two
//! validates the raw values into the runtime [`Config`] (parsed connection settings,
//! checked names), so the rest of the program never sees an unchecked value.
//!
//! Secrets: the password is only ever held inside [`tokio_postgres::Config`], whose
//! `Debug` redacts it; messages built here go through [`redact`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use toml::{Table, Value};

use pgcdc_core::{MetaColumns, MetaPreset, ValuePolicy};
use pgcdc_sink::files::{FileFormat, FilesConfig};
use pgcdc_sink::store::StoreOptions;
use pgcdc_source::catalog::Hints;
use pgcdc_source::tls::{SslMode, TlsOptions};

/// The raw document, as written by users. Field docs are the reference for `pgcdc.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    source: RawSource,
    destination: RawDestination,
    batch: RawBatch,
    snapshot: RawSnapshot,
    types: ValuePolicy,
    /// Column hints: `[columns.<table>.<column>]` (dlt's `columns`).
    columns: Hints,
    metrics: RawMetrics,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawMetrics {
    /// `host:port` to serve Prometheus metrics on (`GET /metrics`); off when unset.
    listen: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSnapshot {
    workers: usize,
    chunk_mb: usize,
    persist_tables: bool,
    unlogged: bool,
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
struct RawSource {
    url: Option<String>,
    slot: String,
    publication: String,
    schema: String,
    tables: Option<Vec<String>>,
    publish: String,
    include_columns: BTreeMap<String, Vec<String>>,
    max_retained_wal_mb: u64,
    heartbeat_interval_s: u64,
    reader: Reader,
    binary: bool,
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
struct RawDestination {
    /// `changelog` (files with every change) or `mirror` (tables equal to the source).
    mode: Mode,
    /// Changelog: a folder or object-storage URL (default `./lake`). Mirror: a DuckDB
    /// file (`*.duckdb`, or `duckdb:<path>`; default `./pgcdc.duckdb`), a PostgreSQL URL,
    /// or Delta tables (`delta:<folder>` or `delta:s3://bucket/prefix`).
    url: Option<String>,
    /// Object-storage credentials and settings (see `pgcdc_sink::store`).
    credentials: BTreeMap<String, Value>,
    format: FileFormat,
    dataset: String,
    compression: bool,
    naming: MetaPreset,
    max_file_mb: usize,
    /// Mirror mode: keep deleted rows with this BOOLEAN column set to true.
    soft_delete_column: Option<String>,
}

impl Default for RawDestination {
    fn default() -> Self {
        RawDestination {
            mode: Mode::Changelog,
            url: None,
            credentials: BTreeMap::new(),
            format: FileFormat::Parquet,
            dataset: "pgcdc".into(),
            compression: true,
            naming: MetaPreset::Pgcdc,
            max_file_mb: 256,
            soft_delete_column: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawBatch {
    max_rows: usize,
    max_mb: usize,
    flush_interval_ms: u64,
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
    fn parse(s: &str) -> Result<Publish> {
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

/// What the destination keeps: every change, or the tables' current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Changelog files (Parquet or JSONL), one row per change.
    #[default]
    Changelog,
    /// Tables equal to the source's (upserts, deletes, truncates applied).
    Mirror,
}

/// Where changes land.
#[derive(Debug, Clone)]
pub enum DestinationConfig {
    /// Changelog files on a local disk or object storage.
    Files(FilesConfig),
    /// Mirrored tables in another PostgreSQL database (or schema).
    Postgres {
        /// Connection settings (the password only inside, redacted in `Debug`).
        pg: Box<tokio_postgres::Config>,
        /// TLS settings of the connection.
        tls: TlsOptions,
        /// The schema holding the tables.
        dataset: String,
        /// The soft-delete flag column, if deletes keep rows.
        soft_delete: Option<String>,
    },
    /// Mirrored tables in a DuckDB file.
    DuckDb {
        /// The database file.
        path: PathBuf,
        /// The schema holding the tables.
        dataset: String,
        /// The soft-delete flag column, if deletes keep rows.
        #[cfg_attr(not(feature = "duckdb"), allow(dead_code))]
        soft_delete: Option<String>,
    },
    /// Mirrored tables as Delta Lake tables on a local disk or object storage.
    #[cfg_attr(not(feature = "delta"), allow(dead_code))]
    Delta {
        /// A local folder, `file://` or `s3://` URL (without the `delta:` prefix).
        url: String,
        /// Object-storage credentials and settings.
        options: StoreOptions,
        /// The folder under `url` holding the tables.
        dataset: String,
        /// The soft-delete flag column, if deletes keep rows.
        soft_delete: Option<String>,
    },
}

impl DestinationConfig {
    /// Where the data goes, for messages (no secrets).
    pub fn location(&self) -> String {
        match self {
            DestinationConfig::Files(f) => pgcdc_sink::store::redact_url(&f.url),
            DestinationConfig::Postgres { pg, dataset, .. } => {
                format!("{} (schema {dataset})", pgcdc_source::connect::describe(pg))
            }
            DestinationConfig::DuckDb { path, dataset, .. } => {
                format!("{} (schema {dataset})", path.display())
            }
            DestinationConfig::Delta { url, dataset, .. } => format!(
                "Delta tables at {} (dataset {dataset})",
                pgcdc_sink::store::redact_url(url)
            ),
        }
    }
}

fn mirror_destination(
    url: Option<String>,
    dataset: String,
    soft_delete: Option<String>,
    credentials: BTreeMap<String, Value>,
) -> Result<DestinationConfig> {
    let url = url.unwrap_or_else(|| "./pgcdc.duckdb".into());
    if let Some(location) = url.strip_prefix("delta:") {
        if location.is_empty() {
            bail!("destination.url 'delta:' names no folder; use delta:<folder> or delta:s3://bucket/prefix");
        }
        return Ok(DestinationConfig::Delta {
            url: location.to_string(),
            options: store_options(credentials)?,
            dataset,
            soft_delete,
        });
    }
    if !credentials.is_empty() {
        bail!("destination.credentials are for object storage (changelog files, Delta tables); a database mirror's credentials go in destination.url");
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // Only the URL: PG* variables are the source's.
        let (pg, tls) = connection_config("destination.url", Some(&url), &[])?;
        return Ok(DestinationConfig::Postgres {
            pg: Box::new(pg),
            tls,
            dataset,
            soft_delete,
        });
    }
    let path = if let Some(p) = url
        .strip_prefix("duckdb://")
        .or_else(|| url.strip_prefix("duckdb:"))
    {
        p.to_string()
    } else if url.ends_with(".duckdb") || url.ends_with(".db") {
        url.clone()
    } else {
        bail!(
            "destination.url '{}' is not a mirror destination: mirror mode writes into PostgreSQL (postgresql://…), a DuckDB file (a path ending in .duckdb, or duckdb:<path>) or Delta tables (delta:<folder>, delta:s3://bucket/prefix)",
            pgcdc_sink::store::redact_url(&url)
        );
    };
    if path.is_empty() {
        bail!("destination.url '{url}' names no DuckDB file");
    }
    Ok(DestinationConfig::DuckDb {
        path: PathBuf::from(path),
        dataset,
        soft_delete,
    })
}

/// The validated runtime configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The source database.
    pub source: SourceConfig,
    /// The destination.
    pub destination: DestinationConfig,
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
        match &self.destination {
            DestinationConfig::Files(f) => out.extend(f.options.secret_values()),
            DestinationConfig::Postgres { pg, .. } => out.extend(
                pg.get_password()
                    .map(|p| String::from_utf8_lossy(p).into_owned()),
            ),
            DestinationConfig::DuckDb { .. } => {}
            DestinationConfig::Delta { options, .. } => out.extend(options.secret_values()),
        }
        out
    }

    /// Loads and validates the configuration from all layers.
    pub fn load(opts: &LoadOptions) -> Result<Config> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let (doc, origin) = base_document(opts)?;
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
        apply_env(&mut doc, &env)?;
        for set in sets {
            let (key, value) = set
                .split_once('=')
                .ok_or_else(|| anyhow!("--set '{set}': expected section.key=value"))?;
            let path: Vec<String> = key.trim().split('.').map(str::to_string).collect();
            set_path(&mut doc, &path, parse_value(value))
                .with_context(|| format!("--set {key}"))?;
        }
        let raw: RawConfig = Value::Table(doc)
            .try_into()
            .map_err(|e: toml::de::Error| anyhow!("configuration ({origin}): {}", e.message()))?;
        validate(raw, &env, origin)
    }
}

/// The file layer: `pgcdc.toml`, or dlt's files translated.
fn base_document(opts: &LoadOptions) -> Result<(Table, String)> {
    let explicit = opts.path.clone();
    let default = opts.dir.join("pgcdc.toml");
    let path = match explicit {
        Some(p) => Some(p),
        None if default.exists() => Some(default),
        None => None,
    };
    if let Some(path) = path {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        let doc: Table =
            toml::from_str(&text).map_err(|e| anyhow!("{}: {}", path.display(), e.message()))?;
        return Ok((doc, path.display().to_string()));
    }
    let dlt = opts.dir.join(".dlt");
    if dlt.join("config.toml").exists() || dlt.join("secrets.toml").exists() {
        return Ok((
            crate::dlt::translate(&dlt)?,
            format!("{} (dlt layout)", dlt.display()),
        ));
    }
    Ok((Table::new(), "defaults and environment".into()))
}

/// A TOML value from an environment string: TOML syntax if it parses, else a string.
fn parse_value(s: &str) -> Value {
    let wrapped = format!("v = {s}");
    match toml::from_str::<Table>(&wrapped) {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| Value::String(s.into())),
        Err(_) => Value::String(s.into()),
    }
}

/// Sets `path` (e.g. `["source","url"]`) in `doc`, creating tables on the way.
pub(crate) fn set_path(doc: &mut Table, path: &[String], value: Value) -> Result<()> {
    let Some((last, parents)) = path.split_last() else {
        bail!("empty key")
    };
    let mut cur = doc;
    for p in parents {
        let entry = cur
            .entry(p.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        cur = entry
            .as_table_mut()
            .ok_or_else(|| anyhow!("'{p}' is a value, not a section"))?;
    }
    cur.insert(last.clone(), value);
    Ok(())
}

/// `PGCDC__SECTION__KEY` and dlt's credential variables.
fn apply_env(doc: &mut Table, env: &[(String, String)]) -> Result<()> {
    for (k, v) in env {
        if let Some(rest) = k.strip_prefix("PGCDC__") {
            let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
            set_path(doc, &path, parse_value(v))
                .with_context(|| format!("environment variable {k}"))?;
        }
    }
    let dlt_url = env
        .iter()
        .find(|(k, _)| k == "SOURCES__PG_REPLICATION__CREDENTIALS")
        .map(|(_, v)| v.clone());
    let has_pgcdc_url = env.iter().any(|(k, _)| k == "PGCDC__SOURCE__URL");
    if let (Some(url), false) = (dlt_url, has_pgcdc_url) {
        set_path(doc, &["source".into(), "url".into()], Value::String(url))?;
    }
    // dlt's filesystem destination variables, below pgcdc's own.
    for (k, v) in env {
        let path: Vec<String> = if k == "DESTINATION__FILESYSTEM__BUCKET_URL" {
            vec!["destination".into(), "url".into()]
        } else if let Some(key) = k.strip_prefix("DESTINATION__FILESYSTEM__CREDENTIALS__") {
            vec![
                "destination".into(),
                "credentials".into(),
                key.to_ascii_lowercase(),
            ]
        } else {
            continue;
        };
        let ours = format!("PGCDC__{}", path.join("__").to_ascii_uppercase());
        if !env.iter().any(|(k2, _)| k2.eq_ignore_ascii_case(&ours)) {
            set_path(doc, &path, Value::String(v.clone()))
                .with_context(|| format!("environment variable {k}"))?;
        }
    }
    Ok(())
}

fn validate(raw: RawConfig, env: &[(String, String)], origin: String) -> Result<Config> {
    let s = raw.source;
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
    let d = raw.destination;
    if d.dataset.is_empty() || d.dataset.contains('/') || d.dataset.starts_with('.') {
        bail!(
            "destination.dataset '{}' must be a plain folder name",
            d.dataset
        );
    }
    if raw.batch.max_rows == 0 || raw.batch.max_mb == 0 {
        bail!("batch.max_rows and batch.max_mb must be at least 1");
    }
    let meta = MetaColumns::preset(d.naming);
    if let Some(f) = &d.soft_delete_column {
        if d.mode != Mode::Mirror {
            bail!("destination.soft_delete_column applies to mode = \"mirror\" only (a changelog keeps every delete as a row)");
        }
        if f.is_empty() || meta.names().iter().any(|n| n.eq_ignore_ascii_case(f)) {
            bail!("destination.soft_delete_column '{f}' must be a column name other than pgcdc's metadata columns");
        }
    }
    let destination = match d.mode {
        Mode::Changelog => {
            let mut files = FilesConfig::new(d.url.unwrap_or_else(|| "./lake".into()), d.dataset);
            files.options = store_options(d.credentials)?;
            files.format = d.format;
            files.compress = d.compression;
            files.max_file_bytes = d.max_file_mb.max(1) << 20;
            DestinationConfig::Files(files)
        }
        Mode::Mirror => {
            let m = mirror_destination(d.url, d.dataset, d.soft_delete_column, d.credentials)?;
            if let DestinationConfig::Postgres {
                pg: target,
                dataset,
                ..
            } = &m
            {
                let same_db = target.get_hosts() == pg.get_hosts()
                    && target.get_ports() == pg.get_ports()
                    && target.get_dbname() == pg.get_dbname();
                if same_db && *dataset == s.schema {
                    bail!("destination.dataset '{dataset}' is the source schema of the same database: the mirror would overwrite the source tables; choose another destination.dataset");
                }
            }
            m
        }
    };
    Ok(Config {
        source: SourceConfig {
            pg,
            tls,
            slot: s.slot,
            publication: s.publication,
            schema: s.schema,
            tables: s.tables,
            publish: Publish::parse(&s.publish)?,
            include_columns: s.include_columns,
            max_retained_wal_bytes: s.max_retained_wal_mb.saturating_mul(1 << 20),
            heartbeat_interval: (s.heartbeat_interval_s > 0)
                .then(|| Duration::from_secs(s.heartbeat_interval_s)),
            reader: s.reader,
            binary: s.binary,
        },
        destination,
        meta,
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

/// `[destination.credentials]` values as strings (numbers and booleans are accepted as
/// TOML values, since environment variables arrive parsed).
fn store_options(raw: BTreeMap<String, Value>) -> Result<StoreOptions> {
    let mut out = BTreeMap::new();
    for (k, v) in raw {
        let text = match v {
            Value::String(s) => s,
            Value::Integer(i) => i.to_string(),
            Value::Boolean(b) => b.to_string(),
            Value::Float(f) => f.to_string(),
            _ => bail!("destination.credentials.{k} must be a string"),
        };
        out.insert(k.to_ascii_lowercase(), text);
    }
    Ok(StoreOptions::new(out))
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

/// Parses the connection URL (or key=value string) and fills gaps from libpq's `PG*` variables.
fn connection_config(
    option: &str,
    url: Option<&str>,
    env: &[(String, String)],
) -> Result<(tokio_postgres::Config, TlsOptions)> {
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    // libpq's TLS parameters tokio-postgres does not know are taken out first.
    let (url, mut tls) = match url {
        Some(u) => {
            let (rest, tls) = pgcdc_source::tls::split_tls_params(u).map_err(|e| {
                anyhow!(
                    "{option}: {}",
                    redact(
                        &e.to_string(),
                        &password_of(u).into_iter().collect::<Vec<_>>()
                    )
                )
            })?;
            (Some(rest), tls)
        }
        None => (None, TlsOptions::default()),
    };
    let url = url.as_deref();
    let in_url = |k: &str| url.is_some_and(|u| u.contains(k));
    if !in_url("sslmode") {
        if let Some(m) = get("PGSSLMODE") {
            tls.mode = SslMode::parse(m).ok_or_else(|| {
                anyhow!("PGSSLMODE '{m}' is not one of disable, allow, prefer, require, verify-ca, verify-full")
            })?;
        }
    }
    for (var, slot) in [
        ("PGSSLROOTCERT", &mut tls.root_cert),
        ("PGSSLCERT", &mut tls.client_cert),
        ("PGSSLKEY", &mut tls.client_key),
    ] {
        if slot.is_none() {
            *slot = get(var).map(PathBuf::from);
        }
    }
    let mut cfg = match url {
        Some(u) => tokio_postgres::Config::from_str(u).map_err(|e| {
            let secrets = password_of(u).into_iter().collect::<Vec<_>>();
            // tokio-postgres says which option is wrong only in the error's source.
            let why = std::error::Error::source(&e)
                .map_or_else(|| e.to_string(), |s| format!("{e}: {s}"));
            anyhow!(
                "{option} is not a valid PostgreSQL URL (postgresql://user:password@host:port/db) or key=value string: {}",
                redact(&why, &secrets)
            )
        })?,
        None => tokio_postgres::Config::new(),
    };
    if cfg.get_hosts().is_empty() {
        cfg.host(get("PGHOST").unwrap_or("localhost"));
    }
    if cfg.get_ports().is_empty() {
        if let Some(p) = get("PGPORT") {
            cfg.port(
                p.parse()
                    .map_err(|_| anyhow!("PGPORT '{p}' is not a port number"))?,
            );
        }
    }
    if cfg.get_user().is_none() {
        let user = get("PGUSER")
            .map(str::to_string)
            .or_else(|| get("USER").map(str::to_string));
        cfg.user(user.unwrap_or_else(|| "postgres".into()));
    }
    if cfg.get_password().is_none() {
        if let Some(p) = get("PGPASSWORD") {
            cfg.password(p);
        }
    }
    if cfg.get_dbname().is_none() {
        let db = get("PGDATABASE")
            .map(str::to_string)
            .or_else(|| cfg.get_user().map(str::to_string));
        if let Some(db) = db {
            cfg.dbname(db);
        }
    }
    if cfg.get_password().is_none() {
        // libpq's password file: PGPASSFILE, else ~/.pgpass.
        let file = get("PGPASSFILE")
            .map(PathBuf::from)
            .or_else(|| get("HOME").map(|h| Path::new(h).join(".pgpass")));
        if let Some(p) = file.and_then(|f| pgpass_password(&f, &cfg)) {
            cfg.password(p);
        }
    }
    if cfg.get_application_name().is_none() {
        cfg.application_name("pgcdc");
    }
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(Duration::from_secs(10));
    }
    Ok((cfg, tls))
}

/// The password for `cfg`'s first host, port, database and user in a libpq password file
/// (`host:port:database:user:password` lines, `*` matching anything, `\` escaping `:`).
/// As libpq does, a file that others can read is ignored, with a warning.
fn pgpass_password(file: &Path, cfg: &tokio_postgres::Config) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file).ok()?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                "password file {} has group or world access; it is ignored (chmod 0600 it)",
                file.display()
            );
            return None;
        }
    }
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "localhost".to_string(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432).to_string();
    let want = [
        host.as_str(),
        port.as_str(),
        cfg.get_dbname().unwrap_or_default(),
        cfg.get_user().unwrap_or_default(),
    ];
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(pgpass_fields)
        .find(|f| {
            f.len() == 5
                && f.iter()
                    .zip(want)
                    .all(|(field, w)| field == "*" || field == w)
        })
        .and_then(|mut f| f.pop())
}

/// The `:`-separated fields of a password-file line (`\:` and `\\` are escapes).
fn pgpass_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(n), Some(last)) = (chars.next(), fields.last_mut()) {
                    last.push(n);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => {
                if let Some(last) = fields.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    fields
}

/// The password embedded in a URL, if any (to redact it from messages).
pub fn password_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let p = parsed.password()?;
    let decoded = percent_encoding::percent_decode_str(p)
        .decode_utf8()
        .ok()?
        .to_string();
    Some(decoded)
}

/// Replaces every occurrence of each secret in `text` with `***`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 3) {
        out = out.replace(s.as_str(), "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_file_is_read_as_libpq_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        std::fs::write(
            &file,
            "# comment\nother:5432:*:*:no\ndb\\:host:6543:*:alice:first\n*:*:app:*:pa\\:ss\\\\word\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let env = |url: &str| {
            vec![
                ("PGPASSFILE".to_string(), file.display().to_string()),
                ("X".to_string(), url.to_string()),
            ]
        };
        let pw = |url: &str| {
            let (cfg, _) = connection_config("source.url", Some(url), &env(url)).unwrap();
            cfg.get_password()
                .map(|p| String::from_utf8_lossy(p).into_owned())
        };
        assert_eq!(
            pw("postgresql://alice@db%3Ahost:6543/x").as_deref(),
            Some("first")
        );
        assert_eq!(pw("postgresql://bob@h/app").as_deref(), Some("pa:ss\\word"));
        assert_eq!(pw("postgresql://bob:given@h/app").as_deref(), Some("given"));
        assert_eq!(pw("postgresql://bob@h/elsewhere"), None);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            pw("postgresql://bob@h/app"),
            None,
            "a world-readable file is ignored"
        );
    }

    fn load_str(toml_text: &str, env: &[(&str, &str)]) -> Result<Config> {
        let mut doc: Table = toml::from_str(toml_text)?;
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        apply_env(&mut doc, &env)?;
        let raw: RawConfig = Value::Table(doc)
            .try_into()
            .map_err(|e: toml::de::Error| anyhow!("{}", e.message()))?;
        validate(raw, &env, "test".into())
    }

    #[test]
    fn delta_mirror_urls_take_object_storage_credentials() {
        let c = load_str(
            "[destination]\nmode = 'mirror'\nurl = 'delta:s3://demo/lake'\n[destination.credentials]\naws_access_key_id = 'k'\naws_secret_access_key = 'delta-secret'\n",
            &[],
        )
        .unwrap();
        let DestinationConfig::Delta { url, options, .. } = &c.destination else {
            panic!("not a Delta destination: {:?}", c.destination);
        };
        assert_eq!(url, "s3://demo/lake");
        assert!(options
            .secret_values()
            .contains(&"delta-secret".to_string()));
        assert!(c.secrets().contains(&"delta-secret".to_string()));
        assert!(!c.destination.location().contains("delta-secret"));
        let err = load_str("[destination]\nmode = 'mirror'\nurl = 'delta:'\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("names no folder"), "{err}");
        // Database mirrors still refuse object-storage credentials.
        let err = load_str(
            "[destination]\nmode = 'mirror'\nurl = 'm.duckdb'\n[destination.credentials]\naws_access_key_id = 'k'\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("destination.credentials"), "{err}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = load_str("[source]\nslott = 'x'\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("slott"), "{err}");
        let err = load_str("[sauce]\n", &[]).unwrap_err().to_string();
        assert!(err.contains("sauce"), "{err}");
    }

    #[test]
    fn env_overrides_file_and_password_never_shows() {
        let c = load_str(
            "[source]\nurl = 'postgresql://u:filepw@h:1/db'\n",
            &[
                (
                    "PGCDC__SOURCE__URL",
                    "postgresql://u:s3cr%40t@envhost:5433/db2",
                ),
                ("PGCDC__BATCH__MAX_ROWS", "7"),
            ],
        )
        .unwrap();
        assert_eq!(
            pgcdc_source::connect::describe(&c.source.pg),
            "u@envhost:5433/db2"
        );
        assert_eq!(c.batch.max_rows, 7);
        assert_eq!(c.source.pg.get_password(), Some(&b"s3cr@t"[..]));
        assert!(!format!("{c:?}").contains("s3cr@t"));
    }

    #[test]
    fn a_bad_url_names_the_option_and_not_the_password() {
        for (url, option) in [
            ("postgresql://u:pw-4711@h:notaport/db", "port"),
            ("host=h password='pw-4711' bogus=1", "bogus"),
        ] {
            let err = load_str(&format!("[source]\nurl = \"{url}\"\n"), &[])
                .unwrap_err()
                .to_string();
            assert!(err.contains(option) && !err.contains("pw-4711"), "{err}");
        }
    }

    #[test]
    fn dlt_credentials_env_sets_the_url() {
        let c = load_str(
            "",
            &[(
                "SOURCES__PG_REPLICATION__CREDENTIALS",
                "postgresql://a@b:7/c",
            )],
        )
        .unwrap();
        assert_eq!(pgcdc_source::connect::describe(&c.source.pg), "a@b:7/c");
    }

    #[test]
    fn bad_names_and_ops_are_explained() {
        let e = load_str("[source]\nslot = 'My-Slot'\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("lowercase"), "{e}");
        let e = load_str("[source]\npublish = 'insert, upsert'\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("upsert"), "{e}");
        let e = load_str(
            "[source]\nurl = 'postgresql://u:hunter22@h:notaport/db'\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(!e.contains("hunter22"), "{e}");
    }

    #[test]
    fn env_values_parse_as_toml_when_they_can() {
        assert_eq!(
            parse_value("[\"a\", \"b\"]").as_array().map(|a| a.len()),
            Some(2)
        );
        assert_eq!(
            parse_value("postgresql://x").as_str(),
            Some("postgresql://x")
        );
        assert_eq!(parse_value("true").as_bool(), Some(true));
    }
}
