//! The PostgreSQL mirror destination: each source table as a table in another PostgreSQL
//! database (or another schema), equal to the source after every commit (the rules are in
//! [`crate::mirror`]).
//!
//! Layout: tables `"<dataset>"."<table>"` with the source's columns and primary key, and
//! `"<dataset>"."_pgcdc_state"` holding the checkpoint as JSON. A commit's changes, schema
//! changes and checkpoint are one PostgreSQL transaction.
//!
//! Types: a column of a built-in type gets the source's own type (`format_type` of its
//! OID and typmod, evaluated by the target: built-in OIDs are the same in every
//! PostgreSQL), so `inet`, `tsvector` or `numeric(12,2)` stay what they are; enums,
//! domains and extension types, and columns with a type hint, get the type of their Arrow
//! kind (text for enums). Values travel as `COPY … FROM STDIN` text ([`crate::pgtext`]) into
//! a temporary staging table per step, merged by SQL.
//!
//! Schema evolution: new columns are added, dropped ones stay, widening type changes
//! (smallint → integer → bigint, real → double precision, numeric with room for the old
//! values, longer or unbounded varchar, varchar → text) are applied with `ALTER TABLE`;
//! any other change is an error naming the column and the manual step.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::SinkExt;
use tokio_postgres::Client;

use pgcdc_core::{
    quote_ident, quote_literal, Checkpoint, Column, MetaColumns, TableSchema, ValueKind,
};

use crate::mirror::{self, MirrorMeta, MirrorState, Step, STATE_TABLE};
use crate::mirror_sql::{insert_sql, key_match, move_sql, staged_key_match, Col, MULTISET_WEIGHT};
use crate::{Committed, Destination, Error, ErrorKind, Result};

/// Opens a new connection to the target database (called again after a lost one).
pub type Connector = Arc<dyn Fn() -> BoxFuture<'static, Result<Client>> + Send + Sync>;

/// Settings of a [`PostgresDestination`].
#[derive(Clone)]
pub struct PostgresConfig {
    /// The schema holding the mirrored tables (created when missing).
    pub dataset: String,
    /// The changelog's metadata columns.
    pub meta: MetaColumns,
    /// Where the target is, for messages (no password).
    pub location: String,
    /// Keep deleted rows of keyed tables, with this boolean column set (see [`crate::mirror`]).
    pub soft_delete: Option<String>,
}

/// Tables of a PostgreSQL database mirroring the source. See the [module docs](self).
pub struct PostgresDestination {
    config: PostgresConfig,
    meta: MirrorMeta,
    connect: Connector,
    client: Option<Client>,
    in_tx: bool,
    book: mirror::Book,
    /// Column name → type of each mirrored table, as of the open transaction.
    columns: HashMap<String, Vec<(String, String)>>,
    type_names: HashMap<(u32, i32), Option<String>>,
}

/// The first OID of user-defined objects: OIDs below it are built in.
const FIRST_NORMAL_OBJECT_ID: u32 = 16384;

fn pg_err(what: &str, e: tokio_postgres::Error) -> Error {
    let (kind, detail) = match e.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            let kind = if code.starts_with("08") || code.starts_with("57") || code.starts_with("53")
            {
                ErrorKind::Unavailable
            } else if code.starts_with("42") || code.starts_with("28") {
                ErrorKind::InvalidConfig
            } else {
                ErrorKind::Encode
            };
            (kind, format!("{} ({code})", db.message()))
        }
        None if e.is_closed() => (ErrorKind::Unavailable, "the connection is closed".into()),
        None => (ErrorKind::Unavailable, e.to_string()),
    };
    let hint = if detail.contains("(42501)") {
        "; the mirror's role needs CREATE on the database (for the schema) and on the schema"
    } else {
        ""
    };
    Error::new(kind, format!("PostgreSQL mirror: {what}: {detail}{hint}")).with_source(e)
}

impl PostgresDestination {
    /// A destination writing through connections from `connect`.
    pub fn new(config: PostgresConfig, connect: Connector) -> Result<Self> {
        let meta = MirrorMeta::new(&config.meta)?;
        Ok(PostgresDestination {
            config,
            meta,
            connect,
            client: None,
            in_tx: false,
            book: Default::default(),
            columns: HashMap::new(),
            type_names: HashMap::new(),
        })
    }

    fn schema(&self) -> String {
        quote_ident(&self.config.dataset)
    }

