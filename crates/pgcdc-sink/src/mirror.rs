//! Mirror mode's rules, shared by every mirror destination: how a changelog batch becomes
//! changes to a table that equals the source table.
//!
//! A mirror destination receives the same changelog rows as the files destination and
//! applies them, in order, inside one destination transaction that also writes the
//! checkpoint (so a crash before the commit leaves the previous state and checkpoint, and
//! the replay from there is exact).
//!
//! - **Keyed tables** (a primary key or replica-identity index): per key, the last change
//!   of a step wins; `snapshot`/`insert`/`update` upsert the row, `delete` removes it.
//!   A column named in `_pgcdc_toast_unchanged` keeps its previous value: the latest value
//!   sent for that key earlier in the step, else the destination's.
//! - **Key changes**: PostgreSQL logs an update that changes the key as a delete of the
//!   old key and an update at the same LSN. When that update carries unchanged TOAST
//!   columns, the step starts with the pair and the destination first *moves* the old
//!   row to the new key, so the unchanged columns keep the old row's values.
//! - **Tables without a key** (REPLICA IDENTITY FULL without a primary key, or an
//!   insert-only publication): rows are a multiset. Each step counts, per distinct row,
//!   inserts minus deletes and removes or adds that many copies, so duplicate rows stay
//!   exact. An update that changed the row is logged as a delete of the old row and an
//!   update at the same LSN (the whole row is the "key"); an update alone left the row as
//!   it was. (Under FULL, PostgreSQL sends the whole old row, so nothing is TOAST-unchanged.)
//!
//! A key change's two rows always arrive in one write: the pipeline cuts batches between
//! messages, never inside one.
//! - **Truncate** empties the table; it is a step of its own.
//! - **Soft deletes** (optional, keyed tables): a delete keeps the row with its last
//!   values and sets a BOOLEAN flag column (false on every other row); a key change marks
//!   the old key's row deleted and inserts the new one. Truncate still empties the table.
//!
//! [`plan`] cuts a batch into those [`Step`]s; a destination turns each into SQL.

use std::collections::BTreeSet;
use std::ops::Range;

use arrow_array::cast::AsArray;
use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use pgcdc_core::{Checkpoint, MetaColumns, TableSchema};
use serde::{Deserialize, Serialize};

use crate::{Error, ErrorKind, Result};

/// One unit of work a mirror destination applies, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Empty the table.
    Truncate,
    /// Apply rows `range` of the batch.
    Rows {
        /// Which rows.
        range: Range<usize>,
        /// The first two rows are a key change (delete old key, update new key) whose
        /// update keeps TOAST values: move the old row to the new key first.
        moved: bool,
        /// Columns some row of the range names as TOAST-unchanged.
        unchanged: Vec<String>,
    },
}

/// The metadata columns a mirror reads from changelog rows.
#[derive(Debug, Clone)]
pub struct MirrorMeta {
    /// LSN of the change.
    pub lsn: String,
    /// Operation name.
    pub op: String,
    /// TOAST-unchanged column list.
    pub toast_unchanged: String,
}

impl MirrorMeta {
    /// From the pipeline's metadata columns; mirror mode needs the operation column.
    pub fn new(meta: &MetaColumns) -> Result<Self> {
        let op = meta.op.clone().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidConfig,
                "mirror mode needs the operation column (_pgcdc_op)",
            )
        })?;
        Ok(MirrorMeta {
            lsn: meta.lsn.clone(),
            op,
            toast_unchanged: meta.toast_unchanged.clone(),
        })
    }

    /// [`MirrorMeta::new`] for a mirror whose tables live under `dataset` (a schema or a
    /// folder), which must not be empty.
    pub fn for_dataset(meta: &MetaColumns, dataset: &str) -> Result<Self> {
        let mirror = Self::new(meta)?;
        if dataset.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "destination.dataset must not be empty",
            ));
        }
        Ok(mirror)
    }
}

/// Whether mirror mode identifies `table`'s rows by a key (else: as a multiset of rows).
///
/// Under REPLICA IDENTITY FULL the catalog marks the primary key as the key when there is
/// one, else every column: a whole-row "key" is no key (rows may repeat). A table whose
/// key is all of its columns cannot hold duplicates, so either rule gives the same rows.
pub fn keyed(table: &TableSchema) -> bool {
    let keys = table.columns.iter().filter(|c| c.key).count();
    let whole_row =
        table.replica_identity == pgcdc_core::ReplicaIdentity::Full && keys == table.columns.len();
    keys > 0 && !whole_row
}

