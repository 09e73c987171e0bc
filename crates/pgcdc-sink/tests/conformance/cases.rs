//! The contract of [`Destination`], written once: each case is a generic async function
//! over a [`Fixture`] and the destination's [`Kind`].
//!
//! - Every destination: a commit survives a new instance ([`commit_survives_reopen`]),
//!   a rollback discards ([`rollback_discards`]), a crash between write and commit is
//!   undone by `open` ([`crash_before_commit_is_undone`]), `initialize` keeps or replaces
//!   ([`initialize_keeps_or_replaces`]), a column added mid-batch
//!   ([`schema_change_mid_batch`]), and truncates ([`truncate_empties`]).
//! - Mirrors ([`crate::fixtures`]' PostgreSQL, DuckDB, Delta), the rules of
//!   `pgcdc_sink::mirror`: the last change of a key wins ([`last_change_wins`]), unchanged
//!   TOAST keeps the previous value ([`unchanged_toast`]), a key change moves the row
//!   ([`key_move`]), keyless tables are multisets ([`keyless_multiset`]).
//! - Changelogs: every committed row exactly as written, once, in order, across tables,
//!   batches, commits, rollbacks and crashes ([`rows_exactly_once`]).
//!
//! A case reads what is committed only while no destination instance is open, and checks
//! a changelog against every committed [`Change`] (all columns, metadata included) and a
//! mirror against the rows it must hold, written out by hand.

use pgcdc_core::{Checkpoint, ReplicaIdentity, TableSchema};
use pgcdc_sink::{Committed, Destination};
use serde_json::{json, Value};

use crate::changes::{
    batch, checkpoint, delete, insert, keyed, table, truncate, update, update_toast, Change, Ty,
};
use crate::fixtures::{Fixture, Row};

/// What a destination makes of changelog rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Keeps every row as written (the files destination).
    Changelog,
    /// Applies them to tables equal to the source's (`pgcdc_sink::mirror`).
    Mirror,
}

type Dest = Box<dyn Destination>;

fn ok<T>(r: pgcdc_sink::Result<T>, what: &str) -> T {
    r.unwrap_or_else(|e| {
        panic!(
            "{what}: {e} ({:?}; {:?})",
            e.kind(),
            std::error::Error::source(&e)
        )
    })
}

async fn write(d: &mut Dest, t: &TableSchema, changes: &[Change]) {
    ok(d.write(t, batch(t, changes)).await, "write");
}

async fn commit(d: &mut Dest, c: &Checkpoint) {
    ok(d.commit(c).await, "commit");
}

/// A new instance, opened (as a restarted pgcdc opens it); asserts what `open` returned.
async fn reopen<F: Fixture>(fx: &F, expected: &Checkpoint, tables: &[&TableSchema]) -> Dest {
    let mut d = fx.destination();
    let c = ok(d.open().await, "open");
    assert_committed(c, expected, tables, &[]);
    d
}

/// A new, initialised instance at `checkpoint(10)` (a fresh destination has no checkpoint).
async fn initialised<F: Fixture>(fx: &F) -> Dest {
    let mut d = fx.destination();
    assert!(
        ok(d.open().await, "open").is_none(),
        "a fresh destination has no checkpoint"
    );
    assert!(ok(d.read_committed().await, "read_committed").is_none());
    assert!(
        ok(d.initialize(&checkpoint(10), false).await, "initialize"),
        "initialize of a fresh destination writes"
    );
    d
}

/// Asserts a committed state: `checkpoint` exactly, the latest schema of each of `tables`,
/// and nothing named in `absent`.
fn assert_committed(
    c: Option<Committed>,
    checkpoint: &Checkpoint,
    tables: &[&TableSchema],
    absent: &[&str],
) {
    let c = c.expect("a committed checkpoint");
    assert_eq!(&c.checkpoint, checkpoint, "the committed checkpoint");
    for t in tables {
        let found = c.tables.iter().find(|s| s.table.name == t.table.name);
        assert_eq!(found, Some(*t), "the committed schema of {}", t.table.name);
    }
    for name in absent {
        assert!(
            c.tables.iter().all(|s| s.table.name != *name),
            "table {name} is not committed, yet its schema is: {:?}",
            c.tables
        );
    }
}

