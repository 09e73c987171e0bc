//! A pure, zero-copy decoder of the pgoutput logical replication protocol (v1–v4) and of
//! the replication CopyData frames around it.
//!
//! [`parse_frame`] splits a CopyData payload of START_REPLICATION into XLogData (with the
//! pgoutput message inside) or a primary keepalive. [`Decoder::decode`] turns a pgoutput
//! message into a [`Message`] that borrows from the input: strings are `&str`, tuple
//! values `&[u8]`. The decoder tracks Stream Start/Stop itself, because inside a streamed
//! block (protocol v2+) change messages carry an extra transaction id.
//!
//! Every length is checked: truncated, over-long or unknown input is a [`DecodeError`],
//! never a panic. Errors describe structure only, never row values. Timestamps are kept as
//! PostgreSQL sends them: microseconds since 2000-01-01 UTC.
//!
//! Message layouts: PostgreSQL docs, "Logical Replication Message Formats", and
//! `src/backend/replication/logical/proto.c`.

use pgcdc_core::Lsn;

/// What went wrong decoding a message. Says where, never what the data was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside `what`.
    #[error("message truncated in {what}")]
    Truncated {
        /// The field being read.
        what: &'static str,
    },
    /// Unknown frame or message type byte.
    #[error("unknown {what} type byte 0x{byte:02x}")]
    Unknown {
        /// Frame or message.
        what: &'static str,
        /// The byte.
        byte: u8,
    },
    /// A tuple column kind other than n, u, t, b.
    #[error("unknown tuple value kind 0x{0:02x}")]
    UnknownTupleKind(u8),
    /// A tuple marker other than the expected ones (N, K, O).
    #[error("unexpected tuple marker 0x{found:02x} in {what}")]
    UnexpectedMarker {
        /// The message.
        what: &'static str,
        /// The byte found.
        found: u8,
    },
    /// A string that is not UTF-8.
    #[error("invalid UTF-8 in {what}")]
    InvalidUtf8 {
        /// The field.
        what: &'static str,
    },
    /// Bytes left after a complete message.
    #[error("{len} unexpected trailing bytes after {what}")]
    TrailingBytes {
        /// The message.
        what: &'static str,
        /// How many.
        len: usize,
    },
    /// A negative length or count.
    #[error("negative length in {what}")]
    NegativeLength {
        /// The field.
        what: &'static str,
    },
}

type Result<T> = std::result::Result<T, DecodeError>;

/// A CopyData payload of the replication stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// WAL data: a pgoutput message.
    XLogData {
        /// LSN of the start of the data (for change messages: the change record's LSN).
        wal_start: Lsn,
        /// The server's current WAL end.
        wal_end: Lsn,
        /// Server clock, µs since 2000-01-01.
        send_time: i64,
        /// The pgoutput message.
        data: &'a [u8],
    },
    /// Primary keepalive.
    Keepalive {
        /// The server's current WAL end (everything before it was sent).
        wal_end: Lsn,
        /// Server clock, µs since 2000-01-01.
        send_time: i64,
        /// The server asks for a status update now.
        reply_requested: bool,
    },
}

/// Splits a CopyData payload into a [`Frame`].
pub fn parse_frame(buf: &[u8]) -> Result<Frame<'_>> {
    let mut r = Reader::new(buf);
    match r.u8("frame type")? {
        b'w' => {
            let wal_start = Lsn(r.u64("XLogData start")?);
            let wal_end = Lsn(r.u64("XLogData end")?);
            let send_time = r.i64("XLogData time")?;
            Ok(Frame::XLogData {
                wal_start,
                wal_end,
                send_time,
                data: r.rest(),
            })
        }
        b'k' => {
            let wal_end = Lsn(r.u64("keepalive end")?);
            let send_time = r.i64("keepalive time")?;
            let reply_requested = r.u8("keepalive reply flag")? == 1;
            r.finish("keepalive")?;
            Ok(Frame::Keepalive {
                wal_end,
                send_time,
                reply_requested,
            })
        }
        byte => Err(DecodeError::Unknown {
            what: "replication frame",
            byte,
        }),
    }
}

