//! One session's loop: events from a [`ChangeSource`] drive the [`Core`], and the
//! decisions of *when* to commit and confirm are made here.
//!
//! - A batch is committed at the first transaction end past its row or byte budget, at
//!   the session's end LSN, and (in follow mode) when data has waited `flush_interval`
//!   or a quiet stream has moved on (so the slot does not retain WAL of other tables).
//! - A stop request (SIGTERM) finishes the current transaction, commits and returns; a
//!   transaction still open 30 s later is abandoned (it is replayed by the next run).
//! - The source hears the checkpoint after every commit and every `STATUS_INTERVAL`.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use pgcdc_core::Lsn;
use pgcdc_source::pgoutput::{self, DecodeOptions};

use super::core::Core;
use super::source::{ChangeSource, Event};
use super::RunOptions;

/// How often the position is reported when nothing else reports it.
const STATUS_INTERVAL: Duration = Duration::from_secs(10);
/// Follow mode: how often a quiet stream's position is committed.
const IDLE_ADVANCE_INTERVAL: Duration = Duration::from_secs(10);
/// How long a stop request waits for an open transaction to end.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// What the loop does after an event.
enum Next {
    Continue,
    Done,
}

/// The loop's clocks.
struct Clocks {
    status: Instant,
    advance: Instant,
    stop_requested: Option<Instant>,
}

/// Reads `source` until `end` (or on, in follow mode), committing into the core's
/// destination.
pub async fn drive(
    core: &mut Core<'_>,
    source: &mut dyn ChangeSource,
    end: Option<Lsn>,
    decode: DecodeOptions,
    opts: &RunOptions,
) -> Result<()> {
    let mut decoder = pgoutput::Decoder::new(decode);
    let mut clocks = Clocks {
        status: Instant::now(),
        advance: Instant::now(),
        stop_requested: None,
    };
    loop {
        if let Next::Done = between_events(core, source, opts, &mut clocks).await? {
            return Ok(());
        }
        let event = source.next().await?;
        let next = match event {
            Event::Quiet => {
                // Ask the server where it is; its keepalive ends a caught-up batch.
                core.confirm(source, true).await?;
                clocks.status = Instant::now();
                Next::Continue
            }
            Event::Keepalive {
                wal_end,
                reply_requested,
            } => on_keepalive(core, source, end, wal_end, reply_requested, &mut clocks).await?,
            Event::Message { lsn, wal_end, data } => {
                if let Some(w) = wal_end {
                    core.wal_end(w);
                }
                core.saw(lsn);
                match core.on_bytes(&mut decoder, &data, lsn, source).await? {
                    Some(commit_end) => on_commit(core, source, end, commit_end, opts).await?,
                    None => Next::Continue,
                }
            }
            Event::PageEnd { reached_end } => on_page_end(core, source, end, reached_end).await?,
        };
        if let Next::Done = next {
            return Ok(());
        }
    }
}

/// Stop requests, follow-mode commits, status reports and upkeep.
async fn between_events(
    core: &mut Core<'_>,
    source: &mut dyn ChangeSource,
    opts: &RunOptions,
    clocks: &mut Clocks,
) -> Result<Next> {
    let stopping = opts.stop.load(Ordering::SeqCst);
    if stopping && clocks.stop_requested.is_none() {
        clocks.stop_requested = Some(Instant::now());
    }
    if stopping && !core.in_transaction() {
        core.commit_and_confirm(source, false).await?;
        return Ok(Next::Done);
    }
    if clocks
        .stop_requested
        .is_some_and(|t| t.elapsed() > STOP_GRACE)
    {
        bail!("stopped by signal inside a long transaction; its changes will be replayed by the next run");
    }
    if opts.follow && !core.in_transaction() {
        // A quiet publication on a busy server: move the checkpoint (and so the slot)
        // along now and then, so WAL of other tables is not retained.
        let advance_due = core.can_advance() && clocks.advance.elapsed() >= IDLE_ADVANCE_INTERVAL;
        if core.flush_due() || advance_due {
            core.commit_and_confirm(source, true).await?;
            clocks.advance = Instant::now();
        }
    }
    if clocks.status.elapsed() >= STATUS_INTERVAL {
        core.confirm(source, false).await?;
        clocks.status = Instant::now();
    }
    if opts.follow {
        source.upkeep().await?;
    }
    Ok(Next::Continue)
}

async fn on_keepalive(
    core: &mut Core<'_>,
    source: &mut dyn ChangeSource,
    end: Option<Lsn>,
    wal_end: Lsn,
    reply_requested: bool,
    clocks: &mut Clocks,
) -> Result<Next> {
    core.keepalive(wal_end);
    if reply_requested {
        core.confirm(source, false).await?;
        clocks.status = Instant::now();
    }
    if !core.in_transaction() && end.is_some_and(|e| wal_end >= e) {
        core.commit_and_confirm(source, true).await?;
        return Ok(Next::Done);
    }
    Ok(Next::Continue)
}

/// A transaction ending at `commit_end` is complete: commit when the batch is full or
/// the session's end is reached.
async fn on_commit(
    core: &mut Core<'_>,
    source: &mut dyn ChangeSource,
    end: Option<Lsn>,
    commit_end: Lsn,
    opts: &RunOptions,
) -> Result<Next> {
    let at_end = end.is_some_and(|e| commit_end >= e);
    if core.batch_full() || at_end {
        core.commit_and_confirm(source, false).await?;
    }
    if at_end {
        return Ok(Next::Done);
    }
    // A page is left after a complete transaction when a stop is asked for.
    if opts.stop.load(Ordering::SeqCst) {
        core.commit_and_confirm(source, false).await?;
        return Ok(Next::Done);
    }
    Ok(Next::Continue)
}

/// A page ended: commit what is complete (and the position reached), confirm it.
async fn on_page_end(
    core: &mut Core<'_>,
    source: &mut dyn ChangeSource,
    end: Option<Lsn>,
    reached_end: bool,
) -> Result<Next> {
    if core.inside_any() {
        bail!("a page of changes ended inside a transaction");
    }
    if reached_end {
        if let Some(e) = end {
            core.reached(e);
        }
    }
    // Confirmed even when nothing new was committed: a commit inside the page (a full
    // batch) waited for the page's end to be confirmed.
    core.commit(true).await?;
    core.confirm(source, false).await?;
    Ok(if reached_end {
        Next::Done
    } else {
        Next::Continue
    })
}
