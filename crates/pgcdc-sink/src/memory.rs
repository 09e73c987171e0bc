//! The in-memory destination: a changelog held in process memory, with scripted faults.
//!
//! It exists to test the run loop without a server and to be the smallest complete
//! example of a [`Destination`]: what it keeps is exactly what the contract promises
//! (committed batches in commit order and the checkpoint, replaced together in one step;
//! uncommitted writes discarded by `rollback` and by `open`).
//!
//! A [`MemoryStore`] is the "storage": clones share it, so a new [`MemoryDestination`]
//! over the same store is a restarted process reading what the previous one committed.
//! [`MemoryStore::named`] gives the store behind a `memory:<name>` URL.
//!
//! Faults ([`Fault`]) make the n-th call of an operation fail with a transient
//! ([`ErrorKind::Unavailable`]) error — before it has any effect, or, for
//! [`Fault::CommitAnswerLost`], after the commit took effect (a commit whose answer was
//! lost on the way back).
//!
//! Not for production: nothing survives the process.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use arrow_array::RecordBatch;
use async_trait::async_trait;
use pgcdc_core::{Checkpoint, TableSchema};

use crate::{Committed, Destination, Error, ErrorKind, Result};

/// A fault to inject into the n-th call (1-based) of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// `write` fails; nothing is buffered.
    Write,
    /// `commit` fails before anything becomes durable.
    Commit,
    /// `commit` makes everything durable, then reports a failure (counted over the
    /// commits that took effect).
    CommitAnswerLost,
    /// `open` fails.
    Open,
}

/// One committed write: the destination table name, its schema and the rows.
#[derive(Debug, Clone)]
pub struct StoredBatch {
    /// The table's schema at write time.
    pub table: TableSchema,
    /// The changelog rows.
    pub rows: RecordBatch,
}

#[derive(Debug, Default)]
struct Inner {
    checkpoint: Option<Checkpoint>,
    batches: Vec<StoredBatch>,
    commits: u64,
    calls: HashMap<Fault, u32>,
    faults: HashMap<Fault, Vec<u32>>,
}

impl Inner {
    /// Counts a call of `op`; true when a fault was scheduled for this one.
    fn faulted(&mut self, op: Fault) -> bool {
        let n = self.calls.entry(op).or_default();
        *n += 1;
        let n = *n;
        self.faults
            .get_mut(&op)
            .and_then(|at| at.iter().position(|&x| x == n).map(|i| at.remove(i)))
            .is_some()
    }
}

/// The shared storage behind in-memory destinations (clones share it).
#[derive(Debug, Clone, Default)]
pub struct MemoryStore(Arc<Mutex<Inner>>);

impl MemoryStore {
    /// A new, empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide store called `name` (what a `memory:<name>` URL opens).
    pub fn named(name: &str) -> Self {
        static NAMED: OnceLock<Mutex<BTreeMap<String, MemoryStore>>> = OnceLock::new();
        let mut all = NAMED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        all.entry(name.to_string()).or_default().clone()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves consistent data: every
        // mutation below is a single assignment or push.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the `nth` call (1-based, counted from the store's creation) of `op` fail.
    pub fn inject(&self, op: Fault, nth: u32) {
        self.lock().faults.entry(op).or_default().push(nth);
    }

    /// How many times `op` has been called.
    pub fn calls(&self, op: Fault) -> u32 {
        self.lock().calls.get(&op).copied().unwrap_or(0)
    }

    /// How many injected faults have not fired yet.
    pub fn pending_faults(&self) -> usize {
        self.lock().faults.values().map(Vec::len).sum()
    }

    /// The committed checkpoint.
    pub fn checkpoint(&self) -> Option<Checkpoint> {
        self.lock().checkpoint.clone()
    }

    /// Every committed batch, in commit order.
    pub fn batches(&self) -> Vec<StoredBatch> {
        self.lock().batches.clone()
    }

    /// Number of successful commits.
    pub fn commits(&self) -> u64 {
        self.lock().commits
    }

    /// A destination over this store.
    pub fn destination(&self) -> MemoryDestination {
        MemoryDestination {
            store: self.clone(),
            pending: Vec::new(),
        }
    }
}

/// A [`Destination`] keeping its changelog in a [`MemoryStore`].
#[derive(Debug)]
pub struct MemoryDestination {
    store: MemoryStore,
    pending: Vec<StoredBatch>,
}

fn fault(what: &str) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!("memory destination: injected fault in {what}"),
    )
}

impl MemoryDestination {
    fn committed(inner: &Inner) -> Option<Committed> {
        let checkpoint = inner.checkpoint.clone()?;
        let mut tables: BTreeMap<String, TableSchema> = BTreeMap::new();
        for b in &inner.batches {
            tables.insert(b.table.table.name.clone(), b.table.clone());
        }
        Some(Committed {
            checkpoint,
            tables: tables.into_values().collect(),
        })
    }
}

#[async_trait]
impl Destination for MemoryDestination {
    fn describe(&self) -> String {
        "an in-memory destination".into()
    }

    async fn open(&mut self) -> Result<Option<Committed>> {
        self.pending.clear();
        let mut inner = self.store.lock();
        if inner.faulted(Fault::Open) {
            return Err(fault("open"));
        }
        Ok(Self::committed(&inner))
    }

    async fn read_committed(&mut self) -> Result<Option<Committed>> {
        Ok(Self::committed(&self.store.lock()))
    }

    async fn initialize(&mut self, checkpoint: &Checkpoint, replace: bool) -> Result<bool> {
        let mut inner = self.store.lock();
        if inner.checkpoint.is_some() && !replace {
            return Ok(false);
        }
        if replace {
            inner.batches.clear();
        }
        inner.checkpoint = Some(checkpoint.clone());
        Ok(true)
    }

    async fn write(&mut self, table: &TableSchema, rows: RecordBatch) -> Result<()> {
        if self.store.lock().faulted(Fault::Write) {
            return Err(fault("write"));
        }
        self.pending.push(StoredBatch {
            table: table.clone(),
            rows,
        });
        Ok(())
    }

    async fn commit(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        let mut inner = self.store.lock();
        if inner.faulted(Fault::Commit) {
            return Err(fault("commit"));
        }
        inner.batches.append(&mut self.pending);
        inner.checkpoint = Some(checkpoint.clone());
        inner.commits += 1;
        if inner.faulted(Fault::CommitAnswerLost) {
            return Err(fault("the answer to commit"));
        }
        Ok(())
    }

    async fn rollback(&mut self) -> Result<()> {
        self.pending.clear();
        Ok(())
    }
}
