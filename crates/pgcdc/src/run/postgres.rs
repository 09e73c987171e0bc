//! The PostgreSQL [`Upstream`]: the checks before a session reads, and the choice of how
//! it reads (the replication stream, or SQL pages for `source.reader = "sql"`).
//!
//! One SQL connection holds the slot's advisory lock for the whole run (one pgcdc per
//! slot, however it reads); it also answers catalog lookups. Each session checks the
//! destination against the source (a finished snapshot, the same system and slot, a
//! slot not moved past the checkpoint), picks the protocol version and binary values,
//! and only once reading is exclusively ours reopens the destination, which removes what
//! an interrupted run left uncommitted.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use async_trait::async_trait;

use pgcdc_core::{Checkpoint, Lsn, SourceIdentity};
use pgcdc_sink::Destination;
use pgcdc_source::peek::{self, SlotBusy};
use pgcdc_source::pgoutput::DecodeOptions;
use pgcdc_source::setup;
use pgcdc_source::wire::ReplicationConnection;

use super::pages::PageSource;
use super::source::{Opened, Session, SessionRequest, Upstream};
use super::stream::StreamSource;
use crate::config::{Config, Reader};

/// Sessions against the PostgreSQL database of `source.url`.
pub struct PgUpstream<'a> {
    cfg: &'a Config,
    sql: Option<Arc<tokio_postgres::Client>>,
}

impl<'a> PgUpstream<'a> {
    /// Sessions as `cfg` describes them.
    pub fn new(cfg: &'a Config) -> Self {
        PgUpstream { cfg, sql: None }
    }
}

#[async_trait]
impl Upstream for PgUpstream<'_> {
    async fn connect(&mut self) -> Result<()> {
        self.sql = Some(Arc::new(connect_locked(self.cfg).await?));
        Ok(())
    }

    async fn open(&mut self, dest: &mut dyn Destination, req: SessionRequest) -> Result<Session> {
        if self.sql.as_ref().is_none_or(|c| c.is_closed()) {
            self.sql = None;
            self.sql = Some(Arc::new(connect_locked(self.cfg).await?));
        }
        let sql = self
            .sql
            .clone()
            .ok_or_else(|| anyhow!("internal: no SQL connection"))?;
        open_session(self.cfg, dest, sql, req).await
    }
}

/// A SQL connection holding the slot's lock: one pgcdc per slot, however it reads.
async fn connect_locked(cfg: &Config) -> Result<tokio_postgres::Client> {
    let client = pgcdc_source::connect::connect_sql(&cfg.source.pg, &cfg.source.tls).await?;
    if let Err(SlotBusy::Locked | SlotBusy::Active(_)) =
        peek::claim_slot(&client, &cfg.source.slot, false).await?
    {
        bail!(
            "slot {} is in use by another pgcdc process (it holds the slot's lock): stop it first, or give this pipeline its own source.slot",
            cfg.source.slot
        );
    }
    Ok(client)
}

/// Whether this run reads pages through the SQL interface rather than the stream.
fn reads_pages(cfg: &Config, follow: bool) -> Result<bool> {
    Ok(match cfg.source.reader {
        Reader::Stream => false,
        Reader::Sql if follow => bail!(
            "source.reader = \"sql\" reads mini-batches; `run --follow` needs the stream: set source.reader = \"stream\" (the default)"
        ),
        Reader::Sql => true,
    })
}

