//! The copy-on-write merge: a batch of one table's changelog rows (see [`crate::mirror`];
//! everything after its last truncate) applied to a Delta table's live files, once per
//! batch. Files that may hold a touched row are read (key columns first, whole rows only
//! if a key matches), their other rows are written to new files, and they are marked
//! removed; the batch's resulting rows go to new files too. Nothing reaches the Delta log
//! here: the commit does that.

use std::collections::{HashMap, HashSet};
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

/// The changelog rows of one merge (a batch's rows after its last truncate), conformed to
/// the table's schema, with their metadata.
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
    /// The columns row `row` names as TOAST-unchanged.
    fn unchanged_names(&self, row: usize) -> Vec<String> {
        match self.toast {
            Some(l) if l.is_valid(row) => {
                let v = l.value(row);
                let s = v.as_string::<i32>();
                (0..s.len())
                    .filter(|&j| s.is_valid(j))
                    .map(|j| s.value(j).to_string())
                    .collect()
            }
            _ => Vec::new(),
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

/// Where an output value comes from: (source, row) for `interleave`; source 0 is the
/// batch's rows, 1..=n the existing rows found in files, n+1 a NULL.
type Pick = (usize, usize);

/// A key's row as the batch's changes so far left it.
#[derive(Debug, Clone)]
enum Now {
    /// No row (deleted, or never there).
    Absent,
    /// A row with these values.
    Live(Vec<Pick>),
    /// A soft-deleted row with these (its last) values.
    Deleted(Vec<Pick>),
}

impl Now {
    fn values(&self) -> Option<&Vec<Pick>> {
        match self {
            Now::Absent => None,
            Now::Live(p) | Now::Deleted(p) => Some(p),
        }
    }
}

impl Table {
    /// Applies a keyed batch in one pass: its changes replayed in order per key on the
    /// stored rows (upserts, deletes, kept columns — TOAST-unchanged, or all with soft
    /// deletes — from the latest earlier row of the key, in the batch or stored), then the
    /// files holding a touched key rewritten once. `moved`: the rows `i` (a delete) and
    /// `i + 1` (an update) that are a key change whose update keeps TOAST values: the new
    /// key's kept columns come from the old key's row.
    pub(super) async fn merge_keyed(
        &mut self,
        step: &StepRows<'_>,
        moved: &[usize],
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
        let conv = converter(rows, &key_cols)?;
        let keys = encode(&conv, rows, &key_cols)?;
        let touched: HashSet<Vec<u8>> = (0..rows.num_rows())
            .map(|i| keys.row(i).as_ref().to_vec())
            .collect();
        let need_existing = !unchanged.is_empty() || soft.is_some() || !moved.is_empty();
        let mut sink = Sink::new(
            Arc::clone(&self.store),
            Arc::clone(&schema),
            key_names.first().copied(),
            prefix,
        );
        let (existing, found) = self
            .take_existing(
                rows,
                &key_cols,
                &conv,
                &touched,
                need_existing,
                soft,
                &mut sink,
            )
            .await?;
        // Source columns that are not key columns may be kept from an earlier row.
        let keepable: Vec<Option<&str>> = schema
            .fields()
            .iter()
            .map(|f| {
                step.columns
                    .iter()
                    .find(|c| !c.1 && c.0 == *f.name())
                    .map(|c| c.0.as_str())
            })
            .collect();
        let replay = Replay {
            step,
            keys: &keys,
            found: &found,
            keepable: &keepable,
            moved,
            soft: soft.is_some(),
        };
        let (picks, flags) = columns_of(replay.run(), keepable.len(), existing.len() + 1);
        let flag_col = soft.and_then(|f| schema.index_of(f).ok());
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
        map: &HashSet<Vec<u8>>,
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
                    let hit = map.contains(k.as_ref());
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
        map: &HashSet<Vec<u8>>,
    ) -> Result<bool> {
        let schema = Arc::clone(&self.schema);
        let mut stream = data::read(&self.store, file, &schema, Some(key_names), None).await?;
        while let Some(b) = stream.try_next().await? {
            let cols: Vec<usize> = (0..b.num_columns()).collect();
            let ks = encode(conv, &b, &cols)?;
            if (0..b.num_rows()).any(|i| map.contains(ks.row(i).as_ref())) {
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

/// The stand-in source for "NULL" in a [`Now`]'s picks before the sources are counted.
const NULL_PICK: usize = usize::MAX;

/// The replay of a keyed batch's changes in order (see [`Table::merge_keyed`]).
struct Replay<'a, 's> {
    step: &'a StepRows<'s>,
    keys: &'a Rows,
    /// Where each touched key's stored row is among the existing rows.
    found: &'a HashMap<Vec<u8>, Pick>,
    /// Per output column, its name when a change may keep its value.
    keepable: &'a [Option<&'a str>],
    /// Rows starting a key change that keeps TOAST values (sorted).
    moved: &'a [usize],
    soft: bool,
}

impl Replay<'_, '_> {
    /// Each touched key's final row, in the order of the keys' last changes.
    fn run(&self) -> Vec<Now> {
        let columns = self.keepable.len();
        let mut now: HashMap<&[u8], (Now, usize)> = HashMap::new();
        let mut moving: Option<Now> = None;
        for i in 0..self.step.rows.num_rows() {
            let k: &[u8] = self.keys.row(i).data();
            let prev = match now.get(k) {
                Some((n, _)) => n.clone(),
                None => match self.found.get(k) {
                    Some(&p) => Now::Live(vec![p; columns]),
                    None => Now::Absent,
                },
            };
            let next = if self.step.op(i) == "delete" {
                if self.moved.binary_search(&i).is_ok() {
                    moving = Some(prev.clone());
                }
                match prev.values() {
                    Some(p) if self.soft => Now::Deleted(p.clone()),
                    _ => Now::Absent,
                }
            } else {
                let moved = i > 0 && self.moved.binary_search(&(i - 1)).is_ok();
                let from_old = moving.take().filter(|_| moved);
                // A moved row keeps the old key's values (else, without soft deletes, its own).
                let prior = match &from_old {
                    Some(old) => old.values().or(prev.values().filter(|_| !self.soft)),
                    None => prev.values(),
                };
                Now::Live(self.values(i, prior))
            };
            now.insert(k, (next, i));
        }
        let mut out: Vec<(Now, usize)> = now.into_values().collect();
        out.sort_by_key(|(_, last)| *last);
        out.into_iter().map(|(n, _)| n).collect()
    }

    /// The values of change `i` (an upsert): its own, but for the columns it names as
    /// TOAST-unchanged, which come from `prior` (NULL without one).
    fn values(&self, i: usize, prior: Option<&Vec<Pick>>) -> Vec<Pick> {
        let kept = self.step.unchanged_names(i);
        self.keepable
            .iter()
            .enumerate()
            .map(|(c, name)| match name {
                Some(n) if kept.iter().any(|k| k == n) => prior.map_or((NULL_PICK, 0), |p| p[c]),
                _ => (0, i),
            })
            .collect()
    }
}

/// The final rows as picks per column (`null_source`: the source index of NULL) and
/// their soft-delete flags; keys without a row are left out.
fn columns_of(finals: Vec<Now>, columns: usize, null_source: usize) -> (Vec<Vec<Pick>>, Vec<bool>) {
    let mut picks: Vec<Vec<Pick>> = vec![Vec::new(); columns];
    let mut flags = Vec::new();
    for now in finals {
        let (values, deleted) = match &now {
            Now::Absent => continue,
            Now::Live(p) => (p, false),
            Now::Deleted(p) => (p, true),
        };
        for (column, &pick) in picks.iter_mut().zip(values) {
            column.push(if pick.0 == NULL_PICK {
                (null_source, 0)
            } else {
                pick
            });
        }
        flags.push(deleted);
    }
    (picks, flags)
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
    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::Int32Array;

    use super::*;

    /// The replay of: insert 1 (big = a); update 1 keeping big; move 1 → 2 keeping big
    /// (a moved pair); delete 3 (stored); move 4 (stored) → 3 keeping big; delete 5 (never
    /// there). Key 2 has 1's big from the batch, key 3 has 4's stored row's.
    #[test]
    fn the_replay_keeps_toast_values_from_the_latest_earlier_row_of_a_key() {
        let rows: [(i32, &str, i64, bool); 8] = [
            (1, "insert", 1, false),
            (1, "update", 2, true),
            (1, "delete", 3, false),
            (2, "update", 3, true),
            (3, "delete", 4, false),
            (4, "delete", 5, false),
            (3, "update", 5, true),
            (5, "delete", 6, false),
        ];
        let mut toast = ListBuilder::new(StringBuilder::new());
        for r in &rows {
            if r.3 {
                toast.values().append_value("big");
            }
            toast.append(true);
        }
        let toast = toast.finish();
        let ops = StringArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>());
        let lsns = Int64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>());
        let batch = RecordBatch::try_from_iter([
            (
                "id",
                Arc::new(Int32Array::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )) as ArrayRef,
            ),
            (
                "big",
                Arc::new(StringArray::from(vec![Some("a"); 8])) as ArrayRef,
            ),
        ])
        .unwrap();
        let step = StepRows {
            rows: batch,
            ops: &ops,
            lsns: &lsns,
            toast: Some(&toast),
            columns: vec![("id".into(), true), ("big".into(), false)],
        };
        let conv = converter(&step.rows, &[0]).unwrap();
        let keys = encode(&conv, &step.rows, &[0]).unwrap();
        // Keys 3 and 4 are stored: existing rows 0 and 1 of source 1.
        let found: HashMap<Vec<u8>, Pick> = [(4, (1, 0)), (5, (1, 1))]
            .into_iter()
            .map(|(i, p): (usize, Pick)| (keys.row(i).as_ref().to_vec(), p))
            .collect();
        let keepable = [None, Some("big")];
        let replay = Replay {
            step: &step,
            keys: &keys,
            found: &found,
            keepable: &keepable,
            moved: &[2, 5],
            soft: false,
        };
        let out: Vec<Option<Vec<Pick>>> =
            replay.run().iter().map(|n| n.values().cloned()).collect();
        // In the order of the keys' last changes: 1 (deleted at 2), 2 (3), 4 (5), 3 (6), 5 (7).
        assert_eq!(
            out,
            vec![
                None,
                Some(vec![(0, 3), (0, 0)]),
                None,
                Some(vec![(0, 6), (1, 1)]),
                None,
            ]
        );
    }

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
