//! The run loop driven without a server: a scripted upstream replays pgoutput messages
//! the way PostgreSQL would (from the requested start, transactions committed before it
//! skipped, a keepalive at the WAL end), into the in-memory destination. Faults are
//! injected at every step — a write, a commit, a commit whose answer is lost, the
//! connection cut at any event, a confirmation that never arrives — and every run must
//! end with each change exactly once and the slot confirmed at the checkpoint.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::Array;
use async_trait::async_trait;
use bytes::Bytes;

use pgcdc_core::types::oid;
use pgcdc_core::{
    Checkpoint, Column, Lsn, MetaColumns, MetaPreset, ReplicaIdentity, SourceIdentity, TableName,
    TableSchema, ValueKind, ValuePolicy,
};
use pgcdc_sink::memory::{Fault, MemoryStore};
use pgcdc_sink::Destination;
use pgcdc_source::catalog::Projection;
use pgcdc_source::pgoutput::{encode, DecodeOptions, Relation, TupleValue};

use super::*;

// ---------------------------------------------------------------- the scripted server

/// One change as the destination must end up holding it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    table: String,
    op: String,
    id: Option<i32>,
    v: Option<String>,
    lsn: i64,
    unchanged: Vec<String>,
}

/// A committed transaction in the WAL.
struct Tx {
    commit_lsn: u64,
    end_lsn: u64,
    messages: Vec<(u64, Vec<u8>)>,
}

/// The WAL the scripted server replays, and what a destination must hold after it.
#[derive(Default)]
struct Wal {
    txs: Vec<Tx>,
    relations: HashMap<u32, (String, Vec<u8>)>,
    /// Relation messages sent again mid-stream (DDL): (before tx index, rel, message).
    ddl: Vec<(usize, u32, Vec<u8>)>,
    expected: Vec<Row>,
    next_lsn: u64,
}

const T: u32 = 16384;
const U: u32 = 16385;

fn t(s: &str) -> TupleValue<'_> {
    TupleValue::Text(s.as_bytes())
}

impl Wal {
    fn new() -> Wal {
        let mut w = Wal {
            next_lsn: 0x1000,
            ..Default::default()
        };
        w.relation(T, "t");
        w.relation(U, "u");
        w
    }

    fn relation(&mut self, rel: u32, name: &str) {
        let cols = [
            encode::Col {
                name: "id",
                type_oid: oid::INT4,
                key: true,
            },
            encode::Col {
                name: "v",
                type_oid: oid::TEXT,
                key: false,
            },
        ];
        let msg = encode::relation(rel, "public", name, b'd', &cols);
        self.relations.insert(rel, (name.to_string(), msg));
    }

    fn lsn(&mut self) -> u64 {
        self.next_lsn += 0x10;
        self.next_lsn
    }

    /// Appends a transaction built by `f`.
    fn tx(&mut self, f: impl FnOnce(&mut TxBuilder<'_>)) {
        let mut b = TxBuilder {
            wal: self,
            messages: Vec::new(),
        };
        f(&mut b);
        let messages = std::mem::take(&mut b.messages);
        let commit_lsn = self.lsn();
        let end_lsn = commit_lsn + 8;
        self.txs.push(Tx {
            commit_lsn,
            end_lsn,
            messages,
        });
    }

    /// The WAL end: past every transaction.
    fn end(&self) -> Lsn {
        Lsn(self.txs.last().map_or(0x1000, |t| t.end_lsn) + 0x100)
    }
}

struct TxBuilder<'a> {
    wal: &'a mut Wal,
    messages: Vec<(u64, Vec<u8>)>,
}

