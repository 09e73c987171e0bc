//! Test support: a throwaway PostgreSQL cluster per test binary, a [`TestEnv`] per test
//! (own schema, slot, publication and work directory), and the independent lake reader.
//!
//! The cluster: `initdb` into a temp dir with `wal_level=logical`, a free port on
//! 127.0.0.1, run as the `postgres` OS user when the tests run as root. A watchdog shell
//! stops it and removes the directory when the test process exits, even on SIGKILL.
//! `PGCDC_TEST_DATABASE_URL` uses an existing server instead; `PGCDC_PG_BIN` another
//! PostgreSQL's `bin/` directory.
#![allow(dead_code)]

pub mod outage;
pub mod s3;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The shared server.
pub struct Cluster {
    /// Base URL without database.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database name.
    pub database: String,
    /// User.
    pub user: String,
    /// `PGCDC_TEST_DATABASE_URL` as given (password, query parameters and all).
    pub given_url: Option<String>,
    /// The data directory of a cluster these tests started.
    pub data_dir: Option<PathBuf>,
}

impl Cluster {
    /// Stops the server (fast shutdown: every connection is cut), waits `down`, starts it.
    pub fn restart(&self, down: std::time::Duration) {
        let data = self
            .data_dir
            .as_ref()
            .expect("a cluster these tests started");
        let pg_ctl = pg_bin().join("pg_ctl");
        let d = data.to_str().unwrap_or_default();
        let out = pg_command(&pg_ctl, &["-D", d, "-m", "fast", "-w", "stop"])
            .output()
            .expect("pg_ctl stop");
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(down);
        let log = data.with_file_name("server.log");
        let l = log.to_str().unwrap_or_default();
        let out = pg_command(&pg_ctl, &["-D", d, "-l", l, "-w", "-t", "60", "start"])
            .output()
            .expect("pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// URL of the test database.
    pub fn url(&self) -> String {
        match &self.given_url {
            Some(url) => url.clone(),
            None => format!(
                "postgresql://{}@{}:{}/{}",
                self.user, self.host, self.port, self.database
            ),
        }
    }
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// Whether the tests run as root (servers then run as the postgres OS user).
pub fn is_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false)
    })
}