async fn open_session(
    cfg: &Config,
    dest: &mut dyn Destination,
    sql: Arc<tokio_postgres::Client>,
    req: SessionRequest,
) -> Result<Session> {
    let slot = &cfg.source.slot;
    let (start, info, repl) = preflight(cfg, dest, &sql).await?;
    let pages = reads_pages(cfg, req.follow)?;
    if info.confirmed_flush_lsn.is_some_and(|c| c < start) {
        // A run stopped between its destination commit and the confirmation: the slot
        // is brought up to the checkpoint at once (it would otherwise retain the WAL in
        // between until something new is read).
        if let Err(e) = peek::advance_slot(&sql, slot, start).await {
            return Err(explain_slot_error(e, cfg, &sql).await);
        }
    }
    let end = if req.follow {
        None
    } else {
        Some(setup::batch_end_lsn(&sql).await?)
    };
    if end.is_some_and(|e| e <= start) {
        tracing::info!(%start, "nothing new to replicate");
        return Ok(Session::NothingNew { start });
    }
    let version = repl.server_version_num().unwrap_or(0);
    let binary = req.binary
        && version >= 140000
        && cfg
            .catalog()
            .publication_reads_binary(&sql, &cfg.source.publication, &cfg.source.include_columns)
            .await?;
    let (proto, options) = stream_options(version, &cfg.source.publication, !pages, binary);
    let decode = DecodeOptions {
        protocol_version: proto,
        streaming_parallel: false,
    };
    let (source, checkpoint): (Box<dyn super::source::ChangeSource>, Checkpoint) = match end {
        Some(end) if pages => {
            repl.close().await.ok();
            let (source, checkpoint) =
                PageSource::open(cfg, dest, sql, start, end, options).await?;
            tracing::info!(slot = %slot, %start, %end, proto, binary, "reading pages");
            (Box::new(source), checkpoint)
        }
        _ => {
            let (source, checkpoint) =
                StreamSource::open(cfg, dest, sql, repl, start, &options).await?;
            tracing::info!(slot = %slot, %start, end = end.map(|e| e.to_string()).unwrap_or_else(|| "none (follow)".into()), proto, binary, "streaming");
            (Box::new(source), checkpoint)
        }
    };
    Ok(Session::Read(Opened {
        source,
        checkpoint,
        end,
        decode,
        binary,
    }))
}

