//! The PostgreSQL mirror destination: each source table as a table in another PostgreSQL
//! database (or another schema), equal to the source after every commit. The mirror
//! itself is [`crate::sql_mirror`]; this module is its PostgreSQL dialect: connections,
//! staging, type names and SQL spelling.
//!
//! Types: a column of a built-in type gets the source's own type (`format_type` of its
//! OID and typmod, evaluated by the target: built-in OIDs are the same in every
//! PostgreSQL), so `inet`, `tsvector` or `numeric(12,2)` stay what they are; enums,
//! domains and extension types, and columns with a type hint, get the type of their Arrow
//! kind (text for enums). Values travel as `COPY … FROM STDIN` text ([`crate::pgtext`]) into
//! a temporary staging table per step, merged by SQL. Mirror tables have the source's
//! primary key; rows without a key are compared by their text form (every type has one).
//!
//! Widening type changes (smallint → integer → bigint, real → double precision, numeric
//! with room for the old values, longer or unbounded varchar, varchar → text) are applied
//! with `ALTER TABLE`.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::SinkExt;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use pgcdc_core::{quote_ident, Column, MetaColumns, ValueKind};

use crate::mirror::MirrorMeta;
use crate::mirror_sql::alter_sql;
use crate::sql_mirror::{Change, Col, Columns, Dialect, SqlMirror, Staging};
use crate::widening::{two_args, Shape};
use crate::{Error, ErrorKind, Result};

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
pub type PostgresDestination = SqlMirror<Postgres>;

impl SqlMirror<Postgres> {
    /// A destination writing through connections from `connect`.
    pub fn new(config: PostgresConfig, connect: Connector) -> Result<Self> {
        let meta = MirrorMeta::new(&config.meta)?;
        let dialect = Postgres {
            location: config.location,
            connect,
            client: None,
            type_names: HashMap::new(),
        };
        Ok(SqlMirror::with(
            dialect,
            config.dataset,
            config.soft_delete,
            meta,
        ))
    }
}

/// The PostgreSQL [`Dialect`]: one connection from a [`Connector`].
pub struct Postgres {
    location: String,
    connect: Connector,
    client: Option<Client>,
    /// `format_type` of built-in (OID, typmod) pairs, None for an OID the target lacks.
    type_names: HashMap<(u32, i32), Option<String>>,
}

/// The first OID of user-defined objects: OIDs below it are built in.
const FIRST_NORMAL_OBJECT_ID: u32 = 16384;

/// The retry rule of a PostgreSQL error, by its SQLSTATE: a lost connection (class 08),
/// a server going down or cancelling (class 57: 57P01..57P03 shutdown and restart),
/// resources running out (class 53: 53300 too many connections, memory, disk) and a
/// transaction the server chose to abort (40001 serialization failure, 40P01 deadlock)
/// are transient; refused credentials (class 28) and a missing privilege (42501) are
/// permanent until someone fixes the role; other class-42 errors (a statement the
/// target cannot run, e.g. an unknown type) are configuration; the rest are data errors.
fn sqlstate_kind(code: &SqlState) -> ErrorKind {
    let class = code.code().get(..2).unwrap_or_default();
    if matches!(class, "08" | "53" | "57")
        || *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
    {
        ErrorKind::Unavailable
    } else if class == "28" || *code == SqlState::INSUFFICIENT_PRIVILEGE {
        ErrorKind::Denied
    } else if class == "42" {
        ErrorKind::InvalidConfig
    } else {
        ErrorKind::Encode
    }
}

fn pg_err(what: &str, e: tokio_postgres::Error) -> Error {
    let (kind, detail, hint) = match e.as_db_error() {
        Some(db) => {
            let hint = if *db.code() == SqlState::INSUFFICIENT_PRIVILEGE {
                "; the mirror's role needs CREATE on the database (for the schema) and on the schema"
            } else {
                ""
            };
            (
                sqlstate_kind(db.code()),
                format!("{} ({})", db.message(), db.code().code()),
                hint,
            )
        }
        None if e.is_closed() => (
            ErrorKind::Unavailable,
            "the connection is closed".into(),
            "",
        ),
        None => (ErrorKind::Unavailable, e.to_string(), ""),
    };
    Error::new(kind, format!("PostgreSQL mirror: {what}: {detail}{hint}")).with_source(e)
}

impl Postgres {
    fn client(&self) -> Result<&Client> {
        self.client
            .as_ref()
            .ok_or_else(|| Error::new(ErrorKind::Unavailable, "no connection to the mirror"))
    }

    /// The target type of a column: the source's own for built-in types, else its kind's.
    async fn column_type(&mut self, c: &Column) -> Result<String> {
        let money = matches!(&c.kind, ValueKind::Money { .. })
            || matches!(&c.kind, ValueKind::List { element } if matches!(**element, ValueKind::Money { .. }));
        if !c.hinted && !money && c.type_oid < FIRST_NORMAL_OBJECT_ID {
            let key = (c.type_oid, c.type_modifier);
            if !self.type_names.contains_key(&key) {
                let row = self
                    .client()?
                    .query_one(
                        "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_type WHERE oid = $1) THEN format_type($1, $2) END",
                        &[&c.type_oid as &(dyn tokio_postgres::types::ToSql + Sync), &c.type_modifier],
                    )
                    .await
                    .map_err(|e| pg_err("looking up a type", e))?;
                let name = row
                    .try_get::<_, Option<String>>(0)
                    .map_err(|e| pg_err("looking up a type", e))?;
                self.type_names.insert(key, name);
            }
            if let Some(Some(name)) = self.type_names.get(&key) {
                return Ok(name.clone());
            }
        }
        Ok(kind_type(&c.kind))
    }
}