    fn target(&self, table: &str) -> String {
        format!("{}.{}", self.schema(), quote_ident(table))
    }

    async fn client(&mut self) -> Result<&Client> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            if self.in_tx {
                // The server rolled the open transaction back: what this batch wrote is
                // gone, so the batch must fail and be replayed from the checkpoint.
                self.in_tx = false;
                self.client = None;
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    "PostgreSQL mirror: the connection was lost in the middle of a batch; it is replayed from the checkpoint",
                ));
            }
            let c = (self.connect)().await?;
            c.batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {s}; CREATE TABLE IF NOT EXISTS {s}.{t} (id int PRIMARY KEY, state text NOT NULL);",
                s = self.schema(),
                t = quote_ident(STATE_TABLE)
            ))
            .await
            .map_err(|e| pg_err("creating the state table", e))?;
            self.client = Some(c);
        }
        self.client
            .as_ref()
            .ok_or_else(|| Error::new(ErrorKind::Unavailable, "no connection to the mirror"))
    }

    async fn exec(&mut self, what: &str, sql: &str) -> Result<()> {
        self.client()
            .await?
            .batch_execute(sql)
            .await
            .map_err(|e| pg_err(what, e))
    }

    async fn begin(&mut self) -> Result<()> {
        if !self.in_tx {
            self.exec("starting a transaction", "BEGIN").await?;
            self.in_tx = true;
        }
        Ok(())
    }

    async fn read_state(&mut self) -> Result<Option<MirrorState>> {
        let sql = format!(
            "SELECT state FROM {}.{} WHERE id = 1",
            self.schema(),
            quote_ident(STATE_TABLE)
        );
        let place = self.describe();
        let row = self
            .client()
            .await?
            .query_opt(&sql, &[])
            .await
            .map_err(|e| pg_err("reading the state", e))?;
        row.map(|r| {
            let json: String = r.get(0);
            MirrorState::parse(&json, &place)
        })
        .transpose()
    }

    async fn write_state(&mut self, state: &MirrorState) -> Result<()> {
        let json = serde_json::to_string(state)
            .map_err(|e| Error::new(ErrorKind::Encode, "encoding the state").with_source(e))?;
        let sql = format!(
            "INSERT INTO {}.{} VALUES (1, {}) ON CONFLICT (id) DO UPDATE SET state = excluded.state",
            self.schema(),
            quote_ident(STATE_TABLE),
            quote_literal(&json)
        );
        self.exec("writing the state", &sql).await
    }

    /// The target type of a column: the source's own for built-in types, else its kind's.
    async fn column_type(&mut self, c: &Column) -> Result<String> {
        let money = matches!(&c.kind, ValueKind::Money { .. })
            || matches!(&c.kind, ValueKind::List { element } if matches!(**element, ValueKind::Money { .. }));
        if !c.hinted && !money && c.type_oid < FIRST_NORMAL_OBJECT_ID {
            let key = (c.type_oid, c.type_modifier);
            if !self.type_names.contains_key(&key) {
                let row = self
                    .client()
                    .await?
                    .query_one(
                        "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_type WHERE oid = $1) THEN format_type($1, $2) END",
                        &[&c.type_oid as &(dyn tokio_postgres::types::ToSql + Sync), &c.type_modifier],
                    )
                    .await
                    .map_err(|e| pg_err("looking up a type", e))?;
                self.type_names.insert(key, row.get::<_, Option<String>>(0));
            }
            if let Some(Some(name)) = self.type_names.get(&key) {
                return Ok(name.clone());
            }
        }
        Ok(kind_type(&c.kind))
    }

    /// The soft-delete column of `table`, when it has one (keyed tables only).
    fn flag(&self, table: &TableSchema) -> Option<String> {
        self.config
            .soft_delete
            .clone()
            .filter(|_| mirror::keyed(table))
    }

    async fn existing_columns(&mut self, table: &str) -> Result<Option<Vec<(String, String)>>> {
        let target = self.target(table);
        let c = self.client().await?;
        let exists = c
            .query_one("SELECT to_regclass($1)::oid", &[&target])
            .await
            .map_err(|e| pg_err("looking up a table", e))?
            .get::<_, Option<u32>>(0);
        let Some(oid) = exists else {
            return Ok(None);
        };
        let rows = c
            .query(
                "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                &[&oid],
            )
            .await
            .map_err(|e| pg_err("reading a table's columns", e))?;
        Ok(Some(rows.iter().map(|r| (r.get(0), r.get(1))).collect()))
    }

    /// Creates the mirror table, or brings its columns up to the staged ones.
    async fn sync_schema(&mut self, table: &TableSchema, cols: &[Col]) -> Result<()> {
        let name = table.table.name.clone();
        let target = self.target(&name);
        if !self.columns.contains_key(&name) {
            match self.existing_columns(&name).await? {
                Some(existing) => {
                    self.columns.insert(name.clone(), existing);
                }
                None => {
                    let mut defs: Vec<String> = cols
                        .iter()
                        .map(|c| format!("{} {}", quote_ident(&c.target), c.ty))
                        .collect();
                    if let Some(f) = self.flag(table) {
                        defs.push(format!(
                            "{} boolean NOT NULL DEFAULT false",
                            quote_ident(&f)
                        ));
                    }
                    if mirror::keyed(table) {
                        let keys: Vec<String> = cols
                            .iter()
                            .filter(|c| c.key)
                            .map(|c| quote_ident(&c.target))
                            .collect();
                        defs.push(format!("PRIMARY KEY ({})", keys.join(", ")));
                    }
                    self.exec(
                        "creating a table",
                        &format!("CREATE TABLE {target} ({})", defs.join(", ")),
                    )
                    .await?;
                    let made = cols
                        .iter()
                        .map(|c| (c.target.clone(), c.ty.clone()))
                        .collect();
                    self.columns.insert(name, made);
                    return Ok(());
                }
            }
        }
        let existing = self.columns.get(&name).cloned().unwrap_or_default();
        let mut now = existing.clone();
        let mut ddl = String::new();
        for c in cols {
            match existing.iter().position(|(n, _)| *n == c.target) {
                None => {
                    ddl.push_str(&format!(
                        "ALTER TABLE {target} ADD COLUMN {} {};\n",
                        quote_ident(&c.target),
                        c.ty
                    ));
                    now.push((c.target.clone(), c.ty.clone()));
                }
                Some(i) => {
                    let old = &existing[i].1;
                    if *old == c.ty || holds(old, &c.ty) {
                        continue;
                    }
                    if !holds(&c.ty, old) {
                        return Err(Error::new(
                            ErrorKind::InvalidConfig,
                            format!(
                                "column {col} of {target} changed type from {old} to {new}, which the PostgreSQL mirror does not convert by itself; convert it by hand (ALTER TABLE {target} ALTER COLUMN {col} TYPE {new} USING …) or drop the table and run `pgcdc snapshot {name}`",
                                col = quote_ident(&c.target),
                                new = c.ty
                            ),
                        ));
                    }
                    ddl.push_str(&format!(
                        "ALTER TABLE {target} ALTER COLUMN {} TYPE {};\n",
                        quote_ident(&c.target),
                        c.ty
                    ));
                    now[i].1 = c.ty.clone();
                }
            }
        }
        if let Some(f) = self
            .flag(table)
            .filter(|f| !now.iter().any(|(n, _)| n == f))
        {
            ddl.push_str(&format!(
                "ALTER TABLE {target} ADD COLUMN {} boolean NOT NULL DEFAULT false;\n",
                quote_ident(&f)
            ));
            now.push((f, "boolean".into()));
        }
        if !ddl.is_empty() {
            tracing::info!(table = %name, ddl = %ddl.trim_end(), "mirror schema change");
            self.exec("changing a table's columns", &ddl).await?;
        }
        self.columns.insert(name, now);
        Ok(())
    }

    /// Loads rows `range` into the temporary staging table `_pgcdc_s`.
    async fn stage(
        &mut self,
        table: &TableSchema,
        rows: &RecordBatch,
        range: std::ops::Range<usize>,
    ) -> Result<Vec<Col>> {
        let mut cols = Vec::new();
        let mut arrays = Vec::new();
        for (i, c) in table.columns.iter().enumerate() {
            let Some(a) = rows.column_by_name(&c.name) else {
                continue;
            };
            arrays.push(a.clone());
            cols.push(Col {
                staged: format!("c{i}"),
                target: c.name.clone(),
                key: c.key,
                ty: self.column_type(c).await?,
            });
        }
        for name in [&self.meta.op, &self.meta.lsn, &self.meta.toast_unchanged] {
            let a = rows.column_by_name(name).ok_or_else(|| {
                Error::new(ErrorKind::Encode, format!("internal: no {name} column"))
            })?;
            arrays.push(a.clone());
        }
        let mut defs: Vec<String> = cols
            .iter()
            .map(|c| format!("{} {}", c.staged, c.ty))
            .collect();
        defs.extend(
            [
                "m_op text",
                "m_lsn bigint",
                "m_toast text[]",
                "m_seq bigint",
            ]
            .map(String::from),
        );
        self.exec(
            "creating the staging table",
            &format!(
                "DROP TABLE IF EXISTS pg_temp._pgcdc_s; CREATE TEMP TABLE _pgcdc_s ({})",
                defs.join(", ")
            ),
        )
        .await?;
        let client = self.client().await?;
        let sink = client
            .copy_in("COPY pg_temp._pgcdc_s FROM STDIN")
            .await
            .map_err(|e| pg_err("staging rows", e))?;
        futures_util::pin_mut!(sink);
        let mut buf = String::with_capacity(1 << 20);
        for (seq, row) in range.enumerate() {
            for a in &arrays {
                crate::pgtext::copy_value(a, row, &mut buf)?;
                buf.push('\t');
            }
            buf.push_str(&seq.to_string());
            buf.push('\n');
            if buf.len() >= 1 << 20 {
                let chunk = Bytes::from(std::mem::take(&mut buf));
                sink.send(chunk)
                    .await
                    .map_err(|e| pg_err("staging rows", e))?;
            }
        }
        if !buf.is_empty() {
            sink.send(Bytes::from(buf))
                .await
                .map_err(|e| pg_err("staging rows", e))?;
        }
        sink.finish().await.map_err(|e| pg_err("staging rows", e))?;
        Ok(cols)
    }

    async fn apply(&mut self, table: &TableSchema, rows: &RecordBatch, step: Step) -> Result<()> {
        let name = table.table.name.clone();
        let target = self.target(&name);
        let (range, moved, unchanged) = match step {
            Step::Truncate => {
                if self.existing_columns(&name).await?.is_some() {
                    self.exec("truncating", &format!("TRUNCATE {target}"))
                        .await?;
                }
                return Ok(());
            }
            Step::Rows {
                range,
                moved,
                unchanged,
            } => (range, moved, unchanged),
        };
        let cols = self.stage(table, rows, range).await?;
        self.sync_schema(table, &cols).await?;
        let sql = if mirror::keyed(table) {
            keyed_sql(
                &target,
                &cols,
                moved,
                &unchanged,
                self.flag(table).as_deref(),
            )
        } else {
            multiset_sql(&target, &cols)
        };
        self.exec("applying changes", &sql).await
    }
}

