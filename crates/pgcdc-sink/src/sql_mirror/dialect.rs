//! What one SQL database brings to the generic [`SqlMirror`](super::SqlMirror): its
//! connection, how a step's rows reach a staging table, how it describes a table's
//! columns, and the few places its SQL is spelled differently. Everything else (the
//! transaction and state handling, schema evolution, the merge SQL) is the generic's.

use std::ops::Range;

use arrow_array::ArrayRef;
use arrow_schema::Field;
use async_trait::async_trait;
use pgcdc_core::Column;

use crate::widening::Shape;
use crate::Result;

/// A table's columns: name → type (in the dialect's spelling), in table order.
pub type Columns = Vec<(String, String)>;

/// A change of a mirror table's columns, for [`Dialect::change_sql`].
pub struct Change<'a> {
    /// The schema, quoted.
    pub schema: &'a str,
    /// The table's name (unquoted).
    pub table: &'a str,
    /// The columns it has.
    pub old: &'a [(String, String)],
    /// The columns it gets: `old` in the same order (some types widened), new ones at
    /// the end.
    pub new: &'a [(String, String)],
    /// The soft-delete column, when it is among the new ones: false in existing rows.
    pub added_flag: Option<&'a str>,
    /// The open transaction changed the table's rows.
    pub rewritten: bool,
}

impl Change<'_> {
    /// The table, schema-qualified and quoted.
    pub fn target(&self) -> String {
        format!("{}.{}", self.schema, pgcdc_core::quote_ident(self.table))
    }
}

/// One staged column: its name in the staging table (`c0..cN`) and in the mirror, whether
/// it is part of the key, and its type in the dialect's spelling.
#[derive(Debug, Clone)]
pub struct Col {
    /// The staging table's name for it.
    pub staged: String,
    /// The mirror table's (the source's) name for it.
    pub target: String,
    /// Part of the key.
    pub key: bool,
    /// Its type, as the dialect names it (filled in by [`Dialect::stage`]).
    pub ty: String,
}

/// The rows of one step, ready to stage: the source columns present in the batch, then
/// the operation, LSN and TOAST-unchanged metadata columns (staged as `m_op`, `m_lsn`,
/// `m_toast`), with a row sequence number `m_seq` (0, 1, …) the dialect adds.
pub struct Staging<'a> {
    /// The staged source columns (types not yet filled in).
    pub cols: Vec<Col>,
    /// The source column of each of `cols`.
    pub sources: Vec<&'a Column>,
    /// The batch's field of each staged column and metadata column, renamed as staged.
    pub fields: Vec<Field>,
    /// The batch's array of each field (whole batch: only `range` is staged).
    pub arrays: Vec<ArrayRef>,
    /// Which rows of the batch.
    pub range: Range<usize>,
}

/// A SQL database a mirror can live in. Methods that talk to the database are called
/// only once [`Dialect::connected`] is true (the generic connects first).
#[async_trait]
pub trait Dialect: Send {
    /// The database's name, for messages.
    const NAME: &'static str;
    /// The state table's column definitions (`id`, `state`).
    const STATE_COLUMNS: &'static str;
    /// The qualifier naming a temporary table (`pg_temp.` or nothing).
    const TEMP: &'static str;
    /// The column addressing one physical row (`ctid`, `rowid`).
    const ROW_ID: &'static str;

    /// Where the database is, for messages (never a secret).
    fn location(&self) -> String;
    /// Whether there is a usable connection.
    fn connected(&self) -> bool;
    /// Forgets the connection (closing it discards whatever it had open).
    fn disconnect(&mut self);
    /// Opens a connection (with the session's settings).
    async fn connect(&mut self) -> Result<()>;
    /// Runs statements; `what` says what for an error message.
    async fn exec(&mut self, what: &str, sql: &str) -> Result<()>;
    /// The first column of the first row `sql` returns, as text; None without rows.
    async fn query_text(&mut self, what: &str, sql: &str) -> Result<Option<String>>;
    /// Column name → type of table `table` in schema `schema` (unquoted names), in order;
    /// None when there is no such table.
    async fn columns(&mut self, schema: &str, table: &str) -> Result<Option<Columns>>;
    /// Loads the rows into the temporary table `_pgcdc_s` (replacing an earlier one);
    /// returns the staged columns with their types.
    async fn stage(&mut self, rows: Staging<'_>) -> Result<Vec<Col>>;
    /// Removes what an interrupted run left outside the database (at `open`).
    fn recover(&mut self) {}

    /// Whether two column names name the same column.
    fn same_name(a: &str, b: &str) -> bool;
    /// What the widening rule sees of a type name.
    fn shape(ty: &str) -> Shape;
    /// Writes `json` (a quoted literal) as the only row (id 1) of the state table.
    fn write_state_sql(table: &str, json: &str) -> String;
    /// Creates mirror table `target` with the staged columns (and the soft-delete `flag`,
    /// false); with its key as primary key where the dialect keeps one.
    fn create_sql(target: &str, cols: &[Col], flag: Option<&str>, keyed: bool) -> String;
    /// The DDL making a change of a mirror table's columns.
    fn change_sql(change: &Change<'_>) -> String;
    /// The start of a statement creating temporary table `name` as a query's result
    /// (replacing an earlier one), up to and including `AS`.
    fn create_temp(name: &str) -> String;
    /// Whether the text list `list` (maybe NULL) holds the text `item`, as a boolean
    /// expression (never NULL).
    fn list_has(list: &str, item: &str) -> String;
    /// `expr` in a form whose equality compares two values of its type.
    fn comparable(expr: &str) -> String;
    /// A query giving one row per distinct row of columns `list` of `from` (rows carrying
    /// a weight `m_w`), with the total weight as `m_n` (a 64-bit integer).
    fn per_distinct_row(list: &[&str], from: &str) -> String;
}
