//! The run loop's state: decoded messages become per-table Arrow rows, rows become
//! destination writes, complete transactions become commits.
//!
//! [`Core`] knows neither PostgreSQL nor the wire: it takes pgoutput [`Message`]s with
//! their LSNs and asks its [`ChangeSource`] only to resolve a relation's shape. It owns
//! the rules that make a run exact:
//! - rows are buffered per table and written to the destination (uncommitted) when the
//!   buffers outgrow the batch byte budget, so memory stays bounded inside a huge
//!   transaction;
//! - [`Core::commit`] is called only between transactions, with the end LSN of the last
//!   complete one (or, when asked to *advance*, a quiet stream's position), and only after
//!   the destination's commit returns does that position become the checkpoint that is
//!   confirmed to the source;
//! - an update that changes the key is written as a delete of the old key first;
//!   unchanged TOAST values are marked for the destination to keep;
//! - in-progress transactions streamed in pieces are held apart ([`crate::streamed`])
//!   until their Stream Commit, and dropped on Stream Abort.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};

use pgcdc_core::{
    Checkpoint, Lsn, MetaColumns, Op, TableName, TableSchema, ValuePolicy, PG_EPOCH_OFFSET_MICROS,
};
use pgcdc_sink::Destination;
use pgcdc_source::catalog::Projection;
use pgcdc_source::pgoutput::{self, Message, TupleData, TupleValue};
use pgcdc_source::values::BinaryForm;

use super::source::ChangeSource;
use super::{add_stat, RunSummary};
use crate::batch::{Cell, RowMeta, TableBuffer};
use crate::metrics::Metrics;
use crate::streamed::{self, Piece, Streamed};

/// What the core needs to know of the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Metadata column names.
    pub meta: MetaColumns,
    /// Value policies.
    pub policy: ValuePolicy,
    /// A batch is committed at the first transaction end after this many rows …
    pub max_rows: usize,
    /// … or this many bytes of buffered Arrow data (also the memory bound).
    pub max_bytes: usize,
    /// `--follow`: commit at least this often when data is waiting.
    pub flush_interval: Duration,
    /// Ask for binary values where the source can give them.
    pub binary: bool,
    /// Follow mode: the wait before the first retry after a transient failure (doubled
    /// each time, up to 30 s).
    pub first_backoff: Duration,
}

/// A relation met in a binary session with a column whose binary form pgcdc cannot
/// read (a type added by DDL since the session chose binary): the run reads again from
/// its checkpoint in text.
#[derive(Debug, thiserror::Error)]
#[error("column {column} of {table} has a type whose binary form pgcdc does not read")]
pub struct BinaryUnreadable {
    table: TableName,
    column: String,
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

/// One session's state. See the [module docs](self).
pub struct Core<'a> {
    settings: &'a Settings,
    dest: &'a mut dyn Destination,
    summary: &'a mut RunSummary,
    metrics: Arc<Metrics>,
    relations: HashMap<u32, Rel>,
    /// Relations whose changes are not replicated.
    skipped: HashSet<u32>,
    buffers: BTreeMap<String, TableBuffer>,
    /// The destination's committed checkpoint.
    checkpoint: Checkpoint,
    /// End LSN of the last complete transaction not yet committed.
    pending: Option<Lsn>,
    /// Highest position known to be fully processed while no transaction is open.
    idle_position: Lsn,
    /// Highest position read.
    received: Lsn,
    tx: Option<Tx>,
    batch_rows: usize,
    buffered_bytes: usize,
    first_pending_at: Option<Instant>,
    streamed: Streamed,
    /// Top-level xid of the current Stream Start … Stream Stop block.
    stream_xid: Option<u32>,
    /// Values arrive in binary: every relation must be readable so.
    binary: bool,
}

impl<'a> Core<'a> {
    /// A session starting at the destination's committed `checkpoint`.
    pub fn new(
        settings: &'a Settings,
        dest: &'a mut dyn Destination,
        checkpoint: Checkpoint,
        summary: &'a mut RunSummary,
        metrics: Arc<Metrics>,
        binary: bool,
    ) -> Self {
        let start = checkpoint.lsn;
        Core {
            settings,
            dest,
            summary,
            metrics,
            relations: HashMap::new(),
            skipped: HashSet::new(),
            buffers: BTreeMap::new(),
            checkpoint,
            pending: None,
            idle_position: start,
            received: start,
            tx: None,
            batch_rows: 0,
            buffered_bytes: 0,
            first_pending_at: None,
            streamed: Streamed::new(settings.meta.clone()),
            stream_xid: None,
            binary,
        }
    }

    /// The committed checkpoint's LSN.
    pub fn checkpoint_lsn(&self) -> Lsn {
        self.checkpoint.lsn
    }

    /// Inside a transaction: no commit may happen now.
    pub fn in_transaction(&self) -> bool {
        self.tx.is_some()
    }

    /// Inside a transaction or a block of a streamed one (a page must not end so).
    pub fn inside_any(&self) -> bool {
        self.tx.is_some() || self.stream_xid.is_some()
    }

    /// The batch has reached its row or byte budget.
    pub fn batch_full(&self) -> bool {
        self.batch_rows >= self.settings.max_rows || self.buffered_bytes >= self.settings.max_bytes
    }

    /// Follow mode: data has waited longer than the flush interval.
    pub fn flush_due(&self) -> bool {
        self.first_pending_at
            .is_some_and(|t| t.elapsed() >= self.settings.flush_interval)
    }

    /// Nothing is pending but the stream has moved past the checkpoint.
    pub fn can_advance(&self) -> bool {
        self.pending.is_none() && self.idle_position > self.checkpoint.lsn
    }