/// The PostgreSQL type of an Arrow kind, for columns without a built-in source type.
fn kind_type(kind: &ValueKind) -> String {
    match kind {
        ValueKind::Bool => "boolean".into(),
        ValueKind::Int16 => "smallint".into(),
        ValueKind::Int32 => "integer".into(),
        ValueKind::Int64 | ValueKind::UInt32 => "bigint".into(),
        ValueKind::Float32 => "real".into(),
        ValueKind::Float64 | ValueKind::NumericFloat => "double precision".into(),
        ValueKind::Decimal128 { precision, scale } | ValueKind::Decimal256 { precision, scale } => {
            format!("numeric({precision},{scale})")
        }
        ValueKind::NumericString => "numeric".into(),
        // money's input reads the mirror's lc_monetary: a numeric holds the value as is.
        ValueKind::Money { scale } => {
            format!("numeric({},{scale})", pgcdc_core::types::MONEY_PRECISION)
        }
        ValueKind::Text => "text".into(),
        ValueKind::Json => "jsonb".into(),
        ValueKind::Bytea => "bytea".into(),
        ValueKind::Date => "date".into(),
        ValueKind::Time => "time without time zone".into(),
        ValueKind::TimeTz => "time with time zone".into(),
        ValueKind::Timestamp => "timestamp without time zone".into(),
        ValueKind::TimestampTz => "timestamp with time zone".into(),
        ValueKind::Uuid => "uuid".into(),
        ValueKind::Interval => "interval".into(),
        ValueKind::List { element } => format!("{}[]", kind_type(element)),
        // A composite's record text, hstore's text, a vector's floats: the mirror need
        // not have the source's type or extension.
        ValueKind::Struct { .. }
        | ValueKind::Hstore
        | ValueKind::Range { .. }
        | ValueKind::Multirange { .. } => "text".into(),
        ValueKind::Vector { .. } => "real[]".into(),
    }
}

