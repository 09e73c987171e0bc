//! Reading a slot through the SQL interface, for mini-batch runs.
//!
//! `pg_logical_slot_peek_binary_changes` decodes in an ordinary backend and returns the
//! same pgoutput messages the walsender would send, one row each, without consuming
//! them. Read through one `COPY (SELECT lsn, data FROM …) TO STDOUT (FORMAT binary)`,
//! that is much cheaper than the streaming protocol's one network message per change.
//!
//! Exactly once, page by page:
//! - a page is `peek(upto_lsn = end, upto_nchanges = n)`: PostgreSQL decodes from the
//!   slot's `confirmed_flush_lsn` and stops after the first transaction commit at which
//!   `n` rows were produced (pages hold whole transactions: no `streaming` option), or
//!   at `end`;
//! - the caller commits the page to the destination, then moves the slot with
//!   [`advance_slot`] to the checkpoint it committed, so the next page starts after it
//!   and nothing is decoded twice;
//! - a crash between the two leaves the slot behind the destination's checkpoint, and
//!   the next run first advances it there (never past it).
//!
//! Between pages the slot is not held by any connection, so runs take a session-level
//! advisory lock ([`lock_slot`]) instead: one writer per slot, whichever way it reads.

use std::ops::Range;

use pgcdc_core::Lsn;
use tokio_postgres::Client;

use crate::{Error, ErrorKind, Result};

/// A string literal that means the same whatever `standard_conforming_strings` is.
fn literal(s: &str) -> String {
    format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// The COPY statement reading one page of `slot` (pgoutput `options`, as for
/// START_REPLICATION), up to `upto_lsn` and about `upto_nchanges` messages.
pub fn peek_statement(
    slot: &str,
    upto_lsn: Lsn,
    upto_nchanges: u32,
    options: &[(&str, &str)],
) -> String {
    let mut args = vec![
        literal(slot),
        format!("{}::pg_lsn", literal(&upto_lsn.to_string())),
        upto_nchanges.min(i32::MAX as u32).to_string(),
    ];
    for (k, v) in options {
        args.push(literal(k));
        args.push(literal(v));
    }
    format!(
        "COPY (SELECT lsn, data FROM pg_logical_slot_peek_binary_changes({})) TO STDOUT (FORMAT binary)",
        args.join(", ")
    )
}

/// Moves `slot`'s confirmed position forward to `lsn` (never back; a no-op when it is
/// there already). Call only once everything before `lsn` is durable in the destination.
pub async fn advance_slot(client: &Client, slot: &str, lsn: Lsn) -> Result<()> {
    let what = format!("advancing slot {slot} to {lsn}");
    let row = client
        .query_opt(
            "SELECT confirmed_flush_lsn::text,
                    CASE WHEN confirmed_flush_lsn < $2::text::pg_lsn
                         THEN (SELECT end_lsn::text FROM pg_replication_slot_advance(slot_name, $2::text::pg_lsn)) END
               FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot, &lsn.to_string()],
        )
        .await
        .map_err(|e| Error::from_pg(&what, e))?
        .ok_or_else(|| Error::new(ErrorKind::Slot, format!("{what}: the slot no longer exists")))?;
    let reached: Option<String> = row.get(1);
    let reached: String = reached.unwrap_or_else(|| row.get(0));
    match reached.parse::<Lsn>() {
        // Never read a page twice: the next one must start past `lsn`.
        Ok(at) if at >= lsn => Ok(()),
        _ => Err(Error::new(
            ErrorKind::Slot,
            format!("{what}: the server moved it only to {reached}"),
        )),
    }
}

/// The advisory-lock key of a slot (classid "pgcd", objid the slot name's hash).
const LOCK_SQL: &str = "SELECT pg_try_advisory_lock(1885562724, hashtext($1))";

/// Takes the session-level lock that one pgcdc process holds while it writes for `slot`;
/// false if another session holds it. Released with the connection.
pub async fn lock_slot(client: &Client, slot: &str) -> Result<bool> {
    let row = client
        .query_one(LOCK_SQL, &[&slot])
        .await
        .map_err(|e| Error::from_pg("taking the slot's advisory lock", e))?;
    Ok(row.get(0))
}

