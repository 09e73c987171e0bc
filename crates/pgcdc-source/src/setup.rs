//! Publication and slot lifecycle: preflight checks, `init` (create or extend), `drop`,
//! and the slot/publication facts `status` shows.
//!
//! Everything here is idempotent and quotes every identifier. Preflight turns the usual
//! misconfigurations into errors that name the fix, before anything is created.

use pgcdc_core::{quote_ident, quote_literal, Lsn};
use tokio_postgres::Client;

use crate::error::{Error, ErrorKind, Result};
use crate::wire::{ReplicationConnection, SnapshotAction};

/// What `init` should set up.
#[derive(Debug, Clone)]
pub struct SetupSpec {
    /// Slot name.
    pub slot: String,
    /// Publication name.
    pub publication: String,
    /// Schema of the tables.
    pub schema: String,
    /// Tables, or None for the whole schema (PostgreSQL 15+).
    pub tables: Option<Vec<String>>,
    /// The `publish` option, e.g. "insert, update, delete, truncate".
    pub publish: String,
    /// Whether update or delete is published (then every table needs a replica identity).
    pub needs_identity: bool,
}

/// Facts about the server, gathered by [`preflight`].
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// `server_version_num`, e.g. 150018.
    pub version_num: u32,
    /// Database name.
    pub database: String,
}

async fn setting(client: &Client, name: &str) -> Result<String> {
    let row = client
        .query_one("SELECT current_setting($1)", &[&name])
        .await
        .map_err(|e| Error::from_pg(&format!("reading setting {name}"), e))?;
    Ok(row.get(0))
}

/// Checks that the server and role can do logical replication of the configured tables.
///
/// `new_slot`: whether `init` will create a slot (then a free slot is required).
pub async fn preflight(client: &Client, spec: &SetupSpec, new_slot: bool) -> Result<ServerInfo> {
    let version_num: u32 = setting(client, "server_version_num")
        .await?
        .parse()
        .map_err(|_| Error::new(ErrorKind::Protocol, "server_version_num is not a number"))?;
    if version_num < 110000 {
        return Err(Error::new(
            ErrorKind::ServerConfig,
            format!("PostgreSQL {version_num} is too old: pgcdc needs PostgreSQL 11 or newer"),
        ));
    }
    let wal_level = setting(client, "wal_level").await?;
    if wal_level != "logical" {
        return Err(Error::new(
            ErrorKind::ServerConfig,
            format!("wal_level is '{wal_level}'; set wal_level = logical in postgresql.conf (or ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL"),
        ));
    }
    check_privilege(client).await?;
    check_capacity(client, new_slot).await?;
    if spec.tables.is_none() && version_num < 150000 {
        return Err(Error::new(
            ErrorKind::ServerConfig,
            format!("publishing a whole schema needs PostgreSQL 15 or newer (this is {version_num}); list the tables in source.tables"),
        ));
    }
    check_tables(client, spec).await?;
    let database: String = client
        .query_one("SELECT current_database()", &[])
        .await
        .map_err(|e| Error::from_pg("reading current_database()", e))?
        .get(0);
    Ok(ServerInfo {
        version_num,
        database,
    })
}

