//! Prometheus metrics for `run` (served when `[metrics] listen` is set): what
//! the run loop has done, in the text exposition format at `GET /metrics`.
//!
//! The run loop updates [`Metrics`] (atomics and one small map, per commit and per
//! server message); a tiny HTTP responder serves a snapshot of it. The responder only
//! reads one request line per connection (bounded), answers and closes: it is a scrape
//! target, not a web server. No row values and no secrets are ever exposed — only
//! counts, LSNs and timings.
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `pgcdc_changes_total{table,op}` | counter | changes committed to the destination |
//! | `pgcdc_transactions_total` | counter | source transactions committed |
//! | `pgcdc_batches_total` | counter | destination commits carrying data |
//! | `pgcdc_batch_commit_seconds_{sum,count}` | summary | time of a destination commit |
//! | `pgcdc_checkpoint_lsn` | gauge | LSN of the last durable checkpoint (= slot flush) |
//! | `pgcdc_server_wal_end_lsn` | gauge | the server's WAL end as last reported by it |
//! | `pgcdc_lag_bytes` | gauge | WAL end − checkpoint: how far the durable position trails the server (not the WAL the slot retains, which counts from its restart_lsn) |
//! | `pgcdc_lag_seconds` | gauge | now − commit time of the oldest transaction not yet durable (0 when caught up) |
//! | `pgcdc_errors_total` | counter | sessions that ended in an error (each followed by a reconnect in follow mode) |
//! | `pgcdc_up` | gauge | 1 while streaming, 0 while reconnecting |

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::run::TableStats;

/// The run loop's counters, shared with the responder.
#[derive(Debug, Default)]
pub struct Metrics {
    tables: Mutex<BTreeMap<String, TableStats>>,
    transactions: AtomicU64,
    batches: AtomicU64,
    commit_micros_sum: AtomicU64,
    commits: AtomicU64,
    checkpoint_lsn: AtomicU64,
    wal_end: AtomicU64,
    /// Commit time (µs since 1970) of the oldest transaction not yet durable; 0 = none.
    oldest_pending_commit_us: AtomicI64,
    errors: AtomicU64,
    up: AtomicU64,
}

