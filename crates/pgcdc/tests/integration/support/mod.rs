//! Test support: a [`TestEnv`] per test (own schema, slot, publication and work
//! directory, running the pgcdc binary), the independent lake reader, and an outage proxy.
//!
//! The servers (the throwaway PostgreSQL cluster shared by the binary, the S3-protocol
//! server) come from `pgcdc-testkit`, re-exported here under their usual names.
#![allow(dead_code)]

pub mod outage;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub use pgcdc_testkit::{
    cluster, free_port, is_root, pg_bin, psql_bin, python, s3, start_cluster,
    start_cluster_with_hba,
};

/// One test's world: its own schema, slot, publication and directory.
pub struct TestEnv {
    /// Schema (also the search_path of [`TestEnv::sql`]).
    pub schema: String,
    /// Slot name.
    pub slot: String,
    /// Publication name.
    pub publication: String,
    dir: tempfile::TempDir,
    url: String,
}

impl TestEnv {
    /// A fresh environment named after the test.
    pub fn new(test: &str) -> TestEnv {
        Self::on(cluster().url(), test)
    }

    /// A fresh environment on the server at `url`.
    pub fn on(url: String, test: &str) -> TestEnv {
        // No env's name is a prefix of another's (Drop drops every slot whose name starts
        // with it). At most 2+45 = 47 bytes, leaving 16 of PostgreSQL's 63 for suffixes a
        // test adds to make more slots.
        let name = pgcdc_testkit::unique_name("t_", test);
        let env = TestEnv {
            schema: name.clone(),
            slot: name.clone(),
            publication: name,
            dir: tempfile::Builder::new()
                .prefix("pgcdc-test-")
                .tempdir()
                .expect("tempdir"),
            url,
        };
        env.admin_sql(&format!("CREATE SCHEMA {}", quote(&env.schema)));
        env
    }

    /// Connection URL.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The work directory (config files, the lake).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where the destination writes.
    pub fn lake_dir(&self) -> PathBuf {
        self.dir.path().join("lake")
    }

    fn psql(&self, sql: &str, search_path: bool) -> Output {
        let mut c = Command::new(psql_bin());
        c.args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-At",
            "-d",
            &self.url,
            "-c",
            sql,
        ])
        .env("PGTZ", "UTC")
        .env("PGDATESTYLE", "ISO")
        .env("PGCLIENTENCODING", "UTF8");
        if search_path {
            c.env(
                "PGOPTIONS",
                format!("-c search_path={}", quote(&self.schema)),
            );
        }
        c.output().expect("psql")
    }

    fn admin_sql(&self, sql: &str) -> String {
        let out = self.psql(sql, false);
        assert!(
            out.status.success(),
            "SQL failed: {sql}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs SQL in the test's schema; panics on failure.
    pub fn sql(&self, sql: &str) -> String {
        self.try_sql(sql)
            .unwrap_or_else(|e| panic!("SQL failed: {sql}\n{e}"))
    }

    /// Runs SQL in the test's schema.
    pub fn try_sql(&self, sql: &str) -> Result<String, String> {
        let out = self.psql(sql, true);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// A handle that runs SQL in this environment's schema from another thread.
    pub fn session(&self) -> Session {
        Session {
            url: self.url.clone(),
            schema: self.schema.clone(),
        }
    }

    /// Rows of a query whose single column is a JSON array of text values.
    pub fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        self.sql(sql)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON array: {l}: {e}"))
            })
            .collect()
    }

    /// Writes a file into the work directory.
    pub fn write_file(&self, name: &str, contents: &str) {
        std::fs::write(self.dir().join(name), contents).expect("write file");
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pgcdc"));
        c.args(args)
            .current_dir(self.dir())
            .env_remove("PGCDC_FAILPOINT");
        c
    }

    /// Runs pgcdc in the work directory (reads ./pgcdc.toml).
    pub fn pgcdc(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run pgcdc")
    }

    /// Runs pgcdc with extra environment variables.
    pub fn pgcdc_with_env(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        let mut c = self.command(args);
        for (k, v) in vars {
            c.env(k, v);
        }
        c.output().expect("run pgcdc")
    }

    /// Starts pgcdc without waiting, its stderr in `<dir>/<name>.log` (see [`TestEnv::log`]).
    pub fn spawn_pgcdc_logged(&self, args: &[&str], name: &str) -> Child {
        let log = std::fs::File::create(self.dir().join(format!("{name}.log"))).expect("log file");
        self.command(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn pgcdc")
    }

    /// What a [`TestEnv::spawn_pgcdc_logged`] process logged so far.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Starts pgcdc without waiting.
    pub fn spawn_pgcdc(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pgcdc")
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // The env's slots (its name, and its name + anything): stop their walsenders, wait
        // (up to 10 s) until they let go, drop them.
        let like = self
            .slot
            .replace('\\', "\\\\")
            .replace('_', "\\_")
            .replace('%', "\\%")
            .replace('\'', "''");
        let mine = format!("slot_name LIKE '{like}%' ESCAPE '\\'");
        let _ = self.psql(
            &format!(
                "DO $$ BEGIN
                   PERFORM pg_terminate_backend(active_pid) FROM pg_replication_slots
                     WHERE {mine} AND active_pid IS NOT NULL;
                   FOR i IN 1..200 LOOP
                     EXIT WHEN NOT EXISTS (SELECT FROM pg_replication_slots WHERE {mine} AND active);
                     PERFORM pg_sleep(0.05);
                   END LOOP;
                   PERFORM pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                     WHERE {mine} AND NOT active;
                 END $$"
            ),
            false,
        );
        let _ = self.psql(
            &format!("DROP PUBLICATION IF EXISTS {}", quote(&self.publication)),
            false,
        );
        let _ = self.psql(
            &format!("DROP SCHEMA IF EXISTS {} CASCADE", quote(&self.schema)),
            false,
        );
    }
}