/// The directory holding initdb/pg_ctl.
pub fn pg_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("PGCDC_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let v = e.file_name().to_str()?.parse::<u32>().ok()?;
                    let bin = e.path().join("bin");
                    bin.join("initdb").exists().then_some((v, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
        .pop()
        .map(|(_, p)| p)
        .expect("no PostgreSQL server binaries: run scripts/install-deps")
}

/// psql: the one next to the server binaries of `PGCDC_PG_BIN`, else the one on PATH.
pub fn psql_bin() -> PathBuf {
    std::env::var_os("PGCDC_PG_BIN")
        .map(|d| PathBuf::from(d).join("psql"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("psql"))
}

/// Runs a PostgreSQL binary, as the postgres user when we are root.
fn pg_command(bin: &Path, args: &[&str]) -> Command {
    let mut c = if is_root() {
        let mut c = Command::new("runuser");
        c.arg("-u").arg("postgres").arg("--").arg(bin);
        c
    } else {
        Command::new(bin)
    };
    // The postgres user may not be allowed into our working directory.
    c.args(args).current_dir("/");
    c
}

/// Stops the server in `dir/data` and removes `dir` once this process is gone, however it
/// ends (even SIGKILL). Started before initdb, so that no window leaks the directory, and
/// in its own session (setsid), so that Ctrl-C on `cargo test` does not take it down with
/// us. It watches `/proc/<pid>`: as the postgres user, `kill -0` on us fails with EPERM.
/// rm is retried because the exiting postmaster removes its socket files in `dir` late.
fn spawn_watchdog(pg_ctl: &Path, dir: &Path) {
    let script = format!(
        "while [ -d /proc/{pid} ]; do sleep 1; done; \
         {pg_ctl} -D {dir}/data stop -m immediate >/dev/null 2>&1; \
         for i in 1 2 3 4 5 6 7 8 9 10; do rm -rf {dir} 2>/dev/null; [ -e {dir} ] || exit 0; sleep 1; done",
        pid = std::process::id(),
        pg_ctl = sh_quote(&pg_ctl.display().to_string()),
        dir = sh_quote(&dir.display().to_string()),
    );
    let mut c = Command::new("setsid");
    if is_root() {
        c.args(["runuser", "-u", "postgres", "--"]);
    }
    c.args(["sh", "-c", &script])
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Detached on purpose: it outlives this process to clean up after it.
    #[allow(clippy::zombie_processes)]
    let _watchdog = c.spawn().expect("spawn the cluster watchdog (setsid sh)");
}

/// Quotes a string for sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// A throwaway cluster with extra `postgresql.conf` settings.
pub fn start_cluster(settings: &[(&str, &str)]) -> Cluster {
    start_cluster_with_hba(settings, "")
}

/// A throwaway cluster whose `pg_hba.conf` starts with `hba` (first match wins; the
/// default trust lines for 127.0.0.1 follow).
pub fn start_cluster_with_hba(settings: &[(&str, &str)], hba_first: &str) -> Cluster {
    let bin = pg_bin();
    // As root, under /tmp: the postgres user must reach it (TMPDIR may be private).
    let parent = if is_root() {
        PathBuf::from("/tmp")
    } else {
        std::env::temp_dir()
    };
    let dir = tempfile::Builder::new()
        .prefix("pgcdc-test-pg-")
        .tempdir_in(parent)
        .expect("tempdir")
        .keep();
    if is_root() {
        let ok = Command::new("chown")
            .arg("-R")
            .arg("postgres")
            .arg(&dir)
            .status()
            .map(|s| s.success());
        assert_eq!(ok.ok(), Some(true), "chown postgres {}", dir.display());
    }
    spawn_watchdog(&bin.join("pg_ctl"), &dir);
    let data = dir.join("data");
    let out = pg_command(
        &bin.join("initdb"),
        &[
            "-D",
            data.to_str().unwrap_or_default(),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        ],
    )
    .output()
    .expect("initdb");
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    let mut conf = format!(
        "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nwal_level = logical\nmax_replication_slots = 64\nmax_wal_senders = 64\nmax_connections = 200\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\nlogical_decoding_work_mem = 64kB\nwal_sender_timeout = 60s\n",
        dir.display()
    );
    for (k, v) in settings {
        conf.push_str(&format!("{k} = {v}\n"));
    }
    // initdb --auth=trust trusts local TCP already; say so explicitly (first match wins).
    let hba_path = data.join("pg_hba.conf");
    let hba = std::fs::read_to_string(&hba_path).expect("pg_hba.conf");
    let hba = format!(
        "{hba_first}\nhost all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n{hba}"
    );
    std::fs::write(&hba_path, hba).expect("write pg_hba.conf");
    let conf_path = data.join("postgresql.conf");
    let mut existing = std::fs::read_to_string(&conf_path).expect("postgresql.conf");
    existing.push_str(&conf);
    std::fs::write(&conf_path, existing).expect("write postgresql.conf");
    let log = dir.join("server.log");
    let out = pg_command(
        &bin.join("pg_ctl"),
        &[
            "-D",
            data.to_str().unwrap_or_default(),
            "-l",
            log.to_str().unwrap_or_default(),
            "-w",
            "-t",
            "60",
            "start",
        ],
    )
    .output()
    .expect("pg_ctl start");
    assert!(
        out.status.success(),
        "pg_ctl start failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    Cluster {
        host: "127.0.0.1".into(),
        port,
        database: "postgres".into(),
        user: "postgres".into(),
        given_url: None,
        data_dir: Some(data),
    }
}

/// The cluster all tests of this binary share.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        if let Ok(url) = std::env::var("PGCDC_TEST_DATABASE_URL") {
            // Used verbatim; the parts are informational (libpq accepts URLs the url crate
            // does not, e.g. `postgresql://user@/db?host=/run/postgresql`).
            let u = url::Url::parse(&url).ok();
            let u = u.as_ref();
            return Cluster {
                host: u
                    .and_then(|u| u.host_str())
                    .filter(|h| !h.is_empty())
                    .unwrap_or("127.0.0.1")
                    .to_string(),
                port: u.and_then(|u| u.port()).unwrap_or(5432),
                database: u
                    .map(|u| u.path().trim_start_matches('/').to_string())
                    .unwrap_or_default(),
                user: u
                    .map(|u| u.username().to_string())
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "postgres".into()),
                given_url: Some(url.clone()),
                data_dir: None,
            };
        }
        start_cluster(&[])
    })
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

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
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let base: String = test
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(32)
            .collect();
        // Fixed-width pid and counter: no env's name is a prefix of another's (Drop drops
        // every slot whose name starts with it). At most 2+32+1+7+1+4 = 47 bytes, leaving
        // 16 of PostgreSQL's 63 for suffixes a test adds to make more slots.
        let name = format!("t_{base}_{:07}_{n:04}", std::process::id());
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

/// The Python with pyarrow (installed by scripts/install-deps).
pub fn python() -> String {
    if let Ok(p) = std::env::var("PGCDC_PYTHON") {
        return p;
    }
    let venv = std::env::var("HOME")
        .map(|h| format!("{h}/.cache/pgcdc/venv/bin/python"))
        .unwrap_or_default();
    if Path::new(&venv).exists() {
        venv
    } else {
        "python3".into()
    }
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
