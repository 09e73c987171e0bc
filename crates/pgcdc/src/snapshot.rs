//! The initial snapshot: every row of the configured tables as of a slot's consistent
//! point, streamed by parallel workers straight into the destination.
//!
//! Tables are split into CTID page ranges ("chunks"). `workers` connections import the
//! exported snapshot and take chunks from a shared queue; a chunk's rows are written and
//! committed together with a progress record in the checkpoint (`extra.snapshot`), so a
//! chunk is either wholly in the destination or not at all. The checkpoint's stream LSN
//! does not move: snapshot rows carry the snapshot's LSN in `_pgcdc_lsn` and op
//! `snapshot`, so replaying by LSN interleaves them correctly with the stream.
//!
//! Resuming: an exported snapshot lives only as long as the connection that exported it.
//! If pgcdc dies mid-snapshot, the next `init` reads the unfinished chunks from the
//! checkpoint and reads them from a *new* snapshot (a temporary slot's, at a later LSN L2),
//! labelled L2. Finished chunks are not read again. Replay stays exact: the stream
//! delivers every change after the original point, and the re-read rows, labelled L2,
//! apply after the changes before L2 (upserts by key are idempotent). The same mechanism
//! gives tables added to the publication later their earlier rows.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use arrow_array::RecordBatch;
use futures_util::{pin_mut, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use pgcdc_core::{Checkpoint, Lsn, Op, TableName, TableSchema};
use pgcdc_sink::Destination;
use pgcdc_source::snapshot::{self as snap, Chunk, CopyBinary};

use crate::batch::{Cell, RowMeta, TableBuffer};
use crate::config::Config;

/// Key of the progress record in `Checkpoint::extra`.
const PROGRESS_KEY: &str = "snapshot";

/// Which chunks of which tables are done.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Progress {
    /// Per table (by name within the configured schema).
    pub tables: BTreeMap<String, TableProgress>,
}

/// One table's chunk plan and finished chunks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableProgress {
    /// Page ranges `[lo, hi)`; `hi = None` reads to the end.
    pub chunks: Vec<(u32, Option<u32>)>,
    /// Indexes of finished chunks.
    pub done: BTreeSet<usize>,
    /// With `snapshot.persist_tables`: the copy inside the source database the chunks read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persisted: Option<String>,
    /// The LSN the persisted copy was taken at (its rows carry it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsn: Option<Lsn>,
}

impl Progress {
    /// Reads the progress record of a checkpoint.
    pub fn of(checkpoint: &Checkpoint) -> Result<Progress> {
        match checkpoint.extra.get(PROGRESS_KEY) {
            None => Ok(Progress::default()),
            Some(v) => serde_json::from_value(v.clone())
                .context("reading snapshot progress from the checkpoint"),
        }
    }

    /// Tables with unfinished chunks.
    pub fn pending(&self) -> Vec<String> {
        self.tables
            .iter()
            .filter(|(_, t)| t.chunks.is_empty() || t.done.len() < t.chunks.len())
            .map(|(n, _)| n.clone())
            .collect()
    }

    fn store(&self, checkpoint: &mut Checkpoint) -> Result<()> {
        if self.pending().is_empty() {
            checkpoint.extra.remove(PROGRESS_KEY);
        } else {
            checkpoint
                .extra
                .insert(PROGRESS_KEY.into(), serde_json::to_value(self)?);
        }
        Ok(())
    }
}

/// What a snapshot did.
#[derive(Debug, Default)]
pub struct SnapshotSummary {
    /// Rows per table.
    pub rows: BTreeMap<String, u64>,
    /// Chunks read now (finished chunks of an earlier attempt are not counted).
    pub chunks: usize,
}

struct Job {
    table: usize,
    chunk: usize,
    sql: String,
    lsn: Lsn,
    /// Reads a persisted copy (outside the exported snapshot).
    from_copy: bool,
}

struct Done {
    table: usize,
    chunk: usize,
    rows: u64,
    batches: Vec<RecordBatch>,
}

/// What workers report: rows read so far (for progress), or a finished chunk.
enum Msg {
    Rows { table: usize, rows: u64 },
    Done(Done),
}

/// One bar per table on a terminal (rows, rows/s, ETA from `pg_class.reltuples`);
/// nothing otherwise — the per-chunk log lines are the progress report there.
struct Bars {
    bars: Vec<indicatif::ProgressBar>,
    _multi: Option<indicatif::MultiProgress>,
}