async fn check_privilege(client: &Client) -> Result<()> {
    let row = client
        .query_one(
            "SELECT rolname::text, rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| Error::from_pg("reading the role's attributes", e))?;
    let (name, ok): (String, bool) = (row.get(0), row.get(1));
    if !ok {
        return Err(Error::new(
            ErrorKind::Privilege,
            format!("role {} lacks the REPLICATION attribute; run ALTER ROLE {} REPLICATION (as a superuser; on RDS: GRANT rds_replication TO it)", quote_ident(&name), quote_ident(&name)),
        ));
    }
    Ok(())
}

async fn check_capacity(client: &Client, new_slot: bool) -> Result<()> {
    let row = client
        .query_one(
            "SELECT current_setting('max_replication_slots')::int,
                    (SELECT count(*)::int FROM pg_replication_slots),
                    current_setting('max_wal_senders')::int,
                    (SELECT count(*)::int FROM pg_stat_replication)",
            &[],
        )
        .await
        .map_err(|e| Error::from_pg("reading replication capacity", e))?;
    let (max_slots, used_slots, max_senders, used_senders): (i32, i32, i32, i32) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    if new_slot && used_slots >= max_slots {
        return Err(Error::new(
            ErrorKind::ServerConfig,
            format!("all {max_slots} replication slots are in use (max_replication_slots = {max_slots}); drop an unused slot (SELECT pg_drop_replication_slot(name)) or raise max_replication_slots and restart PostgreSQL"),
        ));
    }
    if used_senders >= max_senders {
        return Err(Error::new(
            ErrorKind::ServerConfig,
            format!("all {max_senders} WAL senders are in use (max_wal_senders = {max_senders}); raise max_wal_senders and restart PostgreSQL"),
        ));
    }
    Ok(())
}

/// One table as the catalog describes it.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// Name within the schema.
    pub name: String,
    /// `relreplident`: d, n, f, i.
    pub replident: char,
    /// Whether it has a primary key.
    pub has_pk: bool,
    /// `relkind`: r (table) or p (partitioned).
    pub relkind: char,
}

/// The configured tables (or all tables of the schema but dlt's `_dlt_…` snapshot
/// copies), as the catalog sees them.
pub async fn list_tables(
    client: &Client,
    schema: &str,
    only: Option<&[String]>,
) -> Result<Vec<TableInfo>> {
    let rows = client
        .query(
            "SELECT c.relname::text, c.relreplident::text, c.relkind::text,
                    EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
                AND ($2::text[] IS NULL OR c.relname = ANY($2))
                -- dlt's persisted snapshot tables are never part of a whole-schema setup.
                AND ($2::text[] IS NOT NULL OR c.relname NOT LIKE '\\_dlt\\_%')
              ORDER BY 1",
            &[&schema, &only.map(|t| t.to_vec())],
        )
        .await
        .map_err(|e| Error::from_pg("listing tables", e))?;
    Ok(rows
        .iter()
        .map(|r| TableInfo {
            name: r.get(0),
            replident: r.get::<_, String>(1).chars().next().unwrap_or('d'),
            relkind: r.get::<_, String>(2).chars().next().unwrap_or('r'),
            has_pk: r.get(3),
        })
        .collect())
}