/// Whether a column of type `wide` holds every value of type `narrow` (`format_type` names).
fn holds(wide: &str, narrow: &str) -> bool {
    const INTS: [&str; 3] = ["smallint", "integer", "bigint"];
    let rank = |t: &str| INTS.iter().position(|x| *x == t);
    if let (Some(w), Some(n)) = (rank(wide), rank(narrow)) {
        return w >= n;
    }
    if narrow == "real" && wide == "double precision" {
        return true;
    }
    let numeric = |t: &str| -> Option<Option<(u32, u32)>> {
        if t == "numeric" {
            return Some(None);
        }
        let inner = t.strip_prefix("numeric(")?.strip_suffix(')')?;
        let (p, s) = inner.split_once(',')?;
        Some(Some((p.trim().parse().ok()?, s.trim().parse().ok()?)))
    };
    match (numeric(wide), numeric(narrow)) {
        (Some(None), Some(_)) => return true,
        (Some(Some((wp, ws))), Some(Some((np, ns)))) => return ws >= ns && wp - ws >= np - ns,
        _ => {}
    }
    let varchar = |t: &str| -> Option<Option<u32>> {
        if t == "character varying" {
            return Some(None);
        }
        let n = t.strip_prefix("character varying(")?.strip_suffix(')')?;
        Some(Some(n.parse().ok()?))
    };
    match (varchar(wide), varchar(narrow)) {
        (Some(None), Some(_)) => true,
        (Some(Some(w)), Some(Some(n))) => w >= n,
        _ => wide == "text" && varchar(narrow).is_some(),
    }
}