impl Bars {
    fn new(tables: &[(String, f64)]) -> Bars {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return Bars {
                bars: Vec::new(),
                _multi: None,
            };
        }
        let multi = indicatif::MultiProgress::new();
        let style = indicatif::ProgressStyle::with_template(
            "{prefix:>24} {bar:32} {human_pos:>11}/{human_len:<11} rows  {elapsed_precise}  ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        let bars = tables
            .iter()
            .map(|(name, est)| {
                let bar = multi.add(indicatif::ProgressBar::new(est.max(1.0) as u64));
                bar.set_style(style.clone());
                bar.set_prefix(name.clone());
                bar
            })
            .collect();
        Bars {
            bars,
            _multi: Some(multi),
        }
    }

    fn add(&self, table: usize, rows: u64) {
        if let Some(b) = self.bars.get(table) {
            if b.position() + rows > b.length().unwrap_or(0) {
                b.set_length(b.position() + rows);
            }
            b.inc(rows);
        }
    }

    fn finish(&self) {
        for b in &self.bars {
            b.finish();
        }
    }
}

struct Plan {
    name: String,
    schema: Arc<TableSchema>,
}

/// What the plan of a snapshot holds: per table its schema, its estimated rows, and the
/// chunks still to read.
#[derive(Default)]
struct Planned {
    plans: Vec<Plan>,
    estimates: Vec<(String, f64)>,
    jobs: VecDeque<Job>,
}

/// Reads `tables` (plus any unfinished chunks recorded in `checkpoint`) from the exported
/// snapshot `snapshot_name` taken at `snapshot_lsn`, committing after every chunk.
pub async fn run(
    cfg: &Config,
    dest: &mut dyn Destination,
    sql: &tokio_postgres::Client,
    checkpoint: &mut Checkpoint,
    snapshot_name: &str,
    snapshot_lsn: Lsn,
    tables: &[String],
) -> Result<SnapshotSummary> {
    let mut progress = Progress::of(checkpoint)?;
    let mut names: Vec<String> = progress.pending();
    for t in tables {
        if !names.contains(t) {
            names.push(t.clone());
        }
    }
    if cfg.snapshot.persist_tables {
        persist_tables(cfg, &mut progress, &names, snapshot_name, snapshot_lsn).await?;
    }
    let mut planned = Planned::default();
    let mut catalog = cfg.catalog();
    for name in &names {
        let again = tables.contains(name);
        plan_table(
            cfg,
            sql,
            &mut catalog,
            &mut progress,
            &mut planned,
            name,
            again,
            snapshot_lsn,
        )
        .await?;
    }
    if planned.jobs.is_empty() {
        progress.store(checkpoint)?;
        return Ok(SnapshotSummary::default());
    }
    // The plan is durable before any row is read: a crash leaves a resumable record.
    progress.store(checkpoint)?;
    dest.commit(checkpoint).await?;

    let total = planned.jobs.len();
    let bars = Bars::new(&planned.estimates);
    let plans = Arc::new(planned.plans);
    let mut rx = spawn_workers(cfg, snapshot_name, planned.jobs, &plans);
    let mut summary = SnapshotSummary::default();
    while let Some(msg) = rx.recv().await {
        let done = match msg? {
            Msg::Rows { table, rows } => {
                bars.add(table, rows);
                continue;
            }
            Msg::Done(done) => done,
        };
        let (name, of) =
            commit_chunk(cfg, dest, sql, checkpoint, &mut progress, &plans, &done).await?;
        *summary.rows.entry(name.clone()).or_default() += done.rows;
        summary.chunks += 1;
        if bars.bars.is_empty() {
            tracing::info!(table = %name, chunk = done.chunk + 1, of, rows = done.rows, done = summary.chunks, total, "snapshot chunk committed");
        } else {
            tracing::debug!(table = %name, chunk = done.chunk + 1, of, rows = done.rows, done = summary.chunks, total, "snapshot chunk committed");
        }
    }
    bars.finish();
    if summary.chunks != total {
        bail!(
            "the snapshot stopped after {} of {total} chunks; run `pgcdc init` again to finish it",
            summary.chunks
        );
    }
    Ok(summary)
}

