//! The DuckDB mirror destination: each source table as a table in an embedded DuckDB
//! file, equal to the source after every commit (the rules are in [`crate::mirror`]).
//!
//! Layout: tables `"<dataset>"."<table>"` with the source's columns (no metadata columns),
//! and `"<dataset>"."_pgcdc_state"` holding the checkpoint as JSON. All of a commit's
//! changes and its checkpoint are one DuckDB transaction, so a crash anywhere leaves the
//! previous commit, and replaying from its checkpoint is exact.
//!
//! Each step of changelog rows reaches DuckDB as a staging Parquet file beside the
//! database (`<file>.staging/`), read with `read_parquet` and merged by SQL. Parquet keeps
//! every type exact, and DuckDB reads it natively (the `duckdb` crate's own Arrow is a
//! different arrow version from ours). Staged columns are renamed `c0..cN` (source) and
//! `m_op`, `m_lsn`, `m_toast`, `m_seq` (metadata), so no source name can collide with them.
//!
//! Schema evolution: a new source column is added (older rows NULL); a dropped one stays;
//! a column whose type widens (SMALLINT → INTEGER → BIGINT, FLOAT → DOUBLE, a DECIMAL with
//! room for the old values) is altered in place; any other type change is an error that
//! names the column and what to do.
//!
//! DuckDB calls block: on a multi-threaded tokio runtime the long ones (applying a step,
//! committing) run in `block_in_place`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch};
use arrow_schema::{Field, Schema};
use async_trait::async_trait;
use duckdb::Connection;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use pgcdc_core::{quote_ident, quote_literal, Checkpoint, MetaColumns, TableSchema};

use crate::mirror::{self, MirrorMeta, MirrorState, Step, STATE_TABLE};
use crate::mirror_sql::{insert_sql, key_match, move_sql, Col, MULTISET_WEIGHT};
use crate::{Committed, Destination, Error, ErrorKind, Result};

/// Settings of a [`DuckDbDestination`].
#[derive(Debug, Clone)]
pub struct DuckDbConfig {
    /// The database file (created when missing; its directory must exist).
    pub path: PathBuf,
    /// The DuckDB schema holding this pipeline's tables.
    pub dataset: String,
    /// The changelog's metadata columns (to read operations and leave them out).
    pub meta: MetaColumns,
    /// Keep deleted rows of keyed tables, with this BOOLEAN column set (see [`crate::mirror`]).
    pub soft_delete: Option<String>,
}

/// Tables of a DuckDB file mirroring the source. See the [module docs](self).
pub struct DuckDbDestination {
    config: DuckDbConfig,
    meta: MirrorMeta,
    conn: Option<Connection>,
    in_tx: bool,
    book: mirror::Book,
    /// Column name → DuckDB type of each mirrored table, as of the open transaction.
    columns: HashMap<String, Vec<(String, String)>>,
    /// Tables whose rows the open transaction changed.
    dirty: std::collections::HashSet<String>,
    staged: u64,
}

fn db_err(what: &str, e: duckdb::Error) -> Error {
    // The crate appends the C API's generic code to DuckDB's own message.
    let full = e.to_string();
    let text = full.trim_end_matches(": Error code 1: Unknown error code");
    let kind = if text.contains("Could not set lock") || text.contains("IO Error") {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Encode
    };
    let hint = if text.contains("Could not set lock") {
        " (another process has the file open: a running `pgcdc run`, or a DuckDB client; DuckDB allows one writer)"
    } else {
        ""
    };
    // DuckDB's message is the whole story; its source chain only adds the generic code.
    Error::new(kind, format!("DuckDB: {what}: {text}{hint}"))
}

/// Runs blocking work without stalling other tasks of a multi-threaded runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

impl DuckDbDestination {
    /// A destination for `config`; the file is opened at the first call.
    pub fn new(config: DuckDbConfig) -> Result<Self> {
        let meta = MirrorMeta::for_dataset(&config.meta, &config.dataset)?;
        Ok(DuckDbDestination {
            config,
            meta,
            conn: None,
            in_tx: false,
            book: Default::default(),
            columns: HashMap::new(),
            dirty: Default::default(),
            staged: 0,
        })
    }

