//! Reading a table's initial state from an exported snapshot.
//!
//! Workers open ordinary connections, import the snapshot a replication slot exported
//! (`REPEATABLE READ` + `SET TRANSACTION SNAPSHOT`), and stream one CTID range ("chunk")
//! of a table at a time with `COPY (SELECT … WHERE ctid range) TO STDOUT`. This module
//! plans the chunks, builds the statements, reads the table's columns from the catalog,
//! and parses COPY's text format without copying values that need no unescaping.

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

/// The COPY statement for one chunk of `table`, reading `columns`.
pub fn copy_statement(
    table: &TableName,
    columns: &[&str],
    chunk: Chunk,
    partitioned: bool,
) -> String {
    let cols = if columns.is_empty() {
        "NULL".to_string()
    } else {
        columns
            .iter()
            .map(|c| quote_ident(c))
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
    format!("COPY (SELECT {cols} FROM {table}{filter}) TO STDOUT")
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

/// Splits COPY text-format data into rows and fields, unescaping where needed.
#[derive(Debug, Default)]
pub struct CopyText {
    pending: Vec<u8>,
    scratch: Vec<u8>,
    ranges: Vec<Option<(bool, usize, usize)>>,
}

/// One field of a row: NULL or its (unescaped) text.
pub type Field<'a> = Option<&'a [u8]>;

impl CopyText {
    /// A parser.
    pub fn new() -> Self {
        CopyText::default()
    }

    /// Feeds COPY data; calls `row` with the fields of each complete row.
    pub fn feed<E>(
        &mut self,
        data: &[u8],
        mut row: impl FnMut(&[Field<'_>]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let mut data = data;
        if !self.pending.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                None => {
                    self.pending.extend_from_slice(data);
                    return Ok(());
                }
                Some(p) => {
                    let mut line = std::mem::take(&mut self.pending);
                    line.extend_from_slice(&data[..p]);
                    self.line(&line, &mut row)?;
                    data = &data[p + 1..];
                }
            }
        }
        while let Some(p) = data.iter().position(|&b| b == b'\n') {
            self.line(&data[..p], &mut row)?;
            data = &data[p + 1..];
        }
        self.pending.extend_from_slice(data);
        Ok(())
    }

    /// Whether unparsed bytes remain (a truncated last row).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn line<E>(
        &mut self,
        line: &[u8],
        row: &mut impl FnMut(&[Field<'_>]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        self.scratch.clear();
        self.ranges.clear();
        for field in line.split(|&b| b == b'\t') {
            if field == b"\\N" {
                self.ranges.push(None);
            } else if !field.contains(&b'\\') {
                // (false, start, end) indexes the line itself.
                let start = field.as_ptr() as usize - line.as_ptr() as usize;
                self.ranges.push(Some((false, start, start + field.len())));
            } else {
                let start = self.scratch.len();
                unescape(field, &mut self.scratch);
                self.ranges.push(Some((true, start, self.scratch.len())));
            }
        }
        let fields: Vec<Field<'_>> = self
            .ranges
            .iter()
            .map(|r| {
                r.map(|(scratch, a, b)| {
                    let src: &[u8] = if scratch { &self.scratch } else { line };
                    src.get(a..b).unwrap_or_default()
                })
            })
            .collect();
        row(&fields)
    }
}

/// Decodes COPY text escapes (`\n`, `\t`, `\\`, octal `\NNN`, hex `\xHH`, …).
fn unescape(field: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while let Some(&b) = field.get(i) {
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&c) = field.get(i) else {
            out.push(b'\\');
            break;
        };
        i += 1;
        match c {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                for _ in 0..2 {
                    match field.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            b'x' => {
                let mut v = 0u32;
                let mut n = 0;
                while n < 2 {
                    match field.get(i).and_then(|&d| (d as char).to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d;
                            i += 1;
                            n += 1;
                        }
                        None => break,
                    }
                }
                if n == 0 {
                    out.push(b'x');
                } else {
                    out.push(v as u8);
                }
            }
            other => out.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&[u8]]) -> Vec<Vec<Option<Vec<u8>>>> {
        let mut p = CopyText::new();
        let mut rows = Vec::new();
        for c in chunks {
            p.feed(c, |f| {
                rows.push(f.iter().map(|x| x.map(<[u8]>::to_vec)).collect());
                Ok::<(), ()>(())
            })
            .unwrap();
        }
        assert!(!p.has_pending());
        rows
    }

    #[test]
    fn rows_split_across_reads_and_escapes_decode() {
        let rows = parse(&[b"1\ta\\tb\t\\N\n2\t", b"x\\\\y\\ny\\101\\x41\t\n"]);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            vec![Some(b"1".to_vec()), Some(b"a\tb".to_vec()), None]
        );
        assert_eq!(
            rows[1],
            vec![
                Some(b"2".to_vec()),
                Some(b"x\\y\nyAA".to_vec()),
                Some(Vec::new())
            ]
        );
    }

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
            copy_statement(&t, &["a"], Chunk { lo: 10, hi: Some(20) }, false),
            "COPY (SELECT \"a\" FROM \"s\".\"t\"\"x\" WHERE ctid >= '(10,0)'::tid AND ctid < '(20,0)'::tid) TO STDOUT"
        );
    }
}