/// One value of a tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TupleValue<'a> {
    /// SQL NULL.
    Null,
    /// An unchanged TOASTed value that PostgreSQL did not send (`u`). Not NULL.
    UnchangedToast,
    /// Text format.
    Text(&'a [u8]),
    /// Binary format (with `binary 'true'`).
    Binary(&'a [u8]),
}

/// A row: validated once when parsed, iterated without further checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TupleData<'a> {
    columns: u16,
    raw: &'a [u8],
}

impl<'a> TupleData<'a> {
    /// Number of columns.
    pub fn len(&self) -> usize {
        usize::from(self.columns)
    }

    /// Whether the row has no columns.
    pub fn is_empty(&self) -> bool {
        self.columns == 0
    }

    /// The values in column order.
    pub fn iter(&self) -> TupleIter<'a> {
        TupleIter {
            reader: Reader::new(self.raw),
            left: self.columns,
        }
    }

    fn parse(r: &mut Reader<'a>) -> Result<Self> {
        let columns = r.u16("tuple column count")?;
        let start = r.pos;
        for _ in 0..columns {
            match r.u8("tuple value kind")? {
                b'n' | b'u' => {}
                b't' | b'b' => {
                    let len = r.len32("tuple value length")?;
                    r.skip(len, "tuple value")?;
                }
                other => return Err(DecodeError::UnknownTupleKind(other)),
            }
        }
        let raw = r
            .buf
            .get(start..r.pos)
            .ok_or(DecodeError::Truncated { what: "tuple" })?;
        Ok(TupleData { columns, raw })
    }
}

/// Iterator over a [`TupleData`]'s values.
#[derive(Debug, Clone)]
pub struct TupleIter<'a> {
    reader: Reader<'a>,
    left: u16,
}

impl<'a> Iterator for TupleIter<'a> {
    type Item = TupleValue<'a>;

    fn next(&mut self) -> Option<TupleValue<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The tuple was validated in TupleData::parse; a failure here cannot happen, and
        // would end the iteration early rather than panic.
        let r = &mut self.reader;
        match r.u8("").ok()? {
            b'n' => Some(TupleValue::Null),
            b'u' => Some(TupleValue::UnchangedToast),
            kind => {
                let len = r.len32("").ok()?;
                let v = r.take(len, "").ok()?;
                Some(if kind == b'b' {
                    TupleValue::Binary(v)
                } else {
                    TupleValue::Text(v)
                })
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::from(self.left), Some(usize::from(self.left)))
    }
}

/// One column of a Relation message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelationColumn<'a> {
    /// Flags: 1 = part of the replica identity key.
    pub flags: u8,
    /// Column name.
    pub name: &'a str,
    /// Type OID.
    pub type_oid: u32,
    /// typmod (-1 when none).
    pub type_modifier: i32,
}

/// A Relation message: a table's shape, sent before its first change and after DDL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relation<'a> {
    /// Transaction id (inside a streamed block).
    pub xid: Option<u32>,
    /// Relation OID.
    pub rel_id: u32,
    /// Schema; empty means pg_catalog.
    pub namespace: &'a str,
    /// Table name.
    pub name: &'a str,
    /// Replica identity: d, n, f, i.
    pub replica_identity: u8,
    column_count: u16,
    raw_columns: &'a [u8],
}

impl<'a> Relation<'a> {
    /// Number of columns.
    pub fn column_count(&self) -> usize {
        usize::from(self.column_count)
    }

    /// The columns, validated at parse time.
    pub fn columns(&self) -> impl Iterator<Item = RelationColumn<'a>> + 'a {
        let mut r = Reader::new(self.raw_columns);
        (0..self.column_count).map_while(move |_| read_column(&mut r).ok())
    }
}

fn read_column<'a>(r: &mut Reader<'a>) -> Result<RelationColumn<'a>> {
    Ok(RelationColumn {
        flags: r.u8("column flags")?,
        name: r.cstr("column name")?,
        type_oid: r.u32("column type")?,
        type_modifier: r.i32("column typmod")?,
    })
}

/// The relation OIDs of a Truncate message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelIds<'a> {
    raw: &'a [u8],
}

