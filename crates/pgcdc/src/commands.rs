//! The commands: `init`, `run`, `snapshot`, `status`, `drop`. Each is glue over the library crates;
//! output for people goes to stdout, logs to stderr.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use pgcdc_core::{Checkpoint, SourceIdentity, TableName};
use pgcdc_sink::Destination;
use pgcdc_source::connect::{connect_sql, describe};
use pgcdc_source::peek;
use pgcdc_source::setup::{self, SetupSpec};

use crate::config::Config;
use crate::run::{self, RunOptions, RunSummary};
use crate::Command;

/// Runs one command.
pub async fn dispatch(cfg: &Config, command: Command) -> Result<ExitCode> {
    match command {
        Command::Init {
            no_snapshot,
            reset,
            persist_snapshot_tables,
            unlogged,
        } => {
            let mut cfg = cfg.clone();
            cfg.snapshot.persist_tables |= persist_snapshot_tables;
            cfg.snapshot.unlogged |= unlogged;
            init(&cfg, no_snapshot, reset).await
        }
        Command::Run { follow } => run(cfg, follow).await,
        Command::Status { json } => status(cfg, json).await,
        Command::Snapshot { tables } => snapshot_tables(cfg, tables).await,
        Command::Drop { yes } => drop_all(cfg, yes).await,
    }
}

/// The configured destination (the sink crate knows which URL means which).
fn destination(cfg: &Config) -> Result<Box<dyn Destination>> {
    Ok(cfg.destination.open()?)
}

fn spec(cfg: &Config) -> SetupSpec {
    let p = cfg.source.publish;
    SetupSpec {
        slot: cfg.source.slot.clone(),
        publication: cfg.source.publication.clone(),
        schema: cfg.source.schema.clone(),
        tables: cfg.source.tables.clone(),
        publish: p.as_option(),
        needs_identity: p.update || p.delete,
    }
}

async fn init(cfg: &Config, no_snapshot: bool, reset: bool) -> Result<ExitCode> {
    let sql = connect_sql(&cfg.source.pg, &cfg.source.tls).await?;
    // Reach the destination before anything is created or dropped at the source: a wrong
    // URL, bucket or credentials fail here, with nothing to clean up.
    let mut dest = destination(cfg)?;
    dest.read_committed()
        .await
        .with_context(|| format!("cannot read the destination {}", dest.describe()))?;
    let spec = spec(cfg);
    let slot = &cfg.source.slot;
    if reset {
        let (s, p) = setup::drop_all(&sql, slot, &cfg.source.publication).await?;
        tracing::info!(dropped_slot = s, dropped_publication = p, "reset");
    }
    let existing = setup::slot_info(&sql, slot).await?;
    let info = setup::preflight(&sql, &spec, existing.is_none()).await?;
    check_columns(cfg, &sql, dest.as_ref()).await?;
    let added = setup::ensure_publication(&sql, &spec, &info).await?;
    let (mut repl, system) =
        pgcdc_source::connect::connect_replication(&cfg.source.pg, &cfg.source.tls).await?;
    let (lsn, created, exported) = match &existing {
        Some(s) => {
            setup::check_slot(slot, s, &info.database)?;
            (s.confirmed_flush_lsn.unwrap_or_default(), false, None)
        }
        None => {
            let c = setup::create_slot(&mut repl, slot, false, !no_snapshot).await?;
            (c.consistent_point, true, c.snapshot_name)
        }
    };
    let identity = SourceIdentity {
        system_identifier: system.system_id.clone(),
        database: info.database.clone(),
        slot: slot.clone(),
    };
    let fresh = Checkpoint {
        lsn,
        source: identity,
        committed_at: chrono::Utc::now().to_rfc3339(),
        extra: Default::default(),
    };
    let wrote = dest.initialize(&fresh, reset || created).await?;
    let mut checkpoint = dest
        .read_committed()
        .await?
        .map(|c| c.checkpoint)
        .ok_or_else(|| anyhow::anyhow!("the destination checkpoint could not be read back"))?;
    if checkpoint.source != fresh.source {
        bail!(
            "the destination {} already holds data of another source (system {}, database {}, slot {}); use another destination.dataset, or `pgcdc init --reset`",
            dest.describe(),
            checkpoint.source.system_identifier,
            checkpoint.source.database,
            checkpoint.source.slot
        );
    }
    // A new slot, or a new (empty) destination for an existing slot, needs every table;
    // otherwise only the tables this init added to the publication.
    let wanted = if no_snapshot {
        Vec::new()
    } else if created || wrote {
        configured_tables(cfg, &sql).await?
    } else {
        added
            .iter()
            .filter(|t| !t.ends_with(".*"))
            .cloned()
            .collect()
    };
    let snapshot = take_snapshot(
        cfg,
        dest.as_mut(),
        &sql,
        &mut checkpoint,
        SnapshotRequest {
            exported: exported.as_deref(),
            lsn,
            wanted: &wanted,
        },
    )
    .await?;
    repl.close().await.ok();
    print_init(
        cfg,
        &spec,
        &added,
        created,
        lsn,
        dest.as_ref(),
        wrote,
        snapshot.as_ref(),
        no_snapshot,
    );
    Ok(ExitCode::SUCCESS)
}

