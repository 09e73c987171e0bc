//! The copy-on-write merge: one step of changelog rows (see [`crate::mirror`]) applied to a
//! Delta table's live files. Files that may hold a touched row are read (key columns
//! first, whole rows only if a key matches), their other rows are written to new files,
//! and they are marked removed; the step's resulting rows go to new files too. Nothing
//! reaches the Delta log here: the commit does that.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{
    new_null_array, Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray,
    UInt32Array,
};
use arrow_row::{RowConverter, Rows, SortField};
use futures_util::TryStreamExt;

use super::data::{self, Bound, DataFile, Sink};
use super::Table;
use crate::{Error, ErrorKind, Result};

/// The changelog rows of one step: conformed to the table's schema, with their metadata.
pub struct StepRows<'a> {
    /// Source columns in the table's schema (other columns NULL, the flag false).
    pub rows: RecordBatch,
    /// Operation per row.
    pub ops: &'a StringArray,
    /// LSN per row.
    pub lsns: &'a Int64Array,
    /// TOAST-unchanged column names per row.
    pub toast: Option<&'a arrow_array::ListArray>,
    /// The source's columns (names), key columns marked.
    pub columns: Vec<(String, bool)>,
}

impl StepRows<'_> {
    fn unchanged(&self, row: usize, column: &str) -> bool {
        match self.toast {
            Some(l) if l.is_valid(row) => {
                let v = l.value(row);
                let s = v.as_string::<i32>();
                (0..s.len()).any(|j| s.is_valid(j) && s.value(j) == column)
            }
            _ => false,
        }
    }

    fn op(&self, row: usize) -> &str {
        self.ops.value(row)
    }
}

fn internal(what: &str) -> Error {
    Error::new(ErrorKind::Encode, format!("internal: {what}"))
}

fn converter(rows: &RecordBatch, cols: &[usize]) -> Result<RowConverter> {
    let fields = cols
        .iter()
        .map(|&i| SortField::new(rows.schema().field(i).data_type().clone()))
        .collect();
    Ok(RowConverter::new(fields)?)
}

fn encode(conv: &RowConverter, batch: &RecordBatch, cols: &[usize]) -> Result<Rows> {
    let arrays: Vec<ArrayRef> = cols.iter().map(|&i| Arc::clone(batch.column(i))).collect();
    Ok(conv.convert_columns(&arrays)?)
}

fn indices(batch: &RecordBatch, names: &[&str]) -> Result<Vec<usize>> {
    names
        .iter()
        .map(|n| {
            batch
                .schema()
                .index_of(n)
                .map_err(|_| internal(&format!("column {n} missing from the staged rows")))
        })
        .collect()
}

/// Per key of a keyed step: its last row, and per kept column the last row that sent a
/// value for it.
struct KeyState {
    last: usize,
    providers: Vec<Option<usize>>,
    live: bool,
}

/// Where an output value comes from: (source, row) for `interleave`; source 0 is the
/// step's rows, 1..=n the existing rows found in files, n+1 a NULL.
type Pick = (usize, usize);

