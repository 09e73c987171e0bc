//! Row assembly: changes of one table appended to Arrow builders, finished into record
//! batches with the changelog schema (source columns + metadata columns).

use std::sync::Arc;

use anyhow::{anyhow, Result};
use arrow_array::builder::{Int64Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::SchemaRef;

use pgcdc_core::{MetaColumns, Op, TableSchema, ValuePolicy};
use pgcdc_source::values::{BinaryForm, ColumnBuilder};

/// Metadata of one change row.
#[derive(Debug, Clone, Copy)]
pub struct RowMeta {
    /// LSN of the change record.
    pub lsn: i64,
    /// LSN of the commit record (the snapshot's LSN for snapshot rows); None while unknown.
    pub commit_lsn: Option<i64>,
    /// Operation.
    pub op: Op,
    /// Commit time, µs since the Unix epoch (None while unknown).
    pub commit_ts: Option<i64>,
    /// Transaction id.
    pub xid: Option<u32>,
}

/// One value of a row, as the decoder hands it over.
#[derive(Debug, Clone, Copy)]
pub enum Cell<'a> {
    /// SQL NULL.
    Null,
    /// An unchanged TOASTed value PostgreSQL did not send.
    Unchanged,
    /// Text-format value.
    Text(&'a [u8]),
    /// Binary-format (send) value, read in the column's form (binary COPY of the kinds
    /// `ColumnBuilder::binary_kind` accepts: `values::NATIVE`); None when the column's
    /// type has no binary reader (an error when appended).
    Binary(&'a [u8], Option<&'a BinaryForm>),
}

/// Arrow builders for one table's changelog rows.
pub struct TableBuffer {
    /// The table's schema these builders follow.
    pub schema: Arc<TableSchema>,
    arrow: SchemaRef,
    columns: Vec<ColumnBuilder>,
    lsn: Int64Builder,
    commit_lsn: Int64Builder,
    op: Option<StringBuilder>,
    commit_ts: Option<TimestampMicrosecondBuilder>,
    xid: Option<Int64Builder>,
    deleted_ts: Option<TimestampMicrosecondBuilder>,
    toast: ListBuilder<StringBuilder>,
    rows: usize,
    bytes: usize,
    toast_names: Vec<usize>,
}

fn ts_builder() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("UTC")
}

impl TableBuffer {
    /// Empty builders for `schema`.
    pub fn new(schema: Arc<TableSchema>, meta: &MetaColumns) -> Self {
        let arrow = Arc::new(schema.arrow_schema(meta));
        let columns = schema
            .columns
            .iter()
            .map(|c| ColumnBuilder::new(c.kind.clone(), 1024))
            .collect();
        TableBuffer {
            schema,
            arrow,
            columns,
            lsn: Int64Builder::new(),
            commit_lsn: Int64Builder::new(),
            op: meta.op.as_ref().map(|_| StringBuilder::new()),
            commit_ts: meta.commit_ts.as_ref().map(|_| ts_builder()),
            xid: meta.xid.as_ref().map(|_| Int64Builder::new()),
            deleted_ts: meta.deleted_ts.as_ref().map(|_| ts_builder()),
            toast: ListBuilder::new(StringBuilder::new()),
            rows: 0,
            bytes: 0,
            toast_names: Vec::new(),
        }
    }

