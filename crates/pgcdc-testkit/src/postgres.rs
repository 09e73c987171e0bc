//! A throwaway PostgreSQL cluster for tests.
//!
//! `initdb` into a temp dir with `wal_level=logical`, a free port on 127.0.0.1, run as the
//! `postgres` OS user when the tests run as root. A watchdog shell stops it and removes the
//! directory when the test process exits, even on SIGKILL. [`cluster`] is one cluster per
//! test binary; `PGCDC_TEST_DATABASE_URL` uses an existing server instead, and
//! `PGCDC_PG_BIN` another PostgreSQL's `bin/` directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::{free_port, sh_quote};

/// A PostgreSQL server the tests use.
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