impl Table {
    /// Applies a keyed step: upserts and deletes by key, last change wins, kept columns
    /// (TOAST-unchanged, or all with soft deletes) from an earlier row of the step or the
    /// table; `moved`: rows 0 and 1 are a key change whose update keeps TOAST values.
    pub(super) async fn merge_keyed(
        &mut self,
        step: &StepRows<'_>,
        moved: bool,
        unchanged: &[String],
        soft: Option<&str>,
        prefix: String,
    ) -> Result<()> {
        let rows = &step.rows;
        let schema = rows.schema();
        let key_names: Vec<&str> = step
            .columns
            .iter()
            .filter(|c| c.1)
            .map(|c| c.0.as_str())
            .collect();
        let key_cols = indices(rows, &key_names)?;
        let kept_names: Vec<&str> = step
            .columns
            .iter()
            .filter(|c| !c.1 && (soft.is_some() || unchanged.contains(&c.0)))
            .map(|c| c.0.as_str())
            .collect();
        let kept_cols = indices(rows, &kept_names)?;
        let conv = converter(rows, &key_cols)?;
        let keys = encode(&conv, rows, &key_cols)?;
        let map = group(step, &keys, &kept_names);
        let need_existing = !kept_cols.is_empty() || soft.is_some() || moved;
        let mut sink = Sink::new(
            Arc::clone(&self.store),
            Arc::clone(&schema),
            key_names.first().copied(),
            prefix,
        );
        let (existing, found) = self
            .take_existing(rows, &key_cols, &conv, &map, need_existing, soft, &mut sink)
            .await?;
        let moved_keys =
            moved.then(|| (keys.row(0).as_ref().to_vec(), keys.row(1).as_ref().to_vec()));
        let fallback = |k: &[u8]| -> Option<Pick> {
            match &moved_keys {
                Some((k0, k1)) if k == k1.as_slice() => found.get(k0).copied().or_else(|| {
                    if soft.is_some() {
                        None
                    } else {
                        found.get(k).copied()
                    }
                }),
                Some((k0, _)) if k == k0.as_slice() && soft.is_none() => None,
                _ => found.get(k).copied(),
            }
        };
        let null_source = existing.len() + 1;
        let mut picks: Vec<Vec<Pick>> = vec![Vec::new(); schema.fields().len()];
        let mut flags = Vec::new();
        let mut ordered: Vec<(&Vec<u8>, &KeyState)> = map.iter().collect();
        ordered.sort_by_key(|(_, st)| st.last);
        let flag_col = soft.and_then(|f| schema.index_of(f).ok());
        for (k, st) in ordered {
            let f = st.last;
            let deleted = step.op(f) == "delete";
            let prior = fallback(k);
            if deleted && !(soft.is_some() && (st.live || prior.is_some())) {
                continue;
            }
            for (c, column) in picks.iter_mut().enumerate() {
                let pick = match kept_cols.iter().position(|&kc| kc == c) {
                    Some(j) if deleted || step.unchanged(f, kept_names[j]) => st.providers[j]
                        .map(|p| (0, p))
                        .or(prior)
                        .unwrap_or((null_source, 0)),
                    _ => (0, f),
                };
                column.push(pick);
            }
            flags.push(deleted);
        }
        let batch = assemble(rows, &existing, &picks, flags, flag_col)?;
        sink.write(&batch).await?;
        sink.close().await?;
        self.add_files(sink.done);
        Ok(())
    }

    /// Finds the rows of the step's keys in the live files: rewrites every file holding
    /// one without them (into `sink`), and returns those rows (when `keep`) with where
    /// each key's row is.
    #[allow(clippy::too_many_arguments)]
    async fn take_existing(
        &mut self,
        rows: &RecordBatch,
        key_cols: &[usize],
        conv: &RowConverter,
        map: &HashMap<Vec<u8>, KeyState>,
        keep: bool,
        soft: Option<&str>,
        sink: &mut Sink,
    ) -> Result<(Vec<RecordBatch>, HashMap<Vec<u8>, Pick>)> {
        let schema = rows.schema();
        let key_names: Vec<String> = key_cols
            .iter()
            .map(|&i| schema.field(i).name().clone())
            .collect();
        let bounds = step_bounds(rows, key_cols[0]);
        let mut existing = Vec::new();
        let mut found = HashMap::new();
        let candidates: Vec<DataFile> = self
            .files
            .iter()
            .filter(|f| match (&bounds, &f.range) {
                (Some(b), Some((lo, hi))) => any_within(b, lo, hi),
                _ => true,
            })
            .cloned()
            .collect();
        for file in candidates {
            if !self.file_has_key(&file, &key_names, conv, map).await? {
                continue;
            }
            let mut stream = data::read(&self.store, &file, &schema, None, soft).await?;
            while let Some(b) = stream.try_next().await? {
                let cols = indices(
                    &b,
                    &key_names.iter().map(String::as_str).collect::<Vec<_>>(),
                )?;
                let ks = encode(conv, &b, &cols)?;
                let mut survive = Vec::with_capacity(b.num_rows());
                let mut take = Vec::new();
                for i in 0..b.num_rows() {
                    let k = ks.row(i);
                    let hit = map.contains_key(k.as_ref());
                    survive.push(!hit);
                    if hit && keep {
                        found.insert(k.as_ref().to_vec(), (existing.len() + 1, take.len()));
                        take.push(i as u32);
                    }
                }
                let survivors =
                    arrow_select::filter::filter_record_batch(&b, &BooleanArray::from(survive))?;
                sink.write(&survivors).await?;
                if !take.is_empty() {
                    existing.push(arrow_select::take::take_record_batch(
                        &b,
                        &UInt32Array::from(take),
                    )?);
                }
            }
            self.remove_file(&file.path);
        }
        Ok((existing, found))
    }

