//! The run loop (DESIGN.md, "Data flow"): checkpoint → stream → decode → batch → commit →
//! confirm.
//!
//! One [`Session`] is one replication connection. Rows are appended to per-table Arrow
//! buffers; buffers spill to the destination as uncommitted writes when they grow past
//! the batch byte budget (so memory stays bounded even inside a huge transaction);
//! [`Destination::commit`] is called only *between* transactions, with the end LSN of the
//! last complete one; only after it returns is that LSN reported to PostgreSQL as flushed.
//! A crash anywhere therefore leaves the destination at a committed checkpoint, and the
//! next run streams again from there.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use pgcdc_core::{Checkpoint, Lsn, Op, SourceIdentity, TableName, TableSchema};
use pgcdc_sink::Destination;
use pgcdc_source::catalog::{Catalog, Projection, RelColumn};
use pgcdc_source::peek::{self, PeekRows};
use pgcdc_source::pgoutput::{self, DecodeOptions, Frame, Message, TupleData, TupleValue};
use pgcdc_source::setup;
use pgcdc_source::values::BinaryForm;
use pgcdc_source::wire::ReplicationStream;

use crate::batch::{Cell, RowMeta, TableBuffer, PG_EPOCH_OFFSET_MICROS};
use crate::config::{Config, Reader};
use crate::metrics::Metrics;
use crate::streamed::{self, Piece, Streamed};

/// Counts of what landed per table.
#[derive(Debug, Default, Clone, serde::Serialize)]
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

    /// Total changes.
    pub fn changes(&self) -> u64 {
        self.tables
            .values()
            .map(|t| t.insert + t.update + t.delete + t.truncate)
            .sum()
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

struct Rel {
    projection: Arc<Projection>,
    schema: Arc<TableSchema>,
}

struct Tx {
    xid: u32,
    commit_ts: i64,
    commit_lsn: Lsn,
}

/// One streaming session against the slot.
struct Session<'a> {
    cfg: &'a Config,
    dest: &'a mut dyn Destination,
    sql: &'a tokio_postgres::Client,
    catalog: Catalog,
    relations: HashMap<u32, Rel>,
    buffers: BTreeMap<String, TableBuffer>,
    checkpoint: Checkpoint,
    /// End LSN of the last complete transaction not yet committed.
    pending: Option<Lsn>,
    /// Highest position known to be fully processed while no transaction is open.
    idle_position: Lsn,
    tx: Option<Tx>,
    batch_rows: usize,
    buffered_bytes: usize,
    first_pending_at: Option<Instant>,
    summary: &'a mut RunSummary,
    metrics: Arc<Metrics>,
    received: Lsn,
    streamed: Streamed,
    /// Top-level xid of the current Stream Start … Stream Stop block.
    stream_xid: Option<u32>,
    /// Relations whose changes are not replicated (dlt's `_dlt_…` snapshot tables).
    skipped: std::collections::HashSet<u32>,
    /// pgoutput sends binary values: every relation must be readable so.
    binary: bool,
}

