//! The DuckDB mirror destination: each source table as a table in an embedded DuckDB
//! file, equal to the source after every commit. The mirror itself is
//! [`crate::sql_mirror`]; this module is its DuckDB dialect: the file, staging, type names
//! and SQL spelling.
//!
//! Each step of changelog rows reaches DuckDB as a staging Parquet file beside the
//! database (`<file>.staging/`), read with `read_parquet` into the staging table. Parquet
//! keeps every type exact, and DuckDB reads it natively (the `duckdb` crate's own Arrow is
//! a different arrow version from ours). Mirror tables take the staged columns' types and
//! have no primary key; DuckDB identifiers are case-insensitive, even quoted.
//!
//! Widening type changes (TINYINT → … → HUGEINT, FLOAT → DOUBLE, a DECIMAL with room for
//! the old values) are applied in place.
//!
//! DuckDB calls block: on a multi-threaded tokio runtime they run in `block_in_place`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch};
use arrow_schema::{Field, Schema};
use async_trait::async_trait;
use duckdb::Connection;
use parquet::arrow::ArrowWriter;

use pgcdc_core::{quote_ident, quote_literal, MetaColumns};

use crate::mirror::MirrorMeta;
use crate::mirror_sql::alter_sql;
use crate::sql_mirror::{Change, Col, Columns, Dialect, SqlMirror, Staging};
use crate::widening::{two_args, Shape};
use crate::{Error, ErrorKind, Result};

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
pub type DuckDbDestination = SqlMirror<DuckDb>;

impl SqlMirror<DuckDb> {
    /// A destination for `config`; the file is opened at the first call.
    pub fn new(config: DuckDbConfig) -> Result<Self> {
        let meta = MirrorMeta::for_dataset(&config.meta, &config.dataset)?;
        let dialect = DuckDb {
            path: config.path,
            conn: None,
            staged: 0,
        };
        Ok(SqlMirror::with(
            dialect,
            config.dataset,
            config.soft_delete,
            meta,
        ))
    }
}

/// The DuckDB [`Dialect`]: one connection to the database file.
pub struct DuckDb {
    path: PathBuf,
    conn: Option<Connection>,
    /// Staging files written (names them).
    staged: u64,
}

fn db_err(what: &str, e: duckdb::Error) -> Error {
    let (kind, text) = match &e {
        duckdb::Error::DuckDBFailure(_, Some(message)) => (failure_kind(message), message.clone()),
        other => (ErrorKind::Encode, other.to_string()),
    };
    // DuckDB's message is the whole story; its source chain only adds the generic code.
    Error::new(kind, format!("DuckDB: {what}: {text}"))
}

/// The retry rule of a failed DuckDB call: an I/O error (the file locked by another
/// process, a failing or full disk) is transient; any other failure is a data or SQL
/// error.
///
/// This is the one place a mirror reads error text, because nothing else carries the
/// cause: the duckdb crate reports every failed query and open as
/// `Error::DuckDBFailure` with the C API's generic failure state (its `ErrorCode` is
/// always `Unknown`), dropping the error type DuckDB knew. DuckDB starts each message
/// with that type's name (`IO Error: Could not set lock on file …`), so the type is read
/// back from there, and nothing else of the message is looked at.
fn failure_kind(message: &str) -> ErrorKind {
    match message.split_once(" Error: ") {
        Some(("IO", _)) => ErrorKind::Unavailable,
        _ => ErrorKind::Encode,
    }
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

impl DuckDb {
    fn conn(&self) -> Result<&Connection> {
        self.conn
            .as_ref()
            .ok_or_else(|| Error::new(ErrorKind::Encode, "internal: no DuckDB connection"))
    }

    fn staging_dir(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".staging");
        PathBuf::from(p)
    }

    /// Column name → type of `relation` (`DESCRIBE`).
    fn describe(&self, relation: &str) -> Result<Vec<(String, String)>> {
        let c = self.conn()?;
        blocking(|| {
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
            Ok(out)
        })
    }
}

