//! Mirror mode into DuckDB against a real PostgreSQL: after snapshots, mixed workloads,
//! schema changes and crashes, every mirrored table equals the source table row for row,
//! read back by DuckDB's own Python package (lake.py `mirror`), not by pgcdc.

use std::path::PathBuf;
use std::time::Duration;

use crate::replication::{pgcdc_ok, source_rows, toml_str};
use crate::support::{mirror_rows, TestEnv};

fn db(env: &TestEnv) -> PathBuf {
    env.dir().join("mirror.duckdb")
}

/// pgcdc.toml for a DuckDB mirror of `tables`, with extra TOML appended.
fn configure_mirror(env: &TestEnv, tables: &[&str], extra: &str) {
    let list: Vec<String> = tables.iter().map(|t| toml_str(t)).collect();
    let text = format!(
        "[source]\nurl = {url}\nslot = {slot}\npublication = {publication}\nschema = {schema}\ntables = [{list}]\n\n[destination]\nmode = \"mirror\"\nurl = {db}\ndataset = \"ds\"\n\n{extra}\n",
        url = toml_str(&env.url()),
        slot = toml_str(&env.slot),
        publication = toml_str(&env.publication),
        schema = toml_str(&env.schema),
        list = list.join(", "),
        db = toml_str(&db(env).display().to_string()),
    );
    env.write_file("pgcdc.toml", &text);
}

fn assert_mirrored(env: &TestEnv, table: &str, columns: &[&str]) {
    let source = source_rows(env, table, columns);
    let mirror = mirror_rows(&db(env), table, columns);
    assert_eq!(
        mirror.len(),
        source.len(),
        "{table}: {} rows in the mirror, {} in the source",
        mirror.len(),
        source.len()
    );
    for (m, s) in mirror.iter().zip(&source) {
        assert_eq!(m, s, "{table}: mirror row differs from the source");
    }
}

const ORDERS: &[&str] = &[
    "id", "customer", "qty", "price", "note", "doc", "big", "at", "tags", "day",
];

fn create_tables(env: &TestEnv) {
    env.sql(
        "CREATE TABLE orders (id bigint PRIMARY KEY, customer int, qty int, price numeric(12,2), note text, doc jsonb, big text, at timestamptz, tags text[], day date);
         ALTER TABLE orders ALTER COLUMN big SET STORAGE EXTERNAL;
         CREATE TABLE narrow (k int PRIMARY KEY, v text);
         CREATE TABLE dup (a int, b text);
         ALTER TABLE dup REPLICA IDENTITY FULL;
         INSERT INTO orders SELECT g, g % 7, g, g * 1.25, 'n' || g, jsonb_build_object('g', g), repeat(md5(g::text), 100), '2024-01-01'::timestamptz + g * interval '1 hour', ARRAY['a' || g, NULL], '2024-01-01'::date + g FROM generate_series(1, 300) g;
         INSERT INTO narrow SELECT g, 'v' || g FROM generate_series(1, 50) g;
         INSERT INTO dup VALUES (1, 'x'), (1, 'x'), (2, 'y'), (NULL, NULL), (NULL, NULL);",
    );
}

/// A workload touching every rule: upserts, deletes, unchanged TOAST values (plain and
/// across a key change), duplicates in a keyless table, a truncate, infinity.
fn workload(env: &TestEnv, round: i64) {
    let base = 1000 * round;
    env.sql(&format!(
        "INSERT INTO orders (id, qty, price, note, doc, big, at, tags, day) SELECT g, g, g * 1.25, 'n' || g, jsonb_build_object('g', g), repeat(md5(g::text), 100), now(), ARRAY['x'], current_date FROM generate_series({a}, {b}) g;
         UPDATE orders SET qty = qty + 1 WHERE id % 5 = 0;
         UPDATE orders SET note = 'twice', qty = qty * 2 WHERE id % 10 = 0;
         BEGIN; UPDATE orders SET id = id + 100000 WHERE id = {moved}; UPDATE orders SET note = 'moved' WHERE id = {moved} + 100000; COMMIT;
         UPDATE orders SET big = 'small now', at = 'infinity', day = '-infinity' WHERE id = {small};
         DELETE FROM orders WHERE id % 13 = 0;
         BEGIN; DELETE FROM orders WHERE id = {re}; INSERT INTO orders (id, note, big) VALUES ({re}, 'reborn', repeat('r', 5000)); UPDATE orders SET qty = -1 WHERE id = {re}; COMMIT;
         INSERT INTO dup VALUES (1, 'x'), (3, 'z');
         DELETE FROM dup WHERE ctid = (SELECT min(ctid) FROM dup WHERE a = 1);
         UPDATE dup SET b = 'w' WHERE ctid = (SELECT min(ctid) FROM dup WHERE a = 2);
         TRUNCATE narrow;
         INSERT INTO narrow SELECT g, 'after' || g FROM generate_series(1, 5) g;
         UPDATE narrow SET v = NULL WHERE k = 2;",
        a = base + 301,
        b = base + 400,
        moved = 11 + round * 5,
        small = 12 + round * 5,
        re = 14 + round * 5,
    ));
}

