//! The SQL mirror, once for every SQL database: each source table as a table equal to the
//! source after every commit (the rules are in [`crate::mirror`]), in a database a
//! [`Dialect`] describes ([`crate::postgres`], `crate::duckdb`).
//!
//! Layout: tables `"<dataset>"."<table>"` with the source's columns (no metadata
//! columns), and `"<dataset>"."_pgcdc_state"` holding the checkpoint as JSON. All of a
//! commit's changes, schema changes and its checkpoint are one database transaction, so a
//! crash anywhere leaves the previous commit, and replaying from its checkpoint is exact.
//!
//! Each step of changelog rows is staged by the dialect into a temporary table
//! `_pgcdc_s` (columns `c0..cN` and `m_op`, `m_lsn`, `m_toast`, `m_seq`, so no source name
//! can collide with them), and merged by SQL built once for every dialect (the crate's `mirror_sql` module).
//!
//! Schema evolution: a new source column is added (older rows NULL); a dropped one stays;
//! a column whose type widens ([`crate::widening`]) is altered in place; any other type
//! change is an error that names the column and what to do.
//!
//! This module owns the transaction, the state row and the schema bookkeeping; it does
//! not know how a database is reached or how rows travel into it (the dialect's part).

mod dialect;

use std::collections::{HashMap, HashSet};

use arrow_array::RecordBatch;
use async_trait::async_trait;
use pgcdc_core::{quote_ident, quote_literal, Checkpoint, TableSchema};

pub use dialect::{Change, Col, Columns, Dialect, Staging};

use crate::mirror::{self, Book, MirrorMeta, MirrorState, Step, STATE_TABLE};
use crate::mirror_sql::{keyed_sql, multiset_sql};
use crate::widening::holds;
use crate::{Committed, Destination, Error, ErrorKind, Result};

/// Tables of a SQL database mirroring the source. See the [module docs](self).
pub struct SqlMirror<D> {
    dialect: D,
    dataset: String,
    soft_delete: Option<String>,
    meta: MirrorMeta,
    in_tx: bool,
    book: Book,
    /// The columns of each mirrored table, as of the open transaction.
    columns: HashMap<String, Columns>,
    /// Tables whose rows the open transaction changed.
    dirty: HashSet<String>,
}

impl<D: Dialect> SqlMirror<D> {
    /// A mirror in `dataset` (a schema) of the database `dialect` reaches.
    pub(crate) fn with(
        dialect: D,
        dataset: String,
        soft_delete: Option<String>,
        meta: MirrorMeta,
    ) -> Self {
        SqlMirror {
            dialect,
            dataset,
            soft_delete,
            meta,
            in_tx: false,
            book: Book::default(),
            columns: HashMap::new(),
            dirty: HashSet::new(),
        }
    }

    fn target(&self, table: &str) -> String {
        format!("{}.{}", quote_ident(&self.dataset), quote_ident(table))
    }

