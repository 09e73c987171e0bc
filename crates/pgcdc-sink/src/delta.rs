//! The Delta Lake mirror destination (cargo feature `delta`): each source table as a Delta
//! table, equal to the source after every commit (the rules are in [`crate::mirror`]).
//!
//! # Layout
//!
//! Under the destination URL (a local directory or `s3://bucket/prefix`, opened like the
//! files destination's [`crate::store`], same credentials), `<dataset>/<table>/` is a Delta
//! table with the source's columns (types: [`convert`]), no partitions, and
//! `<dataset>/_pgcdc_state/` is a one-row Delta table (`seq`, `state`, `intent`) holding
//! pgcdc's checkpoint JSON (the same [`MirrorState`] as the other mirrors).
//!
//! # The merge
//!
//! deltalake without DataFusion has no MERGE, so pgcdc merges itself, copy-on-write
//! ([`merge`]). [`Destination::write`] only buffers a table's changelog rows; at the
//! commit (or when the table's schema changes mid-batch, or when buffered rows pass
//! [`MERGE_AT_BYTES`]) they are merged **once per table and batch**: the changes are replayed per key in order (last change wins, a key change
//! moves the row, TOAST-unchanged columns from the latest earlier row of the key in the
//! batch or the stored row; a truncate drops everything before it), the live files that
//! may hold a touched key (per-file min/max statistics of the first key column prune the
//! rest; the key columns of the others are read) are read with the parquet crate, their
//! untouched rows and the resulting rows are written as new Parquet files, and the old
//! files are marked removed. Nothing is in the Delta log until the commit: a
//! transaction's files are invisible to readers. The cost: every commit rewrites the
//! files that hold a touched key, once however many changes the batch has; inserts of new
//! keys with an increasing key touch no file. Truncate removes every file; a keyless
//! table removes rows by whole-row match (reading the table).
//!
//! # Exactly once, across several tables
//!
//! One Delta commit is atomic for one table only. A pgcdc commit (number `seq`) is:
//!
//! 1. the data files, already written by [`Destination::write`];
//! 2. **the commit point**: one Delta commit of `_pgcdc_state` holding the new checkpoint
//!    and the *intent*, every Delta action each touched table's commit will make (adds,
//!    removes, schema), with `txn` actions (`pgcdc:<slot>`, version = checkpoint LSN) and
//!    (`pgcdc:<slot>:commit`, version = `seq`);
//! 3. one Delta commit per touched table with its intent's actions and the same two `txn`
//!    actions.
//!
//! A commit whose answer is lost (the store went away mid-request) may have landed: a
//! failed commit checks the table's `pgcdc:<slot>:commit` version before it retries (see
//! [`commit_table`]), and object-store failures under deltalake and parquet are
//! transient ([`ErrorKind::Unavailable`]) like the files destination's.
//!
//! A crash before 2 leaves only unreferenced files (the replay writes new ones). After 2,
//! the batch is committed: [`Destination::open`] finishes step 3 for every table whose
//! `pgcdc:<slot>:commit` version is below `seq` (a table's txn version says whether it
//! already has the batch), so a replay from the checkpoint neither repeats nor loses a
//! change. The LSN alone cannot tell that: snapshot chunks commit several times at one LSN.
//! Between a crash and the next run a reader may see some tables one commit behind.
//!
//! # Schema evolution
//!
//! Through the table's `metaData` action: a new source column is added (old files lack
//! it: NULL); a dropped one stays (NULL in rows written since); a widening type change
//! (short → integer → long, float → double, a decimal with room for the old values, a
//! decimal past precision 38 → its text) rewrites every file of the table in the new type;
//! any other change is an error naming the column and what to do. `init --reset` removes
//! every file and the next write replaces the schema.

mod convert;
mod data;
mod merge;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{
    new_metadata, Action, Add, Metadata, MetadataExt, Protocol, Remove, StructType, Transaction,
};
use deltalake::logstore::{default_logstore, LogStoreRef, StorageConfig};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::table::state::DeltaTableState;
use deltalake::DeltaTableError;
use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use pgcdc_core::{quote_ident, Checkpoint, MetaColumns, TableSchema};

use crate::mirror::{self, MirrorMeta, MirrorState, Step, STATE_TABLE};
use crate::store::{RootStore, StoreOptions};
use crate::{Committed, Destination, Error, ErrorKind, Result};

use self::data::DataFile;

/// Settings of a [`DeltaDestination`].
#[derive(Debug, Clone)]
pub struct DeltaConfig {
    /// Where the tables go: a local directory (created if its parent exists), `file://…`
    /// or `s3://bucket/prefix`.
    pub url: String,
    /// Object-storage credentials and settings (see [`crate::store`]).
    pub options: StoreOptions,
    /// The folder under `url` holding this pipeline's tables.
    pub dataset: String,
    /// The changelog's metadata columns.
    pub meta: MetaColumns,
    /// Keep deleted rows of keyed tables, with this boolean column set (see [`crate::mirror`]).
    pub soft_delete: Option<String>,
}

/// Delta tables mirroring the source. See the [module docs](self).
pub struct DeltaDestination {
    config: DeltaConfig,
    meta: MirrorMeta,
    root: Option<RootStore>,
    book: mirror::Book,
    /// The last committed commit number.
    seq: u64,
    /// Whether an interrupted commit's intent is known to be finished.
    recovered: bool,
    /// Tables touched since the destination was opened (their open-transaction state).
    tables: BTreeMap<String, Table>,
    /// `_pgcdc_state` as of this process's last commit (saves reading its log each time).
    state_table: Option<Table>,
    /// A commit point failed without a known outcome: a rollback keeps the files.
    unsettled: bool,
    /// Changelog rows per table written since the last commit, not merged yet.
    pending: BTreeMap<String, Pending>,
    files: u64,
}