impl<'a> RelIds<'a> {
    /// The OIDs.
    pub fn iter(&self) -> impl Iterator<Item = u32> + 'a {
        self.raw
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.raw.len() / 4
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

/// A decoded pgoutput message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message<'a> {
    /// Start of a transaction.
    Begin {
        /// LSN of the commit record.
        final_lsn: Lsn,
        /// Commit time, µs since 2000-01-01.
        commit_ts: i64,
        /// Transaction id.
        xid: u32,
    },
    /// End of a transaction.
    Commit {
        /// Flags (unused, 0).
        flags: u8,
        /// LSN of the commit record.
        commit_lsn: Lsn,
        /// End LSN of the transaction (where streaming resumes after it).
        end_lsn: Lsn,
        /// Commit time, µs since 2000-01-01.
        commit_ts: i64,
    },
    /// Replication origin of the transaction.
    Origin {
        /// Commit LSN on the origin server.
        commit_lsn: Lsn,
        /// Origin name.
        name: &'a str,
    },
    /// A table's shape.
    Relation(Relation<'a>),
    /// A non-built-in type used by a relation.
    Type {
        /// Transaction id (streamed block).
        xid: Option<u32>,
        /// Type OID.
        type_oid: u32,
        /// Schema.
        namespace: &'a str,
        /// Type name.
        name: &'a str,
    },
    /// INSERT.
    Insert {
        /// Transaction id (streamed block).
        xid: Option<u32>,
        /// Relation OID.
        rel_id: u32,
        /// The new row.
        new: TupleData<'a>,
    },
    /// UPDATE.
    Update {
        /// Transaction id (streamed block).
        xid: Option<u32>,
        /// Relation OID.
        rel_id: u32,
        /// The old key (`K`) or whole old row (`O`), when sent.
        old: Option<(u8, TupleData<'a>)>,
        /// The new row.
        new: TupleData<'a>,
    },
    /// DELETE.
    Delete {
        /// Transaction id (streamed block).
        xid: Option<u32>,
        /// Relation OID.
        rel_id: u32,
        /// `K` (key) or `O` (whole old row).
        kind: u8,
        /// The old row.
        old: TupleData<'a>,
    },
    /// TRUNCATE of one or more tables.
    Truncate {
        /// Transaction id (streamed block).
        xid: Option<u32>,
        /// Bits: 1 CASCADE, 2 RESTART IDENTITY.
        options: u8,
        /// The truncated relations.
        rel_ids: RelIds<'a>,
    },
    /// A logical decoding message (`pg_logical_emit_message`).
    Message {
        /// Transaction id (streamed block).
        xid: Option<u32>,
        /// Transactional?
        transactional: bool,
        /// LSN of the message.
        lsn: Lsn,
        /// Prefix.
        prefix: &'a str,
        /// Content.
        content: &'a [u8],
    },
    /// Start of a block of a streamed in-progress transaction.
    StreamStart {
        /// Top-level transaction id.
        xid: u32,
        /// First block of this transaction.
        first_segment: bool,
    },
    /// End of a streamed block.
    StreamStop,
    /// Commit of a streamed transaction.
    StreamCommit {
        /// Transaction id.
        xid: u32,
        /// Flags (unused).
        flags: u8,
        /// LSN of the commit record.
        commit_lsn: Lsn,
        /// End LSN of the transaction.
        end_lsn: Lsn,
        /// Commit time, µs since 2000-01-01.
        commit_ts: i64,
    },
    /// Abort of a streamed transaction (`subxid == xid`) or of one subtransaction.
    StreamAbort {
        /// Top-level transaction id.
        xid: u32,
        /// The aborted (sub)transaction.
        subxid: u32,
        /// Abort LSN (protocol v4 with parallel streaming).
        abort_lsn: Option<Lsn>,
        /// Abort time (protocol v4 with parallel streaming).
        abort_ts: Option<i64>,
    },
    /// Begin of a prepared transaction (two-phase).
    BeginPrepare {
        /// LSN of the prepare.
        prepare_lsn: Lsn,
        /// End LSN of the prepared transaction.
        end_lsn: Lsn,
        /// Prepare time.
        prepare_ts: i64,
        /// Transaction id.
        xid: u32,
        /// Global transaction id.
        gid: &'a str,
    },
    /// PREPARE TRANSACTION (two-phase), also Stream Prepare.
    Prepare {
        /// Whether it ends a streamed transaction (Stream Prepare).
        streamed: bool,
        /// Flags.
        flags: u8,
        /// LSN of the prepare.
        prepare_lsn: Lsn,
        /// End LSN.
        end_lsn: Lsn,
        /// Prepare time.
        prepare_ts: i64,
        /// Transaction id.
        xid: u32,
        /// Global transaction id.
        gid: &'a str,
    },
    /// COMMIT PREPARED.
    CommitPrepared {
        /// Flags.
        flags: u8,
        /// Commit LSN.
        commit_lsn: Lsn,
        /// End LSN.
        end_lsn: Lsn,
        /// Commit time.
        commit_ts: i64,
        /// Transaction id.
        xid: u32,
        /// Global transaction id.
        gid: &'a str,
    },
    /// ROLLBACK PREPARED.
    RollbackPrepared {
        /// Flags.
        flags: u8,
        /// End LSN of the prepared transaction.
        prepare_end_lsn: Lsn,
        /// End LSN of the rollback.
        rollback_end_lsn: Lsn,
        /// Prepare time.
        prepare_ts: i64,
        /// Rollback time.
        rollback_ts: i64,
        /// Transaction id.
        xid: u32,
        /// Global transaction id.
        gid: &'a str,
    },
}

/// Protocol settings the message layout depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// The negotiated `proto_version` (1–4).
    pub protocol_version: u32,
    /// `streaming = parallel` (adds abort LSN and time to Stream Abort).
    pub streaming_parallel: bool,
}

/// A stateful decoder: remembers whether a streamed block is open.
#[derive(Debug, Clone)]
pub struct Decoder {
    options: DecodeOptions,
    in_stream: bool,
}

impl Decoder {
    /// A decoder for a session with `options`.
    pub fn new(options: DecodeOptions) -> Self {
        Decoder {
            options,
            in_stream: false,
        }
    }

