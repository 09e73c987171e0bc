//! SQL pages as a [`ChangeSource`] (`source.reader = "sql"`): changes are read with
//! `pg_logical_slot_peek_binary_changes` a page at a time over a connection of their own,
//! and confirmed by advancing the slot once the destination has committed them.
//!
//! Exactly once: a peek does not move the slot; the slot is advanced only to a committed
//! checkpoint, and the next page starts from the slot. A run stopped between the commit
//! and the advance leaves the slot behind the checkpoint; the next session advances it
//! first (see [`super::postgres`]). The advance waits for the end of the page being read,
//! so a page is always read whole (see `pgcdc_source::peek`).

use std::pin::Pin;
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::TryStreamExt;

use pgcdc_core::{Checkpoint, Lsn};
use pgcdc_sink::Destination;
use pgcdc_source::catalog::Projection;
use pgcdc_source::peek::{self, PeekRows};
use pgcdc_source::pgoutput::Relation;
use tokio_postgres::CopyOutStream;

use super::postgres::{explain_slot_error, reopen};
use super::project::Projector;
use super::source::{ChangeSource, Event};
use crate::config::Config;

/// At most this many changes a page: the server holds a page in a tuplestore (memory up
/// to the reader session's `work_mem`, then a temporary file) before sending it.
const MAX_PAGE_ROWS: usize = 100_000;
/// The reader session's `work_mem`: a page of ordinary rows stays in memory.
const PAGE_WORK_MEM: &str = "64MB";

/// The page being read.
struct Page {
    copy: Pin<Box<CopyOutStream>>,
    parser: PeekRows,
    rows: u64,
}

/// Pages of changes up to a fixed end.
pub struct PageSource {
    cfg: Config,
    sql: Arc<tokio_postgres::Client>,
    reader: tokio_postgres::Client,
    projector: Projector,
    end: Lsn,
    page_rows: u32,
    options: Vec<(&'static str, String)>,
    page: Option<Page>,
    /// The slot's confirmed position (as this session moved it).
    advanced: Lsn,
    /// A confirmed position waiting for the current page to end.
    deferred: Option<Lsn>,
}

impl PageSource {
    /// A page reader from `start` to `end`; reopens the destination (the slot's lock,
    /// held by `sql`, makes it ours).
    pub async fn open(
        cfg: &Config,
        dest: &mut dyn Destination,
        sql: Arc<tokio_postgres::Client>,
        start: Lsn,
        end: Lsn,
        options: Vec<(&'static str, String)>,
    ) -> Result<(PageSource, Checkpoint)> {
        // The pages stream over a connection of their own: the run's answers catalog
        // lookups meanwhile.
        let reader = pgcdc_source::connect::connect_sql(&cfg.source.pg, &cfg.source.tls).await?;
        reader
            .batch_execute(&format!("SET work_mem = '{PAGE_WORK_MEM}'"))
            .await
            .map_err(|e| pgcdc_source::Error::from_pg("setting work_mem for the page reader", e))?;
        let checkpoint = reopen(dest, start).await?;
        let page_rows = u32::try_from(cfg.batch.max_rows.min(MAX_PAGE_ROWS)).unwrap_or(1);
        let source = PageSource {
            cfg: cfg.clone(),
            projector: Projector::new(cfg, Arc::clone(&sql)),
            sql,
            reader,
            end,
            page_rows,
            options,
            page: None,
            advanced: checkpoint.lsn,
            deferred: None,
        };
        Ok((source, checkpoint))
    }

    async fn explain(&self, e: tokio_postgres::Error) -> anyhow::Error {
        let slot = &self.cfg.source.slot;
        let err = pgcdc_source::Error::from_pg(&format!("reading changes from slot {slot}"), e);
        explain_slot_error(err, &self.cfg, &self.sql).await
    }

    async fn start_page(&mut self) -> Result<()> {
        let options: Vec<(&str, &str)> =
            self.options.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let statement =
            peek::peek_statement(&self.cfg.source.slot, self.end, self.page_rows, &options);
        let copy = match self.reader.copy_out(statement.as_str()).await {
            Ok(c) => c,
            Err(e) => return Err(self.explain(e).await),
        };
        self.page = Some(Page {
            copy: Box::pin(copy),
            parser: PeekRows::new(),
            rows: 0,
        });
        Ok(())
    }

    async fn advance(&mut self, to: Lsn) -> Result<()> {
        if to <= self.advanced {
            return Ok(());
        }
        pgcdc_sink::failpoint("pipeline.before_advance");
        peek::advance_slot(&self.sql, &self.cfg.source.slot, to).await?;
        self.advanced = to;
        self.deferred = None;
        Ok(())
    }
}

#[async_trait]
impl ChangeSource for PageSource {
    async fn next(&mut self) -> Result<Event> {
        loop {
            if self.page.is_none() {
                self.start_page().await?;
            }
            let page = self
                .page
                .as_mut()
                .ok_or_else(|| anyhow!("internal: no page"))?;
            if let Some((lsn, range)) = page.parser.next_row()? {
                page.rows += 1;
                let data = Bytes::copy_from_slice(page.parser.data(range));
                return Ok(Event::Message {
                    lsn,
                    wal_end: None,
                    data,
                });
            }
            let chunk = match page.copy.try_next().await {
                Ok(c) => c,
                Err(e) => return Err(self.explain(e).await),
            };
            if let Some(chunk) = chunk {
                page.parser.push(&chunk);
                continue;
            }
            if !page.parser.finished() {
                bail!(
                    "the changes read from slot {} ended before the end of their COPY data",
                    self.cfg.source.slot
                );
            }
            // Fewer rows than asked for: decoding reached the end, so every transaction
            // that committed before it has been read.
            let reached_end = page.rows < u64::from(self.page_rows);
            self.page = None;
            return Ok(Event::PageEnd { reached_end });
        }
    }

    async fn confirm(&mut self, flushed: Lsn, _received: Lsn, _reply: bool) -> Result<()> {
        if self.page.is_some() {
            self.deferred = Some(flushed.max(self.deferred.unwrap_or(flushed)));
            return Ok(());
        }
        self.advance(flushed).await
    }

    async fn project(&mut self, rel: &Relation<'_>) -> Result<Option<Projection>> {
        self.projector.project(rel).await
    }

    async fn close(&mut self) -> Result<()> {
        if let Some(to) = self.deferred {
            self.advance(to).await?;
        }
        Ok(())
    }
}