/// One table's changelog rows waiting for the merge, all of one schema.
struct Pending {
    table: TableSchema,
    rows: Vec<RecordBatch>,
    /// Their Arrow memory.
    bytes: usize,
}

/// Buffered rows are merged before the commit once they hold this much Arrow memory: a
/// transaction larger than the pipeline's batch (which it writes in parts to bound its
/// memory) is merged in parts too, not held whole.
const MERGE_AT_BYTES: usize = 256 << 20;

/// One Delta table as of the open transaction.
pub(crate) struct Table {
    url: url::Url,
    log: LogStoreRef,
    /// The table's directory.
    store: Arc<dyn ObjectStore>,
    /// The committed snapshot (None: the table does not exist yet).
    snapshot: Option<DeltaTableState>,
    /// The schema as of the open transaction (None: not created and nothing written).
    kernel: Option<StructType>,
    /// Its Arrow form (what data files hold).
    schema: SchemaRef,
    /// Live files as of the open transaction.
    files: Vec<DataFile>,
    /// Committed files the open transaction removes.
    removed: Vec<DataFile>,
    /// Files the open transaction wrote and removed again (never committed).
    discarded: Vec<String>,
    schema_changed: bool,
    dirty: bool,
}

impl Table {
    fn remove_file(&mut self, path: &str) {
        if let Some(i) = self.files.iter().position(|f| f.path == path) {
            let f = self.files.remove(i);
            if f.new {
                self.discarded.push(f.path);
            } else {
                self.removed.push(f);
            }
            self.dirty = true;
        }
    }

    /// The open transaction is now the committed state `snapshot`.
    fn committed(&mut self, snapshot: DeltaTableState) {
        for f in &mut self.files {
            f.new = false;
        }
        self.removed.clear();
        self.schema_changed = false;
        self.dirty = false;
        self.snapshot = Some(snapshot);
    }

    fn add_files(&mut self, files: Vec<DataFile>) {
        self.dirty |= !files.is_empty();
        self.files.extend(files);
    }

    /// Everything the open transaction changed, as the Delta actions of one commit.
    fn actions(&self) -> Result<TableCommit> {
        let kernel = self
            .kernel
            .as_ref()
            .ok_or_else(|| Error::new(ErrorKind::Encode, "internal: a table without schema"))?;
        let now = chrono::Utc::now().timestamp_millis();
        let mut actions = Vec::new();
        let create = self.snapshot.is_none();
        match &self.snapshot {
            None => {
                actions.push(Action::Protocol(protocol_for(kernel, None)?));
                actions.push(Action::Metadata(
                    new_metadata(kernel, Vec::<String>::new(), Vec::<(String, String)>::new())
                        .map_err(|e| {
                            Error::new(ErrorKind::Encode, "Delta: creating table metadata")
                                .with_source(e)
                        })?,
                ));
            }
            Some(s) if self.schema_changed => {
                let p = protocol_for(kernel, Some(s.protocol()))?;
                if &p != s.protocol() {
                    actions.push(Action::Protocol(p));
                }
                let m = s.metadata().clone().with_schema(kernel).map_err(|e| {
                    Error::new(ErrorKind::Encode, "Delta: changing the table schema").with_source(e)
                })?;
                actions.push(Action::Metadata(m));
            }
            Some(_) => {}
        }
        for f in &self.removed {
            actions.push(Action::Remove(Remove {
                path: f.path.clone(),
                data_change: true,
                deletion_timestamp: Some(now),
                extended_file_metadata: Some(true),
                partition_values: Some(Default::default()),
                size: Some(f.size),
                ..Default::default()
            }));
        }
        for f in self.files.iter().filter(|f| f.new) {
            actions.push(Action::Add(Add {
                path: f.path.clone(),
                partition_values: Default::default(),
                size: f.size,
                modification_time: now,
                data_change: true,
                stats: f.stats.clone(),
                ..Default::default()
            }));
        }
        Ok(TableCommit { create, actions })
    }
}

/// One table's part of a commit's intent: its Delta actions.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TableCommit {
    /// The commit creates the table.
    create: bool,
    actions: Vec<Action>,
}

/// What a pgcdc commit does to each table, recorded at its commit point.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Intent {
    seq: u64,
    app: String,
    lsn: i64,
    tables: BTreeMap<String, TableCommit>,
}

impl Intent {
    fn txns(&self) -> Vec<Transaction> {
        vec![
            Transaction::new(&self.app, self.lsn),
            Transaction::new(format!("{}:commit", self.app), self.seq as i64),
        ]
    }
}

/// The row of `_pgcdc_state`.
struct Stored {
    seq: u64,
    state: MirrorState,
    intent: Option<Intent>,
}

fn delta_err(what: &str, e: DeltaTableError) -> Error {
    Error::new(delta_kind(&e), format!("Delta: {what}: {e}")).with_source(e)
}