impl Metrics {
    /// Fresh counters.
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// After a destination commit: the run's totals so far, the new checkpoint, and how
    /// long the commit took.
    pub fn committed(
        &self,
        tables: &BTreeMap<String, TableStats>,
        transactions: u64,
        batches: u64,
        checkpoint: u64,
        took: std::time::Duration,
    ) {
        if let Ok(mut t) = self.tables.lock() {
            t.clone_from(tables);
        }
        self.transactions.store(transactions, Ordering::Relaxed);
        self.batches.store(batches, Ordering::Relaxed);
        self.checkpoint_lsn.store(checkpoint, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.commit_micros_sum.fetch_add(micros, Ordering::Relaxed);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.oldest_pending_commit_us.store(0, Ordering::Relaxed);
    }

    /// A transaction committed at `commit_us` (µs since 1970) completed, not yet durable.
    pub fn transaction_pending(&self, commit_us: i64) {
        let _ = self.oldest_pending_commit_us.compare_exchange(
            0,
            commit_us.max(1),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// The server reported its WAL end.
    pub fn wal_end(&self, lsn: u64) {
        self.wal_end.fetch_max(lsn, Ordering::Relaxed);
    }

    /// A session ended in an error.
    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Streaming (true) or reconnecting / stopped (false).
    pub fn set_up(&self, up: bool) {
        self.up.store(u64::from(up), Ordering::Relaxed);
    }

    /// The text exposition of the current values.
    pub fn render(&self, now_us: i64) -> String {
        let mut out = String::new();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "pgcdc_up",
            "gauge",
            "1 while streaming, 0 while reconnecting",
            load(&self.up).to_string(),
        );
        metric(
            "pgcdc_transactions_total",
            "counter",
            "Source transactions committed to the destination",
            load(&self.transactions).to_string(),
        );
        metric(
            "pgcdc_batches_total",
            "counter",
            "Destination commits carrying data",
            load(&self.batches).to_string(),
        );
        metric(
            "pgcdc_checkpoint_lsn",
            "gauge",
            "LSN of the last durable checkpoint (confirmed to the slot)",
            load(&self.checkpoint_lsn).to_string(),
        );
        let (checkpoint, wal_end) = (load(&self.checkpoint_lsn), load(&self.wal_end));
        metric(
            "pgcdc_server_wal_end_lsn",
            "gauge",
            "The server's WAL end as last reported",
            wal_end.to_string(),
        );
        metric(
            "pgcdc_lag_bytes",
            "gauge",
            "WAL between the server's end and the durable checkpoint",
            wal_end.saturating_sub(checkpoint).to_string(),
        );
        let oldest = self.oldest_pending_commit_us.load(Ordering::Relaxed);
        let lag_s = if oldest == 0 {
            0.0
        } else {
            (now_us.saturating_sub(oldest)).max(0) as f64 / 1e6
        };
        metric(
            "pgcdc_lag_seconds",
            "gauge",
            "Age of the oldest source commit not yet durable in the destination",
            format!("{lag_s:.6}"),
        );
        metric(
            "pgcdc_errors_total",
            "counter",
            "Sessions that ended in an error",
            load(&self.errors).to_string(),
        );
        let _ = writeln!(
            out,
            "# HELP pgcdc_batch_commit_seconds Time of a destination commit\n# TYPE pgcdc_batch_commit_seconds summary\npgcdc_batch_commit_seconds_sum {:.6}\npgcdc_batch_commit_seconds_count {}",
            load(&self.commit_micros_sum) as f64 / 1e6,
            load(&self.commits)
        );
        let _ = writeln!(
            out,
            "# HELP pgcdc_changes_total Changes committed to the destination\n# TYPE pgcdc_changes_total counter"
        );
        if let Ok(tables) = self.tables.lock() {
            for (table, s) in tables.iter() {
                let t = escape_label(table);
                for (op, n) in [
                    ("insert", s.insert),
                    ("update", s.update),
                    ("delete", s.delete),
                    ("truncate", s.truncate),
                ] {
                    let _ = writeln!(out, "pgcdc_changes_total{{table=\"{t}\",op=\"{op}\"}} {n}");
                }
            }
        }
        out
    }
}

/// A label value in the exposition format: `\`, `"` and newlines escaped.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Binds `addr` and serves `GET /metrics` until the process ends. Returns once listening,
/// so a bad address is an error of the command, not of a background task.
pub async fn serve(addr: &str, metrics: Arc<Metrics>) -> Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr} (metrics.listen)"))?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                continue;
            };
            let metrics = Arc::clone(&metrics);
            tokio::spawn(async move {
                if let Err(e) = respond(conn, &metrics).await {
                    tracing::debug!(error = %e, "metrics request failed");
                }
            });
        }
    });
    tracing::info!(addr = %local, "serving metrics at /metrics");
    Ok(local)
}

async fn respond(conn: tokio::net::TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let (read, mut write) = conn.into_split();
    let mut reader = BufReader::new(read).take(8192);
    let mut line = String::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        reader.read_line(&mut line),
    )
    .await;
    if !matches!(read, Ok(Ok(n)) if n > 0) {
        return Ok(());
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, body) = if method == "GET" && (path == "/metrics" || path.starts_with("/metrics?"))
    {
        let now = chrono::Utc::now().timestamp_micros();
        ("200 OK", metrics.render(now))
    } else {
        ("404 Not Found", "only GET /metrics is served\n".to_string())
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    write.write_all(head.as_bytes()).await?;
    write.write_all(body.as_bytes()).await?;
    write.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_tables_and_computes_lag() {
        let m = Metrics::default();
        m.wal_end(5000);
        let mut t = BTreeMap::new();
        t.insert(
            "we\"ird".to_string(),
            TableStats {
                insert: 3,
                update: 1,
                delete: 0,
                truncate: 0,
            },
        );
        m.committed(&t, 2, 1, 4000, std::time::Duration::from_millis(250));
        m.transaction_pending(1_000_000);
        let text = m.render(3_500_000);
        assert!(text.contains("pgcdc_lag_bytes 1000\n"), "{text}");
        assert!(text.contains("pgcdc_lag_seconds 2.500000\n"), "{text}");
        assert!(
            text.contains(r#"pgcdc_changes_total{table="we\"ird",op="insert"} 3"#),
            "{text}"
        );
        assert!(
            text.contains("pgcdc_batch_commit_seconds_count 1\n"),
            "{text}"
        );
        m.committed(&t, 3, 2, 5000, std::time::Duration::from_millis(1));
        let text = m.render(9_000_000);
        assert!(text.contains("pgcdc_lag_seconds 0.000000\n"), "{text}");
        assert!(text.contains("pgcdc_lag_bytes 0\n"), "{text}");
    }
}