impl TxBuilder<'_> {
    fn push(
        &mut self,
        rel: u32,
        op: &str,
        id: i32,
        v: Option<&str>,
        msg: Vec<u8>,
        unchanged: &[&str],
    ) {
        let lsn = self.wal.lsn();
        self.messages.push((lsn, msg));
        let table = self.wal.relations[&rel].0.clone();
        self.wal.expected.push(Row {
            table,
            op: op.into(),
            id: Some(id),
            v: v.map(str::to_string),
            lsn: lsn as i64,
            unchanged: unchanged.iter().map(|s| s.to_string()).collect(),
        });
    }

    fn insert(&mut self, rel: u32, id: i32, v: &str) {
        let ids = id.to_string();
        let msg = encode::insert(rel, &[t(&ids), t(v)]);
        self.push(rel, "insert", id, Some(v), msg, &[]);
    }

    fn update(&mut self, rel: u32, id: i32, v: &str) {
        let ids = id.to_string();
        let msg = encode::update(rel, None, &[t(&ids), t(v)]);
        self.push(rel, "update", id, Some(v), msg, &[]);
    }

    /// An update that leaves the TOASTed `v` unchanged.
    fn touch(&mut self, rel: u32, id: i32) {
        let ids = id.to_string();
        let msg = encode::update(rel, None, &[t(&ids), TupleValue::UnchangedToast]);
        self.push(rel, "update", id, None, msg, &["v"]);
    }

    /// An update moving the row from key `from` to `to`: a delete of the old key, then
    /// the update, at the same LSN.
    fn move_key(&mut self, rel: u32, from: i32, to: i32, v: &str) {
        let (f, n) = (from.to_string(), to.to_string());
        let msg = encode::update(rel, Some(&[t(&f), TupleValue::Null]), &[t(&n), t(v)]);
        let lsn = self.wal.lsn();
        self.messages.push((lsn, msg));
        let table = self.wal.relations[&rel].0.clone();
        for (op, id, v) in [("delete", from, None), ("update", to, Some(v.to_string()))] {
            self.wal.expected.push(Row {
                table: table.clone(),
                op: op.into(),
                id: Some(id),
                v,
                lsn: lsn as i64,
                unchanged: vec![],
            });
        }
    }

    fn delete(&mut self, rel: u32, id: i32) {
        let ids = id.to_string();
        let msg = encode::delete(rel, &[t(&ids), TupleValue::Null]);
        self.push(rel, "delete", id, None, msg, &[]);
    }

    fn truncate(&mut self, rel: u32) {
        let lsn = self.wal.lsn();
        self.messages.push((lsn, encode::truncate(&[rel])));
        let table = self.wal.relations[&rel].0.clone();
        self.wal.expected.push(Row {
            table,
            op: "truncate".into(),
            id: None,
            v: None,
            lsn: lsn as i64,
            unchanged: vec![],
        });
    }
}

/// A mixed workload over two tables, several transactions of several sizes.
fn workload() -> Wal {
    let mut w = Wal::new();
    w.tx(|t| {
        for i in 1..=4 {
            t.insert(T, i, &format!("a{i}"));
        }
    });
    w.tx(|t| {
        t.update(T, 1, "b1");
        t.insert(U, 1, "u1");
    });
    w.tx(|t| t.touch(T, 2));
    w.tx(|t| {
        t.move_key(T, 3, 30, "moved");
        t.delete(T, 4);
        t.insert(U, 2, "u2");
    });
    w.tx(|t| t.truncate(U));
    w.tx(|t| {
        t.insert(U, 3, "u3");
        t.insert(T, 5, "a5");
    });
    w
}

// ------------------------------------------------------------------- the upstream

/// What the scripted server does wrong, shared across sessions.
#[derive(Default)]
struct SourceFaults {
    /// Sessions (1-based) and the event index (0-based) at which the connection breaks.
    cut: Vec<(u32, usize)>,
    /// Confirmations (1-based, counted over the run) that fail (connection lost).
    confirm: Vec<u32>,
    /// Opening a session fails, the n-th time (1-based).
    open: Vec<u32>,
}

struct ScriptedUpstream {
    wal: Arc<Wal>,
    /// Follow mode: the run's stop flag, set once everything was sent and every fault
    /// has fired, and the store whose faults count.
    follow_stop: Option<(Arc<AtomicBool>, MemoryStore)>,
    faults: Arc<Mutex<SourceFaults>>,
    /// The slot's confirmed position.
    confirmed: Arc<Mutex<Lsn>>,
    sessions: u32,
    confirms: Arc<Mutex<u32>>,
    starts: Vec<Lsn>,
}

