//! The metadata columns every changelog row carries, and the operation vocabulary.

use serde::{Deserialize, Serialize};

/// What happened to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// The row as of the initial snapshot.
    Snapshot,
    /// An INSERT.
    Insert,
    /// An UPDATE (the row carries the new values).
    Update,
    /// A DELETE (the row carries the old key, or the whole old row under REPLICA IDENTITY FULL).
    Delete,
    /// A TRUNCATE of the table (one row, all source columns NULL).
    Truncate,
}

impl Op {
    /// The lowercase name written into `_pgcdc_op`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Snapshot => "snapshot",
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Truncate => "truncate",
        }
    }
}

/// Which naming the metadata columns follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetaPreset {
    /// `_pgcdc_lsn`, `_pgcdc_op`, `_pgcdc_commit_ts`, `_pgcdc_xid`.
    #[default]
    Pgcdc,
    /// dlt's `lsn` and `deleted_ts` (set on deletes to the commit time), plus `_pgcdc_op`.
    Dlt,
}

/// The names of the metadata columns appended to each source row.
///
/// `None` means the column is not written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaColumns {
    /// LSN of the change record (Int64).
    pub lsn: String,
    /// LSN of the transaction's commit record; for snapshot rows, the snapshot's LSN
    /// (Int64). Replay order is (commit LSN, snapshot rows first, change LSN): a
    /// transaction that began before a snapshot but committed after it sorts after it.
    pub commit_lsn: String,
    /// Operation name (Utf8).
    pub op: Option<String>,
    /// Commit timestamp of the transaction, UTC (Timestamp µs).
    pub commit_ts: Option<String>,
    /// Transaction id (Int64).
    pub xid: Option<String>,
    /// Commit timestamp on deletes only, NULL otherwise (dlt's hard-delete marker).
    pub deleted_ts: Option<String>,
    /// Names of the columns whose value is an unchanged TOASTed value that PostgreSQL did
    /// not send (List<Utf8>; NULL when there are none). Those columns are NULL in the row
    /// and mean "keep the previous value", not NULL.
    pub toast_unchanged: String,
}

impl MetaColumns {
    /// The column names of a preset.
    pub fn preset(preset: MetaPreset) -> Self {
        match preset {
            MetaPreset::Pgcdc => MetaColumns {
                lsn: "_pgcdc_lsn".into(),
                commit_lsn: COMMIT_LSN.into(),
                op: Some("_pgcdc_op".into()),
                commit_ts: Some("_pgcdc_commit_ts".into()),
                xid: Some("_pgcdc_xid".into()),
                deleted_ts: None,
                toast_unchanged: TOAST_UNCHANGED.into(),
            },
            MetaPreset::Dlt => MetaColumns {
                lsn: "lsn".into(),
                commit_lsn: COMMIT_LSN.into(),
                op: Some("_pgcdc_op".into()),
                commit_ts: None,
                xid: None,
                deleted_ts: Some("deleted_ts".into()),
                toast_unchanged: TOAST_UNCHANGED.into(),
            },
        }
    }

    /// All configured names, in the order they are appended to a row.
    pub fn names(&self) -> Vec<&str> {
        let mut v = vec![self.lsn.as_str(), self.commit_lsn.as_str()];
        for n in [&self.op, &self.commit_ts, &self.xid, &self.deleted_ts]
            .into_iter()
            .flatten()
        {
            v.push(n.as_str());
        }
        v.push(self.toast_unchanged.as_str());
        v
    }
}

const TOAST_UNCHANGED: &str = "_pgcdc_toast_unchanged";
const COMMIT_LSN: &str = "_pgcdc_commit_lsn";
