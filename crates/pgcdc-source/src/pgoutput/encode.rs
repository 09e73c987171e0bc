//! A pgoutput encoder, for tests: builds the bytes the server would send, so decoder
//! tests and the run loop's unit tests can script a replication session without a server.
//!
//! [`W`] writes fields in the protocol's byte order; the functions below build whole
//! messages of the kinds the run loop handles (protocol version 1 framing: no xid fields).
//! Compiled for this crate's tests and with the `test-support` feature.

use super::TupleValue;

/// A message under construction: append fields, take the bytes from `.0`.
#[derive(Debug, Default, Clone)]
pub struct W(pub Vec<u8>);

impl W {
    /// A byte.
    pub fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    /// A big-endian u16.
    pub fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// A big-endian u32.
    pub fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// A big-endian i32.
    pub fn i32(mut self, v: i32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// A big-endian u64.
    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// A NUL-terminated string.
    pub fn s(mut self, v: &str) -> Self {
        self.0.extend_from_slice(v.as_bytes());
        self.0.push(0);
        self
    }
    /// TupleData: a column count, then each value.
    pub fn tuple(mut self, values: &[TupleValue<'_>]) -> Self {
        let n = u16::try_from(values.len()).unwrap_or(u16::MAX);
        self.0.extend_from_slice(&n.to_be_bytes());
        for v in values {
            match v {
                TupleValue::Null => self.0.push(b'n'),
                TupleValue::UnchangedToast => self.0.push(b'u'),
                TupleValue::Text(b) | TupleValue::Binary(b) => {
                    self.0.push(if matches!(v, TupleValue::Text(_)) {
                        b't'
                    } else {
                        b'b'
                    });
                    let len = i32::try_from(b.len()).unwrap_or(i32::MAX);
                    self.0.extend_from_slice(&len.to_be_bytes());
                    self.0.extend_from_slice(b);
                }
            }
        }
        self
    }
}

/// `Begin`: the transaction whose commit record is at `final_lsn`.
pub fn begin(final_lsn: u64, commit_ts: i64, xid: u32) -> Vec<u8> {
    W::default()
        .u8(b'B')
        .u64(final_lsn)
        .u64(commit_ts as u64)
        .u32(xid)
        .0
}

/// `Commit` of the transaction whose commit record is at `commit_lsn`, ending at `end_lsn`.
pub fn commit(commit_lsn: u64, end_lsn: u64, commit_ts: i64) -> Vec<u8> {
    W::default()
        .u8(b'C')
        .u8(0)
        .u64(commit_lsn)
        .u64(end_lsn)
        .u64(commit_ts as u64)
        .0
}

/// One column of a [`relation`]: name, type OID, whether it is part of the key.
pub struct Col<'a> {
    /// Column name.
    pub name: &'a str,
    /// Type OID (e.g. 23 int4, 25 text).
    pub type_oid: u32,
    /// Part of the replica identity.
    pub key: bool,
}

/// `Relation`: table `namespace.name` with `columns`, replica identity `replident`
/// (`d` default, `f` full, `i` index, `n` nothing).
pub fn relation(
    rel_id: u32,
    namespace: &str,
    name: &str,
    replident: u8,
    columns: &[Col<'_>],
) -> Vec<u8> {
    let mut w = W::default()
        .u8(b'R')
        .u32(rel_id)
        .s(namespace)
        .s(name)
        .u8(replident)
        .u16(u16::try_from(columns.len()).unwrap_or(u16::MAX));
    for c in columns {
        w = w.u8(u8::from(c.key)).s(c.name).u32(c.type_oid).i32(-1);
    }
    w.0
}

/// `Insert` of `new` into `rel_id`.
pub fn insert(rel_id: u32, new: &[TupleValue<'_>]) -> Vec<u8> {
    W::default().u8(b'I').u32(rel_id).u8(b'N').tuple(new).0
}

/// `Update` of `rel_id` to `new`; `old` is the old key (`K`) when the key changed.
pub fn update(rel_id: u32, old_key: Option<&[TupleValue<'_>]>, new: &[TupleValue<'_>]) -> Vec<u8> {
    let mut w = W::default().u8(b'U').u32(rel_id);
    if let Some(old) = old_key {
        w = w.u8(b'K').tuple(old);
    }
    w.u8(b'N').tuple(new).0
}

/// `Delete` from `rel_id` of the row with key `old`.
pub fn delete(rel_id: u32, old: &[TupleValue<'_>]) -> Vec<u8> {
    W::default().u8(b'D').u32(rel_id).u8(b'K').tuple(old).0
}

/// `Truncate` of `rel_ids`.
pub fn truncate(rel_ids: &[u32]) -> Vec<u8> {
    let mut w = W::default()
        .u8(b'T')
        .i32(i32::try_from(rel_ids.len()).unwrap_or(i32::MAX))
        .u8(0);
    for r in rel_ids {
        w = w.u32(*r);
    }
    w.0
}