/// Refuses a soft-delete flag column that has the name of a source column.
fn check_flag(table: &TableSchema, flag: &str) -> Result<()> {
    if table
        .columns
        .iter()
        .any(|c| c.name.eq_ignore_ascii_case(flag))
    {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            format!(
                "table {} has a column named like destination.soft_delete_column ({flag}); choose another name",
                table.table
            ),
        ));
    }
    Ok(())
}

/// Cuts a changelog batch into steps (see the [module docs](self)).
pub fn plan(rows: &RecordBatch, meta: &MirrorMeta, keyed: bool) -> Result<Vec<Step>> {
    let ops = string_column(rows, &meta.op)?;
    let lsns = column::<Int64Array>(rows, &meta.lsn)?;
    let toast = rows
        .column_by_name(&meta.toast_unchanged)
        .and_then(|a| a.as_list_opt::<i32>());
    let unchanged_at = |i: usize| -> Vec<String> {
        match toast {
            Some(l) if l.is_valid(i) => {
                let v = l.value(i);
                let s = v.as_string::<i32>();
                (0..s.len())
                    .filter(|&j| s.is_valid(j))
                    .map(|j| s.value(j).to_string())
                    .collect()
            }
            _ => Vec::new(),
        }
    };
    let mut steps = Vec::new();
    let mut start = 0;
    let mut moved = false;
    let mut names = BTreeSet::new();
    let close =
        |steps: &mut Vec<Step>, range: Range<usize>, moved: bool, names: &mut BTreeSet<String>| {
            if !range.is_empty() {
                steps.push(Step::Rows {
                    range,
                    moved,
                    unchanged: std::mem::take(names).into_iter().collect(),
                });
            }
        };
    for i in 0..rows.num_rows() {
        let op = ops.value(i);
        if op == "truncate" {
            close(&mut steps, start..i, moved, &mut names);
            steps.push(Step::Truncate);
            start = i + 1;
            moved = false;
            continue;
        }
        let kept = unchanged_at(i);
        if keyed && op == "delete" && i + 1 < rows.num_rows() && ops.value(i + 1) == "update" {
            let same_lsn = lsns.value(i) == lsns.value(i + 1);
            if same_lsn && !unchanged_at(i + 1).is_empty() {
                close(&mut steps, start..i, moved, &mut names);
                start = i;
                moved = true;
            }
        }
        names.extend(kept);
    }
    close(&mut steps, start..rows.num_rows(), moved, &mut names);
    Ok(steps)
}

fn column<'a, T: 'static>(rows: &'a RecordBatch, name: &str) -> Result<&'a T> {
    rows.column_by_name(name)
        .and_then(|a| a.as_any().downcast_ref::<T>())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Encode,
                format!("internal: changelog rows lack the metadata column {name}"),
            )
        })
}

fn string_column<'a>(rows: &'a RecordBatch, name: &str) -> Result<&'a StringArray> {
    column::<StringArray>(rows, name)
}

/// What a mirror destination commits with its tables: the checkpoint and the latest
/// source schema per table (stored as JSON in its `_pgcdc_state` table).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MirrorState {
    /// Version of this record's layout.
    pub format_version: u32,
    /// The committed checkpoint.
    pub checkpoint: Checkpoint,
    /// Latest schema per destination table name.
    #[serde(default)]
    pub tables: std::collections::BTreeMap<String, TableSchema>,
}

/// What a mirror destination keeps between calls, the same for every backend: the
/// committed state, and the table schemas as of the open transaction.
#[derive(Debug, Default)]
pub(crate) struct Book {
    pub state: Option<MirrorState>,
    pub tables: std::collections::BTreeMap<String, TableSchema>,
}

impl Book {
    /// Takes a state read back from the destination; returns it as [`Committed`].
    pub fn read(&mut self, state: Option<MirrorState>, in_tx: bool) -> Option<crate::Committed> {
        if !in_tx {
            self.tables = state.as_ref().map(|s| s.tables.clone()).unwrap_or_default();
        }
        self.state.clone_from(&state);
        state.map(|s| crate::Committed {
            checkpoint: s.checkpoint,
            tables: s.tables.into_values().collect(),
        })
    }