/// Plans one table: its projection, its chunks (planned once and kept in the progress
/// record; `again` starts a finished table over), and a job per chunk not yet read.
#[allow(clippy::too_many_arguments)]
async fn plan_table(
    cfg: &Config,
    sql: &tokio_postgres::Client,
    catalog: &mut pgcdc_source::catalog::Catalog,
    progress: &mut Progress,
    planned: &mut Planned,
    name: &str,
    again: bool,
    snapshot_lsn: Lsn,
) -> Result<()> {
    let pages_per_chunk = u32::try_from((cfg.snapshot.chunk_mb << 20) / 8192)
        .unwrap_or(u32::MAX)
        .max(1);
    let table = TableName::new(cfg.source.schema.clone(), name.to_string());
    let desc = snap::describe_table(sql, &table).await?;
    let persisted = progress
        .tables
        .get(name)
        .and_then(|t| t.persisted.clone().zip(t.lsn));
    // Chunks read the persisted copy when there is one (plain table: its own pages).
    let (read_from, read_desc, rows_lsn) = match &persisted {
        Some((copy, lsn)) => {
            let t = TableName::new(cfg.source.schema.clone(), copy.clone());
            let d = snap::describe_table(sql, &t).await?;
            (t, d, *lsn)
        }
        None => (table.clone(), desc.clone(), snapshot_lsn),
    };
    let include = cfg.source.include_columns.get(name).map(Vec::as_slice);
    let projection = catalog
        .project(
            sql,
            desc.oid,
            table.clone(),
            desc.replident,
            &desc.rel_columns(),
            include,
        )
        .await?;
    let partitioned = read_desc.relkind == 'p';
    let chunks = || {
        snap::plan_chunks(read_desc.pages, pages_per_chunk, partitioned)
            .into_iter()
            .map(|c| (c.lo, c.hi))
            .collect::<Vec<_>>()
    };
    let entry = progress
        .tables
        .entry(name.to_string())
        .or_insert_with(|| TableProgress {
            chunks: chunks(),
            done: BTreeSet::new(),
            persisted: None,
            lsn: None,
        });
    if entry.chunks.is_empty() {
        // Planned lazily: a persisted copy is planned on its own pages.
        entry.chunks = chunks();
        entry.done.clear();
    }
    if again && entry.done.len() == entry.chunks.len() {
        // Asked for again (e.g. re-added): start over.
        entry.done.clear();
    }
    let columns: Vec<(&str, snap::ReadAs)> = projection
        .schema
        .columns
        .iter()
        .map(|c| (c.name.as_str(), snap::ReadAs::of(c)))
        .collect();
    for (i, (lo, hi)) in entry.chunks.iter().enumerate() {
        if !entry.done.contains(&i) {
            let chunk = Chunk { lo: *lo, hi: *hi };
            planned.jobs.push_back(Job {
                table: planned.plans.len(),
                chunk: i,
                sql: snap::copy_statement(&read_from, &columns, chunk, partitioned),
                lsn: rows_lsn,
                from_copy: persisted.is_some(),
            });
        }
    }
    planned.estimates.push((name.to_string(), desc.rows));
    tracing::info!(table = %table, chunks = entry.chunks.len(), pending = entry.chunks.len() - entry.done.len(), est_rows = desc.rows.max(0.0) as u64, "snapshot planned");
    planned.plans.push(Plan {
        name: name.to_string(),
        schema: Arc::new(projection.schema),
    });
    Ok(())
}

/// Starts `cfg.snapshot.workers` connections reading `jobs` from the exported snapshot;
/// their rows and finished chunks arrive on the returned channel.
fn spawn_workers(
    cfg: &Config,
    snapshot_name: &str,
    jobs: VecDeque<Job>,
    plans: &Arc<Vec<Plan>>,
) -> mpsc::Receiver<Result<Msg>> {
    let workers = cfg.snapshot.workers.clamp(1, jobs.len().max(1));
    let queue = Arc::new(Mutex::new(jobs));
    let (tx, rx) = mpsc::channel::<Result<Msg>>(workers * 4);
    for _ in 0..workers {
        let (queue, plans, tx) = (Arc::clone(&queue), Arc::clone(plans), tx.clone());
        let (pg, name, meta, policy) = (
            (cfg.source.pg.clone(), cfg.source.tls.clone()),
            snapshot_name.to_string(),
            cfg.meta.clone(),
            cfg.types,
        );
        tokio::spawn(async move {
            let result = worker(&pg, &name, &queue, &plans, &meta, &policy, &tx).await;
            if let Err(e) = result {
                let _ = tx.send(Err(e)).await;
            }
        });
    }
    rx
}