/// Upsert/delete by key; TOAST-unchanged columns keep their previous value; with `soft`,
/// deleted rows the mirror knew stay, marked.
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
    let keys = keys.join(", ");
    let mut sql = String::new();
    if moved {
        sql.push_str(&move_sql(target, "pg_temp._pgcdc_s", cols, soft));
    }
    sql.push_str(&format!(
        "DROP TABLE IF EXISTS pg_temp._pgcdc_f; CREATE TEMP TABLE _pgcdc_f AS SELECT DISTINCT ON ({keys}) *, false AS m_known FROM pg_temp._pgcdc_s ORDER BY {keys}, m_seq DESC;\n"
    ));
    let kept: Vec<&Col> = cols
        .iter()
        .filter(|c| !c.key && (soft.is_some() || unchanged.contains(&c.target)))
        .collect();
    if soft.is_some() {
        // A deleted row keeps every value it had: mark them all as kept.
        let names: Vec<String> = kept.iter().map(|c| quote_literal(&c.target)).collect();
        sql.push_str(&format!(
            "UPDATE pg_temp._pgcdc_f f SET m_toast = ARRAY[{}]::text[], m_known = EXISTS (SELECT 1 FROM pg_temp._pgcdc_s s WHERE {} AND s.m_op <> 'delete') OR EXISTS (SELECT 1 FROM {target} _t WHERE {}) WHERE m_op = 'delete';\n",
            names.join(", "),
            staged_key_match(cols, "s", "f"),
            key_match(cols, "_t", "f")
        ));
    }
    if !kept.is_empty() {
        sql.push_str(&format!(
            "CREATE INDEX ON pg_temp._pgcdc_s ({keys}, m_seq);\n"
        ));
    }
    for c in kept {
        let n = quote_literal(&c.target);
        let earlier = format!(
            "FROM pg_temp._pgcdc_s s WHERE {} AND s.m_seq < f.m_seq AND s.m_op <> 'delete' AND NOT ({n} = ANY(coalesce(s.m_toast, '{{}}')))",
            staged_key_match(cols, "s", "f")
        );
        sql.push_str(&format!(
            "UPDATE pg_temp._pgcdc_f f SET {s} = (SELECT s.{s} {earlier} ORDER BY s.m_seq DESC LIMIT 1), m_toast = array_remove(f.m_toast, {n}) WHERE {n} = ANY(f.m_toast) AND EXISTS (SELECT 1 {earlier});\n",
            s = c.staged
        ));
        sql.push_str(&format!(
            "UPDATE pg_temp._pgcdc_f f SET {s} = _t.{t} FROM {target} _t WHERE {} AND {n} = ANY(f.m_toast);\n",
            key_match(cols, "_t", "f"),
            s = c.staged,
            t = quote_ident(&c.target)
        ));
    }
    sql.push_str(&format!(
        "DELETE FROM {target} AS _t USING pg_temp._pgcdc_f f WHERE {};\n",
        key_match(cols, "_t", "f")
    ));
    let rows = if soft.is_some() {
        "pg_temp._pgcdc_f WHERE m_op <> 'delete' OR m_known"
    } else {
        "pg_temp._pgcdc_f WHERE m_op <> 'delete'"
    };
    sql.push_str(&insert_sql(target, cols, soft, rows));
    sql
}