/// Projects every configured table now, as the stream and the snapshot will (column
/// hints, `include_columns`, keys, metadata names), so that a wrong table or column name,
/// or a table the destination cannot hold ([`Destination::check_table`]), is an error
/// before the publication or slot changes.
async fn check_columns(
    cfg: &Config,
    sql: &tokio_postgres::Client,
    dest: &dyn Destination,
) -> Result<()> {
    let tables = configured_tables(cfg, sql).await?;
    for name in cfg.columns.keys().chain(cfg.source.include_columns.keys()) {
        if !tables.contains(name) {
            bail!(
                "include_columns / columns name table {} which is not replicated (source.tables, schema {})",
                pgcdc_core::quote_ident(name),
                pgcdc_core::quote_ident(&cfg.source.schema)
            );
        }
    }
    let mut catalog = cfg.catalog();
    for name in &tables {
        let table = TableName::new(cfg.source.schema.clone(), name.clone());
        let desc = pgcdc_source::snapshot::describe_table(sql, &table).await?;
        let include = cfg.source.include_columns.get(name).map(Vec::as_slice);
        let projection = catalog
            .project(
                sql,
                desc.oid,
                table,
                desc.replident,
                &desc.rel_columns(),
                include,
            )
            .await?;
        dest.check_table(&projection.schema)
            .with_context(|| format!("destination {}", dest.describe()))?;
    }
    Ok(())
}

/// The configured tables, or every table of the schema.
async fn configured_tables(cfg: &Config, sql: &tokio_postgres::Client) -> Result<Vec<String>> {
    Ok(match &cfg.source.tables {
        Some(t) => t.clone(),
        None => setup::list_tables(sql, &cfg.source.schema, None)
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect(),
    })
}

/// What to snapshot, and from where.
struct SnapshotRequest<'a> {
    /// The slot's exported snapshot (a slot `init` just created), else None.
    exported: Option<&'a str>,
    /// The exported snapshot's consistent point.
    lsn: pgcdc_core::Lsn,
    /// Tables asked for.
    wanted: &'a [String],
}