/// Writes a finished chunk and commits it with its progress record; drops a persisted
/// copy whose last chunk this was. Returns the table's name and its number of chunks.
async fn commit_chunk(
    cfg: &Config,
    dest: &mut dyn Destination,
    sql: &tokio_postgres::Client,
    checkpoint: &mut Checkpoint,
    progress: &mut Progress,
    plans: &[Plan],
    done: &Done,
) -> Result<(String, usize)> {
    let plan = plans
        .get(done.table)
        .ok_or_else(|| anyhow!("internal: bad table index"))?;
    for batch in &done.batches {
        dest.write(&plan.schema, batch.clone()).await?;
    }
    let entry = progress
        .tables
        .get_mut(&plan.name)
        .ok_or_else(|| anyhow!("internal: no progress for {}", plan.name))?;
    entry.done.insert(done.chunk);
    let of = entry.chunks.len();
    let finished_copy = (entry.done.len() == of)
        .then(|| entry.persisted.clone())
        .flatten();
    progress.store(checkpoint)?;
    checkpoint.committed_at = chrono::Utc::now().to_rfc3339();
    dest.commit(checkpoint).await?;
    pgcdc_sink::failpoint("snapshot.after_chunk");
    if let Some(copy) = finished_copy {
        // No longer needed: its rows are in the destination.
        let t = TableName::new(cfg.source.schema.clone(), copy);
        sql.batch_execute(&format!("DROP TABLE IF EXISTS {t}"))
            .await
            .with_context(|| format!("dropping the snapshot table {t}"))?;
    }
    Ok((plan.name.clone(), of))
}

/// One snapshot connection: imports the snapshot, then reads chunks until none are left.
#[allow(clippy::too_many_arguments)]
async fn worker(
    pg: &(tokio_postgres::Config, pgcdc_source::tls::TlsOptions),
    snapshot_name: &str,
    queue: &Mutex<VecDeque<Job>>,
    plans: &[Plan],
    meta: &pgcdc_core::MetaColumns,
    policy: &pgcdc_core::ValuePolicy,
    tx: &mpsc::Sender<Result<Msg>>,
) -> Result<()> {
    // Chunks of the tables themselves read the exported snapshot; chunks of persisted
    // copies (created after it, so invisible in it) read the committed copy.
    let mut in_snapshot: Option<tokio_postgres::Client> = None;
    let mut plain: Option<tokio_postgres::Client> = None;
    loop {
        let job = match queue.lock() {
            Ok(mut q) => q.pop_front(),
            Err(_) => bail!("internal: snapshot queue poisoned"),
        };
        let Some(job) = job else { break };
        let plan = plans
            .get(job.table)
            .ok_or_else(|| anyhow!("internal: bad table index"))?;
        let slot = if job.from_copy {
            &mut plain
        } else {
            &mut in_snapshot
        };
        let client = match slot {
            Some(c) => c,
            None => slot.insert(session(pg, (!job.from_copy).then_some(snapshot_name)).await?),
        };
        let done = read_chunk(client, &job, plan, meta, policy, tx).await?;
        if tx.send(Ok(Msg::Done(done))).await.is_err() {
            break;
        }
    }
    for c in [in_snapshot, plain].into_iter().flatten() {
        c.batch_execute("COMMIT").await.ok();
    }
    Ok(())
}

/// A read-only session with the value formats the parsers expect, inside `snapshot` when given.
async fn session(
    pg: &(tokio_postgres::Config, pgcdc_source::tls::TlsOptions),
    snapshot: Option<&str>,
) -> Result<tokio_postgres::Client> {
    let client = pgcdc_source::connect::connect_sql(&pg.0, &pg.1).await?;
    client
        .batch_execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; SET bytea_output = 'hex'")
        .await
        .context("setting up a snapshot session")?;
    match snapshot {
        Some(name) => snap::import_snapshot(&client, name).await.map_err(|e| {
            anyhow!("{e}; the exported snapshot is gone (its connection ended): run `pgcdc init` again to resume from a new snapshot")
        })?,
        None => client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .context("starting a snapshot read")?,
    }
    Ok(client)
}

async fn read_chunk(
    client: &tokio_postgres::Client,
    job: &Job,
    plan: &Plan,
    meta: &pgcdc_core::MetaColumns,
    policy: &pgcdc_core::ValuePolicy,
    progress: &mpsc::Sender<Result<Msg>>,
) -> Result<Done> {
    let stream = client
        .copy_out(job.sql.as_str())
        .await
        .with_context(|| format!("reading a snapshot chunk of {}", plan.schema.table))?;
    pin_mut!(stream);
    let mut buf = TableBuffer::new(Arc::clone(&plan.schema), meta);
    let mut parser = CopyBinary::new();
    // Fixed-width kinds arrive in binary; the rest as text (selected with ::text).
    let binary: Vec<bool> = plan
        .schema
        .columns
        .iter()
        .map(|c| snap::ReadAs::of(c) == snap::ReadAs::Binary)
        .collect();
    let mut batches = Vec::new();
    let mut rows = 0u64;
    let row_meta = RowMeta {
        lsn: job.lsn.as_i64(),
        commit_lsn: Some(job.lsn.as_i64()),
        op: Op::Snapshot,
        commit_ts: None,
        xid: None,
    };
    // The SELECT lists exactly the included columns, in schema order.
    let map: Vec<Option<usize>> = (0..plan.schema.columns.len()).map(Some).collect();
    while let Some(data) = stream.try_next().await.context("reading COPY data")? {
        parser.feed(&data, |fields| -> Result<()> {
            let cells = fields.iter().zip(&binary).map(|(f, bin)| match (f, bin) {
                (None, _) => Cell::Null,
                (Some(b), true) => Cell::Binary(b, Some(pgcdc_source::values::NATIVE)),
                (Some(b), false) => Cell::Text(b),
            });
            buf.append(cells, None, &map, row_meta, policy)?;
            rows += 1;
            Ok(())
        })?;
        if buf.rows() >= 65_536 {
            cut_batch(&mut buf, &mut batches, job.table, progress).await?;
        }
    }
    if !parser.finished() {
        bail!("the COPY data of {} ended early", plan.schema.table);
    }
    if buf.rows() > 0 {
        cut_batch(&mut buf, &mut batches, job.table, progress).await?;
    }
    Ok(Done {
        table: job.table,
        chunk: job.chunk,
        rows,
        batches,
    })
}