/// The protocol version and options for this server; `streaming` (in-progress
/// transactions in pieces) only for the stream: a page must hold whole transactions;
/// `binary` values where the caller found them all readable (PostgreSQL 14+).
fn stream_options(
    version: u32,
    publication: &str,
    streaming: bool,
    binary: bool,
) -> (u32, Vec<(&'static str, String)>) {
    let proto = match version {
        v if v >= 160000 => 4,
        v if v >= 150000 => 3,
        v if v >= 140000 => 2,
        _ => 1,
    };
    let mut opts = vec![
        ("proto_version", proto.to_string()),
        ("publication_names", pgcdc_core::quote_ident(publication)),
    ];
    if version >= 140000 {
        opts.push(("messages", "true".into()));
        if streaming {
            // Large in-progress transactions arrive in pieces: memory stays bounded.
            opts.push(("streaming", "on".into()));
        }
        if binary {
            opts.push(("binary", "true".into()));
        }
    }
    (proto, opts)
}

/// The slot, once no walsender holds it (waiting up to 10 s): this run holds the slot's
/// lock, so an active walsender is one a session of ours just left (it lets go a moment
/// after its connection closes — after a fallback to text, or a reconnect), or another
/// consumer, which START_REPLICATION then names.
async fn released_slot_info(
    sql: &tokio_postgres::Client,
    slot: &str,
) -> Result<Option<setup::SlotInfo>> {
    let mut info = setup::slot_info(sql, slot).await?;
    for _ in 0..200 {
        if !info.as_ref().is_some_and(|i| i.active) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        info = setup::slot_info(sql, slot).await?;
    }
    Ok(info)
}

/// The checks before reading: a finished snapshot, the same server and slot as the
/// destination's, a usable slot not moved past the checkpoint. Returns the checkpoint's
/// LSN, the slot, and a replication connection.
async fn preflight(
    cfg: &Config,
    dest: &mut dyn Destination,
    sql: &tokio_postgres::Client,
) -> Result<(Lsn, setup::SlotInfo, ReplicationConnection)> {
    let slot = &cfg.source.slot;
    // Read-only first: the destination is cleaned up only once we hold the slot.
    let committed = dest.read_committed().await?.ok_or_else(|| {
        anyhow!(
            "the destination {} has no checkpoint; run `pgcdc init` first",
            dest.describe()
        )
    })?;
    let pending = crate::snapshot::Progress::of(&committed.checkpoint)?.pending();
    if !pending.is_empty() {
        bail!(
            "the initial snapshot of {} is not finished; run `pgcdc init` to complete it before `run`",
            pending.join(", ")
        );
    }
    let (repl, system) =
        pgcdc_source::connect::connect_replication(&cfg.source.pg, &cfg.source.tls).await?;
    check_identity(&committed.checkpoint.source, &system.system_id, slot)?;
    let info = released_slot_info(sql, slot)
        .await?
        .ok_or_else(|| anyhow!("replication slot {slot} does not exist; run `pgcdc init` (or `pgcdc init --reset` if it was dropped)"))?;
    setup::check_slot(slot, &info, &committed.checkpoint.source.database)?;
    for w in setup::slot_warnings(slot, &info, cfg.source.max_retained_wal_bytes) {
        tracing::warn!("{w}");
    }
    let start = committed.checkpoint.lsn;
    if let Some(confirmed) = info.confirmed_flush_lsn {
        if confirmed > start {
            bail!(
                "slot {slot} was advanced to {confirmed} by someone else, past this destination's checkpoint {start}: the changes in between are not in the destination. Recover with `pgcdc init --reset` (re-snapshot), or point destination.url at the data that matches this slot"
            );
        }
    }
    Ok((start, info, repl))
}

fn check_identity(stored: &SourceIdentity, system_id: &str, slot: &str) -> Result<()> {
    if stored.system_identifier != system_id {
        bail!(
            "the destination holds data of PostgreSQL system {} but source.url points at system {system_id}; use the matching destination, or `pgcdc init --reset` to start over",
            stored.system_identifier
        );
    }
    if stored.slot != slot {
        bail!(
            "the destination was initialised for slot {} but source.slot is {slot}; use the matching destination, or `pgcdc init --reset`",
            stored.slot
        );
    }
    Ok(())
}

/// The destination's checkpoint once reading is ours, after removing what an
/// interrupted run left uncommitted; it must still be `start`.
pub(super) async fn reopen(dest: &mut dyn Destination, start: Lsn) -> Result<Checkpoint> {
    let reopened = dest
        .open()
        .await?
        .ok_or_else(|| anyhow!("the destination checkpoint disappeared"))?;
    if reopened.checkpoint.lsn != start {
        bail!("the destination checkpoint changed while starting ({start} → {}); is another pgcdc writing to it?", reopened.checkpoint.lsn);
    }
    Ok(reopened.checkpoint)
}

/// SQLSTATE object_in_use: the slot is active for another walsender.
const OBJECT_IN_USE: &str = "55006";
/// SQLSTATE undefined_object: a slot or publication that does not exist.
const UNDEFINED_OBJECT: &str = "42704";

/// Says what to do about an error starting to read the slot, by the server's SQLSTATE
/// (and, for a missing object, the catalog: the slot was there a moment ago).
pub(super) async fn explain_slot_error(
    err: pgcdc_source::Error,
    cfg: &Config,
    sql: &tokio_postgres::Client,
) -> anyhow::Error {
    let (slot, publication) = (&cfg.source.slot, &cfg.source.publication);
    match err.sqlstate() {
        Some(OBJECT_IN_USE) => {
            anyhow!("slot {slot} is in use by another connection (another pgcdc run?): {err}")
        }
        Some(UNDEFINED_OBJECT) if !publication_exists(sql, publication).await => {
            anyhow!("publication {publication} does not exist; run `pgcdc init`: {err}")
        }
        _ => anyhow::Error::new(err).context(format!("reading from replication slot {slot}")),
    }
}

/// Whether `publication` exists (true when that cannot be read: the error stays as is).
async fn publication_exists(sql: &tokio_postgres::Client, publication: &str) -> bool {
    sql.query_opt(
        "SELECT 1 FROM pg_publication WHERE pubname = $1",
        &[&publication],
    )
    .await
    .map_or(true, |r| r.is_some())
}