/// A case's expectation of one table: as a changelog, exactly `committed` in order (every
/// column of `table`'s changelog schema, NULL where a row's schema lacked it); as a
/// mirror, the rows `mirror` (over `table`'s columns) in any order.
async fn assert_rows<F: Fixture>(
    fx: &F,
    kind: Kind,
    table: &TableSchema,
    committed: &[Change],
    mirror: Value,
) {
    let got = fx.rows(&table.table.name).await;
    match kind {
        Kind::Changelog => {
            let schema = table.arrow_schema(&crate::changes::meta());
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            let got: Vec<Vec<Value>> = got.iter().map(|r| project(r, &names)).collect();
            let want: Vec<Vec<Value>> = committed
                .iter()
                .map(|c| (0..names.len()).map(|i| c.value(table, i)).collect())
                .collect();
            assert_eq!(
                got, want,
                "changelog of {} (columns {names:?}): got (left) vs committed (right)",
                table.table.name
            );
        }
        Kind::Mirror => {
            let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
            let mut got: Vec<Vec<Value>> = got.iter().map(|r| project(r, &names)).collect();
            let mut want: Vec<Vec<Value>> = serde_json::from_value(mirror).expect("rows as arrays");
            sort(&mut got);
            sort(&mut want);
            assert_eq!(
                got, want,
                "mirror table {} (columns {names:?}): got (left) vs expected (right)",
                table.table.name
            );
        }
    }
}

fn project(row: &Row, names: &[&str]) -> Vec<Value> {
    names
        .iter()
        .map(|n| row.get(*n).cloned().unwrap_or(Value::Null))
        .collect()
}

fn sort(rows: &mut [Vec<Value>]) {
    rows.sort_by_cached_key(|r| serde_json::to_string(r).unwrap_or_default());
}

/// `t (id bigint key, v text)`, the table most cases use.
fn kv(name: &str) -> TableSchema {
    keyed(name, &[("v", Ty::Text, false)])
}

/// After `commit(c)`, a new instance reads `c` back with the rows; `open` on another
/// changes nothing; it commits on top; a commit without rows moves the checkpoint only.
pub async fn commit_survives_reopen<F: Fixture>(fx: &F, kind: Kind) {
    let t = kv("t");
    let mut d = initialised(fx).await;
    let first = [
        insert(11, json!([1, "a"])),
        insert(12, json!([2, "b"])),
        update(13, json!([1, "a2"])),
    ];
    write(&mut d, &t, &first).await;
    commit(&mut d, &checkpoint(20)).await;
    drop(d);

    let mut d = fx.destination();
    assert_committed(
        ok(d.read_committed().await, "read_committed"),
        &checkpoint(20),
        &[&t],
        &[],
    );
    drop(d);
    assert_rows(fx, kind, &t, &first, json!([[1, "a2"], [2, "b"]])).await;

    let mut d = reopen(fx, &checkpoint(20), &[&t]).await;
    drop(d);
    assert_rows(fx, kind, &t, &first, json!([[1, "a2"], [2, "b"]])).await;

    d = reopen(fx, &checkpoint(20), &[&t]).await;
    let second = [delete(21, json!([2])), insert(22, json!([3, "c"]))];
    write(&mut d, &t, &second).await;
    commit(&mut d, &checkpoint(30)).await;
    // A transaction without rows of the replicated tables: only the checkpoint moves.
    commit(&mut d, &checkpoint(40)).await;
    drop(d);
    let d = reopen(fx, &checkpoint(40), &[&t]).await;
    drop(d);
    let all: Vec<Change> = first.iter().chain(&second).cloned().collect();
    assert_rows(fx, kind, &t, &all, json!([[1, "a2"], [3, "c"]])).await;
}

/// A rollback discards every write since the last commit, in every table, schemas too;
/// what is written after it commits as usual.
pub async fn rollback_discards<F: Fixture>(fx: &F, kind: Kind) {
    let (t, u) = (kv("t"), kv("u"));
    let mut d = initialised(fx).await;
    let first = [insert(11, json!([1, "a"]))];
    write(&mut d, &t, &first).await;
    commit(&mut d, &checkpoint(20)).await;

    write(
        &mut d,
        &t,
        &[
            update(21, json!([1, "rolled back"])),
            insert(22, json!([2, "rolled back"])),
        ],
    )
    .await;
    write(&mut d, &u, &[insert(23, json!([1, "rolled back"]))]).await;
    ok(d.rollback().await, "rollback");
    assert_committed(
        ok(d.read_committed().await, "read_committed"),
        &checkpoint(20),
        &[&t],
        &["u"],
    );
    let second = [insert(21, json!([3, "c"]))];
    write(&mut d, &t, &second).await;
    commit(&mut d, &checkpoint(30)).await;
    // A rollback with nothing written is harmless.
    ok(d.rollback().await, "rollback");
    drop(d);

    let d = reopen(fx, &checkpoint(30), &[&t]).await;
    assert_committed(Some(committed_of(d).await), &checkpoint(30), &[&t], &["u"]);
    let all: Vec<Change> = first.iter().chain(&second).cloned().collect();
    assert_rows(fx, kind, &t, &all, json!([[1, "a"], [3, "c"]])).await;
    assert_rows(fx, kind, &u, &[], json!([])).await;
}

