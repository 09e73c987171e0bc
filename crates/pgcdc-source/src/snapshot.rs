//! Reading a table's initial state from an exported snapshot.
//!
//! Workers open ordinary connections, import the snapshot a replication slot exported
//! (`REPEATABLE READ` + `SET TRANSACTION SNAPSHOT`), and stream one CTID range ("chunk")
//! of a table at a time with `COPY (SELECT … WHERE ctid range) TO STDOUT (FORMAT binary)`. This module
//! plans the chunks, builds the statements, reads the table's columns from the catalog,
//! and parses binary COPY data.

use pgcdc_core::{quote_ident, quote_literal, TableName};
use tokio_postgres::Client;

use crate::catalog::RelColumn;
use crate::error::{Error, ErrorKind, Result};

/// A table as the snapshot reads it.
#[derive(Debug, Clone)]
pub struct SnapshotTable {
    /// The table.
    pub table: TableName,
    /// Its OID.
    pub oid: u32,
    /// `relkind`: r (table) or p (partitioned: read whole, through the root).
    pub relkind: char,
    /// Heap pages (`pg_class.relpages`, an estimate).
    pub pages: u32,
    /// Estimated rows (`pg_class.reltuples`).
    pub rows: f64,
    /// `relreplident`.
    pub replident: u8,
    /// Columns in attribute order (generated columns excluded, as pgoutput does).
    pub columns: Vec<(String, u8, u32, i32)>,
}

impl SnapshotTable {
    /// The columns as the catalog projection expects them.
    pub fn rel_columns(&self) -> Vec<RelColumn<'_>> {
        self.columns
            .iter()
            .map(|(name, flags, type_oid, typmod)| RelColumn {
                name,
                flags: *flags,
                type_oid: *type_oid,
                typmod: *typmod,
            })
            .collect()
    }
}

/// Reads a table's shape and size.
pub async fn describe_table(client: &Client, table: &TableName) -> Result<SnapshotTable> {
    let row = client
        .query_opt(
            "SELECT c.oid, c.relkind::text, c.relpages::int8, c.reltuples::float8, c.relreplident::text
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relname = $2",
            &[&table.schema, &table.name],
        )
        .await
        .map_err(|e| Error::from_pg("reading the table for the snapshot", e))?
        .ok_or_else(|| Error::new(ErrorKind::Setup, format!("table {table} does not exist")))?;
    let oid: u32 = row.get(0);
    let relkind = row.get::<_, String>(1).chars().next().unwrap_or('r');
    let pages = u32::try_from(row.get::<_, i64>(2).max(0)).unwrap_or(u32::MAX);
    let rows: f64 = row.get(3);
    let replident = row.get::<_, String>(4).bytes().next().unwrap_or(b'd');
    let cols = client
        .query(
            "SELECT a.attname::text, a.atttypid, a.atttypmod,
                    COALESCE(a.attnum = ANY(i.indkey), false)
               FROM pg_attribute a
               LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
              WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
              ORDER BY a.attnum",
            &[&oid],
        )
        .await
        .map_err(|e| Error::from_pg("reading the table's columns", e))?;
    let columns = cols
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                u8::from(r.get::<_, bool>(3)),
                r.get::<_, u32>(1),
                r.get::<_, i32>(2),
            )
        })
        .collect();
    Ok(SnapshotTable {
        table: table.clone(),
        oid,
        relkind,
        pages,
        rows,
        replident,
        columns,
    })
}

/// A CTID page range `[lo, hi)`; `hi = None` reads to the end of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// First page.
    pub lo: u32,
    /// Page after the last, or None for "to the end".
    pub hi: Option<u32>,
}

/// Splits `pages` into chunks of `pages_per_chunk`; the last one is open-ended so rows
/// beyond a stale `relpages` are still read. Partitioned roots are one chunk.
pub fn plan_chunks(pages: u32, pages_per_chunk: u32, partitioned: bool) -> Vec<Chunk> {
    let step = pages_per_chunk.max(1);
    if partitioned || pages <= step {
        return vec![Chunk { lo: 0, hi: None }];
    }
    let mut out = Vec::new();
    let mut lo = 0u32;
    while lo.saturating_add(step) < pages {
        out.push(Chunk {
            lo,
            hi: Some(lo + step),
        });
        lo += step;
    }
    out.push(Chunk { lo, hi: None });
    out
}