/// Snapshots `req.wanted` plus anything an earlier attempt left unfinished: from the
/// slot's exported snapshot when there is one, else from a temporary slot's.
async fn take_snapshot(
    cfg: &Config,
    dest: &mut dyn Destination,
    sql: &tokio_postgres::Client,
    checkpoint: &mut Checkpoint,
    req: SnapshotRequest<'_>,
) -> Result<Option<crate::snapshot::SnapshotSummary>> {
    let pending = crate::snapshot::Progress::of(checkpoint)?.pending();
    let (exported, wanted) = (req.exported, req.wanted);
    if wanted.is_empty() && pending.is_empty() {
        return Ok(None);
    }
    // Nobody else may write to the destination meanwhile: a running `pgcdc run` would
    // have its newer checkpoint overwritten by ours. A slot this init just created is
    // held by our own connection; any other must be idle.
    // A run between pages holds no slot, only the slot's lock: take it for the snapshot.
    let locked = exported.is_none();
    if locked {
        if let Err(busy) = peek::claim_slot(sql, &cfg.source.slot, true).await? {
            let who = match busy {
                peek::SlotBusy::Active(pid) => {
                    format!("PID {}", pid.map_or_else(|| "?".into(), |p| p.to_string()))
                }
                peek::SlotBusy::Locked => "another pgcdc holds its lock".into(),
            };
            anyhow::bail!(
                "slot {} is in use ({who}): a `pgcdc run` is probably running; stop it, then rerun this snapshot (it must not write to the destination at the same time)",
                cfg.source.slot
            );
        }
    }
    let result = snapshot_unlocked(cfg, dest, sql, checkpoint, req, pending).await;
    if locked {
        peek::unlock_slot(sql, &cfg.source.slot).await?;
    }
    result
}

async fn snapshot_unlocked(
    cfg: &Config,
    dest: &mut dyn Destination,
    sql: &tokio_postgres::Client,
    checkpoint: &mut Checkpoint,
    req: SnapshotRequest<'_>,
    pending: Vec<String>,
) -> Result<Option<crate::snapshot::SnapshotSummary>> {
    let SnapshotRequest {
        exported,
        lsn,
        wanted,
    } = req;
    // Files of an interrupted attempt that never committed go first: their chunks are
    // still pending and will be read again.
    let committed = dest
        .open()
        .await?
        .ok_or_else(|| anyhow::anyhow!("the destination checkpoint disappeared"))?;
    *checkpoint = committed.checkpoint;
    if let Some(name) = exported {
        return Ok(Some(
            crate::snapshot::run(cfg, dest, sql, checkpoint, name, lsn, wanted).await?,
        ));
    }
    let (mut repl, _) =
        pgcdc_source::connect::connect_replication(&cfg.source.pg, &cfg.source.tls).await?;
    let base: String = cfg.source.slot.chars().take(40).collect();
    let temp = format!("{base}_snap_{}", std::process::id());
    let created = setup::create_slot(&mut repl, &temp, true, true).await?;
    let name = created
        .snapshot_name
        .ok_or_else(|| anyhow::anyhow!("the server exported no snapshot for slot {temp}"))?;
    tracing::info!(slot = %temp, at = %created.consistent_point, tables = ?wanted, pending = ?pending, "snapshot from a temporary slot");
    let summary = crate::snapshot::run(
        cfg,
        dest,
        sql,
        checkpoint,
        &name,
        created.consistent_point,
        wanted,
    )
    .await?;
    repl.close().await.ok();
    Ok(Some(summary))
}

#[allow(clippy::too_many_arguments)]
fn print_init(
    cfg: &Config,
    spec: &SetupSpec,
    added: &[String],
    created: bool,
    lsn: pgcdc_core::Lsn,
    dest: &dyn Destination,
    wrote: bool,
    snapshot: Option<&crate::snapshot::SnapshotSummary>,
    no_snapshot: bool,
) {
    println!("source       {}", describe(&cfg.source.pg));
    let added_text = if added.is_empty() {
        String::new()
    } else {
        format!(", added: {}", added.join(", "))
    };
    println!(
        "publication  {} ({}){added_text}",
        cfg.source.publication, spec.publish
    );
    println!(
        "slot         {} {} at {lsn}",
        cfg.source.slot,
        if created { "created" } else { "exists" }
    );
    println!(
        "destination  {} — checkpoint {}",
        dest.describe(),
        if wrote { "written" } else { "kept" }
    );
    match snapshot {
        Some(s) => {
            let rows: u64 = s.rows.values().sum();
            println!("snapshot     {rows} rows in {} chunks", s.chunks);
            for (t, n) in &s.rows {
                println!("  {t:<30} {n:>12} rows");
            }
        }
        None if no_snapshot => {
            println!("snapshot     skipped (--no-snapshot): only changes from now on")
        }
        None => {}
    }
}

