//! Destinations from a URL: the `[destination]` settings ([`DestinationSpec`], read with
//! serde exactly as users write them), checked and resolved into a [`Target`] by the
//! URL's scheme, which [`Target::open`] turns into a [`Destination`].
//!
//! This module owns every rule that depends on the kind of destination: which URLs
//! mean which destination in which mode, which settings apply to which, what a
//! destination looks like in messages and which of its settings are secrets, and how
//! the PostgreSQL mirror connects (through `pgcdc_source::connect`, retried only when
//! the failure is transient). It does not read configuration files or the environment
//! (the binary does, and hands the `[destination]` table over) and holds none of a
//! destination's own logic (see each destination's module).
//!
//! | mode | `url` | destination |
//! |---|---|---|
//! | `changelog` (default) | a folder, `file://`, `s3://`, `gs://`, `az://` … (default `./lake`) | [`crate::files`] |
//! | `mirror` | `postgres://…`, `postgresql://…` | [`crate::postgres`] |
//! | `mirror` | `duckdb:<path>`, `duckdb://<path>`, `*.duckdb`, `*.db` (default `./pgcdc.duckdb`) | `duckdb` (feature `duckdb`) |
//! | `mirror` | `delta:<folder>`, `delta:s3://bucket/prefix` | `delta` (feature `delta`) |
//! | `changelog` | `memory:<name>` (tests) | `memory` (feature `memory`) |
//!
//! A destination whose cargo feature is off is still recognised; opening it says how to
//! build pgcdc with it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use pgcdc_core::{MetaColumns, MetaPreset};
use pgcdc_source::tls::TlsOptions;

use crate::files::{FileFormat, FilesConfig};
use crate::postgres::{Connector, PostgresConfig, PostgresDestination};
use crate::store::{redact_url, StoreOptions};
use crate::{Destination, Error, ErrorKind, Result};

/// The `[destination]` table of `pgcdc.toml`, as written. Unknown keys are an error that
/// names them. Field docs are the reference for the table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DestinationSpec {
    /// `changelog` (files with every change) or `mirror` (tables equal to the source).
    pub mode: Mode,
    /// Changelog: a folder or object-storage URL (default `./lake`). Mirror: a DuckDB
    /// file (`*.duckdb`, or `duckdb:<path>`; default `./pgcdc.duckdb`), a PostgreSQL URL,
    /// or Delta tables (`delta:<folder>` or `delta:s3://bucket/prefix`).
    pub url: Option<String>,
    /// Object-storage credentials and settings (see [`crate::store`]).
    pub credentials: BTreeMap<String, Setting>,
    /// Changelog: the file format.
    pub format: FileFormat,
    /// The folder (changelog, Delta) or schema (databases) holding the tables.
    pub dataset: String,
    /// Changelog: zstd compression for Parquet.
    pub compression: bool,
    /// The metadata columns' names (pgcdc's or dlt's).
    pub naming: MetaPreset,
    /// Changelog: a file is closed past this many MiB.
    pub max_file_mb: usize,
    /// Mirror mode: keep deleted rows with this BOOLEAN column set to true.
    pub soft_delete_column: Option<String>,
}

