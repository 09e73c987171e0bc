//! The run loop: checkpoint → source → decode → batch → commit → confirm.
//!
//! - [`source`]: the seam. A [`ChangeSource`] yields pgoutput messages with their LSNs
//!   and takes confirmations; an [`Upstream`] opens one per session.
//! - [`core`](self::core): the state machine that turns messages into destination writes and
//!   commits (batching, position tracking, key moves, unchanged TOAST, streamed
//!   transactions). It knows neither PostgreSQL nor the wire.
//! - `session`: one session's loop — when to commit and confirm, stop requests.
//! - `postgres`, `stream`, `pages`, `project`: the PostgreSQL upstream — checks before
//!   reading, the replication stream, SQL pages, relation projection.
//!
//! [`run_with`] drives sessions one after another: in follow mode a transient failure
//! (a lost connection, a server restarting, storage briefly unavailable) discards what
//! was not committed and opens a new session from the destination's checkpoint, with
//! backoff; a relation whose binary form cannot be read makes the run read again from
//! the checkpoint in text. A crash anywhere leaves the destination at a committed
//! checkpoint, and the next run streams again from there.

pub mod core;
mod pages;
mod postgres;
mod project;
mod session;
pub mod source;
mod stream;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use pgcdc_core::{Lsn, Op};
use pgcdc_sink::Destination;

use crate::config::Config;
use crate::metrics::Metrics;

pub use self::core::{BinaryUnreadable, Core, Settings};
pub use postgres::PgUpstream;
pub use source::{ChangeSource, Event, Opened, Session, SessionRequest, Upstream};

/// Counts of what landed per table.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableStats {
    /// Inserted rows.
    pub insert: u64,
    /// Updated rows.
    pub update: u64,
    /// Deleted rows.
    pub delete: u64,
    /// Truncates.
    pub truncate: u64,
}

/// What a run did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RunSummary {
    /// Per destination table.
    pub tables: BTreeMap<String, TableStats>,
    /// Transactions committed to the destination.
    pub transactions: u64,
    /// Destination commits.
    pub batches: u64,
    /// Checkpoint before the run.
    pub start_lsn: Lsn,
    /// Checkpoint after the run.
    pub end_lsn: Lsn,
    /// Wall time.
    pub seconds: f64,
    /// `tables` and `transactions` as of the last destination commit: what a session
    /// that fails (and is read again) had counted since is taken back.
    #[serde(skip)]
    committed: (BTreeMap<String, TableStats>, u64),
}

impl RunSummary {
    /// The counts so far are in the destination.
    fn mark_committed(&mut self) {
        self.committed = (self.tables.clone(), self.transactions);
    }

    /// Takes back the counts of changes not committed (they will be read again).
    fn forget_uncommitted(&mut self) {
        self.tables = self.committed.0.clone();
        self.transactions = self.committed.1;
    }

    /// After a failed session: the counts since the last commit are kept when the
    /// destination's checkpoint shows that commit took effect (its answer was lost, and
    /// those changes will not be read again), else taken back.
    async fn settle(&mut self, dest: &mut dyn Destination) {
        let landed = match dest.read_committed().await {
            Ok(Some(c)) if c.checkpoint.lsn > self.end_lsn => Some(c.checkpoint.lsn),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(error = %e, "could not read the destination's checkpoint; counting its last commit as lost");
                None
            }
        };
        match landed {
            Some(lsn) => {
                self.batches += 1;
                self.end_lsn = lsn;
                self.mark_committed();
            }
            None => self.forget_uncommitted(),
        }
    }

    /// Total changes.
    pub fn changes(&self) -> u64 {
        self.tables
            .values()
            .map(|t| t.insert + t.update + t.delete + t.truncate)
            .sum()
    }
}

/// Adds one change of `op` to `t`.
pub fn add_stat(t: &mut TableStats, op: Op) {
    match op {
        Op::Insert | Op::Snapshot => t.insert += 1,
        Op::Update => t.update += 1,
        Op::Delete => t.delete += 1,
        Op::Truncate => t.truncate += 1,
    }
}

/// How a run ends.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Keep streaming (`--follow`) instead of stopping at the WAL end read at start.
    pub follow: bool,
    /// Set by a signal handler: finish the current transaction, commit, stop.
    pub stop: Arc<AtomicBool>,
    /// Counters for the metrics endpoint (updated whether or not one is served).
    pub metrics: Arc<Metrics>,
}

