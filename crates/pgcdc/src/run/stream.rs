//! The replication stream as a [`ChangeSource`]: START_REPLICATION on a walsender
//! connection, XLogData and keepalives in, standby status updates out.
//!
//! Relation messages are resolved through the catalog over the run's SQL connection; in
//! follow mode the source also writes heartbeats (`source.heartbeat_interval`) and
//! reads the slot's health now and then, warning about retained WAL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use async_trait::async_trait;

use pgcdc_core::{Checkpoint, Lsn};
use pgcdc_sink::Destination;
use pgcdc_source::catalog::Projection;
use pgcdc_source::pgoutput::{self, Frame, Relation};
use pgcdc_source::setup;
use pgcdc_source::wire::{ReplicationConnection, ReplicationStream};

use super::postgres::{explain_slot_error, reopen};
use super::project::Projector;
use super::source::{ChangeSource, Event};
use crate::config::Config;

/// How long the stream may be quiet before the source reports [`Event::Quiet`].
const IDLE_PROBE: Duration = Duration::from_millis(500);
/// `--follow`: how often the slot's health is read (and warned about).
const SLOT_CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// A started replication stream.
pub struct StreamSource {
    stream: Option<ReplicationStream>,
    sql: Arc<tokio_postgres::Client>,
    projector: Projector,
    slot: String,
    max_retained_wal_bytes: u64,
    heartbeat: Option<Duration>,
    last_heartbeat: Instant,
    last_slot_check: Instant,
}

impl StreamSource {
    /// Starts streaming from `start`, then reopens the destination (the slot is ours).
    pub async fn open(
        cfg: &Config,
        dest: &mut dyn Destination,
        sql: Arc<tokio_postgres::Client>,
        repl: ReplicationConnection,
        start: Lsn,
        options: &[(&'static str, String)],
    ) -> Result<(StreamSource, Checkpoint)> {
        let slot = &cfg.source.slot;
        let options_ref: Vec<(&str, &str)> =
            options.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut stream = match repl.start_replication(slot, start, &options_ref).await {
            Ok(s) => s,
            Err(e) => return Err(explain_slot_error(e.into(), cfg, &sql).await),
        };
        // Now the slot is ours: remove leftovers of an interrupted run.
        let checkpoint = reopen(dest, start).await?;
        stream
            .send_status(start, start, start, false)
            .await
            .map_err(pgcdc_source::Error::from)?;
        let source = StreamSource {
            stream: Some(stream),
            projector: Projector::new(cfg, Arc::clone(&sql)),
            sql,
            slot: slot.clone(),
            max_retained_wal_bytes: cfg.source.max_retained_wal_bytes,
            heartbeat: cfg.source.heartbeat_interval,
            last_heartbeat: Instant::now(),
            last_slot_check: Instant::now(),
        };
        Ok((source, checkpoint))
    }

    fn stream(&mut self) -> Result<&mut ReplicationStream> {
        self.stream
            .as_mut()
            .ok_or_else(|| anyhow!("internal: the replication stream was closed"))
    }
}

#[async_trait]
impl ChangeSource for StreamSource {
    async fn next(&mut self) -> Result<Event> {
        let stream = self.stream()?;
        let bytes = match tokio::time::timeout(IDLE_PROBE, stream.next_message()).await {
            Err(_) => return Ok(Event::Quiet),
            Ok(m) => m.map_err(pgcdc_source::Error::from)?,
        };
        let Some(bytes) = bytes else {
            // A server shutting down ends the stream cleanly: in follow mode, reconnect.
            return Err(pgcdc_source::Error::new(
                pgcdc_source::ErrorKind::Connection,
                "the server ended the replication stream (shutting down or restarting?)",
            )
            .into());
        };
        let frame = pgoutput::parse_frame(&bytes)
            .map_err(|e| anyhow!(e).context("decoding a replication message"))?;
        Ok(match frame {
            Frame::Keepalive {
                wal_end,
                reply_requested,
                ..
            } => Event::Keepalive {
                wal_end,
                reply_requested,
            },
            Frame::XLogData {
                wal_start,
                wal_end,
                data,
                ..
            } => Event::Message {
                lsn: wal_start,
                wal_end: Some(wal_end),
                data: bytes.slice_ref(data),
            },
        })
    }

    async fn confirm(&mut self, flushed: Lsn, received: Lsn, reply: bool) -> Result<()> {
        self.stream()?
            .send_status(received, flushed, flushed, reply)
            .await
            .map_err(pgcdc_source::Error::from)?;
        Ok(())
    }

    async fn project(&mut self, rel: &Relation<'_>) -> Result<Option<Projection>> {
        self.projector.project(rel).await
    }

    async fn upkeep(&mut self) -> Result<()> {
        if self.last_slot_check.elapsed() >= SLOT_CHECK_INTERVAL {
            warn_about_slot(&self.sql, &self.slot, self.max_retained_wal_bytes).await;
            self.last_slot_check = Instant::now();
        }
        if let Some(every) = self.heartbeat {
            if self.last_heartbeat.elapsed() >= every {
                setup::heartbeat(&self.sql).await?;
                self.last_heartbeat = Instant::now();
            }
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        if let Some(stream) = self.stream.take() {
            stream
                .finish()
                .await
                .map_err(pgcdc_source::Error::from)
                .ok();
        }
        Ok(())
    }
}

/// Logs what is worrying about the slot (retained WAL, wal_status); never fails the run.
async fn warn_about_slot(sql: &tokio_postgres::Client, slot: &str, max_retained_wal_bytes: u64) {
    match setup::slot_info(sql, slot).await {
        Ok(Some(info)) => {
            for w in setup::slot_warnings(slot, &info, max_retained_wal_bytes) {
                tracing::warn!("{w}");
            }
        }
        Ok(None) => tracing::warn!("slot {slot} no longer exists"),
        Err(e) => tracing::debug!(error = %e, "could not read the slot's health"),
    }
}