/// How a deltalake failure is retried: an object-store or I/O error anywhere in its
/// causes (a commit's conditional put, a log read, a Parquet read under the kernel) is
/// classified as object storage's own ([`crate::error::cause_kind`]); a location that is
/// no table is a configuration problem; anything else needs a person.
fn delta_kind(e: &DeltaTableError) -> ErrorKind {
    match e {
        DeltaTableError::InvalidTableLocation(_) | DeltaTableError::NotATable(_) => {
            ErrorKind::InvalidConfig
        }
        // delta_kernel's `Error::ObjectStore` keeps the object_store error without
        // exposing it as `source()`, and the kernel's error type is not re-exported:
        // its derived Debug names the variant.
        DeltaTableError::KernelError(k) if format!("{k:?}").starts_with("ObjectStore(") => {
            ErrorKind::Unavailable
        }
        _ => crate::error::cause_kind(e).unwrap_or(ErrorKind::Corrupt),
    }
}

/// The protocol a table with `schema` needs: (1, 2), or (3, 7) with `timestampNtz` when a
/// column is a timestamp without time zone; an existing protocol is kept when it suffices.
fn protocol_for(schema: &StructType, current: Option<&Protocol>) -> Result<Protocol> {
    let ntz = deltalake::kernel::contains_timestampntz(schema.fields());
    let has_ntz = |p: &Protocol| {
        serde_json::to_value(p)
            .ok()
            .and_then(|v| v.get("readerFeatures").cloned())
            .and_then(|f| f.as_array().cloned())
            .is_some_and(|f| f.iter().any(|x| x == "timestampNtz"))
    };
    if let Some(p) = current {
        if !ntz || has_ntz(p) {
            return Ok(p.clone());
        }
    }
    let v = if ntz {
        serde_json::json!({
            "minReaderVersion": 3, "minWriterVersion": 7,
            "readerFeatures": ["timestampNtz"],
            "writerFeatures": ["timestampNtz"],
        })
    } else {
        serde_json::json!({ "minReaderVersion": 1, "minWriterVersion": 2 })
    };
    serde_json::from_value(v)
        .map_err(|e| Error::new(ErrorKind::Encode, "internal: a Delta protocol").with_source(e))
}

fn state_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("seq", DataType::Int64, true),
        Field::new("state", DataType::Utf8, true),
        Field::new("intent", DataType::Utf8, true),
    ]))
}

impl DeltaDestination {
    /// A destination for `config`; the store is opened at the first call.
    pub fn new(config: DeltaConfig) -> Result<Self> {
        let meta = MirrorMeta::for_dataset(&config.meta, &config.dataset)?;
        Ok(DeltaDestination {
            config,
            meta,
            root: None,
            book: Default::default(),
            seq: 0,
            recovered: false,
            tables: BTreeMap::new(),
            state_table: None,
            unsettled: false,
            pending: BTreeMap::new(),
            files: 0,
        })
    }

    fn root(&mut self) -> Result<&RootStore> {
        if self.root.is_none() {
            self.root = Some(crate::store::open_root(
                &self.config.url,
                &self.config.options,
            )?);
        }
        self.root
            .as_ref()
            .ok_or_else(|| Error::new(ErrorKind::Encode, "internal: no store"))
    }