    /// Rows buffered.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Approximate bytes buffered (wire bytes of the values plus fixed costs).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Appends a row. `cells` yields one cell per relation column; `map` says where each
    /// goes (None = excluded). `old` is the old row (REPLICA IDENTITY FULL), used to fill
    /// unchanged TOAST values.
    pub fn append<'a>(
        &mut self,
        cells: impl Iterator<Item = Cell<'a>>,
        old: Option<&[Cell<'a>]>,
        map: &[Option<usize>],
        meta: RowMeta,
        policy: &ValuePolicy,
    ) -> Result<()> {
        let mut seen = 0usize;
        self.toast_names.clear();
        for (i, cell) in cells.enumerate() {
            let Some(Some(target)) = map.get(i).copied() else {
                if i >= map.len() {
                    return Err(anyhow!(
                        "row of {} has more columns than its Relation message",
                        self.schema.table
                    ));
                }
                continue;
            };
            let cell = match (cell, old.and_then(|o| o.get(i))) {
                (Cell::Unchanged, Some(Cell::Text(b))) => Cell::Text(b),
                (Cell::Unchanged, Some(Cell::Binary(b, f))) => Cell::Binary(b, *f),
                (c, _) => c,
            };
            let Some(builder) = self.columns.get_mut(target) else {
                return Err(anyhow!("internal: column {target} out of range"));
            };
            match cell {
                Cell::Null => builder.append_null(),
                Cell::Unchanged => {
                    builder.append_null();
                    self.toast_names.push(target);
                }
                Cell::Text(b) | Cell::Binary(b, _) => {
                    self.bytes += b.len();
                    let result = match cell {
                        Cell::Binary(_, Some(form)) => builder.append_send(form, b, policy),
                        Cell::Binary(_, None) => {
                            let col = self
                                .schema
                                .columns
                                .get(target)
                                .map_or("?", |c| c.name.as_str());
                            return Err(anyhow!(
                                "column {col} of {} arrived in binary form, which pgcdc cannot read for its type",
                                self.schema.table
                            ));
                        }
                        _ => builder.append_text(b, policy),
                    };
                    result.map_err(|e| {
                        let col = self
                            .schema
                            .columns
                            .get(target)
                            .map_or("?", |c| c.name.as_str());
                        anyhow!(
                            "column {col} of {}: {e} (a column hint [columns.{}.{col}] data_type = \"text\" keeps such values as their exact text)",
                            self.schema.table,
                            self.schema.table.name
                        )
                    })?;
                }
            }
            seen += 1;
        }
        let included = map.iter().filter(|m| m.is_some()).count();
        if seen != included {
            // Keep the builders aligned before reporting the malformed row.
            return Err(anyhow!(
                "row of {} has {seen} of {included} expected columns; the stream does not match its Relation message",
                self.schema.table
            ));
        }
        self.append_meta(meta);
        Ok(())
    }

    /// Appends a TRUNCATE marker row: all source columns NULL.
    pub fn append_truncate(&mut self, meta: RowMeta) {
        self.toast_names.clear();
        for b in &mut self.columns {
            b.append_null();
        }
        self.append_meta(meta);
    }

    fn append_meta(&mut self, meta: RowMeta) {
        self.lsn.append_value(meta.lsn);
        self.commit_lsn.append_option(meta.commit_lsn);
        if let Some(b) = &mut self.op {
            b.append_value(meta.op.as_str());
        }
        if let Some(b) = &mut self.commit_ts {
            b.append_option(meta.commit_ts);
        }
        if let Some(b) = &mut self.xid {
            b.append_option(meta.xid.map(i64::from));
        }
        if let Some(b) = &mut self.deleted_ts {
            b.append_option(if meta.op == Op::Delete {
                meta.commit_ts
            } else {
                None
            });
        }
        if self.toast_names.is_empty() {
            self.toast.append_null();
        } else {
            for &i in &self.toast_names {
                let name = self.schema.columns.get(i).map_or("", |c| c.name.as_str());
                self.toast.values().append_value(name);
            }
            self.toast.append(true);
        }
        self.rows += 1;
        self.bytes += 48;
    }

    /// Finishes the buffered rows into a record batch and resets the builders.
    pub fn finish(&mut self) -> Result<RecordBatch> {
        let mut arrays: Vec<ArrayRef> = self.columns.iter_mut().map(|b| b.finish()).collect();
        arrays.push(Arc::new(self.lsn.finish()));
        arrays.push(Arc::new(self.commit_lsn.finish()));
        if let Some(b) = &mut self.op {
            arrays.push(Arc::new(b.finish()));
        }
        if let Some(b) = &mut self.commit_ts {
            arrays.push(Arc::new(b.finish()));
        }
        if let Some(b) = &mut self.xid {
            arrays.push(Arc::new(b.finish()));
        }
        if let Some(b) = &mut self.deleted_ts {
            arrays.push(Arc::new(b.finish()));
        }
        arrays.push(Arc::new(self.toast.finish()));
        self.rows = 0;
        self.bytes = 0;
        Ok(RecordBatch::try_new(Arc::clone(&self.arrow), arrays)?)
    }
}