impl Settings {
    /// The run loop's settings from the configuration.
    pub fn from_config(cfg: &Config) -> Settings {
        Settings {
            meta: cfg.meta.clone(),
            policy: cfg.types,
            max_rows: cfg.batch.max_rows,
            max_bytes: cfg.batch.max_bytes,
            flush_interval: cfg.batch.flush_interval,
            binary: cfg.source.binary,
            first_backoff: FIRST_BACKOFF,
        }
    }
}

/// Runs the pipeline against the PostgreSQL of `cfg`: one mini-batch (default) or
/// continuously (`follow`).
pub async fn run(cfg: &Config, dest: &mut dyn Destination, opts: RunOptions) -> Result<RunSummary> {
    let mut upstream = PgUpstream::new(cfg);
    run_with(&mut upstream, dest, &Settings::from_config(cfg), opts).await
}

/// The first retry's wait after a transient failure; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Runs sessions from `upstream` into `dest` until the run is done. See the module docs.
pub async fn run_with(
    upstream: &mut dyn Upstream,
    dest: &mut dyn Destination,
    settings: &Settings,
    opts: RunOptions,
) -> Result<RunSummary> {
    let started = Instant::now();
    upstream.connect().await?;
    let mut summary = RunSummary::default();
    let mut backoff = settings.first_backoff;
    let mut binary = settings.binary;
    loop {
        let result = session(upstream, dest, settings, &opts, &mut summary, binary).await;
        opts.metrics.set_up(false);
        let Err(e) = result else { break };
        opts.metrics.error();
        if binary && e.downcast_ref::<BinaryUnreadable>().is_some() {
            tracing::info!("{e}; reading from the checkpoint again, in text");
            dest.rollback().await?;
            summary.settle(dest).await;
            binary = false;
        } else if opts.follow && is_transient(&e) && !opts.stop.load(Ordering::SeqCst) {
            tracing::warn!(error = %format!("{e:#}"), retry_in = ?backoff, "replication interrupted; reconnecting");
            // Not fatal: the next session's `open` removes what was not committed.
            if let Err(r) = dest.rollback().await {
                tracing::warn!(error = %r, "could not discard uncommitted writes yet; the next session will");
            }
            summary.settle(dest).await;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        } else {
            // Leave nothing half-written behind; the next run replays from the checkpoint.
            if let Err(r) = dest.rollback().await {
                tracing::warn!(error = %r, "could not discard uncommitted writes; the next run will");
            }
            return Err(e);
        }
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// One session: open, read until done, close.
async fn session(
    upstream: &mut dyn Upstream,
    dest: &mut dyn Destination,
    settings: &Settings,
    opts: &RunOptions,
    summary: &mut RunSummary,
    binary: bool,
) -> Result<()> {
    let req = SessionRequest {
        follow: opts.follow,
        binary,
    };
    let opened = match upstream.open(dest, req).await? {
        Session::NothingNew { start } => {
            if summary.start_lsn == Lsn::ZERO {
                summary.start_lsn = start;
                summary.end_lsn = start;
            }
            return Ok(());
        }
        Session::Read(o) => o,
    };
    let Opened {
        mut source,
        checkpoint,
        end,
        decode,
        binary,
    } = opened;
    if summary.start_lsn == Lsn::ZERO {
        summary.start_lsn = checkpoint.lsn;
        summary.end_lsn = checkpoint.lsn;
    }
    opts.metrics.set_up(true);
    if let Some(e) = end {
        opts.metrics.wal_end(e.0);
    }
    let mut core = Core::new(
        settings,
        dest,
        checkpoint,
        summary,
        Arc::clone(&opts.metrics),
        binary,
    );
    session::drive(&mut core, source.as_mut(), end, decode, opts).await?;
    source.close().await
}

/// Whether retrying later may succeed: the error's kind, where it arose, says so.
fn is_transient(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        if let Some(s) = c.downcast_ref::<pgcdc_source::Error>() {
            return s.kind().is_transient();
        }
        if let Some(s) = c.downcast_ref::<pgcdc_sink::Error>() {
            return s.kind() == pgcdc_sink::ErrorKind::Unavailable;
        }
        c.downcast_ref::<std::io::Error>().is_some()
    })
}