    /// Opens table `name` of the dataset as committed; `key`: its first key column, for
    /// the files' statistics.
    async fn load(&mut self, name: &str, key: Option<&str>) -> Result<Table> {
        let dataset = self.config.dataset.clone();
        let root = self.root()?;
        let mut url = root.url.clone();
        url.path_segments_mut()
            .map_err(|_| Error::new(ErrorKind::InvalidConfig, "destination.url has no path"))?
            .pop_if_empty()
            .push(&dataset)
            .push(name)
            .push("");
        let path = Path::from_url_path(url.path())
            .map_err(|e| Error::new(ErrorKind::InvalidConfig, format!("table path: {e}")))?;
        let store: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(Arc::clone(&root.store), path));
        let log = default_logstore(
            Arc::clone(&store),
            Arc::clone(&root.store),
            &url,
            &StorageConfig::default(),
        );
        let exists = log
            .is_delta_table_location()
            .await
            .map_err(|e| delta_err(&format!("reading table {name}"), e))?;
        let mut table = Table {
            url,
            log,
            store,
            snapshot: None,
            kernel: None,
            schema: Arc::new(Schema::empty()),
            files: Vec::new(),
            removed: Vec::new(),
            discarded: Vec::new(),
            schema_changed: false,
            dirty: false,
        };
        if exists {
            let s = DeltaTableState::try_new(table.log.as_ref(), None)
                .await
                .map_err(|e| delta_err(&format!("reading table {name}"), e))?;
            table.files = s
                .snapshot()
                .file_views(table.log.as_ref(), None)
                .map_ok(|f| DataFile::committed(f.path().to_string(), f.size(), f.stats(), key))
                .try_collect()
                .await
                .map_err(|e| delta_err(&format!("listing the files of table {name}"), e))?;
            let kernel = s.schema().as_ref().clone();
            table.schema = convert::arrow_schema(&kernel)?;
            table.kernel = Some(kernel);
            table.snapshot = Some(s);
        }
        Ok(table)
    }

    async fn read_state(&mut self) -> Result<Option<Stored>> {
        let t = self.load(STATE_TABLE, None).await?;
        let Some(file) = t.files.first() else {
            return Ok(None);
        };
        let place = self.describe();
        let schema = state_schema();
        let mut stream = data::read(&t.store, file, &schema, None, None).await?;
        let Some(b) = stream.try_next().await? else {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("the pgcdc state in {place} is empty"),
            ));
        };
        let seq = b.column(0).as_primitive::<arrow_array::types::Int64Type>();
        let state = b.column(1).as_string::<i32>();
        let intent = b.column(2).as_string::<i32>();
        if b.num_rows() != 1 || seq.is_null(0) || state.is_null(0) {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("the pgcdc state in {place} is not one row"),
            ));
        }
        let intent = if intent.is_null(0) {
            None
        } else {
            Some(
                serde_json::from_str::<Intent>(intent.value(0)).map_err(|e| {
                    Error::new(
                        ErrorKind::Corrupt,
                        format!("the pgcdc commit record in {place} cannot be read"),
                    )
                    .with_source(e)
                })?,
            )
        };
        Ok(Some(Stored {
            seq: seq.value(0) as u64,
            state: MirrorState::parse(state.value(0), &place)?,
            intent,
        }))
    }

    /// The commit point: the state row with `state` and `intent`, in one Delta commit.
    async fn write_state(&mut self, state: &MirrorState, intent: &Intent) -> Result<()> {
        // The state table as of the last commit of this process, else as stored.
        let mut t = match self.state_table.take() {
            Some(t) => t,
            None => self.load(STATE_TABLE, None).await?,
        };
        let schema = state_schema();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(vec![intent.seq as i64])) as ArrayRef,
                Arc::new(StringArray::from(vec![json(state)?])),
                Arc::new(StringArray::from(vec![json(intent)?])),
            ],
        )?;
        if t.kernel.is_none() {
            t.kernel = Some(kernel_of(&schema)?);
        }
        let mut sink = data::Sink::new(
            Arc::clone(&t.store),
            schema,
            None,
            self.file_prefix(intent.seq),
        );
        sink.write(&batch).await?;
        sink.close().await?;
        for f in t.files.clone() {
            t.remove_file(&f.path);
        }
        t.add_files(sink.done);
        let commit = t.actions()?;
        let snapshot =
            commit_table(&t, t.snapshot.as_ref(), &commit, intent.txns(), STATE_TABLE).await?;
        t.committed(snapshot);
        self.state_table = Some(t);
        Ok(())
    }

    fn file_prefix(&mut self, seq: u64) -> String {
        self.files += 1;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        format!(
            "part-{seq:010}-{}-{nanos}-{}",
            std::process::id(),
            self.files
        )
    }

    /// Finishes an interrupted commit recorded in the state (once per open).
    async fn recover(&mut self) -> Result<()> {
        if self.recovered {
            return Ok(());
        }
        let stored = self.read_state().await?;
        if let Some(s) = stored {
            self.seq = s.seq;
            if let Some(intent) = s.intent {
                for (name, commit) in &intent.tables {
                    let t = self.load(name, None).await?;
                    let done = match &t.snapshot {
                        Some(snap) => snap
                            .transaction_version(t.log.as_ref(), format!("{}:commit", intent.app))
                            .await
                            .map_err(|e| delta_err(&format!("reading table {name}"), e))?
                            .is_some_and(|v| v >= intent.seq as i64),
                        None => false,
                    };
                    if !done {
                        tracing::info!(table = %name, seq = intent.seq, "finishing an interrupted Delta commit");
                        commit_table(&t, t.snapshot.as_ref(), commit, intent.txns(), name).await?;
                    }
                }
            }
        }
        self.recovered = true;
        Ok(())
    }

    /// The table `table` goes to, loaded on first use.
    async fn table(&mut self, table: &TableSchema) -> Result<&mut Table> {
        let name = table.table.name.clone();
        if !self.tables.contains_key(&name) {
            let key = table.columns.iter().find(|c| c.key).map(|c| c.name.clone());
            let t = self.load(&name, key.as_deref()).await?;
            self.tables.insert(name.clone(), t);
        }
        self.tables
            .get_mut(&name)
            .ok_or_else(|| Error::new(ErrorKind::Encode, "internal: table not loaded"))
    }

    /// Brings the table's schema up to the changelog's (see the module docs); returns
    /// whether every file must be rewritten into it.
    fn evolve(&self, t: &mut Table, table: &TableSchema, rows: &Schema) -> Result<bool> {
        let name = &table.table.name;
        let flag = self
            .config
            .soft_delete
            .as_deref()
            .filter(|_| mirror::keyed(table));
        // A table the committed state does not know (new, or emptied by `init --reset`)
        // takes the source's schema as it is.
        let known = t.schema_changed
            || self
                .book
                .state
                .as_ref()
                .is_some_and(|s| s.tables.contains_key(name));
        let mut fields: Vec<deltalake::kernel::StructField> = match (&t.kernel, known) {
            (Some(k), true) => k.fields().cloned().collect(),
            _ => Vec::new(),
        };
        let fresh = fields.is_empty();
        let mut changed = fresh;
        let mut rewrite = false;
        for c in &table.columns {
            let f = convert::kernel_field(&c.name, rows.field_with_name(&c.name)?.data_type())?;
            match fields.iter().position(|e| e.name() == &c.name) {
                None => {
                    fields.push(f);
                    changed = true;
                }
                Some(i) if fields[i].data_type() == f.data_type() => {}
                Some(i) => {
                    if widen(&mut fields[i], f, &t.url, name)? {
                        changed = true;
                        rewrite = true;
                    }
                }
            }
        }
        if let Some(flag) = flag {
            if !fields.iter().any(|e| e.name() == flag) {
                fields.push(deltalake::kernel::StructField::new(
                    flag,
                    deltalake::kernel::DataType::BOOLEAN,
                    true,
                ));
                changed = true;
                rewrite |= !fresh;
            }
        }
        if changed {
            let kernel = StructType::try_new(fields).map_err(|e| {
                Error::new(
                    ErrorKind::Encode,
                    format!("the Delta schema of table {name}"),
                )
                .with_source(e)
            })?;
            t.schema = convert::arrow_schema(&kernel)?;
            t.kernel = Some(kernel);
            t.schema_changed = true;
            t.dirty = true;
            if fresh {
                // Replacing the schema: rows of an earlier life of the table go.
                for f in t.files.clone() {
                    t.remove_file(&f.path);
                }
            }
        }
        Ok(rewrite && !t.files.is_empty())
    }

    /// Merges the rows `table` buffered since the last commit (or since its schema last
    /// changed), once (see the module docs).
    async fn flush(&mut self, name: &str) -> Result<()> {
        let Some(pending) = self.pending.remove(name) else {
            return Ok(());
        };
        let Some(first) = pending.rows.first() else {
            return Ok(());
        };
        let rows = arrow_select::concat::concat_batches(&first.schema(), &pending.rows)?;
        self.apply(&pending.table, &rows).await
    }

    /// Merges every table's buffered rows.
    async fn flush_all(&mut self) -> Result<()> {
        let names: Vec<String> = self.pending.keys().cloned().collect();
        for name in names {
            self.flush(&name).await?;
        }
        Ok(())
    }

    /// Merges `rows` (all of one table and schema) into the table: a truncate empties
    /// it, and everything after the last truncate is merged in one pass.
    async fn apply(&mut self, table: &TableSchema, rows: &RecordBatch) -> Result<()> {
        let soft = self
            .config
            .soft_delete
            .clone()
            .filter(|_| mirror::keyed(table));
        let steps = mirror::plan(rows, &self.meta, mirror::keyed(table))?;
        let after = steps
            .iter()
            .rposition(|s| *s == Step::Truncate)
            .map_or(0, |i| i + 1);
        if after > 0 {
            let t = self.table(table).await?;
            for f in t.files.clone() {
                t.remove_file(&f.path);
            }
        }
        let mut start = None;
        let (mut moved, mut unchanged) = (Vec::new(), BTreeSet::new());
        for step in &steps[after..] {
            if let Step::Rows {
                range,
                moved: m,
                unchanged: u,
            } = step
            {
                let base = *start.get_or_insert(range.start);
                if *m {
                    moved.push(range.start - base);
                }
                unchanged.extend(u.iter().cloned());
            }
        }
        let Some(start) = start else {
            return Ok(());
        };
        let slice = rows.slice(start, rows.num_rows() - start);
        let unchanged: Vec<String> = unchanged.into_iter().collect();
        let prefix = self.file_prefix(self.seq + 1);
        self.table(table).await?;
        let mut t = self
            .tables
            .remove(&table.table.name)
            .ok_or_else(|| Error::new(ErrorKind::Encode, "internal: table not loaded"))?;
        let result = self
            .apply_rows(
                &mut t,
                table,
                &slice,
                &moved,
                &unchanged,
                soft.as_deref(),
                prefix,
            )
            .await;
        self.tables.insert(table.table.name.clone(), t);
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn apply_rows(
        &mut self,
        t: &mut Table,
        table: &TableSchema,
        slice: &RecordBatch,
        moved: &[usize],
        unchanged: &[String],
        soft: Option<&str>,
        prefix: String,
    ) -> Result<()> {
        let key = table
            .columns
            .iter()
            .find(|c| c.key)
            .map(|c| c.name.as_str());
        if self.evolve(t, table, &slice.schema())? {
            let p = self.file_prefix(self.seq + 1);
            t.rewrite_all(soft, key.filter(|_| mirror::keyed(table)), p)
                .await?;
        }
        let missing = |n: &str| Error::new(ErrorKind::Encode, format!("internal: no {n} column"));
        let ops = slice
            .column_by_name(&self.meta.op)
            .and_then(|a| a.as_any().downcast_ref::<StringArray>())
            .ok_or_else(|| missing(&self.meta.op))?;
        let lsns = slice
            .column_by_name(&self.meta.lsn)
            .and_then(|a| a.as_any().downcast_ref::<Int64Array>())
            .ok_or_else(|| missing(&self.meta.lsn))?;
        let toast = slice
            .column_by_name(&self.meta.toast_unchanged)
            .and_then(|a| a.as_list_opt::<i32>());
        let step = merge::StepRows {
            rows: convert::conform(slice, &t.schema, soft)?,
            ops,
            lsns,
            toast,
            columns: table
                .columns
                .iter()
                .map(|c| (c.name.clone(), c.key && mirror::keyed(table)))
                .collect(),
        };
        t.dirty = true;
        if mirror::keyed(table) {
            t.merge_keyed(&step, moved, unchanged, soft, prefix).await
        } else {
            t.merge_multiset(&step, prefix).await
        }
    }

    /// Commits the open transaction with `state` (see the module docs).
    async fn commit_state(&mut self, state: MirrorState, checkpoint: &Checkpoint) -> Result<()> {
        let seq = self.seq + 1;
        let mut intent = Intent {
            seq,
            app: format!("pgcdc:{}", checkpoint.source.slot),
            lsn: checkpoint.lsn.as_i64(),
            tables: BTreeMap::new(),
        };
        for (name, t) in &self.tables {
            if t.dirty && t.kernel.is_some() {
                intent.tables.insert(name.clone(), t.actions()?);
            }
        }
        crate::failpoint("mirror.before_commit");
        if let Err(e) = self.write_state(&state, &intent).await {
            // The commit point may have landed unseen (the store went away for longer
            // than the retries): its files must stay until the state is read again.
            self.unsettled = true;
            self.recovered = false;
            return Err(e);
        }
        self.seq = seq;
        self.book.state = Some(state);
        crate::failpoint("mirror.after_commit");
        let names: Vec<String> = intent.tables.keys().cloned().collect();
        for name in names {
            let Some(commit) = intent.tables.get(&name) else {
                continue;
            };
            let Some(t) = self.tables.get_mut(&name) else {
                continue;
            };
            match commit_table(t, t.snapshot.as_ref(), commit, intent.txns(), &name).await {
                Ok(s) => {
                    t.committed(s);
                    for p in std::mem::take(&mut t.discarded) {
                        let _ = t.store.delete(&Path::from(p.as_str())).await;
                    }
                }
                Err(e) => {
                    // The intent is durable: the next call finishes it.
                    self.tables.clear();
                    self.recovered = false;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn forget(&mut self) {
        self.pending.clear();
        self.tables.clear();
        self.book.reset();
    }
}

/// A column whose type changed from `old`'s to `new`'s: widens `old` in place (true), keeps
/// it when it already holds the new values (false), else an error saying what to do.
fn widen(
    old: &mut deltalake::kernel::StructField,
    new: deltalake::kernel::StructField,
    url: &url::Url,
    table: &str,
) -> Result<bool> {
    let (wide, narrow) = (arrow_type(old)?, arrow_type(&new)?);
    if convert::holds(&wide, &narrow) {
        return Ok(false);
    }
    if !convert::holds(&narrow, &wide) {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            format!(
                "column {} of Delta table {url} changed type from {} to {}, which the Delta mirror cannot convert in place; rewrite the table with the new type yourself (e.g. with Spark or delta-rs), or delete the table's directory and run `pgcdc snapshot {table}`",
                quote_ident(new.name()),
                old.data_type(),
                new.data_type()
            ),
        ));
    }
    *old = new;
    Ok(true)
}

fn kernel_of(schema: &Schema) -> Result<StructType> {
    schema
        .try_into_kernel()
        .map_err(|e| Error::new(ErrorKind::Encode, "internal: a Delta schema").with_source(e))
}

fn arrow_type(f: &deltalake::kernel::StructField) -> Result<DataType> {
    let s = StructType::try_new([f.clone()])
        .map_err(|e| Error::new(ErrorKind::Encode, "internal: a Delta field").with_source(e))?;
    Ok(convert::arrow_schema(&s)?.field(0).data_type().clone())
}

/// Makes one Delta commit of `commit`'s actions and `txns` on table `t`; returns the new
/// snapshot.
///
/// A commit is a conditional put of the next log entry, which object_store does not retry
/// (it is not idempotent): when its answer is lost (the store went away mid-request) the
/// entry may have landed or not. So a failed commit first checks whether the table's
/// `pgcdc:<slot>:commit` transaction version already has this commit ([`landed`]), and
/// only otherwise retries, with backoff, for up to [`crate::store::retry_timeout`] (the
/// window of one object-store request's retries) while the failures
/// are transient. A retry from the old snapshot never commits twice: deltalake's own
/// conflict retries are off, so a log that moved on fails the attempt instead.
async fn commit_table(
    t: &Table,
    snapshot: Option<&DeltaTableState>,
    commit: &TableCommit,
    txns: Vec<Transaction>,
    name: &str,
) -> Result<DeltaTableState> {
    let deadline = std::time::Instant::now() + crate::store::retry_timeout();
    let mut pause = Duration::from_millis(200);
    loop {
        let err = match try_commit(t, snapshot, commit, txns.clone(), name).await {
            Ok(s) => return Ok(s),
            Err(e) => e,
        };
        let transient = match landed(t, &txns, name).await {
            Ok(Some(s)) => {
                tracing::info!(table = %name, "a Delta commit whose answer was lost had landed");
                return Ok(s);
            }
            Ok(None) => err.kind() == ErrorKind::Unavailable,
            Err(check) => {
                err.kind() == ErrorKind::Unavailable || check.kind() == ErrorKind::Unavailable
            }
        };
        if !transient || std::time::Instant::now() + pause > deadline {
            return Err(err);
        }
        tracing::warn!(table = %name, error = %err, retry_in = ?pause, "Delta commit failed; retrying");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

/// The table's snapshot when it already holds the commit `txns` describe (its
/// `…:commit` transaction version is at least theirs), else None.
async fn landed(t: &Table, txns: &[Transaction], name: &str) -> Result<Option<DeltaTableState>> {
    let Some(txn) = txns.iter().find(|x| x.app_id.ends_with(":commit")) else {
        return Ok(None);
    };
    let reading = |e| delta_err(&format!("reading table {name}"), e);
    if !t.log.is_delta_table_location().await.map_err(reading)? {
        return Ok(None);
    }
    let s = DeltaTableState::try_new(t.log.as_ref(), None)
        .await
        .map_err(reading)?;
    let version = s
        .transaction_version(t.log.as_ref(), &txn.app_id)
        .await
        .map_err(reading)?;
    Ok(version.is_some_and(|v| v >= txn.version).then_some(s))
}

/// One attempt of [`commit_table`].
async fn try_commit(
    t: &Table,
    snapshot: Option<&DeltaTableState>,
    commit: &TableCommit,
    txns: Vec<Transaction>,
    name: &str,
) -> Result<DeltaTableState> {
    let removes = commit
        .actions
        .iter()
        .any(|a| matches!(a, Action::Remove(_)));
    let op = if commit.create {
        let protocol = commit.actions.iter().find_map(|a| match a {
            Action::Protocol(p) => Some(p.clone()),
            _ => None,
        });
        let metadata: Option<Metadata> = commit.actions.iter().find_map(|a| match a {
            Action::Metadata(m) => Some(m.clone()),
            _ => None,
        });
        let (Some(protocol), Some(metadata)) = (protocol, metadata) else {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("the commit record for table {name} creates it without a schema"),
            ));
        };
        DeltaOperation::Create {
            mode: SaveMode::ErrorIfExists,
            location: t.url.clone(),
            protocol,
            metadata,
        }
    } else if removes {
        DeltaOperation::Update { predicate: None }
    } else {
        DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: None,
            predicate: None,
        }
    };
    let props = CommitProperties::default()
        .with_application_transactions(txns)
        .with_max_retries(0);
    let done = CommitBuilder::from(props)
        .with_actions(commit.actions.clone())
        .build(
            snapshot.map(|s| s as &dyn deltalake::kernel::transaction::TableReference),
            Arc::clone(&t.log),
            op,
        )
        .await
        .map_err(|e| delta_err(&format!("committing table {name}"), e))?;
    Ok(done.snapshot())
}

/// Characters a Delta table without column mapping cannot have in a column name: they
/// mean something in Parquet's schema syntax, and delta-kernel's schema validation (what
/// Delta readers enforce) refuses them.
const INVALID_NAME_CHARS: &[char] = &[' ', ',', ';', '{', '}', '(', ')', '\n', '\t', '='];

/// Refuses a column (or a field of a composite column, at `path`) whose name a Delta
/// table cannot hold: one with [`INVALID_NAME_CHARS`], or two names that differ only in
/// case (Delta column names are case-insensitive).
fn check_names(table: &TableSchema, fields: &arrow_schema::Fields, path: &str) -> Result<()> {
    let what = "; leave the column out (source.include_columns), rename it at the source, or mirror the table into DuckDB or PostgreSQL";
    let mut seen = BTreeSet::new();
    for f in fields {
        let name = format!("{path}{}", f.name());
        if f.name().contains(INVALID_NAME_CHARS) {
            let bad: String = f
                .name()
                .chars()
                .filter(|c| INVALID_NAME_CHARS.contains(c))
                .map(|c| format!("{c:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "column {} of table {} has a name a Delta table cannot hold (it contains {bad}; Delta without column mapping refuses spaces and any of ,;{{}}()=, tabs and newlines){what}",
                    quote_ident(&name),
                    table.table
                ),
            ));
        }
        if !seen.insert(f.name().to_lowercase()) {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "column {} of table {} differs from another column only in case, which a Delta table cannot hold (its column names are case-insensitive){what}",
                    quote_ident(&name),
                    table.table
                ),
            ));
        }
        if let Some(inner) = nested_fields(f.data_type()) {
            check_names(table, inner, &format!("{name}."))?;
        }
    }
    Ok(())
}

