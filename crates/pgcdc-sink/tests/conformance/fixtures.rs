//! One fixture per destination: a fresh, empty place for one case (its own directory,
//! dataset or schema), a way to open a new destination instance over it (as a new pgcdc
//! process would), and an independent reader of what is committed there.
//!
//! Destinations are built through their public constructors, each in one function
//! ([`Fixture::destination`] of each fixture), so that a new way of building them changes
//! those bodies only. Readers are not pgcdc-sink's code: `read.py` (pyarrow, DuckDB's and
//! Delta's Python packages) and plain SQL over tokio-postgres.

use std::process::Command;

use pgcdc_sink::files::{FilesConfig, FilesDestination};
use pgcdc_sink::store::StoreOptions;
use pgcdc_sink::Destination;
use serde_json::{Map, Value};

use crate::changes::meta;

/// A row read back: column name → value (JSON, timestamps as microseconds).
pub type Row = Map<String, Value>;

/// A destination under test and its reader.
pub trait Fixture {
    /// A new destination instance over this fixture's place.
    fn destination(&self) -> Box<dyn Destination>;

    /// What is committed for table `name`: a changelog's rows in the order written, or a
    /// mirror table's rows (in any order); none while the table does not exist. Called
    /// while no destination instance is open (DuckDB lets one process at a time in).
    async fn rows(&self, name: &str) -> Vec<Row>;
}

/// The dataset (folder or schema) every fixture writes its tables under.
const DATASET: &str = "ds";

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("pgcdc-conformance-")
        .tempdir()
        .expect("tempdir")
}

/// Runs `read.py` with `args` (and `env`), one JSON object a line.
fn read_py(args: &[&str], env: &[(String, String)]) -> Vec<Row> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance/read.py");
    let out = Command::new(pgcdc_testkit::python())
        .arg(script)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run read.py");
    assert!(
        out.status.success(),
        "read.py {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("read.py row {l}: {e}")))
        .collect()
}

/// Where a fixture's files go: a local directory or a prefix on the shared S3 server.
enum Place {
    Local(tempfile::TempDir),
    S3(String),
}

impl Place {
    fn local() -> Place {
        Place::Local(tempdir())
    }

    fn s3(case: &str) -> Place {
        Place::S3(format!(
            "s3://demo/{}",
            pgcdc_testkit::unique_name("", case)
        ))
    }

    fn url(&self) -> String {
        match self {
            Place::Local(dir) => dir.path().join("lake").display().to_string(),
            Place::S3(url) => url.clone(),
        }
    }

    /// The store's credentials (the destination's `options`).
    fn options(&self) -> StoreOptions {
        match self {
            Place::Local(_) => StoreOptions::default(),
            Place::S3(_) => {
                let server = pgcdc_testkit::s3::shared();
                StoreOptions::new(
                    [
                        (
                            "aws_access_key_id",
                            pgcdc_testkit::s3::ACCESS_KEY.to_string(),
                        ),
                        (
                            "aws_secret_access_key",
                            pgcdc_testkit::s3::SECRET_KEY.to_string(),
                        ),
                        ("endpoint_url", server.endpoint()),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
                )
            }
        }
    }

    /// The reader's environment.
    fn reader_env(&self) -> Vec<(String, String)> {
        match self {
            Place::Local(_) => Vec::new(),
            Place::S3(_) => pgcdc_testkit::s3::shared().reader_env(),
        }
    }

    /// `path` under the dataset, as the reader takes it.
    fn under_dataset(&self, path: &str) -> String {
        let base = format!("{}/{DATASET}", self.url());
        if path.is_empty() {
            base
        } else {
            format!("{base}/{path}")
        }
    }
}

/// The files destination (Parquet changelog) on local disk or S3.
pub struct Files {
    place: Place,
}

/// [`Files`] in a local directory.
pub async fn files_local(_case: &str) -> Files {
    Files {
        place: Place::local(),
    }
}

/// [`Files`] on the shared S3 server, over HTTP.
pub async fn files_s3(case: &str) -> Files {
    Files {
        place: Place::s3(case),
    }
}

impl Fixture for Files {
    fn destination(&self) -> Box<dyn Destination> {
        let mut config = FilesConfig::new(self.place.url(), DATASET);
        config.options = self.place.options();
        Box::new(FilesDestination::new(config).expect("a files destination"))
    }