    /// The dialect, connected (with the schema and state table in place).
    async fn ready(&mut self) -> Result<&mut D> {
        if !self.dialect.connected() {
            if self.in_tx {
                // The database rolled the open transaction back: what this batch wrote is
                // gone, so the batch must fail and be replayed from the checkpoint.
                self.in_tx = false;
                self.dialect.disconnect();
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!("{} mirror: the connection was lost in the middle of a batch; it is replayed from the checkpoint", D::NAME),
                ));
            }
            self.dialect.connect().await?;
            let sql = format!(
                "CREATE SCHEMA IF NOT EXISTS {s}; CREATE TABLE IF NOT EXISTS {t} ({});",
                D::STATE_COLUMNS,
                s = quote_ident(&self.dataset),
                t = self.target(STATE_TABLE)
            );
            if let Err(e) = self.dialect.exec("creating the state table", &sql).await {
                self.dialect.disconnect();
                return Err(e);
            }
        }
        Ok(&mut self.dialect)
    }

    async fn exec(&mut self, what: &str, sql: &str) -> Result<()> {
        self.ready().await?.exec(what, sql).await
    }

    async fn begin(&mut self) -> Result<()> {
        if !self.in_tx {
            self.exec("starting a transaction", "BEGIN TRANSACTION")
                .await?;
            self.in_tx = true;
        }
        Ok(())
    }

    /// Commits the open transaction, on its own connection: a lost one fails the commit
    /// (a new connection has no transaction to commit).
    async fn finish(&mut self) -> Result<()> {
        self.ready().await?;
        // A failed COMMIT ends the transaction too (the database rolls it back).
        self.in_tx = false;
        self.dirty.clear();
        self.dialect.exec("committing", "COMMIT").await
    }

    async fn read_state(&mut self) -> Result<Option<MirrorState>> {
        let sql = format!(
            "SELECT state FROM {} WHERE id = 1",
            self.target(STATE_TABLE)
        );
        let place = self.describe();
        let json = self
            .ready()
            .await?
            .query_text("reading the state", &sql)
            .await?;
        json.map(|j| MirrorState::parse(&j, &place)).transpose()
    }

    async fn write_state(&mut self, state: &MirrorState) -> Result<()> {
        let json = serde_json::to_string(state)
            .map_err(|e| Error::new(ErrorKind::Encode, "encoding the state").with_source(e))?;
        let sql = D::write_state_sql(&self.target(STATE_TABLE), &quote_literal(&json));
        self.exec("writing the state", &sql).await
    }

    async fn table_columns(&mut self, table: &str) -> Result<Option<Columns>> {
        let schema = self.dataset.clone();
        self.ready().await?.columns(&schema, table).await
    }

    /// The soft-delete column of `table`, when it has one (keyed tables only).
    fn flag(&self, table: &TableSchema) -> Option<String> {
        self.soft_delete.clone().filter(|_| mirror::keyed(table))
    }

    /// Creates the mirror table, or brings its columns up to the staged ones.
    async fn sync_schema(&mut self, table: &TableSchema, cols: &[Col]) -> Result<()> {
        let name = table.table.name.as_str();
        let target = self.target(name);
        let flag = self.flag(table);
        let known = self.columns.get(name).cloned();
        let existing = match known {
            Some(c) => c,
            None => match self.table_columns(name).await? {
                Some(c) => c,
                None => {
                    let sql = D::create_sql(&target, cols, flag.as_deref(), mirror::keyed(table));
                    self.exec("creating a table", &sql).await?;
                    let mut made: Columns = cols
                        .iter()
                        .map(|c| (c.target.clone(), c.ty.clone()))
                        .collect();
                    made.extend(flag.map(|f| (f, FLAG_TYPE.to_string())));
                    self.columns.insert(name.to_string(), made);
                    return Ok(());
                }
            },
        };
        let (now, added_flag) = evolve::<D>(&target, name, &existing, cols, flag.as_deref())?;
        if now != existing {
            let sql = D::change_sql(&Change {
                schema: &quote_ident(&self.dataset),
                table: name,
                old: &existing,
                new: &now,
                added_flag,
                rewritten: self.dirty.contains(name),
            });
            tracing::info!(table = %name, ddl = %sql.trim_end(), "mirror schema change");
            self.exec("changing a table's columns", &sql).await?;
        }
        self.columns.insert(name.to_string(), now);
        Ok(())
    }

    /// The rows `range` of `rows` as the dialect stages them.
    fn staging<'a>(
        &self,
        table: &'a TableSchema,
        rows: &RecordBatch,
        range: std::ops::Range<usize>,
    ) -> Result<Staging<'a>> {
        let schema = rows.schema();
        let mut staging = Staging {
            cols: Vec::new(),
            sources: Vec::new(),
            fields: Vec::new(),
            arrays: Vec::new(),
            range,
        };
        for (i, c) in table.columns.iter().enumerate() {
            let Some(a) = rows.column_by_name(&c.name) else {
                continue;
            };
            let staged = format!("c{i}");
            staging
                .fields
                .push(schema.field_with_name(&c.name)?.clone().with_name(&staged));
            staging.arrays.push(a.clone());
            staging.sources.push(c);
            staging.cols.push(Col {
                staged,
                target: c.name.clone(),
                key: c.key,
                ty: String::new(),
            });
        }
        for (name, staged) in [
            (&self.meta.op, "m_op"),
            (&self.meta.lsn, "m_lsn"),
            (&self.meta.toast_unchanged, "m_toast"),
        ] {
            let a = rows.column_by_name(name).ok_or_else(|| {
                Error::new(ErrorKind::Encode, format!("internal: no {name} column"))
            })?;
            staging
                .fields
                .push(schema.field_with_name(name)?.clone().with_name(staged));
            staging.arrays.push(a.clone());
        }
        Ok(staging)
    }

    async fn apply(&mut self, table: &TableSchema, rows: &RecordBatch, step: Step) -> Result<()> {
        let name = table.table.name.clone();
        let target = self.target(&name);
        let (range, moved, unchanged) = match step {
            Step::Truncate => {
                if self.table_columns(&name).await?.is_some() {
                    self.exec("truncating", &format!("TRUNCATE {target}"))
                        .await?;
                    self.dirty.insert(name);
                }
                return Ok(());
            }
            Step::Rows {
                range,
                moved,
                unchanged,
            } => (range, moved, unchanged),
        };
        let staging = self.staging(table, rows, range)?;
        let cols = self.ready().await?.stage(staging).await?;
        self.sync_schema(table, &cols).await?;
        let sql = if mirror::keyed(table) {
            keyed_sql::<D>(
                &target,
                &cols,
                moved,
                &unchanged,
                self.flag(table).as_deref(),
            )
        } else {
            multiset_sql::<D>(&target, &cols)
        };
        self.dirty.insert(name);
        self.exec("applying changes", &sql).await
    }
}