#[async_trait]
impl Dialect for DuckDb {
    const NAME: &'static str = "DuckDB";
    // No key (files made by earlier versions have none): `write_state_sql` replaces the row.
    const STATE_COLUMNS: &'static str = "id INTEGER, state VARCHAR";
    const TEMP: &'static str = "";
    const ROW_ID: &'static str = "rowid";

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn connected(&self) -> bool {
        self.conn.is_some()
    }

    fn disconnect(&mut self) {
        self.conn = None;
    }

    async fn connect(&mut self) -> Result<()> {
        let path = &self.path;
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
        let c = blocking(|| Connection::open(path)).map_err(|e| {
            let e = db_err(&format!("opening {}", path.display()), e);
            if e.kind() == ErrorKind::Unavailable {
                Error::new(e.kind(), format!("{e} (if another process has the file open, a running `pgcdc run` or a DuckDB client: DuckDB allows one writer)"))
            } else {
                e
            }
        })?;
        // Row order is carried by m_seq, so DuckDB need not keep insertion order (which
        // costs memory in large CREATE TABLE AS). DuckDB's buffer pool would take 80% of
        // the machine's memory; a CDC process shares the machine.
        c.execute_batch("SET preserve_insertion_order = false; SET memory_limit = '1GB';")
            .map_err(|e| db_err("setting up the connection", e))?;
        self.conn = Some(c);
        Ok(())
    }

    async fn exec(&mut self, what: &str, sql: &str) -> Result<()> {
        let c = self.conn()?;
        blocking(|| c.execute_batch(sql)).map_err(|e| db_err(what, e))
    }

    async fn query_text(&mut self, what: &str, sql: &str) -> Result<Option<String>> {
        let c = self.conn()?;
        match blocking(|| c.query_row(sql, [], |r| r.get::<_, String>(0))) {
            Ok(s) => Ok(Some(s)),
            Err(duckdb::Error::QueryReturnedNoRows) => Ok(None),
            Err(e) => Err(db_err(what, e)),
        }
    }

    async fn columns(&mut self, schema: &str, table: &str) -> Result<Option<Columns>> {
        let n: i64 = self
            .conn()?
            .query_row(
                "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
                [schema, table],
                |r| r.get(0),
            )
            .map_err(|e| db_err("looking up a table", e))?;
        if n == 0 {
            return Ok(None);
        }
        let relation = format!("{}.{}", quote_ident(schema), quote_ident(table));
        self.describe(&relation).map(Some)
    }

    /// Writes the rows as the staging Parquet file and loads it as `_pgcdc_s`.
    async fn stage(&mut self, rows: Staging<'_>) -> Result<Vec<Col>> {
        let (start, len) = (rows.range.start, rows.range.len());
        let mut replace = Vec::new();
        let mut fields = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for (i, (f, a)) in rows.fields.iter().zip(&rows.arrays).enumerate() {
            let a = a.slice(start, len);
            // DuckDB reads 16-byte UUIDs from Parquet as BLOB: stage their text and cast.
            match uuid_as_text(&a)?.filter(|_| i < rows.cols.len()) {
                Some((text, cast)) => {
                    fields.push(Field::new(f.name(), text.data_type().clone(), true));
                    replace.push(format!("CAST({n} AS {cast}) AS {n}", n = f.name()));
                    arrays.push(text);
                }
                None => {
                    fields.push(f.clone());
                    arrays.push(a);
                }
            }
        }
        fields.push(Field::new("m_seq", arrow_schema::DataType::Int64, false));
        arrays.push(Arc::new(Int64Array::from_iter_values(0..len as i64)));
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
        let loaded = self.exec("staging rows", &sql).await;
        std::fs::remove_file(&path).ok();
        loaded?;
        let staged = self.describe("_pgcdc_s")?;
        let mut cols = rows.cols;
        for c in &mut cols {
            if let Some((_, ty)) = staged.iter().find(|(n, _)| *n == c.staged) {
                c.ty.clone_from(ty);
            }
        }
        Ok(cols)
    }