/// The fields inside a struct (or a list or map of structs) column.
fn nested_fields(t: &DataType) -> Option<&arrow_schema::Fields> {
    match t {
        DataType::Struct(fields) => Some(fields),
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            nested_fields(f.data_type())
        }
        DataType::Map(f, _) => nested_fields(f.data_type()),
        _ => None,
    }
}

/// A value of the state row, as JSON.
fn json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v)
        .map_err(|e| Error::new(ErrorKind::Encode, "encoding the state").with_source(e))
}

#[async_trait]
impl Destination for DeltaDestination {
    fn describe(&self) -> String {
        format!(
            "Delta tables at {} (dataset {})",
            crate::store::redact_url(&self.config.url),
            self.config.dataset
        )
    }

    fn check_table(&self, table: &TableSchema) -> Result<()> {
        let schema = table.arrow_schema(&self.config.meta);
        check_names(table, schema.fields(), "")?;
        match self.config.soft_delete.as_deref() {
            Some(flag) if flag.contains(INVALID_NAME_CHARS) => Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "destination.soft_delete_column {} is a column name a Delta table cannot hold (no spaces or any of ,;{{}}()=, tabs and newlines); choose another",
                    quote_ident(flag)
                ),
            )),
            _ => Ok(()),
        }
    }

    async fn open(&mut self) -> Result<Option<Committed>> {
        self.rollback().await?;
        self.recovered = false;
        self.state_table = None;
        self.recover().await?;
        self.read_committed().await
    }

    async fn read_committed(&mut self) -> Result<Option<Committed>> {
        let stored = self.read_state().await?;
        if let Some(s) = &stored {
            self.seq = self.seq.max(s.seq);
        }
        let in_tx = !self.pending.is_empty() || self.tables.values().any(|t| t.dirty);
        Ok(self.book.read(stored.map(|s| s.state), in_tx))
    }

    async fn initialize(&mut self, checkpoint: &Checkpoint, replace: bool) -> Result<bool> {
        self.recover().await?;
        let existing = self.read_state().await?;
        if existing.is_some() && !replace {
            return Ok(false);
        }
        self.forget();
        // A reset starts over: every file of the tables goes, their schemas with them.
        let names: BTreeSet<String> = existing
            .iter()
            .flat_map(|s| s.state.tables.keys().cloned())
            .collect();
        for name in names {
            let mut t = self.load(&name, None).await?;
            for f in t.files.clone() {
                t.remove_file(&f.path);
            }
            self.tables.insert(name, t);
        }
        if let Some(s) = &existing {
            self.seq = s.seq;
        }
        let state = self.book.start(checkpoint);
        self.commit_state(state, checkpoint).await?;
        self.tables.clear();
        Ok(true)
    }

    async fn write(&mut self, table: &TableSchema, rows: RecordBatch) -> Result<()> {
        if rows.num_rows() == 0 {
            return Ok(());
        }
        self.recover().await?;
        // A column added since `init` may have a name Delta cannot hold.
        self.check_table(table)?;
        self.book.admit(table, self.config.soft_delete.as_deref())?;
        // Rows wait for the commit, to be merged once per table and batch; a schema change
        // merges the rows before it first.
        let name = &table.table.name;
        let same = self.pending.get(name).is_some_and(|p| {
            p.table == *table && p.rows.first().is_some_and(|r| r.schema() == rows.schema())
        });
        if !same {
            self.flush(name).await?;
        }
        let pending = self.pending.entry(name.clone()).or_insert_with(|| Pending {
            table: table.clone(),
            rows: Vec::new(),
            bytes: 0,
        });
        pending.bytes += rows.get_array_memory_size();
        pending.rows.push(rows);
        if self.pending.values().map(|p| p.bytes).sum::<usize>() >= MERGE_AT_BYTES {
            self.flush_all().await?;
        }
        Ok(())
    }

    async fn commit(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        self.recover().await?;
        self.flush_all().await?;
        if self.book.state.is_none() {
            let stored = self.read_state().await?;
            self.book.state = stored.map(|s| s.state);
        }
        let state = self.book.next(checkpoint);
        self.commit_state(state, checkpoint).await
    }

    async fn rollback(&mut self) -> Result<()> {
        // Files the transaction wrote are not in any Delta log; delete them (best effort),
        // unless a commit point that names them may have landed (`VACUUM` removes them
        // if it did not).
        let keep = std::mem::take(&mut self.unsettled);
        for t in self.tables.values().filter(|_| !keep) {
            for f in t.files.iter().filter(|f| f.new) {
                let _ = t.store.delete(&Path::from(f.path.as_str())).await;
            }
            for p in &t.discarded {
                let _ = t.store.delete(&Path::from(p.as_str())).await;
            }
        }
        self.forget();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use deltalake::kernel::transaction::TransactionError;

    use super::*;

    #[test]
    fn a_commit_that_lost_its_connection_is_transient_and_a_lost_race_is_not() {
        let refused = object_store::Error::Generic {
            store: "S3",
            source: "error sending request: connection closed before message completed".into(),
        };
        let e = DeltaTableError::Transaction {
            source: TransactionError::ObjectStore { source: refused },
        };
        assert_eq!(delta_kind(&e), ErrorKind::Unavailable);
        let e = DeltaTableError::Transaction {
            source: TransactionError::VersionAlreadyExists(3),
        };
        assert_eq!(delta_kind(&e), ErrorKind::Corrupt);
        assert_eq!(
            delta_kind(&DeltaTableError::NotATable("x".into())),
            ErrorKind::InvalidConfig
        );
    }

    fn schema(columns: &[&str]) -> TableSchema {
        TableSchema {
            table: pgcdc_core::TableName::new("public", "t"),
            columns: columns
                .iter()
                .enumerate()
                .map(|(i, c)| pgcdc_core::Column {
                    name: c.to_string(),
                    type_oid: 23,
                    type_modifier: -1,
                    kind: pgcdc_core::ValueKind::Int32,
                    key: i == 0,
                    hinted: false,
                })
                .collect(),
            replica_identity: pgcdc_core::ReplicaIdentity::Default,
        }
    }

    #[test]
    fn column_names_delta_cannot_hold_are_named() {
        let check = |cols: &[&str]| {
            let t = schema(cols);
            let meta = MetaColumns::preset(pgcdc_core::MetaPreset::Pgcdc);
            check_names(&t, t.arrow_schema(&meta).fields(), "")
        };
        assert!(check(&["id", "price_eur", "Ünïcode"]).is_ok());
        for bad in [
            "unit price",
            "a,b",
            "f(x)",
            "a=b",
            "tab\there",
            "x;y",
            "{z}",
        ] {
            let err = check(&["id", bad]).expect_err(bad).to_string();
            assert!(err.contains(&quote_ident(bad)), "{bad}: {err}");
            assert!(err.contains("include_columns"), "{err}");
        }
        let delta = |flag: &str| {
            DeltaDestination::new(DeltaConfig {
                url: "/nowhere".into(),
                options: Default::default(),
                dataset: "ds".into(),
                meta: MetaColumns::preset(pgcdc_core::MetaPreset::Pgcdc),
                soft_delete: Some(flag.into()),
            })
            .expect("a destination")
        };
        assert!(delta("_deleted").check_table(&schema(&["id"])).is_ok());
        let err = delta("is deleted")
            .check_table(&schema(&["id"]))
            .expect_err("flag")
            .to_string();
        assert!(err.contains("soft_delete_column"), "{err}");
        let err = check(&["id", "Note", "note"])
            .expect_err("case")
            .to_string();
        assert!(err.contains("only in case"), "{err}");
    }
}
