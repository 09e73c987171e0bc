//! A Delta table's data files as the merge sees them: their add-action facts and key
//! statistics, reading them batch by batch, and writing new ones.
//!
//! Statistics: pgcdc writes `numRecords` and, for the first key column when it is an
//! integer or a short string, `minValues`/`maxValues`/`nullCount` (Delta's per-file
//! statistics). The merge uses them to skip files that cannot hold a touched key.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int16Type, Int32Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, SchemaRef};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::ObjectStore;
#[allow(deprecated)] // its replacement (a reader of our own) buys nothing here
use parquet::arrow::async_reader::ParquetObjectReader;
use parquet::arrow::{AsyncArrowWriter, ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::basic::Compression;
use serde_json::json;

use super::convert::conform;
use crate::Result;

/// Strings longer than this get no min/max statistics.
const MAX_STAT_STRING: usize = 64;

/// A new data file is closed once it holds about this many bytes.
pub const TARGET_FILE_BYTES: usize = 128 << 20;

/// One value of a key column's statistics.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Bound {
    /// An integer column.
    Int(i64),
    /// A string column.
    Str(String),
}

/// A live data file of a table.
#[derive(Debug, Clone)]
pub struct DataFile {
    /// Path relative to the table's directory.
    pub path: String,
    /// Size in bytes.
    pub size: i64,
    /// Delta statistics JSON (as in the add action).
    pub stats: Option<String>,
    /// Min and max of the first key column, when known.
    pub range: Option<(Bound, Bound)>,
    /// Written by the open transaction (not yet in the Delta log).
    pub new: bool,
}

impl DataFile {
    /// A committed file, from its add action's facts.
    pub fn committed(path: String, size: i64, stats: Option<String>, key: Option<&str>) -> Self {
        let range = key.and_then(|k| parse_range(stats.as_deref()?, k));
        DataFile {
            path,
            size,
            stats,
            range,
            new: false,
        }
    }
}

fn parse_range(stats: &str, key: &str) -> Option<(Bound, Bound)> {
    let v: serde_json::Value = serde_json::from_str(stats).ok()?;
    let bound = |side: &str| -> Option<Bound> {
        match v.get(side)?.get(key)? {
            serde_json::Value::Number(n) => n.as_i64().map(Bound::Int),
            serde_json::Value::String(s) => Some(Bound::Str(s.clone())),
            _ => None,
        }
    };
    Some((bound("minValues")?, bound("maxValues")?))
}

/// The statistics value of row `i` of a key column (None: no statistics for its type).
pub fn bound_at(a: &dyn Array, i: usize) -> Option<Bound> {
    if a.is_null(i) {
        return None;
    }
    match a.data_type() {
        DataType::Int16 => Some(Bound::Int(a.as_primitive::<Int16Type>().value(i) as i64)),
        DataType::Int32 => Some(Bound::Int(a.as_primitive::<Int32Type>().value(i) as i64)),
        DataType::Int64 => Some(Bound::Int(a.as_primitive::<Int64Type>().value(i))),
        DataType::Utf8 => {
            let s = a.as_string::<i32>().value(i);
            (s.len() <= MAX_STAT_STRING).then(|| Bound::Str(s.to_string()))
        }
        _ => None,
    }
}

/// Whether `t` gets key statistics.
pub fn has_stats(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::Utf8
    )
}

/// Streams the batches of data file `path` (conformed to `schema`; with `columns`, only
/// those that the file has, conformed to a schema of just them).
pub async fn read(
    store: &Arc<dyn ObjectStore>,
    file: &DataFile,
    schema: &SchemaRef,
    columns: Option<&[String]>,
    flag: Option<&str>,
) -> Result<BoxStream<'static, Result<RecordBatch>>> {
    #[allow(deprecated)]
    let reader = ParquetObjectReader::new(Arc::clone(store), Path::from(file.path.as_str()))
        .with_file_size(file.size as u64);
    let builder = ParquetRecordBatchStreamBuilder::new(reader).await?;
    let (builder, target) = match columns {
        None => (builder, Arc::clone(schema)),
        Some(cols) => {
            let file_schema = Arc::clone(builder.schema());
            let roots: Vec<usize> = cols
                .iter()
                .filter_map(|c| file_schema.index_of(c).ok())
                .collect();
            let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
            let fields: Vec<_> = cols
                .iter()
                .filter_map(|c| schema.field_with_name(c).ok().cloned())
                .collect();
            (
                builder.with_projection(mask),
                Arc::new(arrow_schema::Schema::new(fields)),
            )
        }
    };
    let stream = builder.with_batch_size(8192).build()?;
    let flag = flag.map(str::to_string);
    Ok(stream
        .map(move |r| {
            r.map_err(crate::Error::from)
                .and_then(|b| conform(&b, &target, flag.as_deref()))
        })
        .boxed())
}

