//! In-progress transactions streamed by the server (protocol v2+, `streaming = on`).
//!
//! PostgreSQL streams a transaction before it commits once it outgrows
//! `logical_decoding_work_mem`, in blocks between Stream Start and Stream Stop, possibly
//! interleaved with other transactions, and ends it with Stream Commit or Stream Abort
//! (of the whole transaction or of one subtransaction). Nothing of it may reach the
//! destination before its Stream Commit, and nothing of an aborted (sub)transaction ever.
//!
//! Rows are kept per (transaction, subtransaction, table) in Arrow builders; when all
//! streamed rows together exceed the memory budget they are spilled to Arrow IPC files in
//! a private temporary directory. At Stream Commit the pieces are handed back in order
//! with the commit timestamp filled in; at Stream Abort they are dropped. A crash loses
//! only the temporary files: the transaction is streamed again by the next run.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use arrow_array::builder::TimestampMicrosecondBuilder;
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;

use pgcdc_core::{MetaColumns, Op, TableSchema};

use crate::batch::TableBuffer;
use crate::run::TableStats;

/// A finished piece of a committed streamed transaction.
pub enum Piece {
    /// Rows still in memory.
    Memory(Arc<TableSchema>, RecordBatch),
    /// Rows spilled to an IPC stream file (read back batch by batch).
    Spilled(Arc<TableSchema>, PathBuf),
}

#[derive(Default)]
struct Sub {
    buffers: BTreeMap<String, TableBuffer>,
    spilled: Vec<(Arc<TableSchema>, PathBuf)>,
    stats: BTreeMap<String, TableStats>,
}

/// All streamed transactions not yet committed or aborted.
pub struct Streamed {
    meta: MetaColumns,
    dir: Option<tempfile::TempDir>,
    txs: HashMap<u32, BTreeMap<u32, Sub>>,
    bytes: usize,
    files: u64,
}

impl Streamed {
    /// An empty store.
    pub fn new(meta: MetaColumns) -> Self {
        Streamed {
            meta,
            dir: None,
            txs: HashMap::new(),
            bytes: 0,
            files: 0,
        }
    }

    /// Bytes held in memory.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Notes `grown` more bytes held.
    pub fn grew(&mut self, grown: usize) {
        self.bytes += grown;
    }

    /// The buffer for rows of `table` in subtransaction `sub` of `top`.
    pub fn buffer(
        &mut self,
        top: u32,
        sub: u32,
        schema: &Arc<TableSchema>,
    ) -> Result<&mut TableBuffer> {
        let key = schema.table.name.clone();
        let stale = self
            .txs
            .get(&top)
            .and_then(|t| t.get(&sub))
            .and_then(|s| s.buffers.get(&key))
            .is_some_and(|b| *b.schema != **schema);
        if stale {
            self.spill_one(top, sub, &key)?;
        }
        let meta = self.meta.clone();
        let part = self.txs.entry(top).or_default().entry(sub).or_default();
        if stale {
            part.buffers.remove(&key);
        }
        Ok(part
            .buffers
            .entry(key)
            .or_insert_with(|| TableBuffer::new(Arc::clone(schema), &meta)))
    }

    /// Counts a change for the summary (merged only if the transaction commits).
    pub fn count(&mut self, top: u32, sub: u32, table: &str, op: Op) {
        let part = self.txs.entry(top).or_default().entry(sub).or_default();
        crate::run::add_stat(part.stats.entry(table.to_string()).or_default(), op);
    }