async fn snapshot_tables(cfg: &Config, tables: Vec<String>) -> Result<ExitCode> {
    let sql = connect_sql(&cfg.source.pg, &cfg.source.tls).await?;
    let mut dest = destination(cfg)?;
    let mut checkpoint = dest
        .read_committed()
        .await?
        .map(|c| c.checkpoint)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "the destination {} has no checkpoint; run `pgcdc init` first",
                dest.describe()
            )
        })?;
    let published = setup::published_tables(&sql, &cfg.source.publication).await?;
    let tables = if tables.is_empty() {
        configured_tables(cfg, &sql).await?
    } else {
        tables
    };
    for t in &tables {
        if !published
            .iter()
            .any(|(s, n)| s == &cfg.source.schema && n == t)
        {
            bail!(
                "table {} is not in publication {}; add it to source.tables and run `pgcdc init`",
                pgcdc_core::quote_ident(t),
                cfg.source.publication
            );
        }
    }
    let lsn = checkpoint.lsn;
    let summary = take_snapshot(
        cfg,
        dest.as_mut(),
        &sql,
        &mut checkpoint,
        SnapshotRequest {
            exported: None,
            lsn,
            wanted: &tables,
        },
    )
    .await?;
    if let Some(s) = summary {
        println!(
            "snapshot     {} rows in {} chunks",
            s.rows.values().sum::<u64>(),
            s.chunks
        );
        for (t, n) in &s.rows {
            println!("  {t:<30} {n:>12} rows");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn run(cfg: &Config, follow: bool) -> Result<ExitCode> {
    let stop = Arc::new(AtomicBool::new(false));
    spawn_signal_handler(Arc::clone(&stop));
    let mut dest = destination(cfg)?;
    let metrics = crate::metrics::Metrics::new();
    if let Some(addr) = &cfg.metrics_listen {
        crate::metrics::serve(addr, std::sync::Arc::clone(&metrics)).await?;
    }
    let opts = RunOptions {
        follow,
        stop,
        metrics,
    };
    let summary = run::run(cfg, dest.as_mut(), opts).await?;
    print_summary(cfg, &summary);
    Ok(ExitCode::SUCCESS)
}

fn spawn_signal_handler(stop: Arc<AtomicBool>) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("stopping at the next transaction boundary");
        stop.store(true, Ordering::SeqCst);
    });
}

fn print_summary(cfg: &Config, s: &RunSummary) {
    let changes = s.changes();
    let rate = if s.seconds > 0.0 {
        changes as f64 / s.seconds
    } else {
        0.0
    };
    println!(
        "replicated {changes} changes in {} transactions ({} commits) from {} to {} in {:.2}s ({rate:.0} changes/s)",
        s.transactions, s.batches, s.start_lsn, s.end_lsn, s.seconds
    );
    if s.tables.is_empty() {
        return;
    }
    println!(
        "{:<32} {:>10} {:>10} {:>10} {:>9}",
        "table", "inserts", "updates", "deletes", "truncates"
    );
    for (name, t) in &s.tables {
        println!(
            "{name:<32} {:>10} {:>10} {:>10} {:>9}",
            t.insert, t.update, t.delete, t.truncate
        );
    }
    println!("landed in {}", cfg.destination.location());
}