/// What `d` has committed (read, then `d` is closed).
async fn committed_of(mut d: Dest) -> Committed {
    ok(d.read_committed().await, "read_committed").expect("a committed checkpoint")
}

/// An instance dropped between write and commit (a crash) leaves nothing of its writes:
/// `open` returns the previous checkpoint and schemas, the rows are the committed ones,
/// and replaying the lost changes from there commits each of them once.
pub async fn crash_before_commit_is_undone<F: Fixture>(fx: &F, kind: Kind) {
    let (t, u) = (kv("t"), kv("u"));
    let wide = keyed("t", &[("v", Ty::Text, false), ("n", Ty::Int4, false)]);
    let mut d = initialised(fx).await;
    let first = [insert(11, json!([1, "a"])), insert(12, json!([2, "b"]))];
    write(&mut d, &t, &first).await;
    commit(&mut d, &checkpoint(20)).await;

    // The lost transaction: a column added in the middle (which finishes what was written
    // before it: a data file, a merge), a second table.
    let lost_t = [
        update(21, json!([1, "lost"])),
        insert(22, json!([3, "lost"])),
    ];
    let lost_wide = [insert(23, json!([4, "lost", 4])), delete(24, json!([2]))];
    let lost_u = [insert(25, json!([1, "lost"]))];
    write(&mut d, &t, &lost_t).await;
    write(&mut d, &wide, &lost_wide).await;
    write(&mut d, &u, &lost_u).await;
    drop(d);

    let mut d = fx.destination();
    assert_committed(
        ok(d.open().await, "open after a crash"),
        &checkpoint(20),
        &[&t],
        &["u"],
    );
    drop(d);
    assert_rows(fx, kind, &t, &first, json!([[1, "a"], [2, "b"]])).await;
    assert_rows(fx, kind, &u, &[], json!([])).await;

    // The replay from checkpoint 20: the same changes again, committed this time.
    let mut d = reopen(fx, &checkpoint(20), &[&t]).await;
    write(&mut d, &t, &lost_t).await;
    write(&mut d, &wide, &lost_wide).await;
    write(&mut d, &u, &lost_u).await;
    commit(&mut d, &checkpoint(30)).await;
    drop(d);
    let d = reopen(fx, &checkpoint(30), &[&wide, &u]).await;
    drop(d);
    let all_t: Vec<Change> = first
        .iter()
        .chain(&lost_t)
        .chain(&lost_wide)
        .cloned()
        .collect();
    assert_rows(
        fx,
        kind,
        &wide,
        &all_t,
        json!([[1, "lost", null], [3, "lost", null], [4, "lost", 4]]),
    )
    .await;
    assert_rows(fx, kind, &u, &lost_u, json!([[1, "lost"]])).await;
}