/// The columns of mirror table `target` (`table`) after taking the staged `cols`: new
/// ones appended, widened types replaced, the soft-delete `flag` appended when missing
/// (returned too, then); an error for a type change the mirror cannot make.
fn evolve<'f, D: Dialect>(
    target: &str,
    table: &str,
    existing: &[(String, String)],
    cols: &[Col],
    flag: Option<&'f str>,
) -> Result<(Columns, Option<&'f str>)> {
    let mut now = existing.to_vec();
    for c in cols {
        match existing
            .iter()
            .position(|(n, _)| D::same_name(n, &c.target))
        {
            None => now.push((c.target.clone(), c.ty.clone())),
            Some(i) => {
                let old = &existing[i].1;
                if *old == c.ty || holds(D::shape(old), D::shape(&c.ty)) {
                    continue;
                }
                if !holds(D::shape(&c.ty), D::shape(old)) {
                    return Err(Error::new(
                        ErrorKind::InvalidConfig,
                        format!(
                            "column {col} of {target} changed type from {old} to {new}, which the {db} mirror does not convert by itself; convert it by hand (ALTER TABLE {target} ALTER COLUMN {col} SET DATA TYPE {new} USING …) or drop the table and run `pgcdc snapshot {table}`",
                            col = quote_ident(&c.target),
                            new = c.ty,
                            db = D::NAME
                        ),
                    ));
                }
                now[i].1 = c.ty.clone();
            }
        }
    }
    let added = flag.filter(|f| !now.iter().any(|(n, _)| D::same_name(n, f)));
    if let Some(f) = added {
        now.push((f.to_string(), FLAG_TYPE.to_string()));
    }
    Ok((now, added))
}

/// The soft-delete column's type (every dialect's name for it).
const FLAG_TYPE: &str = "boolean";

#[async_trait]
impl<D: Dialect> Destination for SqlMirror<D> {
    fn describe(&self) -> String {
        format!(
            "{} {} (schema {})",
            D::NAME,
            self.dialect.location(),
            self.dataset
        )
    }

    async fn open(&mut self) -> Result<Option<Committed>> {
        self.rollback().await?;
        self.dialect.recover();
        self.read_committed().await
    }

    async fn read_committed(&mut self) -> Result<Option<Committed>> {
        let state = self.read_state().await?;
        Ok(self.book.read(state, self.in_tx))
    }

    async fn initialize(&mut self, checkpoint: &Checkpoint, replace: bool) -> Result<bool> {
        let existing = self.read_state().await?;
        if existing.is_some() && !replace {
            return Ok(false);
        }
        self.rollback().await?;
        self.begin().await?;
        // A reset starts over: the tables are snapshotted again.
        for name in existing.iter().flat_map(|s| s.tables.keys()) {
            let t = self.target(name);
            self.exec("dropping a table", &format!("DROP TABLE IF EXISTS {t}"))
                .await?;
        }
        let state = self.book.start(checkpoint);
        self.write_state(&state).await?;
        self.finish().await?;
        self.columns.clear();
        self.book.state = Some(state);
        Ok(true)
    }

    async fn write(&mut self, table: &TableSchema, rows: RecordBatch) -> Result<()> {
        if rows.num_rows() == 0 {
            return Ok(());
        }
        self.book.admit(table, self.soft_delete.as_deref())?;
        self.begin().await?;
        let steps = mirror::plan(&rows, &self.meta, mirror::keyed(table))?;
        for step in steps {
            self.apply(table, &rows, step).await?;
        }
        Ok(())
    }

    async fn commit(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        if self.book.state.is_none() {
            self.book.state = self.read_state().await?;
        }
        self.begin().await?;
        let state = self.book.next(checkpoint);
        self.write_state(&state).await?;
        crate::failpoint("mirror.before_commit");
        self.finish().await?;
        crate::failpoint("mirror.after_commit");
        self.book.state = Some(state);
        Ok(())
    }

    async fn rollback(&mut self) -> Result<()> {
        if self.in_tx {
            self.in_tx = false;
            // A lost connection has rolled back by itself (the client may not know yet).
            // A ROLLBACK that fails leaves nothing to rely on: the connection goes, which
            // discards whatever it had open, and the next call opens a new one.
            if self.dialect.connected() {
                if let Err(e) = self.dialect.exec("rolling back", "ROLLBACK").await {
                    tracing::debug!(error = %e, "mirror rollback failed; dropping the connection");
                    self.dialect.disconnect();
                }
            }
        }
        self.dirty.clear();
        self.columns.clear();
        self.book.reset();
        Ok(())
    }
}