    /// Whether a Stream Start … Stream Stop block is open.
    pub fn in_stream(&self) -> bool {
        self.in_stream
    }

    /// Decodes one pgoutput message.
    pub fn decode<'a>(&mut self, buf: &'a [u8]) -> Result<Message<'a>> {
        let msg = decode(buf, &self.options, self.in_stream)?;
        match msg {
            Message::StreamStart { .. } => self.in_stream = true,
            Message::StreamStop => self.in_stream = false,
            _ => {}
        }
        Ok(msg)
    }
}

/// Decodes one pgoutput message; `in_stream`: inside a Stream Start … Stop block.
pub fn decode<'a>(buf: &'a [u8], options: &DecodeOptions, in_stream: bool) -> Result<Message<'a>> {
    let mut r = Reader::new(buf);
    let tag = r.u8("message type")?;
    let streamed_xid = in_stream && options.protocol_version >= 2;
    let xid = |r: &mut Reader<'a>| -> Result<Option<u32>> {
        if streamed_xid {
            Ok(Some(r.u32("transaction id")?))
        } else {
            Ok(None)
        }
    };
    let (msg, what) = match tag {
        b'B' => (
            Message::Begin {
                final_lsn: Lsn(r.u64("Begin final LSN")?),
                commit_ts: r.i64("Begin timestamp")?,
                xid: r.u32("Begin xid")?,
            },
            "Begin",
        ),
        b'C' => (
            Message::Commit {
                flags: r.u8("Commit flags")?,
                commit_lsn: Lsn(r.u64("Commit LSN")?),
                end_lsn: Lsn(r.u64("Commit end LSN")?),
                commit_ts: r.i64("Commit timestamp")?,
            },
            "Commit",
        ),
        b'O' => (
            Message::Origin {
                commit_lsn: Lsn(r.u64("Origin LSN")?),
                name: r.cstr("Origin name")?,
            },
            "Origin",
        ),
        b'R' => {
            let xid = xid(&mut r)?;
            let rel_id = r.u32("Relation id")?;
            let namespace = r.cstr("Relation namespace")?;
            let name = r.cstr("Relation name")?;
            let replica_identity = r.u8("Relation replica identity")?;
            let column_count = r.u16("Relation column count")?;
            let start = r.pos;
            for _ in 0..column_count {
                read_column(&mut r)?;
            }
            let raw_columns = r
                .buf
                .get(start..r.pos)
                .ok_or(DecodeError::Truncated { what: "Relation" })?;
            (
                Message::Relation(Relation {
                    xid,
                    rel_id,
                    namespace,
                    name,
                    replica_identity,
                    column_count,
                    raw_columns,
                }),
                "Relation",
            )
        }
        b'Y' => (
            Message::Type {
                xid: xid(&mut r)?,
                type_oid: r.u32("Type id")?,
                namespace: r.cstr("Type namespace")?,
                name: r.cstr("Type name")?,
            },
            "Type",
        ),
        b'I' => {
            let xid = xid(&mut r)?;
            let rel_id = r.u32("Insert relation")?;
            r.expect_marker(b'N', "Insert")?;
            (
                Message::Insert {
                    xid,
                    rel_id,
                    new: TupleData::parse(&mut r)?,
                },
                "Insert",
            )
        }
        b'U' => {
            let xid = xid(&mut r)?;
            let rel_id = r.u32("Update relation")?;
            let mut marker = r.u8("Update tuple marker")?;
            let mut old = None;
            if marker == b'K' || marker == b'O' {
                old = Some((marker, TupleData::parse(&mut r)?));
                marker = r.u8("Update tuple marker")?;
            }
            if marker != b'N' {
                return Err(DecodeError::UnexpectedMarker {
                    what: "Update",
                    found: marker,
                });
            }
            (
                Message::Update {
                    xid,
                    rel_id,
                    old,
                    new: TupleData::parse(&mut r)?,
                },
                "Update",
            )
        }
        b'D' => {
            let xid = xid(&mut r)?;
            let rel_id = r.u32("Delete relation")?;
            let kind = r.u8("Delete tuple marker")?;
            if kind != b'K' && kind != b'O' {
                return Err(DecodeError::UnexpectedMarker {
                    what: "Delete",
                    found: kind,
                });
            }
            (
                Message::Delete {
                    xid,
                    rel_id,
                    kind,
                    old: TupleData::parse(&mut r)?,
                },
                "Delete",
            )
        }
        b'T' => {
            let xid = xid(&mut r)?;
            let count = r.len32("Truncate relation count")?;
            let options = r.u8("Truncate options")?;
            let bytes = count.checked_mul(4).ok_or(DecodeError::Truncated {
                what: "Truncate relations",
            })?;
            let raw = r.take(bytes, "Truncate relations")?;
            (
                Message::Truncate {
                    xid,
                    options,
                    rel_ids: RelIds { raw },
                },
                "Truncate",
            )
        }
        b'M' => {
            let xid = xid(&mut r)?;
            let flags = r.u8("Message flags")?;
            let lsn = Lsn(r.u64("Message LSN")?);
            let prefix = r.cstr("Message prefix")?;
            let len = r.len32("Message length")?;
            let content = r.take(len, "Message content")?;
            (
                Message::Message {
                    xid,
                    transactional: flags & 1 == 1,
                    lsn,
                    prefix,
                    content,
                },
                "Message",
            )
        }
        b'S' => (
            Message::StreamStart {
                xid: r.u32("Stream Start xid")?,
                first_segment: r.u8("Stream Start flag")? == 1,
            },
            "Stream Start",
        ),
        b'E' => (Message::StreamStop, "Stream Stop"),
        b'c' => (
            Message::StreamCommit {
                xid: r.u32("Stream Commit xid")?,
                flags: r.u8("Stream Commit flags")?,
                commit_lsn: Lsn(r.u64("Stream Commit LSN")?),
                end_lsn: Lsn(r.u64("Stream Commit end LSN")?),
                commit_ts: r.i64("Stream Commit timestamp")?,
            },
            "Stream Commit",
        ),
        b'A' => {
            let xid = r.u32("Stream Abort xid")?;
            let subxid = r.u32("Stream Abort subxid")?;
            let (abort_lsn, abort_ts) =
                if options.streaming_parallel && options.protocol_version >= 4 {
                    (
                        Some(Lsn(r.u64("Stream Abort LSN")?)),
                        Some(r.i64("Stream Abort timestamp")?),
                    )
                } else {
                    (None, None)
                };
            (
                Message::StreamAbort {
                    xid,
                    subxid,
                    abort_lsn,
                    abort_ts,
                },
                "Stream Abort",
            )
        }
        b'b' => (
            Message::BeginPrepare {
                prepare_lsn: Lsn(r.u64("Begin Prepare LSN")?),
                end_lsn: Lsn(r.u64("Begin Prepare end LSN")?),
                prepare_ts: r.i64("Begin Prepare timestamp")?,
                xid: r.u32("Begin Prepare xid")?,
                gid: r.cstr("Begin Prepare gid")?,
            },
            "Begin Prepare",
        ),
        b'P' | b'p' => (
            Message::Prepare {
                streamed: tag == b'p',
                flags: r.u8("Prepare flags")?,
                prepare_lsn: Lsn(r.u64("Prepare LSN")?),
                end_lsn: Lsn(r.u64("Prepare end LSN")?),
                prepare_ts: r.i64("Prepare timestamp")?,
                xid: r.u32("Prepare xid")?,
                gid: r.cstr("Prepare gid")?,
            },
            "Prepare",
        ),
        b'K' => (
            Message::CommitPrepared {
                flags: r.u8("Commit Prepared flags")?,
                commit_lsn: Lsn(r.u64("Commit Prepared LSN")?),
                end_lsn: Lsn(r.u64("Commit Prepared end LSN")?),
                commit_ts: r.i64("Commit Prepared timestamp")?,
                xid: r.u32("Commit Prepared xid")?,
                gid: r.cstr("Commit Prepared gid")?,
            },
            "Commit Prepared",
        ),
        b'r' => (
            Message::RollbackPrepared {
                flags: r.u8("Rollback Prepared flags")?,
                prepare_end_lsn: Lsn(r.u64("Rollback Prepared end LSN")?),
                rollback_end_lsn: Lsn(r.u64("Rollback Prepared rollback LSN")?),
                prepare_ts: r.i64("Rollback Prepared prepare time")?,
                rollback_ts: r.i64("Rollback Prepared time")?,
                xid: r.u32("Rollback Prepared xid")?,
                gid: r.cstr("Rollback Prepared gid")?,
            },
            "Rollback Prepared",
        ),
        byte => {
            return Err(DecodeError::Unknown {
                what: "pgoutput message",
                byte,
            })
        }
    };
    r.finish(what)?;
    Ok(msg)
}

