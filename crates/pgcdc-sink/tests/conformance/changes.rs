//! The suite's input, built with pgcdc-core's own types the way the pipeline builds it:
//! table schemas ([`table`]), changelog rows ([`Change`], turned into a record batch of
//! `TableSchema::arrow_schema(meta)` by [`batch`]) and checkpoints ([`checkpoint`]).
//!
//! Values are JSON (`null`, integers, strings), the form the readers give back, so one
//! function ([`Change::value`]) says both what a batch holds and what a changelog read
//! back must hold.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{
    ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::DataType;
use pgcdc_core::{
    Checkpoint, Column, Lsn, MetaColumns, MetaPreset, Op, ReplicaIdentity, SourceIdentity,
    TableName, TableSchema, ValueKind,
};
use serde_json::{json, Value};

/// The metadata columns of every batch (pgcdc's preset: all of them).
pub fn meta() -> MetaColumns {
    MetaColumns::preset(MetaPreset::Pgcdc)
}

/// The column types the suite uses.
#[derive(Clone, Copy)]
pub enum Ty {
    /// `bigint`.
    Int8,
    /// `integer`.
    Int4,
    /// `text`.
    Text,
}

/// A column: name, type, and whether it is part of the replica-identity key.
pub type ColumnSpec<'a> = (&'a str, Ty, bool);

/// A source table `public.<name>`.
pub fn table(name: &str, columns: &[ColumnSpec], identity: ReplicaIdentity) -> TableSchema {
    TableSchema {
        table: TableName::new("public", name),
        columns: columns
            .iter()
            .map(|&(name, ty, key)| {
                let (type_oid, kind) = match ty {
                    Ty::Int8 => (20, ValueKind::Int64),
                    Ty::Int4 => (23, ValueKind::Int32),
                    Ty::Text => (25, ValueKind::Text),
                };
                Column {
                    name: name.into(),
                    type_oid,
                    type_modifier: -1,
                    kind,
                    key,
                    hinted: false,
                }
            })
            .collect(),
        replica_identity: identity,
    }
}

/// A keyed table `(id bigint key, <columns>)` with the default replica identity.
pub fn keyed(name: &str, columns: &[ColumnSpec]) -> TableSchema {
    let mut all = vec![("id", Ty::Int8, true)];
    all.extend_from_slice(columns);
    table(name, &all, ReplicaIdentity::Default)
}

/// The checkpoint at `lsn`, with extension state a destination must keep verbatim.
pub fn checkpoint(lsn: u64) -> Checkpoint {
    let mut extra = serde_json::Map::new();
    extra.insert(
        "conformance".into(),
        json!({ "lsn": lsn, "note": "kept as is" }),
    );
    Checkpoint {
        lsn: Lsn(lsn),
        source: SourceIdentity {
            system_identifier: "7400000000000000001".into(),
            database: "source".into(),
            slot: "conformance".into(),
        },
        committed_at: "2026-01-02T03:04:05.000006Z".into(),
        extra,
    }
}

/// One changelog row: what happened, at which LSN, to which values.
#[derive(Debug, Clone)]
pub struct Change {
    op: Op,
    lsn: i64,
    /// Source column values in column order; missing trailing ones are NULL.
    values: Vec<Value>,
    /// Columns whose unchanged TOASTed value was not sent (NULL list when None).
    unchanged: Option<Vec<String>>,
}

fn change(op: Op, lsn: i64, values: Value) -> Change {
    let values = match values {
        Value::Array(v) => v,
        other => panic!("values are a JSON array, not {other}"),
    };
    Change {
        op,
        lsn,
        values,
        unchanged: None,
    }
}

/// An INSERT of `values` (a JSON array).
pub fn insert(lsn: i64, values: Value) -> Change {
    change(Op::Insert, lsn, values)
}

/// An UPDATE to `values`.
pub fn update(lsn: i64, values: Value) -> Change {
    change(Op::Update, lsn, values)
}

/// An UPDATE to `values` whose columns `unchanged` kept their TOASTed value (sent NULL).
pub fn update_toast(lsn: i64, values: Value, unchanged: &[&str]) -> Change {
    Change {
        unchanged: Some(unchanged.iter().map(|s| s.to_string()).collect()),
        ..change(Op::Update, lsn, values)
    }
}

/// A DELETE carrying `values` (the old key, or the whole old row).
pub fn delete(lsn: i64, values: Value) -> Change {
    change(Op::Delete, lsn, values)
}

/// A TRUNCATE (every source column NULL).
pub fn truncate(lsn: i64) -> Change {
    change(Op::Truncate, lsn, json!([]))
}

/// Microseconds since the epoch of 2026-01-01 00:00 UTC, the commit times' base.
const COMMIT_TS_BASE: i64 = 1_767_225_600_000_000;

impl Change {
    /// The value of field `index` of `table`'s changelog schema in this row.
    pub fn value(&self, table: &TableSchema, index: usize) -> Value {
        if index < table.columns.len() {
            return self.values.get(index).cloned().unwrap_or(Value::Null);
        }
        let schema = table.arrow_schema(&meta());
        let name = schema.field(index).name().as_str();
        let m = meta();
        if name == m.lsn || name == m.commit_lsn || m.xid.as_deref() == Some(name) {
            json!(self.lsn)
        } else if m.op.as_deref() == Some(name) {
            json!(self.op.as_str())
        } else if m.commit_ts.as_deref() == Some(name) {
            json!(COMMIT_TS_BASE + self.lsn)
        } else if name == m.toast_unchanged {
            json!(self.unchanged)
        } else {
            panic!("the suite does not build metadata column {name}")
        }
    }
}

/// The record batch of `changes` to `table`, as the pipeline hands it to a destination.
pub fn batch(table: &TableSchema, changes: &[Change]) -> RecordBatch {
    let schema = Arc::new(table.arrow_schema(&meta()));
    let columns = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let values: Vec<Value> = changes.iter().map(|c| c.value(table, i)).collect();
            array(field.data_type(), &values)
        })
        .collect();
    RecordBatch::try_new(schema, columns).expect("a batch of the changelog schema")
}

/// An Arrow array of `values` of type `ty` (the types [`batch`] builds).
fn array(ty: &DataType, values: &[Value]) -> ArrayRef {
    match ty {
        DataType::Int64 => Arc::new(values.iter().map(Value::as_i64).collect::<Int64Array>()),
        DataType::Int32 => Arc::new(
            values
                .iter()
                .map(|v| v.as_i64().map(|i| i32::try_from(i).expect("an int4")))
                .collect::<Int32Array>(),
        ),
        DataType::Utf8 => Arc::new(values.iter().map(Value::as_str).collect::<StringArray>()),
        DataType::Timestamp(_, tz) => Arc::new(
            values
                .iter()
                .map(Value::as_i64)
                .collect::<TimestampMicrosecondArray>()
                .with_timezone_opt(tz.clone()),
        ),
        DataType::List(_) => {
            let mut list = ListBuilder::new(StringBuilder::new());
            for v in values {
                match v.as_array() {
                    Some(names) => {
                        for n in names {
                            list.values().append_option(n.as_str());
                        }
                        list.append(true);
                    }
                    None => list.append(false),
                }
            }
            Arc::new(list.finish())
        }
        other => panic!("the suite does not build {other} columns"),
    }
}