/// Quotes an SQL identifier.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn lake_py() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/lake.py")
}

fn run_lake(args: &[String]) -> String {
    run_lake_with(args, &[])
}

fn run_lake_with(args: &[String], env: &[(String, String)]) -> String {
    let out = Command::new(python())
        .arg(lake_py())
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run lake.py");
    assert!(
        out.status.success(),
        "lake.py {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every changelog row of a table directory, in replay order (lake.py `rows`).
pub fn lake_rows(
    dir: &Path,
    columns: Option<&[&str]>,
) -> Vec<serde_json::Map<String, serde_json::Value>> {
    if !dir.exists() {
        return Vec::new();
    }
    let mut args = vec!["rows".to_string(), dir.display().to_string()];
    if let Some(c) = columns {
        args.push("--columns".into());
        args.push(c.join(","));
    }
    run_lake(&args)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("lake.py row {l}: {e}")))
        .collect()
}

/// The final state of a table directory (lake.py `replay`), as text rows.
pub fn lake_replay(dir: &Path, key: &[&str], columns: &[&str]) -> Vec<Vec<Option<String>>> {
    if !dir.exists() {
        return Vec::new();
    }
    let args = vec![
        "replay".to_string(),
        dir.display().to_string(),
        "--key".into(),
        key.join(","),
        "--columns".into(),
        columns.join(","),
    ];
    run_lake(&args)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("lake.py replay row {l}: {e}")))
        .collect()
}

/// The rows of table `ds.<table>` in a DuckDB mirror file, read with DuckDB's own Python
/// package and rendered as PostgreSQL text (lake.py `mirror`), sorted.
pub fn mirror_rows(db: &Path, table: &str, columns: &[&str]) -> Vec<Vec<Option<String>>> {
    let args = vec![
        "mirror".to_string(),
        db.display().to_string(),
        "--table".into(),
        format!("ds.{table}"),
        "--columns".into(),
        columns.join(","),
    ];
    let mut rows: Vec<Vec<Option<String>>> = run_lake(&args)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("lake.py mirror row {l}: {e}")))
        .collect();
    rows.sort();
    rows
}

/// The rows of the Delta table at `dir` (a path or `s3://…` URL; no rows while it does not
/// exist), read with the Python `deltalake` package and rendered as PostgreSQL text (lake.py
/// `delta`), sorted; `env`: the reader's environment for S3.
pub fn delta_rows(
    dir: &str,
    columns: &[&str],
    env: &[(String, String)],
) -> Vec<Vec<Option<String>>> {
    let args = vec![
        "delta".to_string(),
        dir.to_string(),
        "--columns".into(),
        columns.join(","),
    ];
    let mut rows: Vec<Vec<Option<String>>> = run_lake_with(&args, env)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("lake.py delta row {l}: {e}")))
        .collect();
    rows.sort();
    rows
}

/// [`lake_rows`] of a table directory given as a URL (e.g. `s3://bucket/ds/t`), with the
/// reader's environment (see [`s3::S3Server::reader_env`]).
pub fn lake_rows_at(
    dir: &str,
    env: &[(String, String)],
) -> Vec<serde_json::Map<String, serde_json::Value>> {
    run_lake_with(&["rows".to_string(), dir.to_string()], env)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("lake.py row {l}: {e}")))
        .collect()
}

/// [`lake_replay`] of a table directory given as a URL, with the reader's environment.
pub fn lake_replay_at(
    dir: &str,
    key: &[&str],
    columns: &[&str],
    env: &[(String, String)],
) -> Vec<Vec<Option<String>>> {
    let args = vec![
        "replay".to_string(),
        dir.to_string(),
        "--key".into(),
        key.join(","),
        "--columns".into(),
        columns.join(","),
    ];
    run_lake_with(&args, env)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("lake.py replay row {l}: {e}")))
        .collect()
}

/// Runs SQL in a test's schema; `Send`, for concurrent writers in other threads.
#[derive(Clone)]
pub struct Session {
    url: String,
    schema: String,
}

impl Session {
    /// Runs `sql`; panics with psql's error on failure.
    pub fn sql(&self, sql: &str) {
        let out = Command::new(psql_bin())
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url,
                "-c",
                sql,
            ])
            .env(
                "PGOPTIONS",
                format!("-c search_path={}", quote(&self.schema)),
            )
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "SQL failed: {sql}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