fn lost(what: &str) -> anyhow::Error {
    pgcdc_source::Error::new(
        pgcdc_source::ErrorKind::Connection,
        format!("scripted: {what}"),
    )
    .into()
}

impl ScriptedUpstream {
    fn new(wal: Arc<Wal>) -> Self {
        ScriptedUpstream {
            wal,
            follow_stop: None,
            faults: Default::default(),
            confirmed: Arc::new(Mutex::new(Lsn::ZERO)),
            sessions: 0,
            confirms: Default::default(),
            starts: Vec::new(),
        }
    }
}

#[async_trait]
impl Upstream for ScriptedUpstream {
    async fn connect(&mut self) -> Result<()> {
        Ok(())
    }

    async fn open(&mut self, dest: &mut dyn Destination, req: SessionRequest) -> Result<Session> {
        self.sessions += 1;
        let n = self.sessions;
        {
            let mut f = self.faults.lock().unwrap();
            if let Some(i) = f.open.iter().position(|&x| x == n) {
                f.open.remove(i);
                return Err(lost("opening a session"));
            }
        }
        let committed = dest.read_committed().await?.expect("initialised");
        let start = committed.checkpoint.lsn;
        self.starts.push(start);
        // As PgUpstream: a slot trailing the checkpoint (a run that died between its
        // commit and the confirmation) is brought up to it at once.
        {
            let mut c = self.confirmed.lock().unwrap();
            *c = (*c).max(start);
        }
        let end = (!req.follow).then(|| self.wal.end());
        if end.is_some_and(|e| e <= start) {
            return Ok(Session::NothingNew { start });
        }
        let checkpoint = dest.open().await?.expect("initialised").checkpoint;
        let cut = self
            .faults
            .lock()
            .unwrap()
            .cut
            .iter()
            .filter(|(s, _)| *s == n)
            .map(|(_, e)| *e)
            .collect();
        let source = ScriptedSource {
            events: script(&self.wal, start),
            at: 0,
            cut,
            confirmed: Arc::clone(&self.confirmed),
            confirms: Arc::clone(&self.confirms),
            faults: Arc::clone(&self.faults),
            follow_stop: self.follow_stop.clone(),
            quiet: 0,
        };
        Ok(Session::Read(Opened {
            source: Box::new(source),
            checkpoint,
            end,
            decode: DecodeOptions {
                protocol_version: 1,
                streaming_parallel: false,
            },
            binary: false,
        }))
    }
}

/// What the server sends from `start`: transactions committed at or after it (each
/// relation described before its first change in the session, and again where DDL
/// changed it), then a keepalive at the WAL end.
fn script(wal: &Wal, start: Lsn) -> Vec<Event> {
    let mut events = Vec::new();
    let mut described = BTreeSet::new();
    let msg = |lsn: u64, data: &[u8]| Event::Message {
        lsn: Lsn(lsn),
        wal_end: None,
        data: Bytes::copy_from_slice(data),
    };
    for (i, tx) in wal.txs.iter().enumerate() {
        for (_, rel, ddl) in wal.ddl.iter().filter(|(at, ..)| *at == i) {
            if described.contains(rel) {
                events.push(msg(tx.commit_lsn, ddl));
            }
        }
        if tx.commit_lsn < start.0 {
            continue;
        }
        events.push(msg(
            tx.commit_lsn,
            &encode::begin(tx.commit_lsn, 0, 700 + i as u32),
        ));
        for (lsn, m) in &tx.messages {
            // The relations a change names: one, or a truncate's list.
            let be = |at: usize| u32::from_be_bytes([m[at], m[at + 1], m[at + 2], m[at + 3]]);
            let rels: Vec<u32> = if m[0] == b'T' {
                (0..be(1) as usize).map(|k| be(6 + 4 * k)).collect()
            } else {
                vec![be(1)]
            };
            for rel in rels {
                let Some((_, first)) = wal.relations.get(&rel) else {
                    continue;
                };
                if described.insert(rel) {
                    let latest = wal
                        .ddl
                        .iter()
                        .rfind(|(at, r, _)| *r == rel && *at <= i)
                        .map_or(first, |(_, _, m)| m);
                    events.push(msg(*lsn, latest));
                }
            }
            events.push(msg(*lsn, m));
        }
        events.push(msg(
            tx.commit_lsn,
            &encode::commit(tx.commit_lsn, tx.end_lsn, 0),
        ));
    }
    events.push(Event::Keepalive {
        wal_end: wal.end(),
        reply_requested: false,
    });
    events
}