    /// Refuses a table the mirror cannot hold, and records its schema for the commit.
    pub fn admit(&mut self, table: &TableSchema, soft_delete: Option<&str>) -> Result<()> {
        if table.table.name.eq_ignore_ascii_case(STATE_TABLE) {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!("source table {} has the name of pgcdc's state table in the mirror; leave it out of the publication (source.tables)", table.table),
            ));
        }
        if let Some(flag) = soft_delete {
            check_flag(table, flag)?;
        }
        self.tables.insert(table.table.name.clone(), table.clone());
        Ok(())
    }

    /// The state a commit writes: `checkpoint`, and every schema seen (earlier commits' too).
    pub fn next(&mut self, checkpoint: &Checkpoint) -> MirrorState {
        if let Some(s) = &self.state {
            for (name, t) in &s.tables {
                self.tables.entry(name.clone()).or_insert_with(|| t.clone());
            }
        }
        MirrorState {
            format_version: STATE_VERSION,
            checkpoint: checkpoint.clone(),
            tables: self.tables.clone(),
        }
    }

    /// The state `initialize` writes (no tables yet), remembered as committed.
    pub fn start(&mut self, checkpoint: &Checkpoint) -> MirrorState {
        self.tables.clear();
        self.state = None;
        self.next(checkpoint)
    }

    /// Forgets the open transaction's schemas.
    pub fn reset(&mut self) {
        self.tables = self
            .state
            .as_ref()
            .map(|s| s.tables.clone())
            .unwrap_or_default();
    }
}

/// The [`MirrorState::format_version`] this build writes and reads.
pub const STATE_VERSION: u32 = 1;

/// The name of the state table in a mirror destination's schema.
pub const STATE_TABLE: &str = "_pgcdc_state";

impl MirrorState {
    /// Parses a stored state, refusing an unknown layout.
    pub fn parse(json: &str, place: &str) -> Result<Self> {
        let s: MirrorState = serde_json::from_str(json).map_err(|e| {
            Error::new(
                ErrorKind::Corrupt,
                format!("the pgcdc state in {place} cannot be read"),
            )
            .with_source(e)
        })?;
        if s.format_version != STATE_VERSION {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "the pgcdc state in {place} has format {} which this pgcdc does not know (expects {STATE_VERSION})",
                    s.format_version
                ),
            ));
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::ArrayRef;

    use super::*;

    fn batch(rows: &[(&str, i64, Option<&[&str]>)]) -> RecordBatch {
        let ops = StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>());
        let lsns = Int64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>());
        let mut toast = ListBuilder::new(StringBuilder::new());
        for r in rows {
            match r.2 {
                Some(names) => {
                    for n in names {
                        toast.values().append_value(n);
                    }
                    toast.append(true);
                }
                None => toast.append(false),
            }
        }
        RecordBatch::try_from_iter([
            ("_pgcdc_op", Arc::new(ops) as ArrayRef),
            ("_pgcdc_lsn", Arc::new(lsns) as ArrayRef),
            (
                "_pgcdc_toast_unchanged",
                Arc::new(toast.finish()) as ArrayRef,
            ),
        ])
        .unwrap()
    }

    fn meta() -> MirrorMeta {
        MirrorMeta::new(&MetaColumns::preset(pgcdc_core::MetaPreset::Pgcdc)).unwrap()
    }

    fn rows(range: Range<usize>, moved: bool, unchanged: &[&str]) -> Step {
        Step::Rows {
            range,
            moved,
            unchanged: unchanged.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn truncates_and_toast_keeping_key_changes_cut_steps() {
        let b = batch(&[
            ("insert", 1, None),
            ("update", 2, Some(&["big"])),
            ("truncate", 3, None),
            ("insert", 4, None),
            ("delete", 5, None),
            ("update", 5, Some(&["big", "doc"])),
            ("delete", 6, None),
            ("update", 6, None),
        ]);
        let steps = plan(&b, &meta(), true).unwrap();
        assert_eq!(
            steps,
            vec![
                rows(0..2, false, &["big"]),
                Step::Truncate,
                rows(3..4, false, &[]),
                rows(4..8, true, &["big", "doc"]),
            ]
        );
        // Without a key a key change is just a delete and an insert of rows.
        let steps = plan(&b, &meta(), false).unwrap();
        assert_eq!(
            steps,
            vec![
                rows(0..2, false, &["big"]),
                Step::Truncate,
                rows(3..8, false, &["big", "doc"])
            ]
        );
    }

    #[test]
    fn a_batch_of_only_a_truncate_is_one_step() {
        let steps = plan(&batch(&[("truncate", 1, None)]), &meta(), true).unwrap();
        assert_eq!(steps, vec![Step::Truncate]);
    }
}