/// `initialize` keeps an existing checkpoint (in this instance and a new one) unless told
/// to replace it; a replaced one has no tables: a mirror's start over empty, a changelog
/// keeps its history. Writing goes on from the new checkpoint.
pub async fn initialize_keeps_or_replaces<F: Fixture>(fx: &F, kind: Kind) {
    let t = kv("t");
    let mut d = initialised(fx).await;
    assert!(
        !ok(d.initialize(&checkpoint(15), false).await, "initialize"),
        "an existing checkpoint is kept"
    );
    assert_committed(
        ok(d.read_committed().await, "read_committed"),
        &checkpoint(10),
        &[],
        &["t"],
    );
    let first = [insert(11, json!([1, "a"])), insert(12, json!([2, "b"]))];
    write(&mut d, &t, &first).await;
    commit(&mut d, &checkpoint(20)).await;
    assert!(
        !ok(d.initialize(&checkpoint(25), false).await, "initialize"),
        "an existing checkpoint is kept"
    );
    assert_committed(
        ok(d.read_committed().await, "read_committed"),
        &checkpoint(20),
        &[&t],
        &[],
    );
    drop(d);

    let mut d = fx.destination();
    assert!(
        !ok(d.initialize(&checkpoint(26), false).await, "initialize"),
        "an existing checkpoint is kept by a new instance"
    );
    assert_committed(
        ok(d.read_committed().await, "read_committed"),
        &checkpoint(20),
        &[&t],
        &[],
    );
    drop(d);
    assert_rows(fx, kind, &t, &first, json!([[1, "a"], [2, "b"]])).await;

    let mut d = fx.destination();
    assert!(
        ok(
            d.initialize(&checkpoint(30), true).await,
            "initialize (replace)"
        ),
        "replace writes"
    );
    assert_committed(
        ok(d.read_committed().await, "read_committed"),
        &checkpoint(30),
        &[],
        &["t"],
    );
    drop(d);
    assert_rows(fx, kind, &t, &first, json!([])).await;

    let mut d = reopen(fx, &checkpoint(30), &[]).await;
    let second = [insert(31, json!([3, "c"]))];
    write(&mut d, &t, &second).await;
    commit(&mut d, &checkpoint(40)).await;
    drop(d);
    let d = reopen(fx, &checkpoint(40), &[&t]).await;
    drop(d);
    let all: Vec<Change> = first.iter().chain(&second).cloned().collect();
    assert_rows(fx, kind, &t, &all, json!([[3, "c"]])).await;
}

/// A column added in the middle of a batch: the rows before it lack it (NULL), the rows
/// after it have it, updates of older rows set it; the committed schema is the new one.
pub async fn schema_change_mid_batch<F: Fixture>(fx: &F, kind: Kind) {
    let narrow = kv("t");
    let wide = keyed("t", &[("v", Ty::Text, false), ("n", Ty::Int4, false)]);
    let mut d = initialised(fx).await;
    let before = [insert(11, json!([1, "a"])), insert(12, json!([2, "b"]))];
    let after = [
        insert(13, json!([3, "c", 30])),
        update(14, json!([1, "a2", 10])),
    ];
    write(&mut d, &narrow, &before).await;
    write(&mut d, &wide, &after).await;
    commit(&mut d, &checkpoint(20)).await;
    drop(d);
    let mut d = reopen(fx, &checkpoint(20), &[&wide]).await;
    let next = [update(21, json!([2, "b2", 20]))];
    write(&mut d, &wide, &next).await;
    commit(&mut d, &checkpoint(30)).await;
    drop(d);
    let all: Vec<Change> = before.iter().chain(&after).chain(&next).cloned().collect();
    assert_rows(
        fx,
        kind,
        &wide,
        &all,
        json!([[1, "a2", 10], [2, "b2", 20], [3, "c", 30]]),
    )
    .await;
}

/// A truncate empties the table, in the middle of a batch or as a batch of its own, and
/// on a table the destination never saw.
pub async fn truncate_empties<F: Fixture>(fx: &F, kind: Kind) {
    let (t, u) = (kv("t"), kv("u"));
    let mut d = initialised(fx).await;
    let mut log = vec![insert(11, json!([1, "a"])), insert(12, json!([2, "b"]))];
    write(&mut d, &t, &log).await;
    commit(&mut d, &checkpoint(20)).await;
    let mid = [
        insert(21, json!([3, "c"])),
        truncate(22),
        insert(23, json!([4, "d"])),
        update(24, json!([4, "d2"])),
    ];
    write(&mut d, &t, &mid).await;
    commit(&mut d, &checkpoint(30)).await;
    log.extend(mid);
    drop(d);
    assert_rows(fx, kind, &t, &log, json!([[4, "d2"]])).await;

    let mut d = reopen(fx, &checkpoint(30), &[&t]).await;
    let alone = [truncate(31)];
    write(&mut d, &t, &alone).await;
    write(&mut d, &u, &[truncate(32)]).await;
    commit(&mut d, &checkpoint(40)).await;
    log.extend(alone);
    drop(d);
    assert_rows(fx, kind, &t, &log, json!([])).await;
    assert_rows(fx, kind, &u, &[truncate(32)], json!([])).await;
}