/// Rows as a multiset (compared by their text form, which every type has).
fn multiset_sql(target: &str, cols: &[Col]) -> String {
    let staged: Vec<&str> = cols.iter().map(|c| c.staged.as_str()).collect();
    let list = staged.join(", ");
    let texts: Vec<String> = staged.iter().map(|s| format!("{s}::text")).collect();
    let texts = texts.join(", ");
    let same: Vec<String> = cols
        .iter()
        .map(|c| {
            format!(
                "_t.{}::text IS NOT DISTINCT FROM n.{}::text",
                quote_ident(&c.target),
                c.staged
            )
        })
        .collect();
    let weight = MULTISET_WEIGHT;
    let mut sql = format!(
        "DROP TABLE IF EXISTS pg_temp._pgcdc_n; CREATE TEMP TABLE _pgcdc_n AS SELECT *, row_number() OVER () AS m_i FROM (SELECT DISTINCT ON ({texts}) {list}, (sum(m_w) OVER (PARTITION BY {texts}))::bigint AS m_n FROM (SELECT *, {weight} AS m_w FROM pg_temp._pgcdc_s WINDOW w AS (ORDER BY m_seq)) x ORDER BY {texts}) y;\n"
    );
    sql.push_str(&format!(
        "DELETE FROM {target} WHERE ctid IN (SELECT r FROM (SELECT _t.ctid AS r, row_number() OVER (PARTITION BY n.m_i) AS rn, n.m_n FROM {target} _t JOIN pg_temp._pgcdc_n n ON {} WHERE n.m_n < 0) x WHERE rn <= -m_n);\n",
        same.join(" AND ")
    ));
    sql.push_str(&insert_sql(
        target,
        cols,
        None,
        "pg_temp._pgcdc_n, generate_series(1, m_n) WHERE m_n > 0",
    ));
    sql
}

#[async_trait]
impl Destination for PostgresDestination {
    fn describe(&self) -> String {
        format!(
            "PostgreSQL {} (schema {})",
            self.config.location, self.config.dataset
        )
    }

    async fn open(&mut self) -> Result<Option<Committed>> {
        self.rollback().await?;
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
        for name in existing.iter().flat_map(|s| s.tables.keys()) {
            let t = self.target(name);
            self.exec("dropping a table", &format!("DROP TABLE IF EXISTS {t}"))
                .await?;
        }
        let state = self.book.start(checkpoint);
        self.write_state(&state).await?;
        self.in_tx = false;
        self.exec("committing", "COMMIT").await?;
        self.columns.clear();
        self.book.state = Some(state);
        Ok(true)
    }

    async fn write(&mut self, table: &TableSchema, rows: RecordBatch) -> Result<()> {
        if rows.num_rows() == 0 {
            return Ok(());
        }
        self.book.admit(table, self.config.soft_delete.as_deref())?;
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
        self.in_tx = false;
        self.exec("committing", "COMMIT").await?;
        crate::failpoint("mirror.after_commit");
        self.book.state = Some(state);
        Ok(())
    }

    async fn rollback(&mut self) -> Result<()> {
        if self.in_tx {
            self.in_tx = false;
            // A lost connection has rolled back by itself (the client may not know yet).
            if let Some(c) = self.client.as_ref().filter(|c| !c.is_closed()) {
                if let Err(e) = c.batch_execute("ROLLBACK").await {
                    tracing::debug!(error = %e, "mirror rollback failed; dropping the connection");
                    self.client = None;
                }
            }
        }
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
        assert!(holds("bigint", "integer"));
        assert!(!holds("integer", "bigint"));
        assert!(holds("double precision", "real"));
        assert!(holds("numeric(16,3)", "numeric(12,2)"));
        assert!(holds("numeric", "numeric(12,2)"));
        assert!(!holds("numeric(12,2)", "numeric"));
        assert!(holds("text", "character varying(5)"));
        assert!(holds("character varying(9)", "character varying(5)"));
        assert!(!holds("character varying(4)", "character varying(5)"));
        assert!(!holds("text", "integer"));
    }
}