struct ScriptedSource {
    events: Vec<Event>,
    at: usize,
    cut: Vec<usize>,
    confirmed: Arc<Mutex<Lsn>>,
    confirms: Arc<Mutex<u32>>,
    faults: Arc<Mutex<SourceFaults>>,
    follow_stop: Option<(Arc<AtomicBool>, MemoryStore)>,
    quiet: u32,
}

fn copy(e: &Event) -> Event {
    match e {
        Event::Message { lsn, wal_end, data } => Event::Message {
            lsn: *lsn,
            wal_end: *wal_end,
            data: data.clone(),
        },
        Event::Keepalive {
            wal_end,
            reply_requested,
        } => Event::Keepalive {
            wal_end: *wal_end,
            reply_requested: *reply_requested,
        },
        Event::Quiet => Event::Quiet,
        Event::PageEnd { reached_end } => Event::PageEnd {
            reached_end: *reached_end,
        },
    }
}

#[async_trait]
impl ChangeSource for ScriptedSource {
    async fn next(&mut self) -> Result<Event> {
        if self.cut.contains(&self.at) {
            return Err(lost("connection cut"));
        }
        let Some(e) = self.events.get(self.at) else {
            // Follow mode: everything was sent; once every fault has fired (or after
            // many quiet moments), ask the run to stop.
            if let Some((stop, store)) = &self.follow_stop {
                self.quiet += 1;
                let settled =
                    self.faults.lock().unwrap().confirm.is_empty() && store.pending_faults() == 0;
                if settled || self.quiet > 1000 {
                    stop.store(true, Ordering::SeqCst);
                }
            }
            return Ok(Event::Quiet);
        };
        self.at += 1;
        Ok(copy(e))
    }

    async fn confirm(&mut self, flushed: Lsn, _received: Lsn, _reply: bool) -> Result<()> {
        let n = {
            let mut c = self.confirms.lock().unwrap();
            *c += 1;
            *c
        };
        let mut f = self.faults.lock().unwrap();
        if let Some(i) = f.confirm.iter().position(|&x| x == n) {
            f.confirm.remove(i);
            return Err(lost("confirmation"));
        }
        let mut c = self.confirmed.lock().unwrap();
        *c = (*c).max(flushed);
        Ok(())
    }

    async fn project(&mut self, rel: &Relation<'_>) -> Result<Option<Projection>> {
        if rel.name.starts_with("skip_") {
            return Ok(None);
        }
        let columns: Vec<Column> = rel
            .columns()
            .map(|c| Column {
                name: c.name.to_string(),
                type_oid: c.type_oid,
                type_modifier: c.type_modifier,
                kind: if c.type_oid == oid::INT4 {
                    ValueKind::Int32
                } else {
                    ValueKind::Text
                },
                key: c.flags & 1 == 1,
                hinted: false,
            })
            .collect();
        let n = columns.len();
        Ok(Some(Projection {
            schema: TableSchema {
                table: TableName::new(rel.namespace, rel.name),
                columns,
                replica_identity: ReplicaIdentity::Default,
            },
            map: (0..n).map(Some).collect(),
            binary: vec![None; n],
        }))
    }
}

// ------------------------------------------------------------------------ harness

fn settings(max_rows: usize) -> Settings {
    Settings {
        meta: MetaColumns::preset(MetaPreset::Pgcdc),
        policy: ValuePolicy::default(),
        max_rows,
        max_bytes: 64 << 20,
        flush_interval: Duration::from_secs(3600),
        binary: false,
        first_backoff: Duration::from_millis(1),
    }
}