impl Default for DestinationSpec {
    fn default() -> Self {
        DestinationSpec {
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

/// One `[destination.credentials]` value: text, or a number or boolean (environment
/// variables arrive parsed as TOML), used as its text. `Debug` never shows it.
#[derive(Clone, Deserialize)]
#[serde(untagged)]
pub enum Setting {
    /// A string.
    Text(String),
    /// An integer.
    Integer(i64),
    /// A boolean.
    Boolean(bool),
    /// A float.
    Float(f64),
    /// Anything else (a table, an array, a date), refused by [`DestinationSpec::parse`].
    Other(serde::de::IgnoredAny),
}

impl std::fmt::Debug for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A checked destination, resolved from its URL, not opened yet. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub struct Target {
    kind: Kind,
    meta: MetaColumns,
    /// The schema or folder holding the tables.
    dataset: String,
    /// Mirrors: the soft-delete flag column, if deletes keep rows.
    soft_delete: Option<String>,
}

/// The destinations, with what each needs beyond [`Target`]'s common settings.
#[derive(Debug, Clone)]
enum Kind {
    /// Changelog files on a local disk or object storage.
    Files(FilesConfig),
    /// Mirrored tables in another PostgreSQL database (or schema).
    Postgres {
        /// Connection settings (the password only inside, redacted in `Debug`).
        pg: Box<tokio_postgres::Config>,
        tls: TlsOptions,
    },
    /// Mirrored tables in a DuckDB file.
    DuckDb { path: PathBuf },
    /// Delta Lake tables on a local disk or object storage.
    Delta {
        /// A local folder, `file://` or `s3://` URL (without the `delta:` prefix).
        url: String,
        options: StoreOptions,
    },
    /// The in-memory changelog store of this name (tests).
    Memory { name: String },
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidConfig, message)
}

impl DestinationSpec {
    /// Checks the settings and resolves the URL into a [`Target`], with a message naming
    /// the setting and what to write instead when something is wrong.
    pub fn parse(self) -> Result<Target> {
        let d = self;
        if d.dataset.is_empty() || d.dataset.contains('/') || d.dataset.starts_with('.') {
            return Err(invalid(format!(
                "destination.dataset '{}' must be a plain folder name",
                d.dataset
            )));
        }
        let meta = MetaColumns::preset(d.naming);
        if let Some(f) = &d.soft_delete_column {
            if d.mode != Mode::Mirror {
                return Err(invalid("destination.soft_delete_column applies to mode = \"mirror\" only (a changelog keeps every delete as a row)"));
            }
            if f.is_empty() || meta.names().iter().any(|n| n.eq_ignore_ascii_case(f)) {
                return Err(invalid(format!("destination.soft_delete_column '{f}' must be a column name other than pgcdc's metadata columns")));
            }
        }
        let kind = match d.mode {
            Mode::Changelog if d.url.as_deref().is_some_and(|u| u.starts_with("memory:")) => {
                let name = d.url.as_deref().unwrap_or_default()["memory:".len()..].to_string();
                Kind::Memory { name }
            }
            Mode::Changelog => {
                let mut files =
                    FilesConfig::new(d.url.unwrap_or_else(|| "./lake".into()), d.dataset.clone());
                files.options = store_options(d.credentials)?;
                files.format = d.format;
                files.compress = d.compression;
                files.max_file_bytes = d.max_file_mb.max(1) << 20;
                Kind::Files(files)
            }
            Mode::Mirror => mirror_kind(d.url, d.credentials)?,
        };
        Ok(Target {
            kind,
            meta,
            dataset: d.dataset,
            soft_delete: d.soft_delete_column,
        })
    }
}

/// A mirror destination by the URL's scheme (or file name).
fn mirror_kind(url: Option<String>, credentials: BTreeMap<String, Setting>) -> Result<Kind> {
    let url = url.unwrap_or_else(|| "./pgcdc.duckdb".into());
    if let Some(location) = url.strip_prefix("delta:") {
        if location.is_empty() {
            return Err(invalid("destination.url 'delta:' names no folder; use delta:<folder> or delta:s3://bucket/prefix"));
        }
        return Ok(Kind::Delta {
            url: location.to_string(),
            options: store_options(credentials)?,
        });
    }
    if !credentials.is_empty() {
        return Err(invalid("destination.credentials are for object storage (changelog files, Delta tables); a database mirror's credentials go in destination.url"));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // Only the URL: PG* variables are the source's.
        let (pg, tls) =
            pgcdc_source::connect::connection_config("destination.url", Some(&url), &[])
                .map_err(|e| invalid(e.to_string()))?;
        return Ok(Kind::Postgres {
            pg: Box::new(pg),
            tls,
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
        return Err(invalid(format!(
            "destination.url '{}' is not a mirror destination: mirror mode writes into PostgreSQL (postgresql://…), a DuckDB file (a path ending in .duckdb, or duckdb:<path>) or Delta tables (delta:<folder>, delta:s3://bucket/prefix)",
            redact_url(&url)
        )));
    };
    if path.is_empty() {
        return Err(invalid(format!(
            "destination.url '{url}' names no DuckDB file"
        )));
    }
    Ok(Kind::DuckDb {
        path: PathBuf::from(path),
    })
}

/// `[destination.credentials]` as object-store options (keys lowercased).
fn store_options(raw: BTreeMap<String, Setting>) -> Result<StoreOptions> {
    let mut out = BTreeMap::new();
    for (k, v) in raw {
        let text = match v {
            Setting::Text(s) => s,
            Setting::Integer(i) => i.to_string(),
            Setting::Boolean(b) => b.to_string(),
            Setting::Float(f) => f.to_string(),
            Setting::Other(_) => {
                return Err(invalid(format!(
                    "destination.credentials.{k} must be a string"
                )))
            }
        };
        out.insert(k.to_ascii_lowercase(), text);
    }
    Ok(StoreOptions::new(out))
}

impl Target {
    /// The metadata column names the destination's tables carry.
    pub fn meta(&self) -> &MetaColumns {
        &self.meta
    }

    /// Where the data goes, for messages (no secrets).
    pub fn location(&self) -> String {
        let dataset = &self.dataset;
        match &self.kind {
            Kind::Files(f) => redact_url(&f.url),
            Kind::Postgres { pg, .. } => {
                format!("{} (schema {dataset})", pgcdc_source::connect::describe(pg))
            }
            Kind::DuckDb { path } => format!("{} (schema {dataset})", path.display()),
            Kind::Memory { name } => format!("the in-memory store {name}"),
            Kind::Delta { url, .. } => {
                format!("Delta tables at {} (dataset {dataset})", redact_url(url))
            }
        }
    }

    /// The secret values among the settings (a database password, object-storage keys),
    /// for redacting messages that might echo them.
    pub fn secrets(&self) -> Vec<String> {
        match &self.kind {
            Kind::Files(f) => f.options.secret_values(),
            Kind::Postgres { pg, .. } => pg
                .get_password()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .into_iter()
                .collect(),
            Kind::DuckDb { .. } | Kind::Memory { .. } => Vec::new(),
            Kind::Delta { options, .. } => options.secret_values(),
        }
    }

    /// Refuses a destination that would overwrite the source: a PostgreSQL mirror into
    /// the source's own schema (`source_schema` of the database `source`).
    pub fn check_source(&self, source: &tokio_postgres::Config, source_schema: &str) -> Result<()> {
        if let Kind::Postgres { pg, .. } = &self.kind {
            let same_db = pg.get_hosts() == source.get_hosts()
                && pg.get_ports() == source.get_ports()
                && pg.get_dbname() == source.get_dbname();
            if same_db && self.dataset == source_schema {
                return Err(invalid(format!("destination.dataset '{}' is the source schema of the same database: the mirror would overwrite the source tables; choose another destination.dataset", self.dataset)));
            }
        }
        Ok(())
    }

    /// The destination, ready for [`Destination::open`] (nothing is read or written yet;
    /// a local DuckDB file or folder must be reachable).
    pub fn open(&self) -> Result<Box<dyn Destination>> {
        Ok(match &self.kind {
            Kind::Files(f) => Box::new(crate::files::FilesDestination::new(f.clone())?),
            Kind::Postgres { pg, tls } => Box::new(PostgresDestination::new(
                PostgresConfig {
                    dataset: self.dataset.clone(),
                    meta: self.meta.clone(),
                    location: pgcdc_source::connect::describe(pg),
                    soft_delete: self.soft_delete.clone(),
                },
                connector(pg, tls),
            )?),
            Kind::DuckDb { path } => self.open_duckdb(path)?,
            Kind::Delta { url, options } => self.open_delta(url, options)?,
            Kind::Memory { name } => open_memory(name)?,
        })
    }
}

/// Connections to a PostgreSQL mirror. A failure a retry can cure (see
/// `pgcdc_source::connect`) is [`ErrorKind::Unavailable`]; bad credentials, a missing
/// privilege or database, or a TLS failure is [`ErrorKind::InvalidConfig`], so that
/// `run --follow` stops on it instead of retrying forever.
fn connector(pg: &tokio_postgres::Config, tls: &TlsOptions) -> Connector {
    let (pg, tls) = (pg.clone(), tls.clone());
    Arc::new(move || {
        let (pg, tls) = (pg.clone(), tls.clone());
        Box::pin(async move {
            pgcdc_source::connect::connect_sql(&pg, &tls)
                .await
                .map_err(connect_error)
        })
    })
}

/// A failed connection to the mirror database, by the source crate's classification.
/// The cause is in the message, not attached: its I/O causes would read as transient.
fn connect_error(e: pgcdc_source::Error) -> Error {
    let kind = if e.kind().is_transient() {
        ErrorKind::Unavailable
    } else {
        ErrorKind::InvalidConfig
    };
    Error::new(kind, format!("cannot connect to the mirror database: {e}"))
}

impl Target {
    #[cfg(feature = "duckdb")]
    fn open_duckdb(&self, path: &Path) -> Result<Box<dyn Destination>> {
        use crate::duckdb::{DuckDbConfig, DuckDbDestination};
        Ok(Box::new(DuckDbDestination::new(DuckDbConfig {
            path: path.to_path_buf(),
            dataset: self.dataset.clone(),
            meta: self.meta.clone(),
            soft_delete: self.soft_delete.clone(),
        })?))
    }

    #[cfg(not(feature = "duckdb"))]
    fn open_duckdb(&self, _: &Path) -> Result<Box<dyn Destination>> {
        Err(built_without(
            "destination.mode = \"mirror\" needs DuckDB",
            "duckdb",
        ))
    }

    #[cfg(feature = "delta")]
    fn open_delta(&self, url: &str, options: &StoreOptions) -> Result<Box<dyn Destination>> {
        use crate::delta::{DeltaConfig, DeltaDestination};
        Ok(Box::new(DeltaDestination::new(DeltaConfig {
            url: url.to_string(),
            options: options.clone(),
            dataset: self.dataset.clone(),
            meta: self.meta.clone(),
            soft_delete: self.soft_delete.clone(),
        })?))
    }

    #[cfg(not(feature = "delta"))]
    fn open_delta(&self, _: &str, _: &StoreOptions) -> Result<Box<dyn Destination>> {
        Err(built_without(
            "destination.url delta:… needs Delta Lake support",
            "delta",
        ))
    }
}

#[cfg(feature = "memory")]
fn open_memory(name: &str) -> Result<Box<dyn Destination>> {
    Ok(Box::new(
        crate::memory::MemoryStore::named(name).destination(),
    ))
}

#[cfg(not(feature = "memory"))]
fn open_memory(_: &str) -> Result<Box<dyn Destination>> {
    Err(built_without(
        "destination.url memory:… (for tests) needs the in-memory destination",
        "memory",
    ))
}

/// A destination this build leaves out: what needs it, and how to build it in.
#[cfg(any(
    not(feature = "duckdb"),
    not(feature = "delta"),
    not(feature = "memory")
))]
fn built_without(needs: &str, feature: &str) -> Error {
    invalid(format!("{needs}, and this pgcdc was built without it: build with `cargo build --features {feature}` (see the README)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(toml_text: &str) -> Result<Target> {
        let spec: DestinationSpec =
            toml::from_str(toml_text).map_err(|e| invalid(e.message().to_string()))?;
        spec.parse()
    }

    fn err(toml_text: &str) -> String {
        target(toml_text).unwrap_err().to_string()
    }

    fn mirror(url: &str) -> Result<Target> {
        target(&format!("mode = 'mirror'\nurl = '{url}'\n"))
    }

    #[test]
    fn the_memory_scheme_names_an_in_memory_store() {
        let t = target("url = \"memory:runs\"").unwrap();
        assert!(matches!(&t.kind, Kind::Memory { name } if name == "runs"));
        assert_eq!(t.location(), "the in-memory store runs");
        assert!(t.secrets().is_empty());
    }

    #[test]
    fn every_scheme_resolves_to_its_destination() {
        let t = target("").unwrap();
        assert!(matches!(&t.kind, Kind::Files(f) if f.url == "./lake" && f.dataset == "pgcdc"));
        assert_eq!(t.location(), "./lake");
        let t =
            target("url = 's3://b/p'\nformat = 'jsonl'\ncompression = false\nmax_file_mb = 0\n")
                .unwrap();
        let Kind::Files(f) = &t.kind else {
            panic!("{t:?}")
        };
        assert_eq!(
            (f.format, f.compress, f.max_file_bytes),
            (FileFormat::Jsonl, false, 1 << 20)
        );
        let t = target("mode = 'mirror'\n").unwrap();
        assert!(matches!(&t.kind, Kind::DuckDb { path } if path == Path::new("./pgcdc.duckdb")));
        assert_eq!(t.location(), "./pgcdc.duckdb (schema pgcdc)");
        for (url, path) in [
            ("duckdb:m", "m"),
            ("duckdb:///abs/m", "/abs/m"),
            ("x/m.duckdb", "x/m.duckdb"),
            ("m.db", "m.db"),
        ] {
            let t = mirror(url).unwrap();
            assert!(
                matches!(&t.kind, Kind::DuckDb { path: p } if p == Path::new(path)),
                "{url}: {t:?}"
            );
        }
        for url in ["postgresql://u@h:7/db", "postgres://u@h:7/db"] {
            let t = mirror(url).unwrap();
            assert!(matches!(t.kind, Kind::Postgres { .. }), "{url}");
            assert_eq!(t.location(), "u@h:7/db (schema pgcdc)");
        }
        let t =
            target("mode = 'mirror'\nurl = 'postgresql://u@h/db?sslmode=verify-full'\n").unwrap();
        let Kind::Postgres { tls, .. } = &t.kind else {
            panic!("{t:?}")
        };
        assert_eq!(tls.mode, pgcdc_source::tls::SslMode::VerifyFull);
        let t = target("mode = 'mirror'\nurl = 'delta:/data/lake'\ndataset = 'ds'\n").unwrap();
        assert!(matches!(&t.kind, Kind::Delta { url, .. } if url == "/data/lake"));
        assert_eq!(t.location(), "Delta tables at /data/lake (dataset ds)");
        let t = target("naming = 'dlt'\n").unwrap();
        assert_eq!(t.meta(), &MetaColumns::preset(MetaPreset::Dlt));
    }

    #[test]
    fn secrets_are_listed_and_never_shown() {
        let t = target("url = 's3://b/p'\n[credentials]\naws_access_key_id = 'k'\nAWS_SECRET_ACCESS_KEY = 'files-secret'\naws_region = 12\n").unwrap();
        // A key id counts as a secret too (its name holds "key").
        assert_eq!(t.secrets(), ["k", "files-secret"]);
        let Kind::Files(f) = &t.kind else {
            panic!("{t:?}")
        };
        // Keys are lowercased; numbers are used as their text.
        assert_eq!(
            format!("{:?}", f.options),
            r#"{"aws_access_key_id": "<redacted>", "aws_region": "<redacted>", "aws_secret_access_key": "<redacted>"}"#
        );
        let t = target("mode = 'mirror'\nurl = 'delta:s3://demo/lake'\n[credentials]\naws_secret_access_key = 'delta-secret'\n").unwrap();
        assert_eq!(t.secrets(), ["delta-secret"]);
        assert_eq!(
            t.location(),
            "Delta tables at s3://demo/lake (dataset pgcdc)"
        );
        let t = mirror("postgresql://u:pg-s3cret@h/db").unwrap();
        assert_eq!(t.secrets(), ["pg-s3cret"]);
        assert!(mirror("m.duckdb").unwrap().secrets().is_empty());
        for t in [
            target("[credentials]\nsecret = 'files-secret'\n").unwrap(),
            mirror("postgresql://u:pg-s3cret@h/db").unwrap(),
        ] {
            for text in [t.location(), format!("{t:?}")] {
                assert!(
                    !text.contains("-secret") && !text.contains("s3cret"),
                    "{text}"
                );
            }
        }
        let spec: DestinationSpec = toml::from_str("[credentials]\nk = 'spec-secret'\n").unwrap();
        assert!(!format!("{spec:?}").contains("spec-secret"));
    }

    #[test]
    fn a_bad_destination_gets_a_message_naming_what_to_write() {
        for (toml_text, expected) in [
            ("mode = 'mirror'\nurl = 'delta:'\n", "names no folder"),
            (
                "mode = 'mirror'\nurl = './lake'\n",
                "'./lake' is not a mirror destination",
            ),
            ("mode = 'mirror'\nurl = 'duckdb:'\n", "names no DuckDB file"),
            (
                "mode = 'mirror'\nurl = 'm.duckdb'\n[credentials]\naws_access_key_id = 'k'\n",
                "a database mirror's credentials go in destination.url",
            ),
            (
                "mode = 'mirror'\nurl = 'postgresql://u:pw-4711@h:notaport/db'\n",
                "destination.url is not a valid PostgreSQL URL",
            ),
            (
                "mode = 'mirror'\nurl = 'postgresql://u:pw-4711@h/db?sslmode=sometimes'\n",
                "destination.url: sslmode 'sometimes'",
            ),
            ("dataset = 'a/b'\n", "must be a plain folder name"),
            ("dataset = ''\n", "must be a plain folder name"),
            (
                "soft_delete_column = 'd'\n",
                "applies to mode = \"mirror\" only",
            ),
            (
                "mode = 'mirror'\nsoft_delete_column = '_PGCDC_LSN'\n",
                "other than pgcdc's metadata columns",
            ),
            (
                "[credentials]\nk = [1]\n",
                "destination.credentials.k must be a string",
            ),
            ("mode = 'copy'\n", "unknown variant `copy`"),
            ("urll = 'x'\n", "unknown field `urll`"),
        ] {
            let e = err(toml_text);
            assert!(e.contains(expected), "{toml_text}: {e}");
            assert!(!e.contains("pw-4711"), "{e}");
        }
        let e = err("mode = 'mirror'\nurl = 's3://key:s3-secret@bucket/x'\n");
        assert!(
            e.contains("is not a mirror destination") && !e.contains("s3-secret"),
            "{e}"
        );
        assert_eq!(
            target("dataset = 'a/b'\n").unwrap_err().kind(),
            ErrorKind::InvalidConfig
        );
    }

    #[test]
    fn a_postgres_mirror_may_not_be_the_source_schema() {
        let source: tokio_postgres::Config = "host=h port=7 dbname=db".parse().unwrap();
        let same =
            target("mode = 'mirror'\nurl = 'postgresql://other@h:7/db'\ndataset = 'public'\n")
                .unwrap();
        let e = same
            .check_source(&source, "public")
            .unwrap_err()
            .to_string();
        assert!(e.contains("would overwrite the source tables"), "{e}");
        same.check_source(&source, "app").unwrap();
        mirror("postgresql://u@h:8/db")
            .unwrap()
            .check_source(&source, "pgcdc")
            .unwrap();
        target("").unwrap().check_source(&source, "pgcdc").unwrap();
    }

    #[test]
    fn a_changelog_target_opens_without_touching_storage() {
        let dir = tempfile::tempdir().unwrap();
        let lake = dir.path().join("lake");
        let t = target(&format!("url = '{}'\n", lake.display())).unwrap();
        let d = t.open().unwrap();
        assert!(d.describe().contains("lake"), "{}", d.describe());
    }

    #[test]
    fn mirror_connection_failures_are_retried_only_when_transient() {
        use pgcdc_source::{Error as SourceError, ErrorKind as SourceKind};
        for (kind, expected) in [
            (SourceKind::Connection, ErrorKind::Unavailable),
            (SourceKind::Auth, ErrorKind::InvalidConfig),
            (SourceKind::Privilege, ErrorKind::InvalidConfig),
            (SourceKind::Setup, ErrorKind::InvalidConfig),
            (SourceKind::Server, ErrorKind::InvalidConfig),
        ] {
            let e = connect_error(SourceError::new(kind, "at u@h:1/db"));
            assert_eq!(e.kind(), expected, "{kind:?}");
            assert_eq!(
                e.to_string(),
                "cannot connect to the mirror database: at u@h:1/db"
            );
        }
    }

    #[tokio::test]
    async fn the_mirror_connector_reports_a_refused_connection_as_unavailable() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let t = mirror(&format!(
            "postgresql://u:pw@127.0.0.1:{port}/db?sslmode=disable"
        ))
        .unwrap();
        let Kind::Postgres { pg, tls } = &t.kind else {
            panic!("{t:?}")
        };
        let e = connector(pg, tls)().await.err().unwrap();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    }

    #[cfg(not(feature = "duckdb"))]
    #[test]
    fn a_duckdb_mirror_without_the_feature_says_how_to_build_it() {
        let e = mirror("m.duckdb")
            .unwrap()
            .open()
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("built without it") && e.contains("--features duckdb"),
            "{e}"
        );
    }

    #[cfg(not(feature = "delta"))]
    #[test]
    fn a_delta_mirror_without_the_feature_says_how_to_build_it() {
        let e = mirror("delta:/x")
            .unwrap()
            .open()
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("built without it") && e.contains("--features delta"),
            "{e}"
        );
    }
}
