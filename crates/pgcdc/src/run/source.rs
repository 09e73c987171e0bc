//! The seam between the run loop and where changes come from.
//!
//! A [`ChangeSource`] hands the loop pgoutput messages with their LSNs (and the server's
//! position while it is quiet), resolves a relation's shape, and takes the position the
//! destination has made durable. Two implement it over PostgreSQL (the replication
//! stream and SQL pages, in [`super::postgres`]); the unit tests implement it with
//! scripted messages. An [`Upstream`] opens one source per session: the checks before
//! reading, the connection, and the protocol options all belong to it, so the loop knows
//! neither PostgreSQL nor the wire.

use async_trait::async_trait;
use bytes::Bytes;

use anyhow::Result;
use pgcdc_core::{Checkpoint, Lsn};
use pgcdc_sink::Destination;
use pgcdc_source::catalog::Projection;
use pgcdc_source::pgoutput::{DecodeOptions, Relation};

/// What a source hands the loop next.
#[derive(Debug)]
pub enum Event {
    /// A pgoutput message that starts at `lsn`; `wal_end`, where the server said its WAL
    /// ended (stream only).
    Message {
        /// The message's WAL position.
        lsn: Lsn,
        /// The server's WAL end when it sent the message, if it says.
        wal_end: Option<Lsn>,
        /// The pgoutput bytes.
        data: Bytes,
    },
    /// The server's position while nothing is being sent: every transaction that
    /// committed before `wal_end` has been sent.
    Keepalive {
        /// The server's WAL end.
        wal_end: Lsn,
        /// The server wants a status reply now.
        reply_requested: bool,
    },
    /// Nothing arrived for a moment (stream only): a chance to ask where the server is.
    Quiet,
    /// A page of changes ended between transactions (SQL pages only); `reached_end`: its
    /// decoding reached the end the session was opened for.
    PageEnd {
        /// Every change up to the session's end has been read.
        reached_end: bool,
    },
}

/// Where changes come from, for one session. See the [module docs](self).
#[async_trait]
pub trait ChangeSource: Send {
    /// The next event. An error ends the session (retried in follow mode when transient).
    async fn next(&mut self) -> Result<Event>;

    /// Everything up to `flushed` is durable in the destination; `received` is the
    /// highest position read. `reply` asks the server to answer with its position.
    async fn confirm(&mut self, flushed: Lsn, received: Lsn, reply: bool) -> Result<()>;

    /// The shape of a relation as it will land, or None when its changes are not
    /// replicated (dlt's persisted snapshot tables).
    async fn project(&mut self, rel: &Relation<'_>) -> Result<Option<Projection>>;

    /// Periodic upkeep in follow mode (heartbeats, slot health); called between events.
    async fn upkeep(&mut self) -> Result<()> {
        Ok(())
    }

    /// The session ends normally: last confirmations, a clean goodbye.
    async fn close(&mut self) -> Result<()> {
        Ok(())
    }
}

/// How the run wants a session opened.
#[derive(Debug, Clone, Copy)]
pub struct SessionRequest {
    /// Keep reading (`--follow`) rather than stop at the WAL end read at start.
    pub follow: bool,
    /// Binary values may be asked for (false after a fallback to text).
    pub binary: bool,
}

/// A session ready to read.
pub struct Opened {
    /// The source, positioned at `checkpoint`.
    pub source: Box<dyn ChangeSource>,
    /// The destination's checkpoint, after `open` removed what an interrupted run left.
    pub checkpoint: Checkpoint,
    /// Stop at the first transaction end at or past this (None: follow).
    pub end: Option<Lsn>,
    /// How to decode the messages.
    pub decode: DecodeOptions,
    /// Values arrive in binary.
    pub binary: bool,
}

/// The outcome of opening a session.
pub enum Session {
    /// There is nothing new past the destination's checkpoint `start`.
    NothingNew {
        /// The checkpoint.
        start: Lsn,
    },
    /// Read from here.
    Read(Opened),
}

/// Opens sessions against the database the changes come from.
#[async_trait]
pub trait Upstream: Send {
    /// The first connection and checks; an error here fails the run at once (a wrong
    /// URL or a slot held by another pgcdc is not worth retrying).
    async fn connect(&mut self) -> Result<()>;

    /// Opens a session: checks the destination against the source, brings a slot that
    /// trails the destination's checkpoint up to it, then reopens the destination
    /// (removing uncommitted leftovers) once reading is exclusively ours.
    async fn open(&mut self, dest: &mut dyn Destination, req: SessionRequest) -> Result<Session>;
}