    /// Forgets an aborted transaction (`sub == top`) or subtransaction.
    pub fn abort(&mut self, top: u32, sub: u32) {
        let removed: Vec<Sub> = if sub == top {
            self.txs
                .remove(&top)
                .map(|t| t.into_values().collect())
                .unwrap_or_default()
        } else {
            self.txs
                .get_mut(&top)
                .and_then(|t| t.remove(&sub))
                .into_iter()
                .collect()
        };
        for part in removed {
            for b in part.buffers.values() {
                self.bytes = self.bytes.saturating_sub(b.bytes());
            }
            for (_, path) in part.spilled {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    fn spill_dir(&mut self) -> Result<PathBuf> {
        if self.dir.is_none() {
            self.dir = Some(
                tempfile::Builder::new()
                    .prefix("pgcdc-streamed-")
                    .tempdir()
                    .context("creating a spill directory")?,
            );
        }
        self.dir
            .as_ref()
            .map(|d| d.path().to_path_buf())
            .ok_or_else(|| anyhow!("no spill directory"))
    }

    fn spill_one(&mut self, top: u32, sub: u32, key: &str) -> Result<()> {
        let dir = self.spill_dir()?;
        let Some(part) = self.txs.get_mut(&top).and_then(|t| t.get_mut(&sub)) else {
            return Ok(());
        };
        let Some(buf) = part.buffers.get_mut(key) else {
            return Ok(());
        };
        if buf.rows() == 0 {
            return Ok(());
        }
        self.bytes = self.bytes.saturating_sub(buf.bytes());
        let batch = buf.finish()?;
        self.files += 1;
        let path = dir.join(format!("{top}-{sub}-{}.arrows", self.files));
        let file = BufWriter::new(File::create(&path).context("creating a spill file")?);
        let mut w = StreamWriter::try_new(file, &batch.schema())?;
        w.write(&batch)?;
        w.finish()?;
        part.spilled.push((Arc::clone(&buf.schema), path));
        Ok(())
    }

    /// Spills every in-memory buffer to disk (called when over the memory budget).
    pub fn spill_all(&mut self) -> Result<()> {
        let keys: Vec<(u32, u32, String)> = self
            .txs
            .iter()
            .flat_map(|(top, subs)| {
                subs.iter().flat_map(move |(sub, s)| {
                    s.buffers.keys().map(move |k| (*top, *sub, k.clone()))
                })
            })
            .collect();
        for (top, sub, key) in keys {
            self.spill_one(top, sub, &key)?;
        }
        Ok(())
    }

    /// Takes a committed transaction's pieces (spilled first, then in memory, per
    /// subtransaction) and its change counts.
    pub fn commit(&mut self, top: u32) -> Result<(Vec<Piece>, BTreeMap<String, TableStats>)> {
        let mut pieces = Vec::new();
        let mut stats: BTreeMap<String, TableStats> = BTreeMap::new();
        let Some(subs) = self.txs.remove(&top) else {
            return Ok((pieces, stats));
        };
        for (_, mut part) in subs {
            for (schema, path) in part.spilled.drain(..) {
                pieces.push(Piece::Spilled(schema, path));
            }
            for (_, mut buf) in part.buffers {
                self.bytes = self.bytes.saturating_sub(buf.bytes());
                if buf.rows() > 0 {
                    let schema = Arc::clone(&buf.schema);
                    pieces.push(Piece::Memory(schema, buf.finish()?));
                }
            }
            for (t, s) in part.stats {
                let e = stats.entry(t).or_default();
                e.insert += s.insert;
                e.update += s.update;
                e.delete += s.delete;
                e.truncate += s.truncate;
            }
        }
        Ok((pieces, stats))
    }
}

/// Reads the batches of a spilled piece.
pub fn read_spilled(path: &std::path::Path) -> Result<Vec<RecordBatch>> {
    let file = BufReader::new(File::open(path).context("opening a spill file")?);
    let reader = StreamReader::try_new(file, None)?;
    let mut out = Vec::new();
    for b in reader {
        out.push(b?);
    }
    let _ = std::fs::remove_file(path);
    Ok(out)
}

/// Fills the commit LSN, the commit timestamp (and dlt's `deleted_ts` on deletes) into rows streamed
/// before their commit was known.
pub fn with_commit_ts(
    batch: RecordBatch,
    meta: &MetaColumns,
    commit_ts: i64,
    commit_lsn: i64,
) -> Result<RecordBatch> {
    let schema = batch.schema();
    let rows = batch.num_rows();
    let ops: Option<StringArray> = meta
        .op
        .as_ref()
        .and_then(|n| batch.column_by_name(n))
        .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned());
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    for (i, field) in schema.fields().iter().enumerate() {
        let name = field.name();
        if name == &meta.commit_lsn {
            if let Some(slot) = columns.get_mut(i) {
                *slot = Arc::new(arrow_array::Int64Array::from(vec![commit_lsn; rows]));
            }
            continue;
        }
        let fill_all = meta.commit_ts.as_deref() == Some(name.as_str());
        let fill_deletes = meta.deleted_ts.as_deref() == Some(name.as_str());
        if !(fill_all || fill_deletes) {
            continue;
        }
        let mut b = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC");
        for r in 0..rows {
            let is_delete = ops
                .as_ref()
                .is_some_and(|o| o.is_valid(r) && o.value(r) == Op::Delete.as_str());
            b.append_option((fill_all || is_delete).then_some(commit_ts));
        }
        if let Some(slot) = columns.get_mut(i) {
            *slot = Arc::new(b.finish());
        }
    }
    Ok(RecordBatch::try_new(schema, columns)?)
}