/// dlt's name for a persisted snapshot table: `_dlt_<table>_s_<snapshot>`, snake_cased,
/// at most 63 bytes (the `_dlt` prefix keeps it out of replication).
pub fn persisted_table_name(table: &str, snapshot: &str) -> String {
    let raw = format!("_dlt_{table}_s_{snapshot}");
    let mut out: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    out.truncate(63);
    out
}

/// Copies the tables into `_dlt_…` tables inside the source (dlt's `persist_snapshots`),
/// from the exported snapshot, optionally UNLOGGED; chunks then read those copies.
async fn persist_tables(
    cfg: &Config,
    progress: &mut Progress,
    names: &[String],
    snapshot_name: &str,
    snapshot_lsn: Lsn,
) -> Result<()> {
    let todo: Vec<&String> = names
        .iter()
        .filter(|n| {
            progress
                .tables
                .get(*n)
                .is_none_or(|t| t.persisted.is_none())
        })
        .collect();
    if todo.is_empty() {
        return Ok(());
    }
    let client = pgcdc_source::connect::connect_sql(&cfg.source.pg, &cfg.source.tls).await?;
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT {}",
            pgcdc_core::quote_literal(snapshot_name)
        ))
        .await
        .context("importing the snapshot to persist tables")?;
    let mut created = Vec::new();
    for name in todo {
        let source = TableName::new(cfg.source.schema.clone(), name.clone());
        let copy = TableName::new(
            cfg.source.schema.clone(),
            persisted_table_name(name, snapshot_name),
        );
        let cols = match cfg.source.include_columns.get(name) {
            Some(c) => c
                .iter()
                .map(|c| pgcdc_core::quote_ident(c))
                .collect::<Vec<_>>()
                .join(", "),
            None => "*".into(),
        };
        let unlogged = if cfg.snapshot.unlogged {
            "UNLOGGED "
        } else {
            ""
        };
        client
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {copy}; CREATE {unlogged}TABLE {copy} AS SELECT {cols} FROM {source}; ANALYZE {copy}"
            ))
            .await
            .with_context(|| format!("persisting the snapshot of {source} as {copy} (needs CREATE on the schema)"))?;
        tracing::info!(table = %source, copy = %copy, "snapshot table persisted");
        created.push((name.clone(), copy.name));
    }
    client
        .batch_execute("COMMIT")
        .await
        .context("committing the persisted snapshot tables")?;
    for (name, copy) in created {
        if let Some(t) = progress.tables.get_mut(&name) {
            // A plan made on the original table does not fit the copy: plan again.
            t.chunks.clear();
            t.done.clear();
        }
        let entry = progress
            .tables
            .entry(name)
            .or_insert_with(|| TableProgress {
                chunks: Vec::new(),
                done: BTreeSet::new(),
                persisted: None,
                lsn: None,
            });
        entry.persisted = Some(copy);
        entry.lsn = Some(snapshot_lsn);
    }
    Ok(())
}

/// Finishes the buffered rows into a batch of the chunk and reports them for progress.
async fn cut_batch(
    buf: &mut TableBuffer,
    batches: &mut Vec<RecordBatch>,
    table: usize,
    progress: &mpsc::Sender<Result<Msg>>,
) -> Result<()> {
    let rows = buf.rows() as u64;
    batches.push(buf.finish()?);
    // Progress is best effort: a closed channel means the run is ending anyway.
    let _ = progress.send(Ok(Msg::Rows { table, rows })).await;
    Ok(())
}