    /// Whether `file` has a row with one of the keys of `map` (reads its key columns).
    async fn file_has_key(
        &self,
        file: &DataFile,
        key_names: &[String],
        conv: &RowConverter,
        map: &HashMap<Vec<u8>, KeyState>,
    ) -> Result<bool> {
        let schema = Arc::clone(&self.schema);
        let mut stream = data::read(&self.store, file, &schema, Some(key_names), None).await?;
        while let Some(b) = stream.try_next().await? {
            let cols: Vec<usize> = (0..b.num_columns()).collect();
            let ks = encode(conv, &b, &cols)?;
            if (0..b.num_rows()).any(|i| map.contains_key(ks.row(i).as_ref())) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Applies a step of a table without a key: per distinct row, inserts minus deletes
    /// copies are added or removed (see [`crate::mirror`]).
    pub(super) async fn merge_multiset(
        &mut self,
        step: &StepRows<'_>,
        prefix: String,
    ) -> Result<()> {
        let rows = &step.rows;
        let names: Vec<&str> = step.columns.iter().map(|c| c.0.as_str()).collect();
        let cols = indices(rows, &names)?;
        let conv = converter(rows, &cols)?;
        let keys = encode(&conv, rows, &cols)?;
        let mut net: HashMap<Vec<u8>, (i64, usize)> = HashMap::new();
        for i in 0..rows.num_rows() {
            let w = match step.op(i) {
                "delete" => -1,
                "update" => {
                    let second_half = i > 0
                        && step.op(i - 1) == "delete"
                        && step.lsns.value(i - 1) == step.lsns.value(i);
                    i64::from(second_half)
                }
                _ => 1,
            };
            net.entry(keys.row(i).as_ref().to_vec()).or_insert((0, i)).0 += w;
        }
        let mut remove: HashMap<Vec<u8>, i64> = net
            .iter()
            .filter(|(_, (n, _))| *n < 0)
            .map(|(k, (n, _))| (k.clone(), -n))
            .collect();
        let schema = rows.schema();
        let mut sink = Sink::new(Arc::clone(&self.store), Arc::clone(&schema), None, prefix);
        if !remove.is_empty() {
            self.remove_copies(&schema, &names, &conv, &mut remove, &mut sink)
                .await?;
        }
        let mut take: Vec<u32> = Vec::new();
        let mut adds: Vec<&(i64, usize)> = net.values().filter(|(n, _)| *n > 0).collect();
        adds.sort_by_key(|(_, i)| *i);
        for (n, i) in adds {
            take.extend(std::iter::repeat_n(*i as u32, *n as usize));
        }
        if !take.is_empty() {
            let batch = arrow_select::take::take_record_batch(rows, &UInt32Array::from(take))?;
            sink.write(&batch).await?;
        }
        sink.close().await?;
        self.add_files(sink.done);
        Ok(())
    }

    /// Removes `remove[row]` copies of each row from the live files (files that lose a
    /// row are rewritten into `sink`).
    async fn remove_copies(
        &mut self,
        schema: &arrow_schema::SchemaRef,
        names: &[&str],
        conv: &RowConverter,
        remove: &mut HashMap<Vec<u8>, i64>,
        sink: &mut Sink,
    ) -> Result<()> {
        for file in self.files.clone() {
            if remove.values().all(|n| *n <= 0) {
                break;
            }
            let mut kept = Vec::new();
            let mut dropped = false;
            let mut stream = data::read(&self.store, &file, schema, None, None).await?;
            while let Some(b) = stream.try_next().await? {
                let cols = indices(&b, names)?;
                let ks = encode(conv, &b, &cols)?;
                let mut survive = Vec::with_capacity(b.num_rows());
                for i in 0..b.num_rows() {
                    let hit = match remove.get_mut(ks.row(i).as_ref()) {
                        Some(n) if *n > 0 => {
                            *n -= 1;
                            true
                        }
                        _ => false,
                    };
                    dropped |= hit;
                    survive.push(!hit);
                }
                kept.push(arrow_select::filter::filter_record_batch(
                    &b,
                    &BooleanArray::from(survive),
                )?);
            }
            if dropped {
                for b in &kept {
                    sink.write(b).await?;
                }
                self.remove_file(&file.path);
            }
        }
        Ok(())
    }

    /// Rewrites every live file into the table's (new) schema: after a column type
    /// widened, or the soft-delete column was added (false for every existing row).
    pub(super) async fn rewrite_all(
        &mut self,
        flag: Option<&str>,
        key: Option<&str>,
        prefix: String,
    ) -> Result<()> {
        let schema = Arc::clone(&self.schema);
        let mut sink = Sink::new(Arc::clone(&self.store), Arc::clone(&schema), key, prefix);
        for file in self.files.clone() {
            let mut stream = data::read(&self.store, &file, &schema, None, flag).await?;
            while let Some(b) = stream.try_next().await? {
                sink.write(&b).await?;
            }
            self.remove_file(&file.path);
        }
        sink.close().await?;
        self.add_files(sink.done);
        Ok(())
    }
}

/// Per key of a keyed step (`keys`: its rows' encoded keys): the last row, whether a row
/// is not a delete, and per kept column the last row that sent a value.
fn group(step: &StepRows<'_>, keys: &Rows, kept_names: &[&str]) -> HashMap<Vec<u8>, KeyState> {
    let mut map: HashMap<Vec<u8>, KeyState> = HashMap::new();
    for i in 0..step.rows.num_rows() {
        let st = map
            .entry(keys.row(i).as_ref().to_vec())
            .or_insert_with(|| KeyState {
                last: i,
                providers: vec![None; kept_names.len()],
                live: false,
            });
        st.last = i;
        if step.op(i) != "delete" {
            st.live = true;
            for (j, name) in kept_names.iter().enumerate() {
                if !step.unchanged(i, name) {
                    st.providers[j] = Some(i);
                }
            }
        }
    }
    map
}

/// The output rows: per column, the values `picks` names (from the step's rows, the
/// existing rows, or NULL); the soft-delete column from `flags`.
fn assemble(
    rows: &RecordBatch,
    existing: &[RecordBatch],
    picks: &[Vec<Pick>],
    flags: Vec<bool>,
    flag_col: Option<usize>,
) -> Result<RecordBatch> {
    let schema = rows.schema();
    let n = flags.len();
    let mut flags = Some(flags);
    let mut out: Vec<ArrayRef> = Vec::with_capacity(picks.len());
    for (c, column) in picks.iter().enumerate() {
        if Some(c) == flag_col {
            out.push(Arc::new(BooleanArray::from(
                flags.take().unwrap_or_default(),
            )));
            continue;
        }
        let null = new_null_array(schema.field(c).data_type(), 1);
        let mut sources: Vec<&dyn Array> = vec![rows.column(c).as_ref()];
        sources.extend(existing.iter().map(|b| b.column(c).as_ref()));
        sources.push(null.as_ref());
        out.push(arrow_select::interleave::interleave(&sources, column)?);
    }
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(n));
    Ok(RecordBatch::try_new_with_options(schema, out, &options)?)
}

/// The step's values of the first key column, sorted, when that column has statistics.
fn step_bounds(rows: &RecordBatch, col: usize) -> Option<Vec<Bound>> {
    let a = rows.column(col);
    if !data::has_stats(a.data_type()) {
        return None;
    }
    let mut out = Vec::with_capacity(a.len());
    for i in 0..a.len() {
        // A key without statistics (a long string) could be in any file.
        out.push(data::bound_at(a.as_ref(), i)?);
    }
    out.sort();
    out.dedup();
    Some(out)
}

/// Whether some value of sorted `values` lies within `[lo, hi]`.
fn any_within(values: &[Bound], lo: &Bound, hi: &Bound) -> bool {
    let i = values.partition_point(|v| v < lo);
    values.get(i).is_some_and(|v| v <= hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_finds_a_value_inside_the_range() {
        let v = vec![Bound::Int(1), Bound::Int(5), Bound::Int(9)];
        assert!(any_within(&v, &Bound::Int(5), &Bound::Int(5)));
        assert!(any_within(&v, &Bound::Int(2), &Bound::Int(6)));
        assert!(!any_within(&v, &Bound::Int(6), &Bound::Int(8)));
        assert!(!any_within(&v, &Bound::Int(10), &Bound::Int(20)));
        assert!(any_within(&v, &Bound::Int(-3), &Bound::Int(1)));
    }
}