    /// A message at `lsn` was read (the position reported as received).
    pub fn saw(&mut self, lsn: Lsn) {
        self.received = self.received.max(lsn);
    }

    /// The server's WAL end, as it said when sending a message.
    pub fn wal_end(&self, wal_end: Lsn) {
        self.metrics.wal_end(wal_end.0);
    }

    /// The server says every transaction committed before `wal_end` was sent.
    pub fn keepalive(&mut self, wal_end: Lsn) {
        self.metrics.wal_end(wal_end.0);
        if self.tx.is_none() && wal_end > self.idle_position {
            self.idle_position = wal_end;
        }
    }

    /// Decoding reached `end` between transactions (a page read to its end).
    pub fn reached(&mut self, end: Lsn) {
        self.idle_position = self.idle_position.max(end);
    }

    /// Reports the checkpoint to the source as flushed.
    pub async fn confirm(&self, source: &mut dyn ChangeSource, reply: bool) -> Result<()> {
        let flush = self.checkpoint.lsn;
        source.confirm(flush, self.received.max(flush), reply).await
    }

    /// Decodes and handles one pgoutput message; returns the end LSN when a transaction
    /// completed.
    pub async fn on_bytes(
        &mut self,
        decoder: &mut pgoutput::Decoder,
        data: &[u8],
        lsn: Lsn,
        source: &mut dyn ChangeSource,
    ) -> Result<Option<Lsn>> {
        let msg = decoder
            .decode(data)
            .map_err(|e| anyhow!(e).context("decoding a pgoutput message"))?;
        self.handle(msg, lsn, source).await
    }

    /// Handles one message; returns the end LSN when a transaction completed.
    pub async fn handle(
        &mut self,
        msg: Message<'_>,
        lsn: Lsn,
        source: &mut dyn ChangeSource,
    ) -> Result<Option<Lsn>> {
        match msg {
            Message::Begin {
                xid,
                commit_ts,
                final_lsn,
            } => self.on_begin(xid, commit_ts, final_lsn)?,
            Message::Commit { end_lsn, .. } => {
                if let Some(tx) = self.tx.take() {
                    self.metrics.transaction_pending(tx.commit_ts);
                }
                return Ok(Some(self.completed(end_lsn)));
            }
            Message::Relation(rel) => self.on_relation(rel, source).await?,
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
            } => self.append(rel_id, xid, &old, None, lsn, Op::Delete)?,
            Message::Truncate { xid, rel_ids, .. } => {
                for rel_id in rel_ids.iter() {
                    self.on_truncate(rel_id, xid, lsn)?;
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
                return Ok(Some(self.completed(end_lsn)));
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

    fn on_begin(&mut self, xid: u32, commit_ts: i64, final_lsn: Lsn) -> Result<()> {
        // A source starts after the checkpoint: nothing committed before it comes twice.
        if final_lsn < self.checkpoint.lsn {
            bail!(
                "the source sent a transaction committed at {final_lsn}, before the checkpoint {}; not applying it twice",
                self.checkpoint.lsn
            );
        }
        self.tx = Some(Tx {
            xid,
            commit_ts: commit_ts.saturating_add(PG_EPOCH_OFFSET_MICROS),
            commit_lsn: final_lsn,
        });
        Ok(())
    }

    /// A transaction ending at `end_lsn` is complete (not committed to the destination yet).
    fn completed(&mut self, end_lsn: Lsn) -> Lsn {
        self.pending = Some(end_lsn);
        self.idle_position = self.idle_position.max(end_lsn);
        self.first_pending_at.get_or_insert_with(Instant::now);
        self.summary.transactions += 1;
        end_lsn
    }

    async fn on_relation(
        &mut self,
        rel: pgoutput::Relation<'_>,
        source: &mut dyn ChangeSource,
    ) -> Result<()> {
        let Some(projection) = source.project(&rel).await? else {
            self.skipped.insert(rel.rel_id);
            return Ok(());
        };
        self.skipped.remove(&rel.rel_id);
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
                    &self.settings.meta,
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
        let meta = &self.settings.meta;
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

    fn projection(&self, rel_id: u32) -> Result<Arc<Projection>> {
        self.relations
            .get(&rel_id)
            .map(|r| Arc::clone(&r.projection))
            .ok_or_else(|| anyhow!("change for relation {rel_id} before its Relation message"))
    }

    fn on_truncate(&mut self, rel_id: u32, xid: Option<u32>, lsn: Lsn) -> Result<()> {
        if self.skipped.contains(&rel_id) {
            return Ok(());
        }
        let meta = self.meta(lsn, Op::Truncate);
        self.buffer_for(rel_id, xid)?.append_truncate(meta);
        self.count(rel_id, xid, Op::Truncate);
        Ok(())
    }

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
        let policy = self.settings.policy;
        let projection = self.projection(rel_id)?;
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
        let projection = self.projection(rel_id)?;
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
        if self.streamed.bytes() >= self.settings.max_bytes {
            self.streamed.spill_all()?;
        }
        if self.buffered_bytes < self.settings.max_bytes {
            return Ok(());
        }
        self.flush_all().await?;
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

    /// [`Core::commit`], then the new checkpoint confirmed to the source.
    pub async fn commit_and_confirm(
        &mut self,
        source: &mut dyn ChangeSource,
        advance: bool,
    ) -> Result<()> {
        if self.commit(advance).await? {
            self.confirm(source, false).await?;
        }
        Ok(())
    }

    /// Commits everything complete so far (call only between transactions); returns
    /// whether the checkpoint moved. With `advance`, a quiet stream's position is
    /// committed too, so the slot moves on.
    pub async fn commit(&mut self, advance: bool) -> Result<bool> {
        if self.in_transaction() {
            bail!("internal: a commit was asked for inside a transaction");
        }
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