/// Per key, the last change of a batch wins, whatever came before it in the batch.
pub async fn last_change_wins<F: Fixture>(fx: &F, kind: Kind) {
    let t = kv("t");
    let mut d = initialised(fx).await;
    let first = [insert(11, json!([1, "a"])), insert(12, json!([2, "b"]))];
    write(&mut d, &t, &first).await;
    commit(&mut d, &checkpoint(20)).await;
    let second = [
        update(21, json!([1, "a2"])),
        update(22, json!([1, "a3"])),
        delete(23, json!([2])),
        insert(24, json!([2, "b again"])),
        insert(25, json!([3, "c"])),
        delete(26, json!([3])),
        insert(27, json!([4, "d"])),
        update(28, json!([4, "d2"])),
        delete(29, json!([1])),
        insert(30, json!([1, "a4"])),
    ];
    write(&mut d, &t, &second[..5]).await;
    write(&mut d, &t, &second[5..]).await;
    commit(&mut d, &checkpoint(40)).await;
    drop(d);
    let all: Vec<Change> = first.iter().chain(&second).cloned().collect();
    assert_rows(
        fx,
        kind,
        &t,
        &all,
        json!([[1, "a4"], [2, "b again"], [4, "d2"]]),
    )
    .await;
}

/// `(id key, big text, v text)`, `big` the TOASTed column.
fn toasty() -> TableSchema {
    keyed("t", &[("big", Ty::Text, false), ("v", Ty::Text, false)])
}

/// An update that did not send a TOASTed column keeps its previous value: the latest one
/// sent earlier in the batch, else the committed one.
pub async fn unchanged_toast<F: Fixture>(fx: &F, kind: Kind) {
    let t = toasty();
    let mut d = initialised(fx).await;
    let first = [
        insert(11, json!([1, "big-1", "a"])),
        insert(12, json!([2, "big-2", "b"])),
    ];
    write(&mut d, &t, &first).await;
    commit(&mut d, &checkpoint(20)).await;
    let second = [
        update_toast(21, json!([1, null, "a2"]), &["big"]),
        insert(22, json!([3, "big-3", "c"])),
        update_toast(23, json!([3, null, "c2"]), &["big"]),
        update_toast(24, json!([2, null, "b2"]), &["big"]),
        update_toast(25, json!([2, null, "b3"]), &["big"]),
        update(26, json!([4, "big-4", "d"])),
        update(27, json!([4, "big-4b", "d2"])),
        update_toast(28, json!([4, null, "d3"]), &["big"]),
    ];
    write(&mut d, &t, &second).await;
    commit(&mut d, &checkpoint(30)).await;
    drop(d);
    let all: Vec<Change> = first.iter().chain(&second).cloned().collect();
    let want = json!([
        [1, "big-1", "a2"],
        [2, "big-2", "b3"],
        [3, "big-3", "c2"],
        [4, "big-4b", "d3"]
    ]);
    assert_rows(fx, kind, &t, &all, want).await;
}

/// A key change (a delete of the old key and an update at the same LSN) moves the row;
/// when the update left a TOASTed column out, the moved row keeps the old row's value,
/// whether the old row was committed or written earlier in the batch.
pub async fn key_move<F: Fixture>(fx: &F, kind: Kind) {
    let t = toasty();
    let mut d = initialised(fx).await;
    let first = [
        insert(11, json!([1, "big-1", "a"])),
        insert(12, json!([2, "big-2", "b"])),
    ];
    write(&mut d, &t, &first).await;
    commit(&mut d, &checkpoint(20)).await;
    let second = [
        delete(21, json!([1])),
        update_toast(21, json!([10, null, "a2"]), &["big"]),
        delete(22, json!([2])),
        update(22, json!([20, "big-20", "b2"])),
        insert(23, json!([5, "big-5", "e"])),
        delete(24, json!([5])),
        update_toast(24, json!([50, null, "e2"]), &["big"]),
    ];
    write(&mut d, &t, &second).await;
    commit(&mut d, &checkpoint(30)).await;
    drop(d);
    let all: Vec<Change> = first.iter().chain(&second).cloned().collect();
    let want = json!([
        [10, "big-1", "a2"],
        [20, "big-20", "b2"],
        [50, "big-5", "e2"]
    ]);
    assert_rows(fx, kind, &t, &all, want).await;
}