fn initial() -> Checkpoint {
    Checkpoint {
        lsn: Lsn(0x1000),
        source: SourceIdentity {
            system_identifier: "1".into(),
            database: "db".into(),
            slot: "s".into(),
        },
        committed_at: String::new(),
        extra: Default::default(),
    }
}

async fn new_store() -> MemoryStore {
    let store = MemoryStore::new();
    store
        .destination()
        .initialize(&initial(), false)
        .await
        .unwrap();
    store
}

fn options(follow: bool) -> RunOptions {
    RunOptions {
        follow,
        stop: Arc::new(AtomicBool::new(false)),
        metrics: Metrics::new(),
    }
}

/// One run (a process) over `store`.
async fn run_once(
    up: &mut ScriptedUpstream,
    store: &MemoryStore,
    max_rows: usize,
    follow: bool,
) -> Result<RunSummary> {
    let opts = options(follow);
    up.follow_stop = follow.then(|| (Arc::clone(&opts.stop), store.clone()));
    let mut dest = store.destination();
    run_with(up, &mut dest, &settings(max_rows), opts).await
}

/// Rows grouped by table, each table's in order: the contract orders a table's rows, not
/// the tables of one commit among themselves.
fn per_table(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort_by(|a, b| a.table.cmp(&b.table));
    rows
}

/// Every committed changelog row, each table's in commit order.
fn landed(store: &MemoryStore) -> Vec<Row> {
    per_table(landed_raw(store))
}

/// Every committed changelog row, in the order the destination received them.
fn landed_raw(store: &MemoryStore) -> Vec<Row> {
    let mut out = Vec::new();
    for b in store.batches() {
        let r = &b.rows;
        let col = |n: &str| r.column_by_name(n).unwrap().clone();
        let (id, v, op, lsn, toast) = (
            col("id"),
            col("v"),
            col("_pgcdc_op"),
            col("_pgcdc_lsn"),
            col("_pgcdc_toast_unchanged"),
        );
        let (id, v, op, lsn, toast) = (
            id.as_primitive::<Int32Type>(),
            v.as_string::<i32>(),
            op.as_string::<i32>(),
            lsn.as_primitive::<Int64Type>(),
            toast.as_list::<i32>(),
        );
        for i in 0..r.num_rows() {
            let unchanged = if toast.is_null(i) {
                vec![]
            } else {
                let l = toast.value(i);
                let s = l.as_string::<i32>();
                (0..s.len()).map(|j| s.value(j).to_string()).collect()
            };
            out.push(Row {
                table: b.table.table.name.clone(),
                op: op.value(i).to_string(),
                id: (!id.is_null(i)).then(|| id.value(i)),
                v: (!v.is_null(i)).then(|| v.value(i).to_string()),
                lsn: lsn.value(i),
                unchanged,
            });
        }
    }
    out
}

/// Every change once, in order, the checkpoint at the WAL end, the slot confirmed there.
fn assert_exact(wal: &Wal, store: &MemoryStore, up: &ScriptedUpstream, case: &str) {
    assert_eq!(
        landed(store),
        per_table(wal.expected.clone()),
        "{case}: the changelog"
    );
    let checkpoint = store.checkpoint().unwrap().lsn;
    assert_eq!(checkpoint, wal.end(), "{case}: the checkpoint");
    assert_eq!(
        *up.confirmed.lock().unwrap(),
        checkpoint,
        "{case}: the slot's confirmed position"
    );
}