    fn schema(&self) -> String {
        quote_ident(&self.config.dataset)
    }

    fn target(&self, table: &str) -> String {
        format!("{}.{}", self.schema(), quote_ident(table))
    }

    fn staging_dir(&self) -> PathBuf {
        let mut p = self.config.path.clone().into_os_string();
        p.push(".staging");
        PathBuf::from(p)
    }

    fn conn(&mut self) -> Result<&Connection> {
        if self.conn.is_none() {
            let path = &self.config.path;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                if !dir.is_dir() {
                    return Err(Error::new(
                        ErrorKind::InvalidConfig,
                        format!(
                            "destination.url: the directory {} of the DuckDB file does not exist",
                            dir.display()
                        ),
                    ));
                }
            }
            let c = Connection::open(path)
                .map_err(|e| db_err(&format!("opening {}", path.display()), e))?;
            // Row order is carried by m_seq, so DuckDB need not keep insertion order
            // (which costs memory in large CREATE TABLE AS). DuckDB's buffer pool would
            // take 80% of the machine's memory; a CDC process shares the machine.
            c.execute_batch(&format!(
                "SET preserve_insertion_order = false; SET memory_limit = '1GB'; CREATE SCHEMA IF NOT EXISTS {s}; CREATE TABLE IF NOT EXISTS {s}.{t} (id INTEGER, state VARCHAR);",
                s = self.schema(),
                t = quote_ident(STATE_TABLE)
            ))
            .map_err(|e| db_err("creating the state table", e))?;
            self.conn = Some(c);
        }
        self.conn
            .as_ref()
            .ok_or_else(|| Error::new(ErrorKind::Encode, "internal: no DuckDB connection"))
    }

    fn exec(&mut self, sql: &str) -> Result<()> {
        self.conn()?
            .execute_batch(sql)
            .map_err(|e| db_err("applying changes", e))
    }

    fn begin(&mut self) -> Result<()> {
        if !self.in_tx {
            self.exec("BEGIN TRANSACTION")?;
            self.in_tx = true;
        }
        Ok(())
    }

    fn read_state(&mut self) -> Result<Option<MirrorState>> {
        let sql = format!(
            "SELECT state FROM {}.{} WHERE id = 1",
            self.schema(),
            quote_ident(STATE_TABLE)
        );
        let place = self.describe();
        let c = self.conn()?;
        let json: Option<String> = match c.query_row(&sql, [], |r| r.get(0)) {
            Ok(s) => Some(s),
            Err(duckdb::Error::QueryReturnedNoRows) => None,
            Err(e) => return Err(db_err("reading the state", e)),
        };
        json.map(|j| MirrorState::parse(&j, &place)).transpose()
    }

    fn write_state(&mut self, state: &MirrorState) -> Result<()> {
        let json = serde_json::to_string(state)
            .map_err(|e| Error::new(ErrorKind::Encode, "encoding the state").with_source(e))?;
        let sql = format!(
            "DELETE FROM {s}.{t}; INSERT INTO {s}.{t} VALUES (1, {j});",
            s = self.schema(),
            t = quote_ident(STATE_TABLE),
            j = quote_literal(&json)
        );
        self.exec(&sql)
    }

    /// Column name → type of a table (`DESCRIBE`), None when it does not exist.
    fn describe_table(
        &mut self,
        relation: &str,
        exists_check: Option<&str>,
    ) -> Result<Option<Vec<(String, String)>>> {
        let schema = self.config.dataset.clone();
        let c = self.conn()?;
        if let Some(name) = exists_check {
            let n: i64 = c
                .query_row(
                    "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
                    [schema.as_str(), name],
                    |r| r.get(0),
                )
                .map_err(|e| db_err("looking up a table", e))?;
            if n == 0 {
                return Ok(None);
            }
        }
        let mut stmt = c
            .prepare(&format!(
                "SELECT column_name, column_type FROM (DESCRIBE {relation})"
            ))
            .map_err(|e| db_err("describing a table", e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| db_err("describing a table", e))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r.map_err(|e| db_err("describing a table", e))?);
        }
        Ok(Some(out))
    }

    /// Writes rows `range` of `rows` as the staging Parquet file and loads it as
    /// `_pgcdc_s`; returns the staged columns.
    fn stage(
        &mut self,
        table: &TableSchema,
        rows: &RecordBatch,
        range: std::ops::Range<usize>,
    ) -> Result<Vec<Col>> {
        let slice = rows.slice(range.start, range.len());
        let mut replace = Vec::new();
        let mut fields = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        let mut cols = Vec::new();
        for (i, c) in table.columns.iter().enumerate() {
            let Some(a) = slice.column_by_name(&c.name) else {
                continue;
            };
            let staged = format!("c{i}");
            let mut f = slice
                .schema()
                .field_with_name(&c.name)?
                .clone()
                .with_name(&staged);
            // DuckDB reads 16-byte UUIDs from Parquet as BLOB: stage their text and cast.
            match uuid_as_text(a)? {
                Some((text, cast)) => {
                    f = Field::new(&staged, text.data_type().clone(), true);
                    replace.push(format!("CAST({staged} AS {cast}) AS {staged}"));
                    arrays.push(text);
                }
                None => arrays.push(a.clone()),
            }
            fields.push(f);
            cols.push(Col {
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
            let a = slice.column_by_name(name).ok_or_else(|| {
                Error::new(ErrorKind::Encode, format!("internal: no {name} column"))
            })?;
            fields.push(
                slice
                    .schema()
                    .field_with_name(name)?
                    .clone()
                    .with_name(staged),
            );
            arrays.push(a.clone());
        }
        fields.push(Field::new("m_seq", arrow_schema::DataType::Int64, false));
        arrays.push(Arc::new(Int64Array::from_iter_values(
            0..slice.num_rows() as i64,
        )));
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?;
        let dir = self.staging_dir();
        std::fs::create_dir_all(&dir)?;
        self.staged += 1;
        let path = dir.join(format!("{}.{}.parquet", std::process::id(), self.staged));
        blocking(|| write_parquet(&path, &batch))?;
        let replace = if replace.is_empty() {
            String::new()
        } else {
            format!(" REPLACE ({})", replace.join(", "))
        };
        let sql = format!(
            "CREATE OR REPLACE TEMP TABLE _pgcdc_s AS SELECT *{replace} FROM read_parquet({})",
            quote_literal(&path.to_string_lossy())
        );
        let loaded = self.exec(&sql);
        std::fs::remove_file(&path).ok();
        loaded?;
        Ok(cols)
    }

    /// Creates the mirror table, or brings its columns up to the staged ones.
    /// `flag`: the soft-delete column the table must have (false for existing rows).
    fn sync_schema(&mut self, table: &str, cols: &[Col], flag: Option<&str>) -> Result<()> {
        let target = self.target(table);
        let staged = self.describe_table("_pgcdc_s", None)?.unwrap_or_default();
        let staged_type = |s: &str| {
            staged
                .iter()
                .find(|(n, _)| n == s)
                .map(|(_, t)| t.clone())
                .unwrap_or_default()
        };
        if !self.columns.contains_key(table) {
            match self.describe_table(&target, Some(table))? {
                Some(existing) => {
                    self.columns.insert(table.to_string(), existing);
                }
                None => {
                    let mut list: Vec<String> = cols
                        .iter()
                        .map(|c| format!("{} AS {}", c.staged, quote_ident(&c.target)))
                        .collect();
                    list.extend(flag.map(|f| format!("false AS {}", quote_ident(f))));
                    self.exec(&format!(
                        "CREATE TABLE {target} AS SELECT {} FROM _pgcdc_s LIMIT 0",
                        list.join(", ")
                    ))?;
                    let mut made: Vec<(String, String)> = cols
                        .iter()
                        .map(|c| (c.target.clone(), staged_type(&c.staged)))
                        .collect();
                    made.extend(flag.map(|f| (f.to_string(), "BOOLEAN".to_string())));
                    self.columns.insert(table.to_string(), made);
                    return Ok(());
                }
            }
        }
        let existing = self.columns.get(table).cloned().unwrap_or_default();
        let mut now = existing.clone();
        let mut changed = false;
        for c in cols {
            let new_type = staged_type(&c.staged);
            // DuckDB identifiers are case-insensitive, even quoted.
            let found = existing
                .iter()
                .position(|(n, _)| n.eq_ignore_ascii_case(&c.target));
            match found {
                None => {
                    now.push((c.target.clone(), new_type));
                    changed = true;
                }
                Some(i) => {
                    let old_type = &existing[i].1;
                    if old_type == &new_type || holds(old_type, &new_type) {
                        continue;
                    }
                    if !holds(&new_type, old_type) {
                        return Err(Error::new(
                            ErrorKind::InvalidConfig,
                            format!(
                                "column {} of {target} changed type from {old_type} to {new_type}, which the DuckDB mirror cannot convert in place; convert it by hand (ALTER TABLE {target} ALTER COLUMN {} SET DATA TYPE {new_type}) or drop the table and run `pgcdc snapshot {table}`",
                                quote_ident(&c.target),
                                quote_ident(&c.target)
                            ),
                        ));
                    }
                    now[i].1 = new_type;
                    changed = true;
                }
            }
        }
        let add_flag = flag.filter(|f| !now.iter().any(|(n, _)| n.eq_ignore_ascii_case(f)));
        if let Some(f) = add_flag {
            now.push((f.to_string(), "BOOLEAN".into()));
            changed = true;
        }
        if changed {
            let mut sql = if self.dirty.contains(table) {
                rebuild_sql(&self.schema(), table, &existing, &now)
            } else {
                alter_sql(&target, &existing, &now)
            };
            if let Some(f) = add_flag {
                sql.push_str(&format!(
                    "UPDATE {target} SET {q} = false WHERE {q} IS NULL;\n",
                    q = quote_ident(f)
                ));
            }
            tracing::info!(table, ddl = %sql, "mirror schema change");
            self.exec(&sql)?;
        }
        self.columns.insert(table.to_string(), now);
        Ok(())
    }

    fn apply(&mut self, table: &TableSchema, rows: &RecordBatch, step: Step) -> Result<()> {
        let name = table.table.name.clone();
        let target = self.target(&name);
        let (range, moved, unchanged) = match step {
            Step::Truncate => {
                if self.describe_table(&target, Some(&name))?.is_some() {
                    self.exec(&format!("DELETE FROM {target}"))?;
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
        let cols = self.stage(table, rows, range)?;
        let soft = self
            .config
            .soft_delete
            .clone()
            .filter(|_| mirror::keyed(table));
        self.sync_schema(&name, &cols, soft.as_deref())?;
        let sql = if mirror::keyed(table) {
            keyed_sql(
                &target,
                &cols,
                moved,
                &unchanged,
                self.config.soft_delete.as_deref(),
            )
        } else {
            multiset_sql(&target, &cols)
        };
        self.dirty.insert(name);
        self.exec(&sql)
    }
}

/// `ALTER TABLE`s from columns `old` to `new` (same order, new ones at the end).
fn alter_sql(target: &str, old: &[(String, String)], new: &[(String, String)]) -> String {
    let mut sql = String::new();
    for (i, (name, ty)) in new.iter().enumerate() {
        match old.get(i) {
            Some((_, old_ty)) if old_ty == ty => {}
            Some(_) => sql.push_str(&format!(
                "ALTER TABLE {target} ALTER COLUMN {} SET DATA TYPE {ty};\n",
                quote_ident(name)
            )),
            None => sql.push_str(&format!(
                "ALTER TABLE {target} ADD COLUMN {} {ty};\n",
                quote_ident(name)
            )),
        }
    }
    sql
}

/// The table copied into its new columns, replacing it. DuckDB refuses to commit an
/// ALTER TABLE after the same transaction deleted or updated rows of the table; a new
/// table in its place is allowed.
fn rebuild_sql(
    schema: &str,
    table: &str,
    old: &[(String, String)],
    new: &[(String, String)],
) -> String {
    let temp = format!("_pgcdc_rebuild_{}", std::process::id());
    let select: Vec<String> = new
        .iter()
        .enumerate()
        .map(|(i, (name, ty))| {
            let q = quote_ident(name);
            match old.get(i) {
                Some((_, old_ty)) if old_ty == ty => q,
                Some(_) => format!("CAST({q} AS {ty}) AS {q}"),
                None => format!("CAST(NULL AS {ty}) AS {q}"),
            }
        })
        .collect();
    format!(
        "CREATE TABLE {schema}.{t} AS SELECT {} FROM {schema}.{name};\nDROP TABLE {schema}.{name};\nALTER TABLE {schema}.{t} RENAME TO {name};\n",
        select.join(", "),
        t = quote_ident(&temp),
        name = quote_ident(table)
    )
}

/// A UUID column (FixedSizeBinary(16), or a list of them) as its text, with the DuckDB
/// type to cast it to; None for other columns.
fn uuid_as_text(a: &ArrayRef) -> Result<Option<(ArrayRef, &'static str)>> {
    let text = |a: &ArrayRef| -> Result<ArrayRef> {
        let mut b = arrow_array::builder::StringBuilder::new();
        for i in 0..a.len() {
            if a.is_null(i) {
                b.append_null();
            } else {
                let mut s = String::new();
                crate::pgtext::literal(a, i, &mut s)?;
                b.append_value(s);
            }
        }
        Ok(Arc::new(b.finish()))
    };
    match a.data_type() {
        arrow_schema::DataType::FixedSizeBinary(16) => Ok(Some((text(a)?, "UUID"))),
        arrow_schema::DataType::List(f)
            if f.data_type() == &arrow_schema::DataType::FixedSizeBinary(16) =>
        {
            let l = a.as_list::<i32>();
            let values = text(l.values())?;
            let item = Arc::new(Field::new("item", arrow_schema::DataType::Utf8, true));
            let list = arrow_array::ListArray::try_new(
                item,
                l.offsets().clone(),
                values,
                l.nulls().cloned(),
            )?;
            Ok(Some((Arc::new(list), "UUID[]")))
        }
        _ => Ok(None),
    }
}

/// Whether a column of type `wide` holds every value of type `narrow` (both DuckDB type
/// names): the integer and float ladders, and DECIMALs with as many integer and fraction
/// digits.
fn holds(wide: &str, narrow: &str) -> bool {
    const INTS: [&str; 5] = ["TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"];
    let rank = |t: &str, ladder: &[&str]| ladder.iter().position(|x| *x == t);
    if let (Some(w), Some(n)) = (rank(wide, &INTS), rank(narrow, &INTS)) {
        return w >= n;
    }
    if narrow == "FLOAT" && wide == "DOUBLE" {
        return true;
    }
    let decimal = |t: &str| -> Option<(u32, u32)> {
        let inner = t.strip_prefix("DECIMAL(")?.strip_suffix(')')?;
        let (p, s) = inner.split_once(',')?;
        Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
    };
    match (decimal(wide), decimal(narrow)) {
        (Some((wp, ws)), Some((np, ns))) => ws >= ns && wp - ws >= np - ns,
        _ => false,
    }
}

fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<()> {
    let file = std::fs::File::create(path)?;
    let props = WriterProperties::builder()
        .set_compression(parquet::basic::Compression::UNCOMPRESSED)
        .build();
    let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props))?;
    w.write(batch)?;
    w.close()?;
    Ok(())
}

/// Upsert/delete by key, last change per key wins, TOAST-unchanged columns keep their
/// previous value (see [`crate::mirror`]).
fn keyed_sql(
    target: &str,
    cols: &[Col],
    moved: bool,
    unchanged: &[String],
    soft: Option<&str>,
) -> String {
    let keys: Vec<&str> = cols
        .iter()
        .filter(|c| c.key)
        .map(|c| c.staged.as_str())
        .collect();
    let partition = keys.join(", ");
    let mut sql = String::new();
    if moved {
        sql.push_str(&move_sql(target, "_pgcdc_s", cols, soft));
    }
    // With soft deletes a deleted row keeps its last values: every column is "kept".
    let kept: Vec<(usize, &Col)> = cols
        .iter()
        .filter(|c| !c.key && (soft.is_some() || unchanged.contains(&c.target)))
        .enumerate()
        .collect();
    let toast = "coalesce(m_toast, [])";
    let mut windows = String::new();
    for (i, c) in &kept {
        // Which earlier row last sent the value (its m_seq): the window sorts integers
        // only, and the value is fetched by a join (TOASTed values are large).
        windows.push_str(&format!(
            ", max(CASE WHEN m_op <> 'delete' AND NOT list_contains({toast}, {n}) THEN m_seq END) OVER (PARTITION BY {partition}) AS m_src{i}",
            n = quote_literal(&c.target),
        ));
    }
    if soft.is_some() {
        windows.push_str(&format!(
            ", count(*) FILTER (WHERE m_op <> 'delete') OVER (PARTITION BY {partition}) AS m_live"
        ));
    }
    let deleted = if soft.is_some() {
        " OR w.m_op = 'delete'"
    } else {
        ""
    };
    let mut select: Vec<String> = cols
        .iter()
        .map(|c| match kept.iter().find(|(_, k)| k.staged == c.staged) {
            Some((i, _)) => format!(
                "CASE WHEN list_contains(coalesce(w.m_toast, []), {n}){deleted} THEN CASE WHEN w.m_src{i} IS NOT NULL THEN p{i}.{s} ELSE _t.{t} END ELSE w.{s} END AS {s}",
                n = quote_literal(&c.target),
                t = quote_ident(&c.target),
                s = c.staged
            ),
            None => format!("w.{}", c.staged),
        })
        .collect();
    if soft.is_some() {
        let first = cols
            .iter()
            .find(|c| c.key)
            .map(|c| quote_ident(&c.target))
            .unwrap_or_default();
        select.push(format!(
            "(w.m_live > 0 OR _t.{first} IS NOT NULL) AS m_known"
        ));
    }
    let mut join = if kept.is_empty() && soft.is_none() {
        String::new()
    } else {
        format!(" LEFT JOIN {target} _t ON {}", key_match(cols, "_t", "w"))
    };
    for (i, _) in &kept {
        join.push_str(&format!(
            " LEFT JOIN _pgcdc_s p{i} ON p{i}.m_seq = w.m_src{i}"
        ));
    }
    sql.push_str(&format!(
        "CREATE OR REPLACE TEMP TABLE _pgcdc_f AS WITH w AS (SELECT *{windows} FROM _pgcdc_s QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY m_seq DESC) = 1) SELECT w.m_op, {} FROM w{join};\n",
        select.join(", ")
    ));
    sql.push_str(&format!(
        "DELETE FROM {target} AS _t USING _pgcdc_f f WHERE {};\n",
        key_match(cols, "_t", "f")
    ));
    // With soft deletes, a deleted row the mirror knew comes back marked.
    let rows = if soft.is_some() {
        "_pgcdc_f WHERE m_op <> 'delete' OR m_known"
    } else {
        "_pgcdc_f WHERE m_op <> 'delete'"
    };
    sql.push_str(&insert_sql(target, cols, soft, rows));
    sql.push_str("DROP TABLE _pgcdc_f;\n");
    sql
}

/// Rows as a multiset: per distinct row, inserts minus deletes copies are added or removed.
fn multiset_sql(target: &str, cols: &[Col]) -> String {
    let staged: Vec<&str> = cols.iter().map(|c| c.staged.as_str()).collect();
    let list = staged.join(", ");
    let same: Vec<String> = cols
        .iter()
        .map(|c| {
            format!(
                "_t.{} IS NOT DISTINCT FROM n.{}",
                quote_ident(&c.target),
                c.staged
            )
        })
        .collect();
    let weight = MULTISET_WEIGHT;
    let mut sql = format!(
        "CREATE OR REPLACE TEMP TABLE _pgcdc_n AS SELECT {list}, sum(m_w)::BIGINT AS m_n, row_number() OVER () AS m_i FROM (SELECT *, {weight} AS m_w FROM _pgcdc_s WINDOW w AS (ORDER BY m_seq)) GROUP BY {list};\n"
    );
    sql.push_str(&format!(
        "DELETE FROM {target} WHERE rowid IN (SELECT r FROM (SELECT _t.rowid AS r, row_number() OVER (PARTITION BY n.m_i) AS rn, n.m_n FROM {target} _t JOIN _pgcdc_n n ON {} WHERE n.m_n < 0) WHERE rn <= -m_n);\n",
        same.join(" AND ")
    ));
    sql.push_str(&insert_sql(
        target,
        cols,
        None,
        &format!("(SELECT {list}, unnest(range(m_n)) FROM _pgcdc_n WHERE m_n > 0)"),
    ));
    sql.push_str("DROP TABLE _pgcdc_n;\n");
    sql
}

#[async_trait]
impl Destination for DuckDbDestination {
    fn describe(&self) -> String {
        format!(
            "DuckDB {} (schema {})",
            self.config.path.display(),
            self.config.dataset
        )
    }

    async fn open(&mut self) -> Result<Option<Committed>> {
        self.rollback().await?;
        // Staging files of a process that died: its transaction died with it.
        if let Ok(entries) = std::fs::read_dir(self.staging_dir()) {
            for e in entries.flatten() {
                std::fs::remove_file(e.path()).ok();
            }
        }
        self.read_committed().await
    }

    async fn read_committed(&mut self) -> Result<Option<Committed>> {
        let state = blocking(|| self.read_state())?;
        Ok(self.book.read(state, self.in_tx))
    }

    async fn initialize(&mut self, checkpoint: &Checkpoint, replace: bool) -> Result<bool> {
        let existing = blocking(|| self.read_state())?;
        if existing.is_some() && !replace {
            return Ok(false);
        }
        self.rollback().await?;
        self.begin()?;
        // A reset starts over: the tables are snapshotted again.
        for name in existing.iter().flat_map(|s| s.tables.keys()) {
            let t = self.target(name);
            self.exec(&format!("DROP TABLE IF EXISTS {t}"))?;
        }
        let state = self.book.start(checkpoint);
        self.write_state(&state)?;
        self.exec("COMMIT")?;
        self.in_tx = false;
        self.dirty.clear();
        self.columns.clear();
        self.book.state = Some(state);
        Ok(true)
    }

    async fn write(&mut self, table: &TableSchema, rows: RecordBatch) -> Result<()> {
        if rows.num_rows() == 0 {
            return Ok(());
        }
        self.book.admit(table, self.config.soft_delete.as_deref())?;
        self.begin()?;
        let steps = mirror::plan(&rows, &self.meta, mirror::keyed(table))?;
        for step in steps {
            blocking(|| self.apply(table, &rows, step))?;
        }
        Ok(())
    }

    async fn commit(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        if self.book.state.is_none() {
            self.book.state = blocking(|| self.read_state())?;
        }
        self.begin()?;
        let state = self.book.next(checkpoint);
        self.write_state(&state)?;
        crate::failpoint("mirror.before_commit");
        // A failed COMMIT ends the transaction too (DuckDB rolls it back).
        self.in_tx = false;
        self.dirty.clear();
        blocking(|| self.exec("COMMIT"))?;
        crate::failpoint("mirror.after_commit");
        self.book.state = Some(state);
        Ok(())
    }

    async fn rollback(&mut self) -> Result<()> {
        if self.in_tx {
            self.in_tx = false;
            if let Err(e) = self.exec("ROLLBACK") {
                // Already ended by a failed statement or commit: nothing left to undo.
                if !e.to_string().contains("no transaction is active") {
                    return Err(e);
                }
            }
        }
        self.dirty.clear();
        self.columns.clear();
        self.book.reset();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::holds;

    #[test]
    fn widening_rules() {
        assert!(holds("BIGINT", "INTEGER"));
        assert!(!holds("INTEGER", "BIGINT"));
        assert!(holds("DOUBLE", "FLOAT"));
        assert!(holds("DECIMAL(12,2)", "DECIMAL(10,2)"));
        assert!(holds("DECIMAL(14,4)", "DECIMAL(10,2)"));
        assert!(!holds("DECIMAL(11,4)", "DECIMAL(10,2)"));
        assert!(!holds("VARCHAR", "INTEGER"));
        assert!(!holds("INTEGER", "VARCHAR"));
    }
}