/// A table without a key (REPLICA IDENTITY FULL, every column marked key) holds a
/// multiset: duplicate rows stay exact, a delete removes one copy, a changing update (a
/// delete of the old row and an update at the same LSN) replaces one copy.
pub async fn keyless_multiset<F: Fixture>(fx: &F, kind: Kind) {
    let t = table(
        "t",
        &[("a", Ty::Int8, true), ("b", Ty::Text, true)],
        ReplicaIdentity::Full,
    );
    let mut d = initialised(fx).await;
    let first = [
        insert(11, json!([1, "a"])),
        insert(12, json!([1, "a"])),
        insert(13, json!([1, "a"])),
        insert(14, json!([2, "b"])),
        insert(15, json!([2, "b"])),
    ];
    write(&mut d, &t, &first).await;
    commit(&mut d, &checkpoint(20)).await;
    drop(d);
    assert_rows(
        fx,
        kind,
        &t,
        &first,
        json!([[1, "a"], [1, "a"], [1, "a"], [2, "b"], [2, "b"]]),
    )
    .await;
    let mut d = reopen(fx, &checkpoint(20), &[&t]).await;
    let second = [
        delete(21, json!([1, "a"])),
        delete(22, json!([2, "b"])),
        update(22, json!([2, "c"])),
        insert(23, json!([3, "x"])),
        delete(24, json!([3, "x"])),
        insert(25, json!([1, "a"])),
        delete(26, json!([1, "a"])),
    ];
    write(&mut d, &t, &second).await;
    commit(&mut d, &checkpoint(30)).await;
    drop(d);
    let all: Vec<Change> = first.iter().chain(&second).cloned().collect();
    assert_rows(
        fx,
        kind,
        &t,
        &all,
        json!([[1, "a"], [1, "a"], [2, "b"], [2, "c"]]),
    )
    .await;
}

/// A changelog holds every committed row exactly as written (metadata columns, TOAST
/// lists, key changes and truncates included), once, in order: over two tables, several
/// batches per commit, an empty commit, a rollback and a crash whose changes are replayed.
pub async fn rows_exactly_once<F: Fixture>(fx: &F, kind: Kind) {
    assert_eq!(kind, Kind::Changelog, "a case of changelog destinations");
    let (t, u) = (toasty(), kv("u"));
    let (mut log_t, mut log_u) = (Vec::new(), Vec::new());
    let mut d = initialised(fx).await;
    let t1 = [
        insert(11, json!([1, "big-1", "a"])),
        insert(12, json!([2, "big-2", "b"])),
    ];
    let u1 = [insert(13, json!([1, "x"]))];
    let t2 = [
        update_toast(14, json!([1, null, "a2"]), &["big"]),
        delete(15, json!([2])),
        update_toast(15, json!([3, null, "b2"]), &["big"]),
    ];
    write(&mut d, &t, &t1).await;
    write(&mut d, &u, &u1).await;
    write(&mut d, &t, &t2).await;
    commit(&mut d, &checkpoint(20)).await;
    log_t.extend(t1.iter().chain(&t2).cloned());
    log_u.extend(u1.iter().cloned());
    commit(&mut d, &checkpoint(25)).await;

    let rolled = [insert(26, json!([9, "rolled back"]))];
    write(&mut d, &u, &rolled).await;
    ok(d.rollback().await, "rollback");
    let u2 = [
        insert(26, json!([2, "y"])),
        truncate(27),
        insert(28, json!([3, "z"])),
    ];
    write(&mut d, &u, &u2).await;
    commit(&mut d, &checkpoint(30)).await;
    log_u.extend(u2.iter().cloned());

    let t3 = [insert(31, json!([4, "big-4", "d"]))];
    write(&mut d, &t, &t3).await;
    write(&mut d, &u, &[insert(32, json!([4, "w"]))]).await;
    drop(d);
    let mut d = reopen(fx, &checkpoint(30), &[&t, &u]).await;
    let u3 = [insert(32, json!([4, "w"]))];
    write(&mut d, &t, &t3).await;
    write(&mut d, &u, &u3).await;
    commit(&mut d, &checkpoint(40)).await;
    log_t.extend(t3.iter().cloned());
    log_u.extend(u3.iter().cloned());
    drop(d);

    let d = reopen(fx, &checkpoint(40), &[&t, &u]).await;
    drop(d);
    assert_rows(fx, kind, &t, &log_t, json!(null)).await;
    assert_rows(fx, kind, &u, &log_u, json!(null)).await;
}