/// Who holds a slot that [`claim_slot`] could not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotBusy {
    /// Another session holds the slot's lock (a pgcdc process, perhaps between pages).
    Locked,
    /// A walsender is streaming from the slot (its PID when the server says).
    Active(Option<i32>),
}

/// Takes `slot`'s lock on this session: the one way a pgcdc process makes a slot (and so
/// its destination) its own. With `idle`, a slot a walsender is streaming from counts
/// as busy too (for work that must not overlap a running stream). The lock is held
/// until [`unlock_slot`] or the connection closes.
pub async fn claim_slot(client: &Client, slot: &str, idle: bool) -> Result<Result<(), SlotBusy>> {
    if idle {
        if let Some(info) = crate::setup::slot_info(client, slot).await? {
            if info.active {
                return Ok(Err(SlotBusy::Active(info.active_pid)));
            }
        }
    }
    if !lock_slot(client, slot).await? {
        return Ok(Err(SlotBusy::Locked));
    }
    Ok(Ok(()))
}

/// Whether another session holds `slot`'s lock (a pgcdc reading it, perhaps between two
/// pages, when the slot itself shows no active process).
pub async fn locked_elsewhere(client: &Client, slot: &str) -> Result<bool> {
    if !lock_slot(client, slot).await? {
        return Ok(true);
    }
    unlock_slot(client, slot).await?;
    Ok(false)
}

/// Releases the lock [`lock_slot`] took on this session.
pub async fn unlock_slot(client: &Client, slot: &str) -> Result<()> {
    client
        .execute(
            "SELECT pg_advisory_unlock(1885562724, hashtext($1))",
            &[&slot],
        )
        .await
        .map_err(|e| Error::from_pg("releasing the slot's advisory lock", e))?;
    Ok(())
}

const COPY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Parses the binary COPY output of [`peek_statement`]: rows of (`lsn`, `data`).
///
/// Feed it COPY chunks with [`PeekRows::push`]; take complete rows with
/// [`PeekRows::next_row`], whose data range is read with [`PeekRows::data`] until the next
/// `push`.
#[derive(Debug, Default)]
pub struct PeekRows {
    buf: Vec<u8>,
    pos: usize,
    header_done: bool,
    ended: bool,
}

impl PeekRows {
    /// A parser.
    pub fn new() -> Self {
        PeekRows::default()
    }

    /// Adds COPY data (dropping what was already read).
    pub fn push(&mut self, data: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos.min(self.buf.len()));
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete row: its LSN and the range of its pgoutput message in
    /// [`PeekRows::data`]; None when more data is needed or the trailer was read.
    pub fn next_row(&mut self) -> Result<Option<(Lsn, Range<usize>)>> {
        if !self.header_done {
            let sig = COPY_SIGNATURE.len();
            let Some(ext) = read_i32(&self.buf, self.pos + sig + 4) else {
                return Ok(None);
            };
            if self.buf.get(self.pos..self.pos + sig) != Some(COPY_SIGNATURE) {
                return Err(bad("binary COPY data without its signature"));
            }
            let ext = usize::try_from(ext).map_err(|_| bad("negative COPY header extension"))?;
            let total = (sig + 8).saturating_add(ext);
            if self.buf.len() - self.pos < total {
                return Ok(None);
            }
            self.pos += total;
            self.header_done = true;
        }
        if self.ended {
            return Ok(None);
        }
        let Some(count) = read_i16(&self.buf, self.pos) else {
            return Ok(None);
        };
        if count == -1 {
            self.ended = true;
            self.pos += 2;
            return Ok(None);
        }
        if count != 2 {
            return Err(bad("a peeked row without its two columns (lsn, data)"));
        }
        let mut p = self.pos + 2;
        let Some(lsn_len) = read_i32(&self.buf, p) else {
            return Ok(None);
        };
        if lsn_len != 8 {
            return Err(bad("a peeked row with an unreadable lsn"));
        }
        p += 4;
        let Some(lsn) = read_u64(&self.buf, p) else {
            return Ok(None);
        };
        p += 8;
        let Some(len) = read_i32(&self.buf, p) else {
            return Ok(None);
        };
        let len = usize::try_from(len).map_err(|_| bad("a peeked row with NULL data"))?;
        p += 4;
        let Some(end) = p.checked_add(len) else {
            return Err(bad("a peeked row longer than memory"));
        };
        if end > self.buf.len() {
            return Ok(None);
        }
        self.pos = end;
        Ok(Some((Lsn(lsn), p..end)))
    }