    /// Staging files of a process that died: its transaction died with it.
    fn recover(&mut self) {
        if let Ok(entries) = std::fs::read_dir(self.staging_dir()) {
            for e in entries.flatten() {
                std::fs::remove_file(e.path()).ok();
            }
        }
    }

    fn same_name(a: &str, b: &str) -> bool {
        a.eq_ignore_ascii_case(b)
    }

    /// DuckDB type names.
    fn shape(ty: &str) -> Shape {
        match ty {
            "TINYINT" => Shape::Int(1),
            "SMALLINT" => Shape::Int(2),
            "INTEGER" => Shape::Int(4),
            "BIGINT" => Shape::Int(8),
            "HUGEINT" => Shape::Int(16),
            "FLOAT" => Shape::Float(4),
            "DOUBLE" => Shape::Float(8),
            "VARCHAR" => Shape::Text { decimals: false },
            _ => two_args(ty, "DECIMAL").map_or(Shape::Other, |(precision, scale)| {
                Shape::Decimal { precision, scale }
            }),
        }
    }

    /// The state table has no key (older files have it so): the row is replaced.
    fn write_state_sql(table: &str, json: &str) -> String {
        format!("DELETE FROM {table}; INSERT INTO {table} VALUES (1, {json});")
    }

    /// The staged columns' own types, taken from the staging table.
    fn create_sql(target: &str, cols: &[Col], flag: Option<&str>, _keyed: bool) -> String {
        let mut list: Vec<String> = cols
            .iter()
            .map(|c| format!("{} AS {}", c.staged, quote_ident(&c.target)))
            .collect();
        list.extend(flag.map(|f| format!("false AS {}", quote_ident(f))));
        format!(
            "CREATE TABLE {target} AS SELECT {} FROM _pgcdc_s LIMIT 0",
            list.join(", ")
        )
    }

    fn change_sql(change: &Change<'_>) -> String {
        let target = change.target();
        let mut sql = if change.rewritten {
            rebuild_sql(change)
        } else {
            alter_sql(&target, change.old, change.new, None)
        };
        if let Some(f) = change.added_flag {
            sql.push_str(&format!(
                "UPDATE {target} SET {q} = false WHERE {q} IS NULL;\n",
                q = quote_ident(f)
            ));
        }
        sql
    }

    fn create_temp(name: &str) -> String {
        format!("CREATE OR REPLACE TEMP TABLE {name} AS")
    }

    fn list_has(list: &str, item: &str) -> String {
        format!("list_contains(coalesce({list}, []), {item})")
    }

    fn comparable(expr: &str) -> String {
        expr.to_string()
    }

    fn per_distinct_row(list: &[&str], from: &str) -> String {
        let list = list.join(", ");
        format!("SELECT {list}, sum(m_w)::BIGINT AS m_n FROM {from} GROUP BY {list}")
    }
}

fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<()> {
    let file = std::fs::File::create(path)?;
    let props = crate::files::writer_properties(parquet::basic::Compression::UNCOMPRESSED);
    let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props))?;
    w.write(batch)?;
    w.close()?;
    Ok(())
}

/// The table copied into its new columns, replacing it. DuckDB refuses to commit an
/// ALTER TABLE after the same transaction deleted or updated rows of the table; a new
/// table in its place is allowed.
fn rebuild_sql(change: &Change<'_>) -> String {
    let (schema, table) = (change.schema, change.table);
    let temp = format!("_pgcdc_rebuild_{}", std::process::id());
    let select: Vec<String> = change
        .new
        .iter()
        .enumerate()
        .map(|(i, (name, ty))| {
            let q = quote_ident(name);
            match change.old.get(i) {
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

#[cfg(test)]
mod tests {
    use super::failure_kind;
    use crate::ErrorKind;

    #[test]
    fn io_failures_are_transient() {
        let lock = "IO Error: Could not set lock on file \"x.duckdb\": Conflicting lock is held";
        assert_eq!(failure_kind(lock), ErrorKind::Unavailable);
        let missing = "Catalog Error: Table with name t does not exist!";
        assert_eq!(failure_kind(missing), ErrorKind::Encode);
    }
}