#[async_trait]
impl Dialect for Postgres {
    const NAME: &'static str = "PostgreSQL";
    const STATE_COLUMNS: &'static str = "id int PRIMARY KEY, state text NOT NULL";
    // Named explicitly, so a table of the same name earlier in the search path cannot
    // stand in for a temporary one.
    const TEMP: &'static str = "pg_temp.";
    const ROW_ID: &'static str = "ctid";

    fn location(&self) -> String {
        self.location.clone()
    }

    fn connected(&self) -> bool {
        self.client.as_ref().is_some_and(|c| !c.is_closed())
    }

    fn disconnect(&mut self) {
        self.client = None;
    }

    async fn connect(&mut self) -> Result<()> {
        self.client = Some((self.connect)().await?);
        Ok(())
    }

    async fn exec(&mut self, what: &str, sql: &str) -> Result<()> {
        self.client()?
            .batch_execute(sql)
            .await
            .map_err(|e| pg_err(what, e))
    }

    async fn query_text(&mut self, what: &str, sql: &str) -> Result<Option<String>> {
        let row = self
            .client()?
            .query_opt(sql, &[])
            .await
            .map_err(|e| pg_err(what, e))?;
        row.map(|r| r.try_get::<_, String>(0).map_err(|e| pg_err(what, e)))
            .transpose()
    }

    async fn columns(&mut self, schema: &str, table: &str) -> Result<Option<Columns>> {
        let target = format!("{}.{}", quote_ident(schema), quote_ident(table));
        let c = self.client()?;
        let exists = c
            .query_one("SELECT to_regclass($1)::oid", &[&target])
            .await
            .map_err(|e| pg_err("looking up a table", e))?
            .try_get::<_, Option<u32>>(0)
            .map_err(|e| pg_err("looking up a table", e))?;
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
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, tokio_postgres::Error>>()
            .map(Some)
            .map_err(|e| pg_err("reading a table's columns", e))
    }

    /// Loads the rows into the temporary staging table `_pgcdc_s` by `COPY`.
    async fn stage(&mut self, rows: Staging<'_>) -> Result<Vec<Col>> {
        let mut cols = rows.cols;
        for (c, source) in cols.iter_mut().zip(&rows.sources) {
            c.ty = self.column_type(source).await?;
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
        let sink = self
            .client()?
            .copy_in("COPY pg_temp._pgcdc_s FROM STDIN")
            .await
            .map_err(|e| pg_err("staging rows", e))?;
        futures_util::pin_mut!(sink);
        let mut buf = String::with_capacity(1 << 20);
        for (seq, row) in rows.range.enumerate() {
            for a in &rows.arrays {
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

    fn same_name(a: &str, b: &str) -> bool {
        a == b
    }

    /// `format_type` names.
    fn shape(ty: &str) -> Shape {
        match ty {
            "smallint" => Shape::Int(2),
            "integer" => Shape::Int(4),
            "bigint" => Shape::Int(8),
            "real" => Shape::Float(4),
            "double precision" => Shape::Float(8),
            "numeric" => Shape::AnyDecimal,
            "character varying" => Shape::Varchar(None),
            "text" => Shape::Text { decimals: false },
            _ => {
                if let Some((precision, scale)) = two_args(ty, "numeric") {
                    return Shape::Decimal { precision, scale };
                }
                let length = ty
                    .strip_prefix("character varying(")
                    .and_then(|t| t.strip_suffix(')'))
                    .and_then(|n| n.parse().ok());
                length.map_or(Shape::Other, |n| Shape::Varchar(Some(n)))
            }
        }
    }

    fn write_state_sql(table: &str, json: &str) -> String {
        format!(
            "INSERT INTO {table} VALUES (1, {json}) ON CONFLICT (id) DO UPDATE SET state = excluded.state"
        )
    }

    fn create_sql(target: &str, cols: &[Col], flag: Option<&str>, keyed: bool) -> String {
        let mut defs: Vec<String> = cols
            .iter()
            .map(|c| format!("{} {}", quote_ident(&c.target), c.ty))
            .collect();
        if let Some(f) = flag {
            defs.push(format!("{} {FLAG}", quote_ident(f)));
        }
        if keyed {
            let keys: Vec<String> = cols
                .iter()
                .filter(|c| c.key)
                .map(|c| quote_ident(&c.target))
                .collect();
            defs.push(format!("PRIMARY KEY ({})", keys.join(", ")));
        }
        format!("CREATE TABLE {target} ({})", defs.join(", "))
    }

    fn change_sql(change: &Change<'_>) -> String {
        let flag = change.added_flag.map(|f| (f, FLAG));
        alter_sql(&change.target(), change.old, change.new, flag)
    }

    fn create_temp(name: &str) -> String {
        format!("DROP TABLE IF EXISTS pg_temp.{name}; CREATE TEMP TABLE {name} AS")
    }

    fn list_has(list: &str, item: &str) -> String {
        format!("coalesce({item} = ANY({list}), false)")
    }

    /// The text form: some types (json, point, …) have no equality.
    fn comparable(expr: &str) -> String {
        format!("{expr}::text")
    }

    fn per_distinct_row(list: &[&str], from: &str) -> String {
        let texts: Vec<String> = list.iter().map(|s| Self::comparable(s)).collect();
        let texts = texts.join(", ");
        format!(
            "SELECT DISTINCT ON ({texts}) {}, (sum(m_w) OVER (PARTITION BY {texts}))::bigint AS m_n FROM {from} ORDER BY {texts}",
            list.join(", ")
        )
    }
}

/// The soft-delete column's definition: false in existing and new rows.
const FLAG: &str = "boolean NOT NULL DEFAULT false";

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