    /// The bytes of a range returned by [`PeekRows::next_row`].
    pub fn data(&self, range: Range<usize>) -> &[u8] {
        self.buf.get(range).unwrap_or_default()
    }

    /// Whether the data ended cleanly (trailer read, nothing left over).
    pub fn finished(&self) -> bool {
        self.ended && self.pos == self.buf.len()
    }
}

fn bad(what: &str) -> Error {
    Error::new(ErrorKind::Protocol, what)
}

fn read_i16(b: &[u8], at: usize) -> Option<i16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(i16::from_be_bytes(s.try_into().ok()?))
}

fn read_i32(b: &[u8], at: usize) -> Option<i32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(i32::from_be_bytes(s.try_into().ok()?))
}

fn read_u64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    Some(u64::from_be_bytes(s.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy_data(rows: &[(u64, &[u8])]) -> Vec<u8> {
        let mut out = COPY_SIGNATURE.to_vec();
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        for (lsn, data) in rows {
            out.extend_from_slice(&2i16.to_be_bytes());
            out.extend_from_slice(&8i32.to_be_bytes());
            out.extend_from_slice(&lsn.to_be_bytes());
            out.extend_from_slice(&(data.len() as i32).to_be_bytes());
            out.extend_from_slice(data);
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    type Parsed = (Vec<(u64, Vec<u8>)>, bool);

    fn parse_in_chunks(data: &[u8], chunk: usize) -> Result<Parsed> {
        let mut p = PeekRows::new();
        let mut rows = Vec::new();
        for c in data.chunks(chunk) {
            p.push(c);
            while let Some((lsn, r)) = p.next_row()? {
                rows.push((lsn.0, p.data(r).to_vec()));
            }
        }
        Ok((rows, p.finished()))
    }

    #[test]
    fn rows_split_anywhere_parse_the_same() {
        let rows: Vec<(u64, &[u8])> = vec![(1, b"B..."), (0x1_0000_0002, b""), (3, &[0u8; 300])];
        let data = copy_data(&rows);
        for chunk in [1, 2, 3, 7, 19, 64, data.len()] {
            let (got, finished) = parse_in_chunks(&data, chunk).unwrap();
            assert!(finished, "chunk {chunk}");
            assert_eq!(got.len(), 3);
            for ((l, d), (el, ed)) in got.iter().zip(&rows) {
                assert_eq!((l, d.as_slice()), (el, *ed));
            }
        }
    }

    #[test]
    fn truncated_and_malformed_data_never_panics() {
        let data = copy_data(&[(5, b"abc")]);
        for cut in 0..data.len() {
            let (_, finished) = parse_in_chunks(&data[..cut], 3).unwrap();
            assert!(!finished, "cut at {cut}");
        }
        let mut bad_sig = data.clone();
        bad_sig[0] = b'X';
        assert!(parse_in_chunks(&bad_sig, 4).is_err());
        let mut three_cols = data.clone();
        let at = COPY_SIGNATURE.len() + 8;
        three_cols[at..at + 2].copy_from_slice(&3i16.to_be_bytes());
        assert!(parse_in_chunks(&three_cols, 4).is_err());
        let mut null_data = data;
        let at = COPY_SIGNATURE.len() + 8 + 2 + 4 + 8;
        null_data[at..at + 4].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(parse_in_chunks(&null_data, 4).is_err());
    }

    #[test]
    fn statements_quote_every_argument() {
        let s = peek_statement(
            "s",
            Lsn(0x16_B374_D848),
            1000,
            &[("publication_names", "\"it's\\\"")],
        );
        assert_eq!(
            s,
            "COPY (SELECT lsn, data FROM pg_logical_slot_peek_binary_changes(E's', E'16/B374D848'::pg_lsn, 1000, E'publication_names', E'\"it''s\\\\\"')) TO STDOUT (FORMAT binary)"
        );
    }
}