async fn status(cfg: &Config, json: bool) -> Result<ExitCode> {
    let sql = connect_sql(&cfg.source.pg, &cfg.source.tls).await?;
    let slot = setup::slot_info(&sql, &cfg.source.slot).await?;
    // A run reading pages holds the slot only while a page is read, its lock throughout.
    let held = slot.is_some() && peek::locked_elsewhere(&sql, &cfg.source.slot).await?;
    let tables = setup::published_tables(&sql, &cfg.source.publication).await?;
    let mut dest = destination(cfg)?;
    let committed = dest.read_committed().await?;
    let warnings = slot.as_ref().map_or_else(Vec::new, |s| {
        setup::slot_warnings(&cfg.source.slot, s, cfg.source.max_retained_wal_bytes)
    });
    let value = serde_json::json!({
        "warnings": warnings,
        "source": describe(&cfg.source.pg),
        "config": cfg.origin,
        "slot": slot.as_ref().map(|s| serde_json::json!({
            "name": cfg.source.slot,
            "active": s.active,
            "active_pid": s.active_pid,
            "held_by_pgcdc": held,
            "confirmed_flush_lsn": s.confirmed_flush_lsn.map(|l| l.to_string()),
            "restart_lsn": s.restart_lsn.map(|l| l.to_string()),
            "wal_status": s.wal_status,
            "lag_bytes": s.lag_bytes,
            "retained_wal_bytes": s.retained_bytes,
        })),
        "publication": { "name": cfg.source.publication, "tables": tables.iter().map(|(s, t)| format!("{s}.{t}")).collect::<Vec<_>>() },
        "checkpoint": committed.as_ref().map(|c| serde_json::json!({
            "lsn": c.checkpoint.lsn.to_string(),
            "committed_at": c.checkpoint.committed_at,
            "destination": dest.describe(),
        })),
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!(
            "source        {} (config: {})",
            describe(&cfg.source.pg),
            cfg.origin
        );
        match &slot {
            None => println!(
                "slot          {} does not exist (run `pgcdc init`)",
                cfg.source.slot
            ),
            Some(s) => {
                println!(
                    "slot          {} ({}), wal_status {}",
                    cfg.source.slot,
                    match (s.active, held) {
                        (true, _) => "active",
                        (false, true) => "held by a running pgcdc",
                        (false, false) => "inactive",
                    },
                    s.wal_status.as_deref().unwrap_or("n/a")
                );
                println!(
                    "confirmed     {}  lag {} bytes, retained WAL {} bytes",
                    s.confirmed_flush_lsn
                        .map(|l| l.to_string())
                        .unwrap_or_default(),
                    s.lag_bytes.unwrap_or(0),
                    s.retained_bytes.unwrap_or(0)
                );
            }
        }
        match &committed {
            None => println!("checkpoint    none in {}", dest.describe()),
            Some(c) => println!(
                "checkpoint    {} at {} in {}",
                c.checkpoint.lsn,
                c.checkpoint.committed_at,
                dest.describe()
            ),
        }
        for w in &warnings {
            println!("warning       {w}");
        }
        println!(
            "publication   {}: {}",
            cfg.source.publication,
            if tables.is_empty() {
                "no tables".to_string()
            } else {
                tables
                    .iter()
                    .map(|(s, t)| format!("{s}.{t}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn drop_all(cfg: &Config, yes: bool) -> Result<ExitCode> {
    if !yes {
        bail!(
            "this drops replication slot {} and publication {}; changes made until a new `pgcdc init` will not be captured. Rerun with --yes to confirm",
            cfg.source.slot,
            cfg.source.publication
        );
    }
    let sql = connect_sql(&cfg.source.pg, &cfg.source.tls).await?;
    let (slot, publication) =
        setup::drop_all(&sql, &cfg.source.slot, &cfg.source.publication).await?;
    println!(
        "slot         {} {}",
        cfg.source.slot,
        if slot { "dropped" } else { "did not exist" }
    );
    println!(
        "publication  {} {}",
        cfg.source.publication,
        if publication {
            "dropped"
        } else {
            "did not exist"
        }
    );
    println!("the data in {} is kept", cfg.destination.location());
    Ok(ExitCode::SUCCESS)
}