/// Runs until a run succeeds (each failed run is a process that died), at most 5 times.
async fn run_to_success(up: &mut ScriptedUpstream, store: &MemoryStore, max_rows: usize) -> u32 {
    let mut errors = Vec::new();
    for attempt in 1..=5 {
        match run_once(up, store, max_rows, false).await {
            Ok(_) => return attempt,
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    panic!("no run succeeded in 5 attempts: {errors:?}");
}

// -------------------------------------------------------------------------- tests

#[tokio::test]
async fn a_batch_run_lands_every_change_once_and_confirms_the_checkpoint() {
    let wal = Arc::new(workload());
    for max_rows in [1, 3, 1000] {
        let store = new_store().await;
        let mut up = ScriptedUpstream::new(Arc::clone(&wal));
        let summary = run_once(&mut up, &store, max_rows, false).await.unwrap();
        assert_exact(&wal, &store, &up, &format!("max_rows {max_rows}"));
        assert_eq!(summary.transactions, wal.txs.len() as u64);
        assert_eq!(
            summary.changes(),
            wal.expected.len() as u64,
            "counted changes (a key move counts twice)"
        );
        assert_eq!(summary.end_lsn, wal.end());
        // A second run finds nothing new and changes nothing.
        let commits = store.commits();
        let again = run_once(&mut up, &store, max_rows, false).await.unwrap();
        assert_eq!(again.changes(), 0);
        assert_eq!(store.commits(), commits);
    }
}

#[tokio::test]
async fn small_batches_commit_at_transaction_ends_only() {
    let wal = Arc::new(workload());
    let store = new_store().await;
    let mut up = ScriptedUpstream::new(Arc::clone(&wal));
    run_once(&mut up, &store, 1, false).await.unwrap();
    // max_rows 1: one commit per transaction (a transaction is never split), plus the
    // final advance to the WAL end.
    assert_eq!(store.commits(), wal.txs.len() as u64 + 1);
    assert_exact(&wal, &store, &up, "max_rows 1");
}

#[tokio::test]
async fn a_failed_write_at_any_step_is_replayed_exactly_once() {
    let wal = Arc::new(workload());
    let probe = new_store().await;
    run_once(
        &mut ScriptedUpstream::new(Arc::clone(&wal)),
        &probe,
        2,
        false,
    )
    .await
    .unwrap();
    let writes = probe.calls(Fault::Write);
    assert!(writes >= 4, "the workload makes several writes ({writes})");
    for n in 1..=writes {
        let store = new_store().await;
        store.inject(Fault::Write, n);
        let mut up = ScriptedUpstream::new(Arc::clone(&wal));
        assert!(
            run_once(&mut up, &store, 2, false).await.is_err(),
            "write {n} fails the run"
        );
        assert_eq!(run_to_success(&mut up, &store, 2).await, 1);
        assert_exact(&wal, &store, &up, &format!("write {n} failed"));
    }
}

#[tokio::test]
async fn a_failed_commit_at_any_step_is_replayed_exactly_once() {
    let wal = Arc::new(workload());
    let probe = new_store().await;
    run_once(
        &mut ScriptedUpstream::new(Arc::clone(&wal)),
        &probe,
        2,
        false,
    )
    .await
    .unwrap();
    let commits = probe.calls(Fault::Commit);
    for n in 1..=commits {
        let store = new_store().await;
        store.inject(Fault::Commit, n);
        let mut up = ScriptedUpstream::new(Arc::clone(&wal));
        assert!(run_once(&mut up, &store, 2, false).await.is_err());
        run_to_success(&mut up, &store, 2).await;
        assert_exact(&wal, &store, &up, &format!("commit {n} failed"));
    }
}

#[tokio::test]
async fn a_commit_whose_answer_was_lost_is_not_applied_twice() {
    // The commit took effect but the run did not hear so: it fails before confirming
    // (as a process killed between commit and confirm). The next run must start from
    // the destination's checkpoint, past the slot's confirmed position.
    let wal = Arc::new(workload());
    let probe = new_store().await;
    run_once(
        &mut ScriptedUpstream::new(Arc::clone(&wal)),
        &probe,
        2,
        false,
    )
    .await
    .unwrap();
    for n in 1..=probe.commits() as u32 {
        let store = new_store().await;
        store.inject(Fault::CommitAnswerLost, n);
        let mut up = ScriptedUpstream::new(Arc::clone(&wal));
        assert!(run_once(&mut up, &store, 2, false).await.is_err());
        let slot = *up.confirmed.lock().unwrap();
        let checkpoint = store.checkpoint().unwrap().lsn;
        assert!(
            slot < checkpoint,
            "commit {n}: the slot trails the destination"
        );
        run_to_success(&mut up, &store, 2).await;
        assert_eq!(
            up.starts.last(),
            Some(&checkpoint),
            "commit {n}: the rerun starts at the checkpoint"
        );
        assert_exact(&wal, &store, &up, &format!("commit {n}'s answer lost"));
    }
}

#[tokio::test]
async fn a_confirmation_lost_after_a_commit_is_caught_up_by_the_next_run() {
    let wal = Arc::new(workload());
    for n in 1..=8 {
        let store = new_store().await;
        let mut up = ScriptedUpstream::new(Arc::clone(&wal));
        up.faults.lock().unwrap().confirm.push(n);
        let _ = run_once(&mut up, &store, 2, false).await;
        run_to_success(&mut up, &store, 2).await;
        assert_exact(&wal, &store, &up, &format!("confirmation {n} lost"));
    }
}

#[tokio::test]
async fn a_connection_cut_at_any_event_is_replayed_exactly_once() {
    let wal = Arc::new(workload());
    let events = script(&wal, initial().lsn).len();
    for at in 0..events {
        let store = new_store().await;
        let mut up = ScriptedUpstream::new(Arc::clone(&wal));
        up.faults.lock().unwrap().cut.push((1, at));
        assert!(
            run_once(&mut up, &store, 2, false).await.is_err(),
            "cut at {at}"
        );
        // Nothing uncommitted is visible: what landed is whole transactions, a prefix.
        let landed_rows = landed(&store);
        let n = landed_rows.iter().map(|r| r.lsn).max().unwrap_or(0);
        let prefix: Vec<Row> = wal
            .expected
            .iter()
            .filter(|r| r.lsn <= n)
            .cloned()
            .collect();
        assert_eq!(landed_rows, per_table(prefix), "cut at {at}: a prefix");
        run_to_success(&mut up, &store, 2).await;
        assert_exact(&wal, &store, &up, &format!("cut at event {at}"));
    }
}

#[tokio::test]
async fn follow_mode_retries_transient_faults_and_ends_exact() {
    let wal = Arc::new(workload());
    let events = script(&wal, initial().lsn).len();
    for at in 0..events {
        let store = new_store().await;
        store.inject(Fault::Write, 3);
        store.inject(Fault::CommitAnswerLost, 2);
        let mut up = ScriptedUpstream::new(Arc::clone(&wal));
        {
            let mut f = up.faults.lock().unwrap();
            f.cut.push((1, at));
            f.cut.push((2, at / 2));
            f.open.push(3);
            f.confirm.push(4);
        }
        let summary = run_once(&mut up, &store, 2, true).await;
        let summary = summary.unwrap_or_else(|e| panic!("cut at {at}: follow mode gave up: {e:#}"));
        assert!(
            up.sessions >= 3,
            "cut at {at}: reconnected ({} sessions)",
            up.sessions
        );
        assert_eq!(
            landed(&store),
            per_table(wal.expected.clone()),
            "cut at {at}: the changelog"
        );
        // Counts are of changes committed once, however often they were read.
        assert_eq!(
            summary.changes(),
            wal.expected.len() as u64,
            "cut at {at}: counted once"
        );
        let checkpoint = store.checkpoint().unwrap().lsn;
        assert_eq!(
            *up.confirmed.lock().unwrap(),
            checkpoint,
            "cut at {at}: confirmed"
        );
    }
}

#[tokio::test]
async fn a_permanent_error_is_not_retried_in_follow_mode() {
    let wal = Arc::new(workload());
    let store = new_store().await;
    let mut up = ScriptedUpstream::new(Arc::clone(&wal));
    // A change for a relation never described: a protocol error, not a lost connection.
    let mut w = Wal::new();
    w.txs.push(Tx {
        commit_lsn: 0x2000,
        end_lsn: 0x2008,
        messages: vec![(0x2001, encode::insert(999, &[t("1"), t("x")]))],
    });
    let mut bad = ScriptedUpstream::new(Arc::new(w));
    let err = run_once(&mut bad, &store, 2, true).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("before its Relation message"),
        "{err:#}"
    );
    assert_eq!(bad.sessions, 1, "not retried");
    assert!(landed(&store).is_empty());
    // The store is untouched and a good run still lands everything.
    run_once(&mut up, &store, 2, false).await.unwrap();
    assert_exact(&wal, &store, &up, "after a permanent error");
}

#[tokio::test]
async fn a_schema_change_mid_batch_closes_the_old_rows_first() {
    let mut wal = Wal::new();
    wal.tx(|t| t.insert(T, 1, "before"));
    // DDL: t gains a column `w`; the server describes t again before its next change.
    let cols = [
        encode::Col {
            name: "id",
            type_oid: oid::INT4,
            key: true,
        },
        encode::Col {
            name: "v",
            type_oid: oid::TEXT,
            key: false,
        },
        encode::Col {
            name: "w",
            type_oid: oid::TEXT,
            key: false,
        },
    ];
    let ddl = encode::relation(T, "public", "t", b'd', &cols);
    wal.ddl.push((1, T, ddl));
    let lsn = wal.lsn();
    wal.txs.push(Tx {
        commit_lsn: lsn + 0x10,
        end_lsn: lsn + 0x18,
        messages: vec![(lsn, encode::insert(T, &[t("2"), t("after"), t("new")]))],
    });
    wal.next_lsn = lsn + 0x20;
    let wal = Arc::new(wal);
    let store = new_store().await;
    let mut up = ScriptedUpstream::new(Arc::clone(&wal));
    run_once(&mut up, &store, 1000, false).await.unwrap();
    let batches = store.batches();
    assert_eq!(batches.len(), 2, "one write per schema");
    assert_eq!(batches[0].table.columns.len(), 2);
    assert_eq!(batches[0].rows.num_rows(), 1);
    assert_eq!(batches[1].table.columns.len(), 3);
    let w = batches[1]
        .rows
        .column_by_name("w")
        .unwrap()
        .as_string::<i32>()
        .value(0)
        .to_string();
    assert_eq!(w, "new");
}

#[tokio::test]
async fn relations_the_source_does_not_replicate_are_skipped() {
    let mut wal = Wal::new();
    wal.relation(U, "skip_me");
    let expected_before = wal.expected.len();
    wal.tx(|t| t.insert(T, 1, "kept"));
    let lsn = wal.lsn();
    wal.txs.push(Tx {
        commit_lsn: lsn + 0x10,
        end_lsn: lsn + 0x18,
        messages: vec![
            (lsn, encode::insert(U, &[t("1"), t("skipped")])),
            (lsn + 1, encode::truncate(&[U])),
        ],
    });
    wal.next_lsn = lsn + 0x20;
    let wal = Arc::new(wal);
    let store = new_store().await;
    let mut up = ScriptedUpstream::new(Arc::clone(&wal));
    let summary = run_once(&mut up, &store, 1000, false).await.unwrap();
    let rows = landed(&store);
    assert_eq!(rows.len(), expected_before + 1);
    assert!(rows.iter().all(|r| r.table == "t"), "{rows:?}");
    assert_eq!(summary.changes(), 1);
    assert_eq!(store.checkpoint().unwrap().lsn, wal.end());
}

#[tokio::test]
async fn a_destination_opened_from_its_url_takes_the_same_run() {
    // The path every destination takes: `[destination]` settings → Target → open.
    let spec: pgcdc_sink::DestinationSpec =
        toml::from_str("url = \"memory:run-loop-url\"").unwrap();
    let target = spec.parse().unwrap();
    let mut dest = target.open().unwrap();
    dest.initialize(&initial(), false).await.unwrap();
    let wal = Arc::new(workload());
    let mut up = ScriptedUpstream::new(Arc::clone(&wal));
    let summary = run_with(&mut up, dest.as_mut(), &settings(3), options(false))
        .await
        .unwrap();
    let store = MemoryStore::named("run-loop-url");
    assert_exact(&wal, &store, &up, "opened from memory:run-loop-url");
    assert_eq!(summary.changes(), wal.expected.len() as u64);
}