/// How the snapshot selects one column in its binary COPY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAs {
    /// As is: the type's binary (send) format, decoded by `ColumnBuilder::append_binary`.
    Binary,
    /// `::text`, for types whose cast to text is their output function (text, varchar,
    /// name, json, jsonb, numeric).
    Cast,
    /// `format('%s', c)`: exactly the type's output function, as pgoutput sends it. A
    /// plain `::text` is not that for every type: `char(n)::text` drops the padding,
    /// `inet::text` adds the mask.
    Output,
}

impl ReadAs {
    /// The read for a replicated column.
    pub fn of(column: &pgcdc_core::Column) -> ReadAs {
        use pgcdc_core::types::oid;
        if !column.hinted && crate::values::ColumnBuilder::binary_kind(&column.kind) {
            ReadAs::Binary
        } else if matches!(
            column.type_oid,
            oid::TEXT | oid::VARCHAR | oid::NAME | oid::JSON | oid::JSONB | oid::NUMERIC
        ) {
            ReadAs::Cast
        } else {
            ReadAs::Output
        }
    }
}

/// The binary COPY statement for one chunk of `table`. Each column is `(name, binary)`:
/// columns whose kind has no binary reader are selected as `::text` (their binary form
/// is then their text, byte for byte).
pub fn copy_statement(
    table: &TableName,
    columns: &[(&str, ReadAs)],
    chunk: Chunk,
    partitioned: bool,
) -> String {
    let cols = if columns.is_empty() {
        "NULL".to_string()
    } else {
        columns
            .iter()
            .map(|(c, read)| {
                let c = quote_ident(c);
                match read {
                    ReadAs::Binary => c,
                    ReadAs::Cast => format!("{c}::text"),
                    // num_nulls, not IS NULL: a composite value whose attributes are
                    // all NULL IS NULL, yet it is not a NULL value.
                    ReadAs::Output => {
                        format!("CASE WHEN num_nulls({c}) = 1 THEN NULL ELSE format('%s', {c}) END")
                    }
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let filter = match (partitioned, chunk.hi) {
        (true, _) => String::new(),
        (false, Some(hi)) => format!(
            " WHERE ctid >= '({},0)'::tid AND ctid < '({hi},0)'::tid",
            chunk.lo
        ),
        (false, None) if chunk.lo == 0 => String::new(),
        (false, None) => format!(" WHERE ctid >= '({},0)'::tid", chunk.lo),
    };
    format!("COPY (SELECT {cols} FROM {table}{filter}) TO STDOUT (FORMAT binary)")
}

/// Parses COPY's binary format: the header, then tuples of length-prefixed fields.
#[derive(Debug, Default)]
pub struct CopyBinary {
    buf: Vec<u8>,
    header_done: bool,
    ended: bool,
}

const COPY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

impl CopyBinary {
    /// A parser.
    pub fn new() -> Self {
        CopyBinary::default()
    }

    /// Feeds COPY data; calls `row` with the fields (None = NULL) of each complete tuple.
    pub fn feed<E: From<Error>>(
        &mut self,
        data: &[u8],
        mut row: impl FnMut(&[Option<&[u8]>]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        self.buf.extend_from_slice(data);
        let mut pos = 0usize;
        let mut fields: Vec<Option<(usize, usize)>> = Vec::new();
        if !self.header_done {
            let Some(after) = self.header_len() else {
                return Ok(());
            };
            pos = after?;
            self.header_done = true;
        }
        loop {
            if self.ended {
                break;
            }
            let Some(count) = read_i16(&self.buf, pos) else {
                break;
            };
            if count == -1 {
                self.ended = true;
                pos += 2;
                break;
            }
            let count = usize::try_from(count).map_err(|_| {
                Error::new(
                    ErrorKind::Protocol,
                    "negative field count in binary COPY data",
                )
            })?;
            let mut p = pos + 2;
            fields.clear();
            let mut complete = true;
            for _ in 0..count {
                let Some(len) = read_i32(&self.buf, p) else {
                    complete = false;
                    break;
                };
                p += 4;
                if len < 0 {
                    fields.push(None);
                    continue;
                }
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                if self.buf.len().saturating_sub(p) < len {
                    complete = false;
                    break;
                }
                fields.push(Some((p, p + len)));
                p += len;
            }
            if !complete {
                break;
            }
            let values: Vec<Option<&[u8]>> = fields
                .iter()
                .map(|f| f.and_then(|(a, b)| self.buf.get(a..b)))
                .collect();
            row(&values)?;
            pos = p;
        }
        self.buf.drain(..pos.min(self.buf.len()));
        Ok(())
    }

    /// The header's length once it is complete (None: need more data).
    fn header_len(&self) -> Option<Result<usize>> {
        if self.buf.len() < COPY_SIGNATURE.len() + 8 {
            return None;
        }
        if self.buf.get(..COPY_SIGNATURE.len()) != Some(COPY_SIGNATURE) {
            return Some(Err(Error::new(
                ErrorKind::Protocol,
                "binary COPY data without its signature",
            )));
        }
        let ext = read_i32(&self.buf, COPY_SIGNATURE.len() + 4)?;
        let ext = usize::try_from(ext).unwrap_or(usize::MAX);
        let total = (COPY_SIGNATURE.len() + 8).checked_add(ext)?;
        (self.buf.len() >= total).then_some(Ok(total))
    }

    /// Whether the data ended cleanly (trailer seen, nothing left over).
    pub fn finished(&self) -> bool {
        self.ended && self.buf.is_empty()
    }
}

fn read_i16(b: &[u8], at: usize) -> Option<i16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(i16::from_be_bytes([s[0], s[1]]))
}

fn read_i32(b: &[u8], at: usize) -> Option<i32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Starts a transaction on `client` that sees exactly the exported snapshot `name`.
pub async fn import_snapshot(client: &Client, name: &str) -> Result<()> {
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
            quote_literal(name)
        ))
        .await
        .map_err(|e| Error::from_pg("importing the exported snapshot", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_table_and_end_open() {
        assert_eq!(plan_chunks(0, 10, false), vec![Chunk { lo: 0, hi: None }]);
        assert_eq!(
            plan_chunks(25, 10, false),
            vec![
                Chunk {
                    lo: 0,
                    hi: Some(10)
                },
                Chunk {
                    lo: 10,
                    hi: Some(20)
                },
                Chunk { lo: 20, hi: None }
            ]
        );
        assert_eq!(plan_chunks(25, 10, true).len(), 1);
        let t = TableName::new("s", "t\"x");
        assert_eq!(
            copy_statement(&t, &[("a", ReadAs::Binary), ("b", ReadAs::Cast)], Chunk { lo: 10, hi: Some(20) }, false),
            "COPY (SELECT \"a\", \"b\"::text FROM \"s\".\"t\"\"x\" WHERE ctid >= '(10,0)'::tid AND ctid < '(20,0)'::tid) TO STDOUT (FORMAT binary)"
        );
    }

    #[test]
    fn binary_copy_tuples_split_anywhere_parse() {
        let mut data = COPY_SIGNATURE.to_vec();
        data.extend_from_slice(&0i32.to_be_bytes());
        data.extend_from_slice(&0i32.to_be_bytes());
        for (a, b) in [(&b"one"[..], None), (&b""[..], Some(&b"x"[..]))] {
            data.extend_from_slice(&2i16.to_be_bytes());
            data.extend_from_slice(&(a.len() as i32).to_be_bytes());
            data.extend_from_slice(a);
            match b {
                None => data.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(b) => {
                    data.extend_from_slice(&(b.len() as i32).to_be_bytes());
                    data.extend_from_slice(b);
                }
            }
        }
        data.extend_from_slice(&(-1i16).to_be_bytes());
        for split in 0..data.len() {
            let mut p = CopyBinary::new();
            let mut rows: Vec<Vec<Option<Vec<u8>>>> = Vec::new();
            for part in [&data[..split], &data[split..]] {
                p.feed(part, |f| {
                    rows.push(f.iter().map(|x| x.map(<[u8]>::to_vec)).collect());
                    Ok::<(), Error>(())
                })
                .unwrap();
            }
            assert!(p.finished(), "split at {split}");
            assert_eq!(
                rows,
                vec![
                    vec![Some(b"one".to_vec()), None],
                    vec![Some(Vec::new()), Some(b"x".to_vec())]
                ]
            );
        }
        let mut p = CopyBinary::new();
        assert!(p
            .feed(b"NOTPGCOPY\n\0\0\0\0\0\0\0\0\0", |_| Ok::<(), Error>(()))
            .is_err());
    }
}