    async fn rows(&self, name: &str) -> Vec<Row> {
        read_py(
            &["files", &self.place.under_dataset(""), name],
            &self.place.reader_env(),
        )
    }
}

/// The DuckDB mirror in a file of a new directory.
#[cfg(feature = "duckdb")]
pub struct DuckDb {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

/// [`DuckDb`].
#[cfg(feature = "duckdb")]
pub async fn duckdb(_case: &str) -> DuckDb {
    let dir = tempdir();
    let path = dir.path().join("mirror.duckdb");
    DuckDb { _dir: dir, path }
}

#[cfg(feature = "duckdb")]
impl Fixture for DuckDb {
    fn destination(&self) -> Box<dyn Destination> {
        use pgcdc_sink::duckdb::{DuckDbConfig, DuckDbDestination};
        Box::new(
            DuckDbDestination::new(DuckDbConfig {
                path: self.path.clone(),
                dataset: DATASET.into(),
                meta: meta(),
                soft_delete: None,
            })
            .expect("a DuckDB destination"),
        )
    }

    async fn rows(&self, name: &str) -> Vec<Row> {
        let path = self.path.display().to_string();
        read_py(&["duckdb", &path, DATASET, name], &[])
    }
}

/// The Delta mirror on local disk or S3.
#[cfg(feature = "delta")]
pub struct Delta {
    place: Place,
}

/// [`Delta`] in a local directory.
#[cfg(feature = "delta")]
pub async fn delta_local(_case: &str) -> Delta {
    Delta {
        place: Place::local(),
    }
}

/// [`Delta`] on the shared S3 server, over HTTP.
#[cfg(feature = "delta")]
pub async fn delta_s3(case: &str) -> Delta {
    Delta {
        place: Place::s3(case),
    }
}

#[cfg(feature = "delta")]
impl Fixture for Delta {
    fn destination(&self) -> Box<dyn Destination> {
        use pgcdc_sink::delta::{DeltaConfig, DeltaDestination};
        Box::new(
            DeltaDestination::new(DeltaConfig {
                url: self.place.url(),
                options: self.place.options(),
                dataset: DATASET.into(),
                meta: meta(),
                soft_delete: None,
            })
            .expect("a Delta destination"),
        )
    }

    async fn rows(&self, name: &str) -> Vec<Row> {
        read_py(
            &["delta", &self.place.under_dataset(name)],
            &self.place.reader_env(),
        )
    }
}

/// The PostgreSQL mirror: a schema of its own on the test cluster.
pub struct Postgres {
    url: String,
    schema: String,
}

/// [`Postgres`] on the cluster of this test binary (started on first use).
pub async fn postgres(case: &str) -> Postgres {
    let url = tokio::task::spawn_blocking(|| pgcdc_testkit::cluster().url())
        .await
        .expect("the test cluster");
    Postgres {
        url,
        schema: pgcdc_testkit::unique_name("c_", case),
    }
}

async fn connect_cluster(url: &str) -> pgcdc_sink::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| {
            pgcdc_sink::Error::new(
                pgcdc_sink::ErrorKind::Unavailable,
                format!("cannot connect to the test cluster: {e}"),
            )
        })?;
    tokio::spawn(connection);
    Ok(client)
}

impl Fixture for Postgres {
    fn destination(&self) -> Box<dyn Destination> {
        use pgcdc_sink::postgres::{Connector, PostgresConfig, PostgresDestination};
        let url = self.url.clone();
        let connect: Connector = std::sync::Arc::new(move || {
            let url = url.clone();
            Box::pin(async move { connect_cluster(&url).await })
        });
        Box::new(
            PostgresDestination::new(
                PostgresConfig {
                    dataset: self.schema.clone(),
                    meta: meta(),
                    location: "the test cluster".into(),
                    soft_delete: None,
                },
                connect,
            )
            .expect("a PostgreSQL destination"),
        )
    }

    async fn rows(&self, name: &str) -> Vec<Row> {
        let client = connect_cluster(&self.url).await.expect("a connection");
        let target = format!(
            "{}.{}",
            pgcdc_core::quote_ident(&self.schema),
            pgcdc_core::quote_ident(name)
        );
        let exists: Option<u32> = client
            .query_one("SELECT to_regclass($1)::oid", &[&target])
            .await
            .expect("to_regclass")
            .get(0);
        if exists.is_none() {
            return Vec::new();
        }
        client
            .query(&format!("SELECT to_jsonb(t)::text FROM {target} t"), &[])
            .await
            .expect("reading the mirror table")
            .iter()
            .map(|r| serde_json::from_str(r.get::<_, &str>(0)).expect("a JSON row"))
            .collect()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // The cluster is thrown away with the test binary; a given server keeps no schema.
        let _ = Command::new(pgcdc_testkit::psql_bin())
            .args(["-X", "-q", "-d", &self.url, "-c"])
            .arg(format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                pgcdc_core::quote_ident(&self.schema)
            ))
            .output();
    }
}