/// Runs the pipeline: one mini-batch (default) or continuously (`follow`).
pub async fn run(cfg: &Config, dest: &mut dyn Destination, opts: RunOptions) -> Result<RunSummary> {
    let started = Instant::now();
    // The first connection fails the run at once (a wrong URL is not worth retrying);
    // later ones, after a lost connection in follow mode, are retried like the stream.
    let mut sql = Some(connect_locked(cfg).await?);
    let mut summary = RunSummary::default();
    let mut backoff = Duration::from_millis(500);
    let mut binary = cfg.source.binary;
    loop {
        if sql.as_ref().is_none_or(|c| c.is_closed()) {
            sql = None;
        }
        let result = match &sql {
            Some(c) => session(cfg, dest, c, &opts, &mut summary, binary).await,
            None => match connect_locked(cfg).await {
                Ok(c) => {
                    sql = Some(c);
                    continue;
                }
                Err(e) => Err(e),
            },
        };
        opts.metrics.set_up(false);
        if result.is_err() {
            opts.metrics.error();
        }
        match result {
            Ok(()) => break,
            Err(e) if binary && e.downcast_ref::<BinaryUnreadable>().is_some() => {
                tracing::info!("{e}; reading from the checkpoint again, in text");
                dest.rollback().await?;
                summary.forget_uncommitted();
                binary = false;
            }
            Err(e) if opts.follow && is_transient(&e) && !opts.stop.load(Ordering::SeqCst) => {
                tracing::warn!(error = %format!("{e:#}"), retry_in = ?backoff, "replication interrupted; reconnecting");
                // Not fatal: the next session's `open` removes what was not committed.
                if let Err(r) = dest.rollback().await {
                    tracing::warn!(error = %r, "could not discard uncommitted writes yet; the next session will");
                }
                summary.forget_uncommitted();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            Err(e) => {
                // Leave nothing half-written behind; the next run replays from the checkpoint.
                if let Err(r) = dest.rollback().await {
                    tracing::warn!(error = %r, "could not discard uncommitted writes; the next run will");
                }
                return Err(e);
            }
        }
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

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

/// The protocol version and options for this server; `streaming` (in-progress
/// transactions in pieces) only for the stream: a page must hold whole transactions;
/// `binary` values where the caller found them all readable (PostgreSQL 14+).
fn stream_options(
    version: u32,
    publication: &str,
    streaming: bool,
    binary: bool,
) -> (u32, Vec<(&'static str, String)>) {
    let proto = match version {
        v if v >= 160000 => 4,
        v if v >= 150000 => 3,
        v if v >= 140000 => 2,
        _ => 1,
    };
    let mut opts = vec![
        ("proto_version", proto.to_string()),
        ("publication_names", pgcdc_core::quote_ident(publication)),
    ];
    if version >= 140000 {
        opts.push(("messages", "true".into()));
        if streaming {
            // Large in-progress transactions arrive in pieces: memory stays bounded.
            opts.push(("streaming", "on".into()));
        }
        if binary {
            opts.push(("binary", "true".into()));
        }
    }
    (proto, opts)
}

/// A relation met in a binary session with a column whose binary form pgcdc cannot
/// read (a type added by DDL since the session chose binary): the run reads again from
/// its checkpoint in text.
#[derive(Debug, thiserror::Error)]
#[error("column {column} of {table} has a type whose binary form pgcdc does not read")]
struct BinaryUnreadable {
    table: TableName,
    column: String,
}

/// Whether every column of the publication's tables has a binary form pgcdc reads, so
/// that a session may ask for `binary 'true'`. A table pgcdc cannot project counts as
/// no (its error is reported when the stream reaches it).
async fn publication_reads_binary(cfg: &Config, sql: &tokio_postgres::Client) -> Result<bool> {
    let rows = sql
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text, c.relreplident::text,
                    a.attname::text, a.atttypid, a.atttypmod
               FROM pg_publication_tables p
               JOIN pg_namespace n ON n.nspname = p.schemaname
               JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
              WHERE p.pubname = $1
              ORDER BY c.oid, a.attnum",
            &[&cfg.source.publication],
        )
        .await
        .map_err(|e| pgcdc_source::Error::from_pg("reading the publication's columns", e))?;
    let mut catalog = cfg.catalog();
    let mut start = 0;
    while start < rows.len() {
        let rel_id: u32 = rows[start].get(0);
        let end = rows[start..]
            .iter()
            .position(|r| r.get::<_, u32>(0) != rel_id)
            .map_or(rows.len(), |n| start + n);
        let group = &rows[start..end];
        start = end;
        let (schema, name, ident): (String, String, String) =
            (group[0].get(1), group[0].get(2), group[0].get(3));
        let columns: Vec<RelColumn<'_>> = group
            .iter()
            .map(|r| RelColumn {
                name: r.get(4),
                flags: 0,
                type_oid: r.get(5),
                typmod: r.get(6),
            })
            .collect();
        let include = cfg.source.include_columns.get(&name).map(Vec::as_slice);
        let table = TableName::new(schema, name.clone());
        let replident = ident.bytes().next().unwrap_or(b'd');
        match catalog
            .project(sql, rel_id, table, replident, &columns, include)
            .await
        {
            Ok(p) => {
                if let Some(column) = p.binary_unreadable() {
                    tracing::debug!(table = %p.schema.table, column, "reading text: a column without a binary reader");
                    return Ok(false);
                }
            }
            Err(_) => return Ok(false),
        }
    }
    Ok(true)
}

/// Whether this run reads pages through the SQL interface rather than the stream.
fn reads_pages(cfg: &Config, follow: bool) -> Result<bool> {
    Ok(match cfg.source.reader {
        Reader::Stream => false,
        Reader::Sql if follow => bail!(
            "source.reader = \"sql\" reads mini-batches; `run --follow` needs the stream: set source.reader = \"stream\" (the default)"
        ),
        Reader::Sql => true,
    })
}

/// A SQL connection holding the slot's lock: one pgcdc per slot, however it reads.
async fn connect_locked(cfg: &Config) -> Result<tokio_postgres::Client> {
    let client = pgcdc_source::connect::connect_sql(&cfg.source.pg, &cfg.source.tls).await?;
    if !peek::lock_slot(&client, &cfg.source.slot).await? {
        bail!(
            "slot {} is in use by another pgcdc process (it holds the slot's lock): stop it first, or give this pipeline its own source.slot",
            cfg.source.slot
        );
    }
    Ok(client)
}

/// Where a session starts and stops, and how it asks pgoutput.
struct Plan {
    start: Lsn,
    /// None: follow.
    end: Option<Lsn>,
    decode: DecodeOptions,
    options: Vec<(&'static str, String)>,
    /// pgoutput sends binary values.
    binary: bool,
}

/// The checks before reading: a finished snapshot, the same server and slot as the
/// destination's, a usable slot not moved past the checkpoint. Returns the checkpoint's
/// LSN, the slot, and a replication connection.
/// The slot, once no walsender holds it (waiting up to 10 s): this run holds the slot's
/// lock, so an active walsender is one a session of ours just left (it lets go a moment
/// after its connection closes — after a fallback to text, or a reconnect), or another
/// consumer, which START_REPLICATION then names.
async fn released_slot_info(
    sql: &tokio_postgres::Client,
    slot: &str,
) -> Result<Option<setup::SlotInfo>> {
    let mut info = setup::slot_info(sql, slot).await?;
    for _ in 0..200 {
        if !info.as_ref().is_some_and(|i| i.active) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        info = setup::slot_info(sql, slot).await?;
    }
    Ok(info)
}

async fn preflight(
    cfg: &Config,
    dest: &mut dyn Destination,
    sql: &tokio_postgres::Client,
) -> Result<(
    Lsn,
    setup::SlotInfo,
    pgcdc_source::wire::ReplicationConnection,
)> {
    let slot = &cfg.source.slot;
    // Read-only first: the destination is cleaned up only once we hold the slot.
    let committed = dest.read_committed().await?.ok_or_else(|| {
        anyhow!(
            "the destination {} has no checkpoint; run `pgcdc init` first",
            dest.describe()
        )
    })?;
    let pending = crate::snapshot::Progress::of(&committed.checkpoint)?.pending();
    if !pending.is_empty() {
        bail!(
            "the initial snapshot of {} is not finished; run `pgcdc init` to complete it before `run`",
            pending.join(", ")
        );
    }
    let (repl, system) =
        pgcdc_source::connect::connect_replication(&cfg.source.pg, &cfg.source.tls).await?;
    check_identity(&committed.checkpoint.source, &system.system_id, slot)?;
    let info = released_slot_info(sql, slot)
        .await?
        .ok_or_else(|| anyhow!("replication slot {slot} does not exist; run `pgcdc init` (or `pgcdc init --reset` if it was dropped)"))?;
    setup::check_slot(slot, &info, &committed.checkpoint.source.database)?;
    for w in setup::slot_warnings(slot, &info, cfg.source.max_retained_wal_bytes) {
        tracing::warn!("{w}");
    }
    let start = committed.checkpoint.lsn;
    if let Some(confirmed) = info.confirmed_flush_lsn {
        if confirmed > start {
            bail!(
                "slot {slot} was advanced to {confirmed} by someone else, past this destination's checkpoint {start}: the changes in between are not in the destination. Recover with `pgcdc init --reset` (re-snapshot), or point destination.url at the data that matches this slot"
            );
        }
    }
    Ok((start, info, repl))
}

async fn session(
    cfg: &Config,
    dest: &mut dyn Destination,
    sql: &tokio_postgres::Client,
    opts: &RunOptions,
    summary: &mut RunSummary,
    binary: bool,
) -> Result<()> {
    let slot = &cfg.source.slot;
    let (start, info, repl) = preflight(cfg, dest, sql).await?;
    let pages = reads_pages(cfg, opts.follow)?;
    if pages && info.confirmed_flush_lsn.is_some_and(|c| c < start) {
        // A run stopped between its destination commit and the slot's advance.
        peek::advance_slot(sql, slot, start)
            .await
            .map_err(|e| explain_slot_error(e.into(), slot, &cfg.source.publication))?;
    }
    let end = if opts.follow {
        None
    } else {
        Some(setup::batch_end_lsn(sql).await?)
    };
    if summary.start_lsn == Lsn::ZERO {
        summary.start_lsn = start;
        summary.end_lsn = start;
    }
    if end.is_some_and(|e| e <= start) {
        tracing::info!(%start, "nothing new to replicate");
        return Ok(());
    }
    let version = repl.server_version_num().unwrap_or(0);
    let binary = binary && version >= 140000 && publication_reads_binary(cfg, sql).await?;
    let (proto, options) = stream_options(version, &cfg.source.publication, !pages, binary);
    let plan = Plan {
        start,
        end,
        decode: DecodeOptions {
            protocol_version: proto,
            streaming_parallel: false,
        },
        options,
        binary,
    };
    match end {
        Some(end) if pages => {
            repl.close().await.ok();
            page_session(cfg, dest, sql, opts, summary, &plan, end).await
        }
        _ => stream_session(cfg, dest, sql, repl, opts, summary, &plan).await,
    }
}

/// Reads through the replication protocol (START_REPLICATION), until `plan.end` or on.
async fn stream_session(
    cfg: &Config,
    dest: &mut dyn Destination,
    sql: &tokio_postgres::Client,
    repl: pgcdc_source::wire::ReplicationConnection,
    opts: &RunOptions,
    summary: &mut RunSummary,
    plan: &Plan,
) -> Result<()> {
    let (slot, start) = (&cfg.source.slot, plan.start);
    let options_ref: Vec<(&str, &str)> =
        plan.options.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut stream = repl
        .start_replication(slot, start, &options_ref)
        .await
        .map_err(|e| {
            let err = pgcdc_source::Error::from(e);
            explain_slot_error(err.into(), slot, &cfg.source.publication)
        })?;
    // Now the slot is ours: remove leftovers of an interrupted run.
    let checkpoint = reopen(dest, start).await?;
    stream
        .send_status(start, start, start, false)
        .await
        .map_err(pgcdc_source::Error::from)?;
    tracing::info!(slot = %slot, %start, end = ?plan.end.map(|e| e.to_string()), proto = plan.decode.protocol_version, binary = plan.binary, "streaming");
    opts.metrics.set_up(true);
    let mut s = Session::new(cfg, dest, sql, checkpoint, summary, opts, plan.binary);
    s.stream_loop(&mut stream, plan.end, opts, &plan.decode)
        .await?;
    stream
        .finish()
        .await
        .map_err(pgcdc_source::Error::from)
        .ok();
    Ok(())
}

/// Reads pages through the SQL interface (`pgcdc_source::peek`), up to `end`.
async fn page_session(
    cfg: &Config,
    dest: &mut dyn Destination,
    sql: &tokio_postgres::Client,
    opts: &RunOptions,
    summary: &mut RunSummary,
    plan: &Plan,
    end: Lsn,
) -> Result<()> {
    // The pages stream over a connection of their own: the session's answers catalog
    // lookups meanwhile.
    let reader = pgcdc_source::connect::connect_sql(&cfg.source.pg, &cfg.source.tls).await?;
    reader
        .batch_execute(&format!("SET work_mem = '{PAGE_WORK_MEM}'"))
        .await
        .map_err(|e| pgcdc_source::Error::from_pg("setting work_mem for the page reader", e))?;
    // The slot's lock (held by `sql`) makes the destination ours.
    let checkpoint = reopen(dest, plan.start).await?;
    tracing::info!(slot = %cfg.source.slot, start = %plan.start, %end, proto = plan.decode.protocol_version, binary = plan.binary, "reading pages");
    opts.metrics.set_up(true);
    opts.metrics.wal_end(end.0);
    let mut s = Session::new(cfg, dest, sql, checkpoint, summary, opts, plan.binary);
    s.page_loop(&reader, end, opts, plan).await
}

/// The destination's checkpoint once the slot is ours, after removing what an
/// interrupted run left uncommitted; it must still be `start`.
async fn reopen(dest: &mut dyn Destination, start: Lsn) -> Result<Checkpoint> {
    let reopened = dest
        .open()
        .await?
        .ok_or_else(|| anyhow!("the destination checkpoint disappeared"))?;
    if reopened.checkpoint.lsn != start {
        bail!("the destination checkpoint changed while starting ({start} → {}); is another pgcdc writing to it?", reopened.checkpoint.lsn);
    }
    Ok(reopened.checkpoint)
}

fn check_identity(stored: &SourceIdentity, system_id: &str, slot: &str) -> Result<()> {
    if stored.system_identifier != system_id {
        bail!(
            "the destination holds data of PostgreSQL system {} but source.url points at system {system_id}; use the matching destination, or `pgcdc init --reset` to start over",
            stored.system_identifier
        );
    }
    if stored.slot != slot {
        bail!(
            "the destination was initialised for slot {} but source.slot is {slot}; use the matching destination, or `pgcdc init --reset`",
            stored.slot
        );
    }
    Ok(())
}

/// Says what to do about an error starting to read `slot`.
fn explain_slot_error(err: anyhow::Error, slot: &str, publication: &str) -> anyhow::Error {
    let text = format!("{err:#}");
    if text.contains("is active for PID") {
        return anyhow!("slot {slot} is in use by another connection (another pgcdc run?): {text}");
    }
    if text.contains("publication") && text.contains("does not exist") {
        return anyhow!("publication {publication} does not exist; run `pgcdc init`: {text}");
    }
    err.context(format!("reading from replication slot {slot}"))
}

/// At most this many changes a page: the server holds a page in a tuplestore (memory up
/// to the reader session's `work_mem`, then a temporary file) before sending it.
const MAX_PAGE_ROWS: usize = 100_000;
/// The reader session's `work_mem`: a page of ordinary rows stays in memory.
const PAGE_WORK_MEM: &str = "64MB";

const STATUS_INTERVAL: Duration = Duration::from_secs(10);
/// `--follow`: how often the slot's health is read (and warned about).
const SLOT_CHECK_INTERVAL: Duration = Duration::from_secs(60);
const IDLE_PROBE: Duration = Duration::from_millis(500);
const IDLE_ADVANCE_INTERVAL: Duration = Duration::from_secs(10);

impl<'a> Session<'a> {
    fn new(
        cfg: &'a Config,
        dest: &'a mut dyn Destination,
        sql: &'a tokio_postgres::Client,
        checkpoint: Checkpoint,
        summary: &'a mut RunSummary,
        opts: &RunOptions,
        binary: bool,
    ) -> Self {
        let start = checkpoint.lsn;
        Session {
            binary,
            cfg,
            dest,
            sql,
            catalog: cfg.catalog(),
            relations: HashMap::new(),
            buffers: BTreeMap::new(),
            checkpoint,
            pending: None,
            idle_position: start,
            tx: None,
            batch_rows: 0,
            buffered_bytes: 0,
            first_pending_at: None,
            summary,
            metrics: Arc::clone(&opts.metrics),
            received: start,
            streamed: Streamed::new(cfg.meta.clone()),
            stream_xid: None,
            skipped: Default::default(),
        }
    }
}

impl Session<'_> {
    /// Pages up to `end`, each committed to the destination and then confirmed by
    /// advancing the slot (see `pgcdc_source::peek` for why that is exactly once).
    async fn page_loop(
        &mut self,
        reader: &tokio_postgres::Client,
        end: Lsn,
        opts: &RunOptions,
        plan: &Plan,
    ) -> Result<()> {
        let options: Vec<(&str, &str)> =
            plan.options.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page_rows = u32::try_from(self.cfg.batch.max_rows.min(MAX_PAGE_ROWS)).unwrap_or(1);
        let mut decoder = pgoutput::Decoder::new(plan.decode);
        let mut advanced = self.checkpoint.lsn;
        loop {
            let statement = peek::peek_statement(&self.cfg.source.slot, end, page_rows, &options);
            let (rows, stopped) = self
                .read_page(reader, &statement, &mut decoder, opts)
                .await?;
            // Fewer rows than asked for: decoding reached `end`, so every transaction that
            // committed before it has been read.
            let last = stopped || rows < u64::from(page_rows);
            if last && !stopped {
                self.idle_position = self.idle_position.max(end);
            }
            self.commit(true).await?;
            // Commits inside the page (a full batch) count too.
            if self.checkpoint.lsn > advanced {
                pgcdc_sink::failpoint("pipeline.before_advance");
                peek::advance_slot(self.sql, &self.cfg.source.slot, self.checkpoint.lsn).await?;
                advanced = self.checkpoint.lsn;
            }
            if last {
                return Ok(());
            }
        }
    }

    /// Reads and handles one page; returns its row count and whether a stop was
    /// requested (then the page was left after a complete transaction).
    async fn read_page(
        &mut self,
        reader: &tokio_postgres::Client,
        statement: &str,
        decoder: &mut pgoutput::Decoder,
        opts: &RunOptions,
    ) -> Result<(u64, bool)> {
        let (slot, publication) = (&self.cfg.source.slot, &self.cfg.source.publication);
        let peek_error = |e: tokio_postgres::Error| {
            let err = pgcdc_source::Error::from_pg(&format!("reading changes from slot {slot}"), e);
            explain_slot_error(err.into(), slot, publication)
        };
        let stream = reader.copy_out(statement).await.map_err(peek_error)?;
        futures_util::pin_mut!(stream);
        let mut parser = PeekRows::new();
        let mut rows = 0u64;
        while let Some(chunk) = futures_util::TryStreamExt::try_next(&mut stream)
            .await
            .map_err(peek_error)?
        {
            parser.push(&chunk);
            while let Some((lsn, range)) = parser.next_row()? {
                rows += 1;
                let msg = decoder
                    .decode(parser.data(range))
                    .context("decoding a pgoutput message")?;
                if let Message::Begin { final_lsn, .. } = &msg {
                    // The slot is advanced past every commit: nothing comes twice.
                    if *final_lsn < self.checkpoint.lsn {
                        bail!("slot {slot} returned a transaction committed at {final_lsn}, before the checkpoint {}; not applying it twice", self.checkpoint.lsn);
                    }
                }
                if self.handle(msg, lsn).await?.is_some() {
                    let batch_full = self.batch_rows >= self.cfg.batch.max_rows
                        || self.buffered_bytes >= self.cfg.batch.max_bytes;
                    if batch_full {
                        self.commit(false).await?;
                    }
                    if opts.stop.load(Ordering::SeqCst) {
                        return Ok((rows, true));
                    }
                }
            }
        }
        if !parser.finished() {
            bail!("the changes read from slot {slot} ended before the end of their COPY data");
        }
        if self.tx.is_some() || self.stream_xid.is_some() {
            bail!("a page of changes from slot {slot} ended inside a transaction");
        }
        Ok((rows, false))
    }

    async fn stream_loop(
        &mut self,
        stream: &mut ReplicationStream,
        end: Option<Lsn>,
        opts: &RunOptions,
        decode: &DecodeOptions,
    ) -> Result<()> {
        let mut decoder = pgoutput::Decoder::new(*decode);
        let mut last_status = Instant::now();
        let mut last_advance = Instant::now();
        let mut last_slot_check = Instant::now();
        let mut last_heartbeat = Instant::now();
        let mut stop_requested_at: Option<Instant> = None;
        loop {
            let stopping = opts.stop.load(Ordering::SeqCst);
            if stopping && stop_requested_at.is_none() {
                stop_requested_at = Some(Instant::now());
            }
            if stopping && self.tx.is_none() {
                self.commit_and_report(stream, false).await?;
                return Ok(());
            }
            if stop_requested_at.is_some_and(|t| t.elapsed() > Duration::from_secs(30)) {
                bail!("stopped by signal inside a long transaction; its changes will be replayed by the next run");
            }
            if opts.follow && self.tx.is_none() {
                let data_due = self
                    .first_pending_at
                    .is_some_and(|t| t.elapsed() >= self.cfg.batch.flush_interval);
                // A quiet publication on a busy server: move the checkpoint (and so the
                // slot) along now and then, so WAL of other tables is not retained.
                let advance_due = self.pending.is_none()
                    && self.idle_position > self.checkpoint.lsn
                    && last_advance.elapsed() >= IDLE_ADVANCE_INTERVAL;
                if data_due || advance_due {
                    self.commit_and_report(stream, true).await?;
                    last_advance = Instant::now();
                }
            }
            if last_status.elapsed() >= STATUS_INTERVAL {
                self.send_status(stream, false).await?;
                last_status = Instant::now();
            }
            if opts.follow {
                if last_slot_check.elapsed() >= SLOT_CHECK_INTERVAL {
                    self.warn_about_slot().await;
                    last_slot_check = Instant::now();
                }
                if let Some(every) = self.cfg.source.heartbeat_interval {
                    if last_heartbeat.elapsed() >= every {
                        setup::heartbeat(self.sql).await?;
                        last_heartbeat = Instant::now();
                    }
                }
            }
            let msg = match tokio::time::timeout(IDLE_PROBE, stream.next_message()).await {
                Err(_) => {
                    // Quiet: ask the server where it is; its keepalive ends a caught-up batch.
                    self.send_status(stream, true).await?;
                    last_status = Instant::now();
                    continue;
                }
                Ok(m) => m.map_err(pgcdc_source::Error::from)?,
            };
            let Some(bytes) = msg else {
                // A server shutting down ends the stream cleanly: in follow mode, reconnect.
                return Err(pgcdc_source::Error::new(
                    pgcdc_source::ErrorKind::Connection,
                    "the server ended the replication stream (shutting down or restarting?)",
                )
                .into());
            };
            match pgoutput::parse_frame(&bytes).context("decoding a replication message")? {
                Frame::Keepalive {
                    wal_end,
                    reply_requested,
                    ..
                } => {
                    self.metrics.wal_end(wal_end.0);
                    if self.tx.is_none() && wal_end > self.idle_position {
                        self.idle_position = wal_end;
                    }
                    if reply_requested {
                        self.send_status(stream, false).await?;
                        last_status = Instant::now();
                    }
                    if self.tx.is_none() && end.is_some_and(|e| wal_end >= e) {
                        self.commit_and_report(stream, true).await?;
                        return Ok(());
                    }
                }
                Frame::XLogData {
                    wal_start,
                    wal_end,
                    data,
                    ..
                } => {
                    self.metrics.wal_end(wal_end.0);
                    if wal_start > self.received {
                        self.received = wal_start;
                    }
                    let msg = decoder
                        .decode(data)
                        .context("decoding a pgoutput message")?;
                    if let Some(commit_end) = self.handle(msg, wal_start).await? {
                        let batch_full = self.batch_rows >= self.cfg.batch.max_rows
                            || self.buffered_bytes >= self.cfg.batch.max_bytes;
                        let at_end = end.is_some_and(|e| commit_end >= e);
                        if batch_full || at_end {
                            self.commit_and_report(stream, false).await?;
                        }
                        if at_end {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }

    /// Logs what is worrying about the slot (retained WAL, wal_status); never fails the run.
    async fn warn_about_slot(&self) {
        let slot = &self.cfg.source.slot;
        match setup::slot_info(self.sql, slot).await {
            Ok(Some(info)) => {
                for w in setup::slot_warnings(slot, &info, self.cfg.source.max_retained_wal_bytes) {
                    tracing::warn!("{w}");
                }
            }
            Ok(None) => tracing::warn!("slot {slot} no longer exists"),
            Err(e) => tracing::debug!(error = %e, "could not read the slot's health"),
        }
    }

    async fn send_status(&mut self, stream: &mut ReplicationStream, reply: bool) -> Result<()> {
        let flush = self.checkpoint.lsn;
        stream
            .send_status(self.received.max(flush), flush, flush, reply)
            .await
            .map_err(pgcdc_source::Error::from)?;
        Ok(())
    }

    /// Handles one pgoutput message; returns the end LSN when a transaction completed.
    async fn handle(&mut self, msg: Message<'_>, lsn: Lsn) -> Result<Option<Lsn>> {
        match msg {
            Message::Begin {
                xid,
                commit_ts,
                final_lsn,
            } => {
                self.tx = Some(Tx {
                    xid,
                    commit_ts: commit_ts.saturating_add(PG_EPOCH_OFFSET_MICROS),
                    commit_lsn: final_lsn,
                });
            }
            Message::Commit { end_lsn, .. } => {
                if let Some(tx) = self.tx.take() {
                    self.metrics.transaction_pending(tx.commit_ts);
                }
                self.pending = Some(end_lsn);
                self.idle_position = self.idle_position.max(end_lsn);
                self.first_pending_at.get_or_insert_with(Instant::now);
                self.summary.transactions += 1;
                return Ok(Some(end_lsn));
            }
            Message::Relation(rel) => self.on_relation(rel).await?,
            Message::Insert { xid, rel_id, new } => {
                self.append(rel_id, xid, &new, None, lsn, Op::Insert)?;
            }
            Message::Update {
                xid,
                rel_id,
                old,
                new,
            } => self.on_update(rel_id, xid, old.as_ref(), &new, lsn)?,
            Message::Delete {
                xid, rel_id, old, ..
            } => {
                self.append(rel_id, xid, &old, None, lsn, Op::Delete)?;
            }
            Message::Truncate { xid, rel_ids, .. } => {
                for rel_id in rel_ids.iter() {
                    if self.skipped.contains(&rel_id) {
                        continue;
                    }
                    let meta = self.meta(lsn, Op::Truncate);
                    let buf = self.buffer_for(rel_id, xid)?;
                    buf.append_truncate(meta);
                    self.count(rel_id, xid, Op::Truncate);
                }
            }
            Message::StreamStart { xid, .. } => self.stream_xid = Some(xid),
            Message::StreamStop => self.stream_xid = None,
            Message::StreamAbort { xid, subxid, .. } => self.streamed.abort(xid, subxid),
            Message::StreamCommit {
                xid,
                end_lsn,
                commit_ts,
                commit_lsn,
                ..
            } => {
                let ts = commit_ts.saturating_add(PG_EPOCH_OFFSET_MICROS);
                self.on_stream_commit(xid, ts, commit_lsn).await?;
                self.metrics.transaction_pending(ts);
                self.pending = Some(end_lsn);
                self.idle_position = self.idle_position.max(end_lsn);
                self.first_pending_at.get_or_insert_with(Instant::now);
                self.summary.transactions += 1;
                return Ok(Some(end_lsn));
            }
            Message::Message {
                transactional: false,
                lsn: at,
                ..
            } if self.tx.is_none() && self.stream_xid.is_none() => {
                // Decoded in WAL order: every transaction that committed before this
                // message was sent before it, so its position is safe to confirm.
                self.idle_position = self.idle_position.max(at);
            }
            // Origin, Type (types are resolved from the catalog), transactional logical
            // messages, two-phase messages (not requested): nothing to store.
            _ => {}
        }
        self.spill_if_needed().await?;
        Ok(None)
    }

    async fn on_relation(&mut self, rel: pgoutput::Relation<'_>) -> Result<()> {
        if rel.name.starts_with("_dlt_") {
            // dlt's persisted snapshot tables are never replicated (as dlt does).
            self.skipped.insert(rel.rel_id);
            return Ok(());
        }
        self.skipped.remove(&rel.rel_id);
        let table = TableName::new(
            if rel.namespace.is_empty() {
                "pg_catalog"
            } else {
                rel.namespace
            },
            rel.name,
        );
        let cols: Vec<RelColumn<'_>> = rel
            .columns()
            .map(|c| RelColumn {
                name: c.name,
                flags: c.flags,
                type_oid: c.type_oid,
                typmod: c.type_modifier,
            })
            .collect();
        let include = self
            .cfg
            .source
            .include_columns
            .get(rel.name)
            .map(Vec::as_slice);
        let projection = self
            .catalog
            .project(
                self.sql,
                rel.rel_id,
                table,
                rel.replica_identity,
                &cols,
                include,
            )
            .await?;
        if self.binary {
            if let Some(column) = projection.binary_unreadable() {
                return Err(BinaryUnreadable {
                    table: projection.schema.table.clone(),
                    column: column.to_string(),
                }
                .into());
            }
        }
        let schema = Arc::new(projection.schema.clone());
        let key = schema.table.name.clone();
        // A changed schema closes the table's current rows under the old one.
        if self.buffers.get(&key).is_some_and(|b| *b.schema != *schema) {
            self.flush_table(&key).await?;
            self.buffers.remove(&key);
        }
        self.relations.insert(
            rel.rel_id,
            Rel {
                projection: Arc::new(projection),
                schema,
            },
        );
        Ok(())
    }

    fn meta(&self, lsn: Lsn, op: Op) -> RowMeta {
        if let Some(top) = self.stream_xid {
            return RowMeta {
                lsn: lsn.as_i64(),
                commit_lsn: None,
                op,
                commit_ts: None,
                xid: Some(top),
            };
        }
        RowMeta {
            lsn: lsn.as_i64(),
            commit_lsn: self.tx.as_ref().map(|t| t.commit_lsn.as_i64()),
            op,
            commit_ts: self.tx.as_ref().map(|t| t.commit_ts),
            xid: self.tx.as_ref().map(|t| t.xid),
        }
    }

    /// Writes a committed streamed transaction's rows (uncommitted until the next commit).
    async fn on_stream_commit(&mut self, xid: u32, commit_ts: i64, commit_lsn: Lsn) -> Result<()> {
        let (pieces, stats) = self.streamed.commit(xid)?;
        // Rows of transactions that committed earlier and are still buffered go first:
        // destinations get each table's rows in commit order (a mirror applies them so).
        self.flush_all().await?;
        for piece in pieces {
            let (schema, batches) = match piece {
                Piece::Memory(schema, batch) => (schema, vec![batch]),
                Piece::Spilled(schema, path) => (schema, streamed::read_spilled(&path)?),
            };
            for batch in batches {
                self.batch_rows += batch.num_rows();
                let batch = streamed::with_commit_ts(
                    batch,
                    &self.cfg.meta,
                    commit_ts,
                    commit_lsn.as_i64(),
                )?;
                self.dest.write(&schema, batch).await?;
            }
        }
        for (table, s) in stats {
            let t = self.summary.tables.entry(table).or_default();
            t.insert += s.insert;
            t.update += s.update;
            t.delete += s.delete;
            t.truncate += s.truncate;
        }
        Ok(())
    }

    /// The buffer a change of `rel_id` goes to: the batch's, or (inside a Stream Start …
    /// Stop block) its streamed transaction's, keyed by the subtransaction `xid`.
    fn buffer_for(&mut self, rel_id: u32, xid: Option<u32>) -> Result<&mut TableBuffer> {
        let rel = self
            .relations
            .get(&rel_id)
            .ok_or_else(|| anyhow!("change for relation {rel_id} before its Relation message"))?;
        let key = rel.schema.table.name.clone();
        let schema = Arc::clone(&rel.schema);
        if let Some(top) = self.stream_xid {
            return self.streamed.buffer(top, xid.unwrap_or(top), &schema);
        }
        let meta = &self.cfg.meta;
        let buf = self
            .buffers
            .entry(key)
            .or_insert_with(|| TableBuffer::new(Arc::clone(&schema), meta));
        if *buf.schema != *schema {
            // Only reachable if flush_table was skipped; keep rows apart rather than mix schemas.
            bail!("internal: buffer schema out of date for {}", schema.table);
        }
        Ok(buf)
    }

    fn count(&mut self, rel_id: u32, xid: Option<u32>, op: Op) {
        let Some(rel) = self.relations.get(&rel_id) else {
            return;
        };
        let name = rel.schema.table.name.clone();
        if let Some(top) = self.stream_xid {
            // Counted, and added to the batch, only if the transaction commits.
            self.streamed.count(top, xid.unwrap_or(top), &name, op);
            return;
        }
        add_stat(self.summary.tables.entry(name).or_default(), op);
        self.batch_rows += 1;
    }

    #[allow(clippy::too_many_arguments)]
    fn append(
        &mut self,
        rel_id: u32,
        xid: Option<u32>,
        row: &TupleData<'_>,
        old: Option<&[Cell<'_>]>,
        lsn: Lsn,
        op: Op,
    ) -> Result<()> {
        if self.skipped.contains(&rel_id) {
            return Ok(());
        }
        let meta = self.meta(lsn, op);
        let policy = self.cfg.types;
        let projection = self
            .relations
            .get(&rel_id)
            .map(|r| Arc::clone(&r.projection))
            .ok_or_else(|| anyhow!("change for relation {rel_id} before its Relation message"))?;
        let buf = self.buffer_for(rel_id, xid)?;
        let before = buf.bytes();
        buf.append(
            cells(row, &projection.binary),
            old,
            &projection.map,
            meta,
            &policy,
        )?;
        let grown = buf.bytes().saturating_sub(before);
        if self.stream_xid.is_some() {
            self.streamed.grew(grown);
        } else {
            self.buffered_bytes += grown;
        }
        self.count(rel_id, xid, op);
        Ok(())
    }

    fn on_update(
        &mut self,
        rel_id: u32,
        xid: Option<u32>,
        old: Option<&(u8, TupleData<'_>)>,
        new: &TupleData<'_>,
        lsn: Lsn,
    ) -> Result<()> {
        if self.skipped.contains(&rel_id) {
            return Ok(());
        }
        let Some((_, old_tuple)) = old else {
            return self.append(rel_id, xid, new, None, lsn, Op::Update);
        };
        let projection = self
            .relations
            .get(&rel_id)
            .map(|r| Arc::clone(&r.projection))
            .ok_or_else(|| anyhow!("change for relation {rel_id} before its Relation message"))?;
        let old_cells: Vec<Cell<'_>> = cells(old_tuple, &projection.binary).collect();
        let new_cells: Vec<Cell<'_>> = cells(new, &projection.binary).collect();
        // A changed key moves the row: the old key is deleted first (same LSN, written first).
        let key_changed = projection.map.iter().enumerate().any(|(i, target)| {
            let Some(t) = target else { return false };
            let is_key = projection.schema.columns.get(*t).is_some_and(|c| c.key);
            is_key && !same_value(old_cells.get(i), new_cells.get(i))
        });
        if key_changed {
            self.append(rel_id, xid, old_tuple, None, lsn, Op::Delete)?;
        }
        self.append(rel_id, xid, new, Some(&old_cells), lsn, Op::Update)
    }

    async fn spill_if_needed(&mut self) -> Result<()> {
        if self.streamed.bytes() >= self.cfg.batch.max_bytes {
            self.streamed.spill_all()?;
        }
        if self.buffered_bytes < self.cfg.batch.max_bytes {
            return Ok(());
        }
        let keys: Vec<String> = self.buffers.keys().cloned().collect();
        for k in keys {
            self.flush_table(&k).await?;
        }
        self.buffered_bytes = 0;
        Ok(())
    }

    /// Writes a table's buffered rows to the destination (uncommitted).
    async fn flush_table(&mut self, key: &str) -> Result<()> {
        let Some(buf) = self.buffers.get_mut(key) else {
            return Ok(());
        };
        if buf.rows() == 0 {
            return Ok(());
        }
        let schema = Arc::clone(&buf.schema);
        let batch = buf.finish()?;
        self.dest.write(&schema, batch).await?;
        pgcdc_sink::failpoint("pipeline.after_write");
        Ok(())
    }

    /// Writes every table's buffered rows.
    async fn flush_all(&mut self) -> Result<()> {
        let keys: Vec<String> = self.buffers.keys().cloned().collect();
        for k in keys {
            self.flush_table(&k).await?;
        }
        Ok(())
    }

    /// [`Session::commit`], then the new checkpoint reported to the server as flushed.
    async fn commit_and_report(
        &mut self,
        stream: &mut ReplicationStream,
        advance: bool,
    ) -> Result<()> {
        if self.commit(advance).await? {
            self.send_status(stream, false).await?;
        }
        Ok(())
    }

    /// Commits everything complete so far (call only between transactions); returns
    /// whether the checkpoint moved. With `advance`, a quiet stream's position is
    /// committed too, so the slot moves on.
    async fn commit(&mut self, advance: bool) -> Result<bool> {
        debug_assert!(self.tx.is_none());
        let target = match (self.pending, advance) {
            (Some(p), true) => p.max(self.idle_position),
            (Some(p), false) => p,
            (None, true) if self.idle_position > self.checkpoint.lsn => self.idle_position,
            _ => return Ok(false),
        };
        self.flush_all().await?;
        let mut checkpoint = self.checkpoint.clone();
        checkpoint.lsn = target;
        checkpoint.committed_at = chrono::Utc::now().to_rfc3339();
        let started = Instant::now();
        self.dest.commit(&checkpoint).await?;
        pgcdc_sink::failpoint("pipeline.after_commit");
        self.checkpoint = checkpoint;
        if self.pending.is_some() {
            self.summary.batches += 1;
        }
        self.summary.mark_committed();
        self.metrics.committed(
            &self.summary.tables,
            self.summary.transactions,
            self.summary.batches,
            target.0,
            started.elapsed(),
        );
        self.summary.end_lsn = target;
        self.pending = None;
        self.first_pending_at = None;
        self.batch_rows = 0;
        self.buffered_bytes = 0;
        tracing::debug!(lsn = %target, "committed");
        Ok(true)
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

fn same_value(a: Option<&Cell<'_>>, b: Option<&Cell<'_>>) -> bool {
    match (a, b) {
        (Some(Cell::Text(x)), Some(Cell::Text(y))) => x == y,
        (Some(Cell::Binary(x, _)), Some(Cell::Binary(y, _))) => x == y,
        (Some(Cell::Null), Some(Cell::Null)) => true,
        // An unchanged TOAST value in the new row is the old value.
        (Some(_), Some(Cell::Unchanged)) => true,
        _ => false,
    }
}

/// A decoded tuple value as a row cell; a binary value is read in its column's form.
fn cell<'a>(v: TupleValue<'a>, form: Option<&'a BinaryForm>) -> Cell<'a> {
    match v {
        TupleValue::Null => Cell::Null,
        TupleValue::UnchangedToast => Cell::Unchanged,
        TupleValue::Text(b) => Cell::Text(b),
        TupleValue::Binary(b) => Cell::Binary(b, form),
    }
}

/// The cells of `row`, whose binary values have the `forms` of the relation's columns.
fn cells<'a>(
    row: &'a TupleData<'a>,
    forms: &'a [Option<BinaryForm>],
) -> impl Iterator<Item = Cell<'a>> + 'a {
    row.iter()
        .enumerate()
        .map(move |(i, v)| cell(v, forms.get(i).and_then(Option::as_ref)))
}
