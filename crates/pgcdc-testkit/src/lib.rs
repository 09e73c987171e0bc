//! Test support shared by pgcdc's test suites (a dev-dependency only, never published):
//! real servers on this machine that a test talks to over the network, each cleaned up by
//! a watchdog however the test process ends.
//!
//! - [`postgres`]: a throwaway PostgreSQL cluster (`initdb` with `wal_level=logical` on a
//!   free port of 127.0.0.1), shared per test binary ([`cluster`]) or one of a test's own
//!   ([`start_cluster`]); `PGCDC_TEST_DATABASE_URL` uses an existing server instead,
//!   `PGCDC_PG_BIN` another PostgreSQL's `bin/` directory.
//! - [`s3`]: an S3-protocol server (`s3s-fs`) over a temporary directory.
//!
//! What the suites run against those servers (pgcdc's binary, readers of what it wrote)
//! stays with each suite. Being test code, these helpers panic with a message when the
//! machine lacks what they need.

pub mod postgres;
pub mod s3;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use postgres::{
    cluster, is_root, pg_bin, psql_bin, start_cluster, start_cluster_with_hba, Cluster,
};

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// A name unique to this process and call: `prefix`, then `test` lowercased with every
/// character but ASCII letters and digits as `_` (at most 32), the process id and a
/// counter, fixed-width so that no name is a prefix of another (at most 45 bytes after
/// `prefix`): for schemas, slots, buckets' folders.
pub fn unique_name(prefix: &str, test: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
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
    format!("{prefix}{base}_{:07}_{n:04}", std::process::id())
}

/// Quotes a string for sh.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The Python with pyarrow, duckdb and deltalake (installed by scripts/install-deps):
/// `PGCDC_PYTHON`, else the cached venv's, else `python3`.
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