/// A bounds-checked big-endian reader over a byte slice.
#[derive(Debug, Clone)]
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(DecodeError::Truncated { what })?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(DecodeError::Truncated { what })?;
        self.pos = end;
        Ok(s)
    }

    fn skip(&mut self, n: usize, what: &'static str) -> Result<()> {
        self.take(n, what).map(|_| ())
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    fn i64(&mut self, what: &'static str) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    /// A non-negative Int32 length.
    fn len32(&mut self, what: &'static str) -> Result<usize> {
        let v = self.i32(what)?;
        usize::try_from(v).map_err(|_| DecodeError::NegativeLength { what })
    }

    fn cstr(&mut self, what: &'static str) -> Result<&'a str> {
        let rest = self
            .buf
            .get(self.pos..)
            .ok_or(DecodeError::Truncated { what })?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(DecodeError::Truncated { what })?;
        let bytes = rest.get(..end).ok_or(DecodeError::Truncated { what })?;
        let s = std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8 { what })?;
        self.pos += end + 1;
        Ok(s)
    }

    fn expect_marker(&mut self, marker: u8, what: &'static str) -> Result<()> {
        let found = self.u8("tuple marker")?;
        if found != marker {
            return Err(DecodeError::UnexpectedMarker { what, found });
        }
        Ok(())
    }

    fn rest(&mut self) -> &'a [u8] {
        let s = self.buf.get(self.pos..).unwrap_or_default();
        self.pos = self.buf.len();
        s
    }

    fn finish(&self, what: &'static str) -> Result<()> {
        let len = self.buf.len().saturating_sub(self.pos);
        if len > 0 {
            return Err(DecodeError::TrailingBytes { what, len });
        }
        Ok(())
    }
}

#[cfg(any(test, feature = "test-support"))]
pub mod encode;
#[cfg(test)]
mod tests;