/// New data files of one table, rolled at [`TARGET_FILE_BYTES`].
pub struct Sink {
    store: Arc<dyn ObjectStore>,
    schema: SchemaRef,
    key: Option<usize>,
    prefix: String,
    n: usize,
    open: Option<Open>,
    /// Files finished so far.
    pub done: Vec<DataFile>,
}

struct Open {
    path: String,
    writer: AsyncArrowWriter<BufWriter>,
    rows: usize,
    min: Option<Bound>,
    max: Option<Bound>,
    nulls: usize,
    stats_ok: bool,
}

impl Sink {
    /// A sink of files named `<prefix>-<n>.parquet`; `key`: the column to keep statistics of.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        schema: SchemaRef,
        key: Option<&str>,
        prefix: String,
    ) -> Self {
        let key = key
            .and_then(|k| schema.index_of(k).ok())
            .filter(|&i| has_stats(schema.field(i).data_type()));
        Sink {
            store,
            schema,
            key,
            prefix,
            n: 0,
            open: None,
            done: Vec::new(),
        }
    }

    /// Appends rows (conformed to the sink's schema).
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.open.is_none() {
            self.n += 1;
            let path = format!("{}-{}.parquet", self.prefix, self.n);
            let upload = BufWriter::new(Arc::clone(&self.store), Path::from(path.as_str()));
            let props = crate::files::writer_properties(Compression::SNAPPY);
            let writer = AsyncArrowWriter::try_new(upload, Arc::clone(&self.schema), Some(props))?;
            self.open = Some(Open {
                path,
                writer,
                rows: 0,
                min: None,
                max: None,
                nulls: 0,
                stats_ok: true,
            });
        }
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        if let Some(k) = self.key {
            let a = batch.column(k);
            for i in 0..a.len() {
                if a.is_null(i) {
                    open.nulls += 1;
                    continue;
                }
                match bound_at(a.as_ref(), i) {
                    Some(b) => {
                        if open.min.as_ref().is_none_or(|m| b < *m) {
                            open.min = Some(b.clone());
                        }
                        if open.max.as_ref().is_none_or(|m| b > *m) {
                            open.max = Some(b);
                        }
                    }
                    None => open.stats_ok = false,
                }
            }
        }
        open.rows += batch.num_rows();
        open.writer.write(batch).await?;
        if open.writer.bytes_written() + open.writer.in_progress_size() >= TARGET_FILE_BYTES {
            self.close().await?;
        }
        Ok(())
    }

    /// Finishes the open file, if any.
    pub async fn close(&mut self) -> Result<()> {
        let Some(mut open) = self.open.take() else {
            return Ok(());
        };
        // Writes the footer and completes the upload.
        open.writer.finish().await?;
        let size = open.writer.bytes_written() as i64;
        let mut stats = json!({ "numRecords": open.rows });
        let mut range = None;
        if let (Some(k), true, Some(min), Some(max)) = (self.key, open.stats_ok, open.min, open.max)
        {
            let name = self.schema.field(k).name().clone();
            let v = |b: &Bound| match b {
                Bound::Int(i) => json!(i),
                Bound::Str(s) => json!(s),
            };
            stats["minValues"] = json!({ name.clone(): v(&min) });
            stats["maxValues"] = json!({ name.clone(): v(&max) });
            stats["nullCount"] = json!({ name: open.nulls });
            range = Some((min, max));
        }
        self.done.push(DataFile {
            path: open.path,
            size,
            stats: Some(stats.to_string()),
            range,
            new: true,
        });
        Ok(())
    }
}