async fn check_tables(client: &Client, spec: &SetupSpec) -> Result<()> {
    let schema_exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&spec.schema],
        )
        .await
        .map_err(|e| Error::from_pg("checking the schema", e))?
        .get(0);
    if !schema_exists {
        return Err(Error::new(
            ErrorKind::Setup,
            format!(
                "schema {} does not exist; check source.schema",
                quote_ident(&spec.schema)
            ),
        ));
    }
    let found = list_tables(client, &spec.schema, spec.tables.as_deref()).await?;
    if let Some(wanted) = &spec.tables {
        let missing: Vec<String> = wanted
            .iter()
            .filter(|w| !found.iter().any(|f| &f.name == *w))
            .map(|w| quote_ident(w))
            .collect();
        if !missing.is_empty() {
            return Err(Error::new(
                ErrorKind::Setup,
                format!(
                    "table(s) {} not found in schema {} (or not a table); check source.tables",
                    missing.join(", "),
                    quote_ident(&spec.schema)
                ),
            ));
        }
    }
    if spec.needs_identity {
        let keyless: Vec<String> = found
            .iter()
            .filter(|t| t.replident == 'n' || (t.replident == 'd' && !t.has_pk))
            .map(|t| quote_ident(&t.name))
            .collect();
        if !keyless.is_empty() {
            return Err(Error::new(
                ErrorKind::Setup,
                format!(
                    "table(s) {} have no replica identity (REPLICA IDENTITY NOTHING, or DEFAULT without a primary key), so PostgreSQL would reject their UPDATEs and DELETEs once published; add a primary key (and ALTER TABLE ... REPLICA IDENTITY DEFAULT), or run ALTER TABLE ... REPLICA IDENTITY FULL, or set source.publish = \"insert\"",
                    keyless.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Creates the publication if missing and adds the configured tables (or schema).
/// Returns the tables it added.
pub async fn ensure_publication(
    client: &Client,
    spec: &SetupSpec,
    info: &ServerInfo,
) -> Result<Vec<String>> {
    let pubname = quote_ident(&spec.publication);
    let exists = client
        .query_opt(
            "SELECT pubname FROM pg_publication WHERE pubname = $1",
            &[&spec.publication],
        )
        .await
        .map_err(|e| Error::from_pg("reading pg_publication", e))?
        .is_some();
    let mut with = format!("publish = {}", quote_literal(&spec.publish));
    if info.version_num >= 130000 {
        with.push_str(", publish_via_partition_root = true");
    }
    let sql = if exists {
        format!("ALTER PUBLICATION {pubname} SET ({with})")
    } else {
        format!("CREATE PUBLICATION {pubname} WITH ({with})")
    };
    client
        .batch_execute(&sql)
        .await
        .map_err(|e| Error::from_pg(&format!("setting up publication {pubname}"), e))?;
    let mut added = Vec::new();
    match &spec.tables {
        None => {
            let has: bool = client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_publication_namespace pn
                       JOIN pg_publication p ON p.oid = pn.pnpubid JOIN pg_namespace n ON n.oid = pn.pnnspid
                      WHERE p.pubname = $1 AND n.nspname = $2)",
                    &[&spec.publication, &spec.schema],
                )
                .await
                .map_err(|e| Error::from_pg("reading pg_publication_namespace", e))?
                .get(0);
            if !has {
                let sql = format!(
                    "ALTER PUBLICATION {pubname} ADD TABLES IN SCHEMA {}",
                    quote_ident(&spec.schema)
                );
                client.batch_execute(&sql).await.map_err(|e| {
                    Error::from_pg(
                        &format!(
                            "adding schema {} to the publication",
                            quote_ident(&spec.schema)
                        ),
                        e,
                    )
                })?;
                added.push(format!("{}.*", spec.schema));
            }
        }
        Some(tables) => {
            let present = published_tables(client, &spec.publication).await?;
            for t in tables {
                if present.iter().any(|(s, n)| s == &spec.schema && n == t) {
                    continue;
                }
                let sql = format!(
                    "ALTER PUBLICATION {pubname} ADD TABLE {}.{}",
                    quote_ident(&spec.schema),
                    quote_ident(t)
                );
                client.batch_execute(&sql).await.map_err(|e| {
                    Error::from_pg(&format!("adding table {} to publication {pubname} (needs ownership of the table)", quote_ident(t)), e)
                })?;
                added.push(t.clone());
            }
        }
    }
    Ok(added)
}

/// (schema, table) pairs a publication publishes.
pub async fn published_tables(client: &Client, publication: &str) -> Result<Vec<(String, String)>> {
    let rows = client
        .query(
            "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1, 2",
            &[&publication],
        )
        .await
        .map_err(|e| Error::from_pg("reading pg_publication_tables", e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// A replication slot as `pg_replication_slots` shows it.
#[derive(Debug, Clone)]
pub struct SlotInfo {
    /// Output plugin.
    pub plugin: Option<String>,
    /// Database of a logical slot.
    pub database: Option<String>,
    /// Whether a connection is streaming from it.
    pub active: bool,
    /// PID of that connection.
    pub active_pid: Option<i32>,
    /// Oldest WAL the slot keeps.
    pub restart_lsn: Option<Lsn>,
    /// Last position confirmed by the consumer.
    pub confirmed_flush_lsn: Option<Lsn>,
    /// `wal_status` (PostgreSQL 13+): reserved, extended, unreserved, lost.
    pub wal_status: Option<String>,
    /// Bytes between the current WAL end and confirmed_flush_lsn.
    pub lag_bytes: Option<i64>,
    /// Bytes of WAL the slot retains (current WAL end − restart_lsn).
    pub retained_bytes: Option<i64>,
}

fn parse_lsn(s: Option<String>) -> Option<Lsn> {
    s.and_then(|s| s.parse().ok())
}

/// Reads a slot; None if it does not exist.
pub async fn slot_info(client: &Client, slot: &str) -> Result<Option<SlotInfo>> {
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(|e| Error::from_pg("reading server_version_num", e))?
        .get(0);
    let wal_status = if version >= 130000 {
        "wal_status::text"
    } else {
        "NULL::text"
    };
    let sql = format!(
        "SELECT plugin::text, database::text, active, active_pid, restart_lsn::text, confirmed_flush_lsn::text, {wal_status},
                (pg_current_wal_lsn() - confirmed_flush_lsn)::int8, (pg_current_wal_lsn() - restart_lsn)::int8
           FROM pg_replication_slots WHERE slot_name = $1"
    );
    let row = client
        .query_opt(&sql, &[&slot])
        .await
        .map_err(|e| Error::from_pg("reading pg_replication_slots", e))?;
    Ok(row.map(|r| SlotInfo {
        plugin: r.get(0),
        database: r.get(1),
        active: r.get(2),
        active_pid: r.get(3),
        restart_lsn: parse_lsn(r.get(4)),
        confirmed_flush_lsn: parse_lsn(r.get(5)),
        wal_status: r.get(6),
        lag_bytes: r.get(7),
        retained_bytes: r.get(8),
    }))
}

/// What is worrying about a slot's health, as sentences that say what to do: WAL retained
/// past `max_retained_bytes` (0 = no limit), WAL about to be removed (`unreserved`), WAL
/// already removed (`lost`).
pub fn slot_warnings(slot: &str, info: &SlotInfo, max_retained_bytes: u64) -> Vec<String> {
    let mut out = Vec::new();
    let retained = info.retained_bytes.unwrap_or(0).max(0) as u64;
    if max_retained_bytes > 0 && retained > max_retained_bytes {
        out.push(format!(
            "slot {slot} retains {} MiB of WAL on the server (more than source.max_retained_wal_mb = {}): run pgcdc more often or keep `run --follow` going; if this pipeline is retired, `pgcdc drop --yes` frees it",
            retained >> 20,
            max_retained_bytes >> 20
        ));
    }
    match info.wal_status.as_deref() {
        Some("unreserved") => out.push(format!(
            "slot {slot} is about to lose WAL it still needs (wal_status = 'unreserved': past max_slot_wal_keep_size): run pgcdc now, or raise max_slot_wal_keep_size"
        )),
        Some("lost") => out.push(format!(
            "slot {slot} is invalidated (wal_status = 'lost'): changes were lost; recover with `pgcdc init --reset`"
        )),
        _ => {}
    }
    out
}

/// Writes a heartbeat into the WAL (a non-transactional logical message), so that a slot
/// on an otherwise idle database still sees its position move.
pub async fn heartbeat(client: &Client) -> Result<()> {
    client
        .execute(
            "SELECT pg_logical_emit_message(false, 'pgcdc_heartbeat', '')",
            &[],
        )
        .await
        .map_err(|e| Error::from_pg("writing the heartbeat (pg_logical_emit_message)", e))?;
    Ok(())
}

/// Checks that an existing slot is one pgcdc can stream from.
pub fn check_slot(slot: &str, info: &SlotInfo, database: &str) -> Result<()> {
    if info.plugin.as_deref() != Some("pgoutput") {
        return Err(Error::new(
            ErrorKind::Setup,
            format!("slot {slot} exists but uses output plugin {:?}, not pgoutput; choose another source.slot or drop it", info.plugin.as_deref().unwrap_or("none (physical slot)")),
        ));
    }
    if info.database.as_deref() != Some(database) {
        return Err(Error::new(
            ErrorKind::Setup,
            format!("slot {slot} belongs to database {:?}, not {database:?}; choose another source.slot", info.database.as_deref().unwrap_or("?")),
        ));
    }
    if info.wal_status.as_deref() == Some("lost") {
        return Err(Error::new(
            ErrorKind::Slot,
            format!("slot {slot} is invalidated (wal_status = 'lost'): PostgreSQL removed WAL it still needed, so changes were lost. Recover with `pgcdc init --reset` (new slot and snapshot); consider raising max_slot_wal_keep_size"),
        ));
    }
    Ok(())
}

/// Creates a logical pgoutput slot. With `export`, the slot's snapshot is exported for
/// the initial copy: it stays valid while `repl` issues no further command.
pub async fn create_slot(
    repl: &mut ReplicationConnection,
    slot: &str,
    temporary: bool,
    export: bool,
) -> Result<crate::wire::CreatedSlot> {
    let action = if export {
        SnapshotAction::Export
    } else {
        SnapshotAction::NoExport
    };
    repl.create_logical_slot(slot, temporary, action)
        .await
        .map_err(|e| {
            let err: Error = e.into();
            Error::new(
                err.kind(),
                format!("creating replication slot {slot}: {err}"),
            )
        })
}

/// Drops slot and publication (missing ones are fine). An active slot is an error.
pub async fn drop_all(client: &Client, slot: &str, publication: &str) -> Result<(bool, bool)> {
    let mut dropped_slot = false;
    if let Some(info) = slot_info(client, slot).await? {
        if crate::peek::locked_elsewhere(client, slot).await? {
            return Err(Error::new(
                ErrorKind::Setup,
                format!("slot {slot} is in use by a running pgcdc (it holds the slot's lock); stop it first"),
            ));
        }
        if info.active {
            return Err(Error::new(
                ErrorKind::Setup,
                format!(
                    "slot {slot} is in use by process {}; stop the running pgcdc first",
                    info.active_pid.unwrap_or(0)
                ),
            ));
        }
        client
            .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
            .await
            .map_err(|e| Error::from_pg(&format!("dropping slot {slot}"), e))?;
        dropped_slot = true;
    }
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_publication WHERE pubname = $1",
            &[&publication],
        )
        .await
        .map_err(|e| Error::from_pg("reading pg_publication", e))?
        .is_some();
    if exists {
        client
            .batch_execute(&format!("DROP PUBLICATION {}", quote_ident(publication)))
            .await
            .map_err(|e| Error::from_pg("dropping the publication", e))?;
    }
    Ok((dropped_slot, exists))
}

/// Where a mini-batch stops: the end of everything committed when the run starts.
///
/// `pg_current_wal_lsn()` is the WAL *write* position; with `synchronous_commit = off` a
/// just-committed transaction may still sit in WAL buffers beyond it. So this reads the
/// insert position and waits (briefly) for the WAL writer to flush up to it, then returns
/// the flushed position — which the walsender reaches, since it streams flushed WAL.
pub async fn batch_end_lsn(client: &Client) -> Result<Lsn> {
    let read = |sql: &'static str| async move {
        let s: String = client
            .query_one(sql, &[])
            .await
            .map_err(|e| Error::from_pg("reading the WAL position", e))?
            .get(0);
        s.parse::<Lsn>()
            .map_err(|_| Error::new(ErrorKind::Protocol, "the server returned an unreadable LSN"))
    };
    let insert = read("SELECT pg_current_wal_insert_lsn()::text").await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let flushed = read("SELECT pg_current_wal_flush_lsn()::text").await?;
        // The insert position may sit just past a page header no record ends at: the
        // deadline covers that case.
        if flushed >= insert || std::time::Instant::now() >= deadline {
            return Ok(flushed);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
