//! A real S3-protocol server for the tests: `s3s-fs` (installed by scripts/install-deps),
//! serving a temp directory over HTTP on a free port of 127.0.0.1 with fixed credentials
//! ([`ACCESS_KEY`] / [`SECRET_KEY`]), which it checks. Buckets are subdirectories.
//!
//! [`shared`] is one server for the whole test binary; [`S3Server::start`] gives a test a
//! server of its own that it may stop and start again (same port, same data).
//! A watchdog shell kills the server and removes its directory when the test process
//! exits, however it ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The access key the server checks (MinIO's demo credentials).
pub const ACCESS_KEY: &str = "minio";
/// The secret key the server checks.
pub const SECRET_KEY: &str = "minio123";

/// A running (or stopped) s3s-fs.
pub struct S3Server {
    /// Port on 127.0.0.1.
    pub port: u16,
    root: PathBuf,
    child: Mutex<Option<Child>>,
}

/// The s3s-fs binary: `PGCDC_S3S_FS`, else where install-deps puts it, else PATH.
pub fn s3s_fs_bin() -> PathBuf {
    if let Ok(p) = std::env::var("PGCDC_S3S_FS") {
        return PathBuf::from(p);
    }
    let cached = std::env::var("HOME")
        .map(|h| PathBuf::from(h).join(".cache/pgcdc/tools/bin/s3s-fs"))
        .unwrap_or_default();
    if cached.exists() {
        cached
    } else {
        PathBuf::from("s3s-fs")
    }
}

impl S3Server {
    /// Starts a server of its own over a new directory, with bucket `demo` created.
    pub fn start() -> S3Server {
        let root = tempfile::Builder::new()
            .prefix("pgcdc-test-s3-")
            .tempdir()
            .expect("tempdir")
            .keep();
        std::fs::create_dir_all(root.join("demo")).expect("create bucket dir");
        let port = crate::free_port();
        let server = S3Server {
            port,
            root,
            child: Mutex::new(None),
        };
        server.spawn_watchdog();
        server.resume();
        server
    }

    /// The endpoint URL, as dlt's `endpoint_url` writes it.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The directory behind bucket `bucket` (for checks that need the raw files).
    pub fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.root.join(bucket)
    }

    /// Environment for lake.py to read `s3://` paths of this server.
    pub fn reader_env(&self) -> Vec<(String, String)> {
        vec![
            (
                "LAKE_S3_ENDPOINT".into(),
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), SECRET_KEY.into()),
        ]
    }

    /// Stops the server (SIGKILL: an outage, not a shutdown).
    pub fn stop(&self) {
        let mut guard = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut c) = guard.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port and directory; waits until it listens.
    pub fn resume(&self) {
        let bin = s3s_fs_bin();
        let child = Command::new(&bin)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--access-key",
                ACCESS_KEY,
                "--secret-key",
                SECRET_KEY,
            ])
            .arg(&self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): run scripts/install-deps",
                    bin.display()
                )
            });
        *self.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "s3s-fs did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills whatever listens on our port and removes the directory once this process is
    /// gone (the server is started anew by `resume`, so the watchdog finds it by port).
    fn spawn_watchdog(&self) {
        let script = format!(
            "while [ -d /proc/{pid} ]; do sleep 1; done; \
             pkill -KILL -f -- '[-]-port {port} ' >/dev/null 2>&1; rm -rf {root}",
            pid = std::process::id(),
            port = self.port,
            root = crate::sh_quote(&self.root.display().to_string()),
        );
        #[allow(clippy::zombie_processes)]
        let _watchdog = Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the s3 watchdog");
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// One server shared by the tests of this binary (never dropped; the watchdog cleans up).
pub fn shared() -> &'static S3Server {
    static SHARED: OnceLock<S3Server> = OnceLock::new();
    SHARED.get_or_init(S3Server::start)
}

/// Whether `path` exists below the server's root (raw check, not over HTTP).
pub fn exists(server: &S3Server, bucket: &str, path: &Path) -> bool {
    server.bucket_dir(bucket).join(path).exists()
}