#[test]
fn a_duckdb_mirror_equals_the_source_after_snapshot_changes_and_schema_changes() {
    let env = TestEnv::new("mirror_duckdb");
    create_tables(&env);
    // Small batches: one transaction's changes span several writes and commits.
    configure_mirror(
        &env,
        &["orders", "narrow", "dup"],
        "[batch]\nmax_rows = 97\n",
    );
    pgcdc_ok(&env, &["init"]);
    assert_mirrored(&env, "orders", ORDERS);
    assert_mirrored(&env, "dup", &["a", "b"]);
    workload(&env, 0);
    pgcdc_ok(&env, &["run"]);
    assert_mirrored(&env, "orders", ORDERS);
    assert_mirrored(&env, "narrow", &["k", "v"]);
    assert_mirrored(&env, "dup", &["a", "b"]);

    // Schema changes, with changes before and after them in the same transactions.
    env.sql(
        "BEGIN; UPDATE orders SET qty = 0 WHERE id = 3; ALTER TABLE orders ADD COLUMN extra text; UPDATE orders SET extra = 'e' || id WHERE id % 4 = 0; COMMIT;
         BEGIN; DELETE FROM orders WHERE id = 6; ALTER TABLE orders ALTER COLUMN qty TYPE bigint, ALTER COLUMN price TYPE numeric(16,3); UPDATE orders SET qty = 5000000000, price = 1.125 WHERE id = 8; COMMIT;
         ALTER TABLE orders DROP COLUMN customer;
         UPDATE orders SET note = 'after drop' WHERE id % 6 = 1;",
    );
    workload(&env, 1);
    pgcdc_ok(&env, &["run"]);
    let now: Vec<&str> = ORDERS
        .iter()
        .copied()
        .filter(|c| *c != "customer")
        .chain(["extra"])
        .collect();
    assert_mirrored(&env, "orders", &now);
    assert_mirrored(&env, "narrow", &["k", "v"]);
    assert_mirrored(&env, "dup", &["a", "b"]);
    // The dropped column stays in the mirror, NULL for the rows written since.
    let kept = mirror_rows(&db(&env), "orders", &["id", "customer"]);
    assert!(
        kept.iter().any(|r| r[1].is_some()),
        "old rows keep the dropped column"
    );
    let rewritten =
        env.rows("SELECT json_build_array(id::text) FROM orders WHERE note = 'after drop'");
    assert!(!rewritten.is_empty());
    for r in &rewritten {
        let row = kept.iter().find(|k| k[0] == r[0]).expect("row in mirror");
        assert_eq!(row[1], None, "a row written after the drop has NULL there");
    }
    // status reads the checkpoint from the DuckDB file.
    let status = pgcdc_ok(&env, &["status"]);
    assert!(status.contains("DuckDB"), "{status}");
}

#[test]
fn crashes_and_sigkill_during_mirror_runs_keep_it_equal() {
    let env = TestEnv::new("mirror_crash");
    create_tables(&env);
    configure_mirror(
        &env,
        &["orders", "narrow", "dup"],
        "[batch]\nmax_rows = 150\n",
    );
    pgcdc_ok(&env, &["init"]);
    workload(&env, 0);
    for (round, point) in [
        "mirror.before_commit",
        "mirror.after_commit",
        "pipeline.after_commit",
        "mirror.before_commit:2",
    ]
    .into_iter()
    .enumerate()
    {
        let out = env.pgcdc_with_env(&["run"], &[("PGCDC_FAILPOINT", point)]);
        assert!(!out.status.success(), "failpoint {point} did not fire");
        workload(&env, 1 + round as i64);
    }
    for delay_ms in [100u64, 400, 900] {
        env.sql(
            "UPDATE orders SET qty = qty + 7 WHERE id % 3 = 0; INSERT INTO dup VALUES (9, 'k');",
        );
        let mut child = env.spawn_pgcdc(&["run"]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
    }
    pgcdc_ok(&env, &["run"]);
    assert_mirrored(&env, "orders", ORDERS);
    assert_mirrored(&env, "narrow", &["k", "v"]);
    assert_mirrored(&env, "dup", &["a", "b"]);
}
