//! Source tables and their columns, as pgcdc sees them.

use std::fmt;

use arrow_schema::{DataType, Field, Schema, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::{MetaColumns, ValueKind};

/// A schema-qualified table name. Displays quoted, safe to splice into SQL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableName {
    /// The namespace (schema).
    pub schema: String,
    /// The table's own name.
    pub name: String,
}

impl TableName {
    /// A table `name` in `schema`.
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        TableName {
            schema: schema.into(),
            name: name.into(),
        }
    }
}

/// Quotes an SQL identifier: wraps it in `"` and doubles any `"` inside.
pub fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Quotes an SQL string literal: wraps it in `'` and doubles any `'` inside.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}",
            quote_ident(&self.schema),
            quote_ident(&self.name)
        )
    }
}

/// Which old-row columns PostgreSQL logs for updates and deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplicaIdentity {
    /// The primary key (`d`).
    Default,
    /// No old row (`n`): updates and deletes cannot be published.
    Nothing,
    /// The whole old row (`f`).
    Full,
    /// The columns of a unique index (`i`).
    Index,
}

impl ReplicaIdentity {
    /// From pgoutput's / `pg_class.relreplident`'s one-letter code.
    pub fn from_code(c: u8) -> Option<Self> {
        match c {
            b'd' => Some(ReplicaIdentity::Default),
            b'n' => Some(ReplicaIdentity::Nothing),
            b'f' => Some(ReplicaIdentity::Full),
            b'i' => Some(ReplicaIdentity::Index),
            _ => None,
        }
    }
}

/// One replicated column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Column name as in the source.
    pub name: String,
    /// The column's type OID (a domain's own OID, not its base type's).
    pub type_oid: u32,
    /// The column's typmod (-1 when none).
    pub type_modifier: i32,
    /// How values are parsed and stored.
    pub kind: ValueKind,
    /// Part of the replica-identity key.
    pub key: bool,
    /// The kind comes from a column hint, not from the type: values must be read in
    /// their text form (the type's binary form need not match the hinted kind).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hinted: bool,
}

/// A replicated table's shape at one point of the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    /// The table (for partitions published via the root: the root).
    pub table: TableName,
    /// Columns in source order, after `include_columns`.
    pub columns: Vec<Column>,
    /// The table's replica identity.
    pub replica_identity: ReplicaIdentity,
}

impl TableSchema {
    /// The Arrow schema of changelog rows: source columns, then the metadata columns.
    pub fn arrow_schema(&self, meta: &MetaColumns) -> Schema {
        let mut fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| c.kind.arrow_field(&c.name))
            .collect();
        fields.push(Field::new(&meta.lsn, DataType::Int64, false));
        fields.push(Field::new(&meta.commit_lsn, DataType::Int64, true));
        if let Some(n) = &meta.op {
            fields.push(Field::new(n, DataType::Utf8, false));
        }
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        if let Some(n) = &meta.commit_ts {
            fields.push(Field::new(n, ts.clone(), true));
        }
        if let Some(n) = &meta.xid {
            fields.push(Field::new(n, DataType::Int64, true));
        }
        if let Some(n) = &meta.deleted_ts {
            fields.push(Field::new(n, ts, true));
        }
        let item = Field::new("item", DataType::Utf8, true);
        fields.push(Field::new(
            &meta.toast_unchanged,
            DataType::List(item.into()),
            true,
        ));
        Schema::new(fields)
    }

    /// Names of the replica-identity key columns.
    pub fn key_columns(&self) -> impl Iterator<Item = &str> {
        self.columns
            .iter()
            .filter(|c| c.key)
            .map(|c| c.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_identifiers_are_quoted() {
        let t = TableName::new("we\"ird", "x\"; DROP TABLE y; --");
        assert_eq!(t.to_string(), "\"we\"\"ird\".\"x\"\"; DROP TABLE y; --\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
