//! `init` + `run` end to end against a real PostgreSQL, read back by an independent
//! reader (pyarrow, via lake.py): the replayed changelog equals the source table.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::TestEnv;

/// Writes pgcdc.toml for `tables` (None = whole schema) with extra TOML appended.
pub fn configure(env: &TestEnv, tables: Option<&[&str]>, source_extra: &str, extra: &str) {
    let tables = match tables {
        Some(t) => format!(
            "tables = [{}]\n",
            t.iter().map(|n| toml_str(n)).collect::<Vec<_>>().join(", ")
        ),
        None => String::new(),
    };
    let text = format!(
        "[source]\nurl = {url}\nslot = {slot}\npublication = {publication}\nschema = {schema}\n{tables}{source_extra}\n\n[destination]\nurl = {lake}\ndataset = \"ds\"\n\n{extra}\n",
        url = toml_str(&env.url()),
        slot = toml_str(&env.slot),
        publication = toml_str(&env.publication),
        schema = toml_str(&env.schema),
        lake = toml_str(&env.lake_dir().display().to_string()),
    );
    env.write_file("pgcdc.toml", &text);
}

pub fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Runs pgcdc with the env's config; panics with its output unless it succeeds.
pub fn pgcdc_ok(env: &TestEnv, args: &[&str]) -> String {
    let out = env.pgcdc(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "pgcdc {args:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    if std::env::var_os("PGCDC_TEST_VERBOSE").is_some() {
        eprintln!("pgcdc {args:?}\n{stdout}{stderr}");
    }
    stdout
}

/// Runs pgcdc expecting failure; returns stderr.
pub fn pgcdc_err(env: &TestEnv, args: &[&str]) -> String {
    let out = env.pgcdc(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "pgcdc {args:?} unexpectedly succeeded\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// The source table as sorted text rows.
pub fn source_rows(env: &TestEnv, table: &str, columns: &[&str]) -> Vec<Vec<Option<String>>> {
    // format('%s') uses each type's output function (bool::text would say "true", not "t").
    // num_nulls, not IS NULL: a composite whose attributes are all NULL IS NULL too.
    // money lands as a decimal (its text is lc_monetary's): compared as numeric.
    let money: std::collections::HashMap<String, String> = env
        .rows(&format!(
            "SELECT json_build_array(attname::text, format_type(atttypid, NULL)) FROM pg_attribute
              WHERE attrelid = '\"{table}\"'::regclass AND attnum > 0
                AND format_type(atttypid, NULL) IN ('money', 'money[]')"
        ))
        .into_iter()
        .filter_map(|r| match &r[..] {
            [Some(name), Some(t)] => Some((name.clone(), t.replace("money", "numeric"))),
            _ => None,
        })
        .collect();
    let cols = columns
        .iter()
        .map(|c| {
            let v = match money.get(*c) {
                Some(t) => format!("\"{c}\"::{t}"),
                None => format!("\"{c}\""),
            };
            format!("CASE WHEN num_nulls(\"{c}\") = 1 THEN NULL ELSE format('%s', {v}) END")
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut rows = env.rows(&format!("SELECT json_build_array({cols}) FROM \"{table}\""));
    rows.sort();
    rows
}

/// The destination table's replayed final state as sorted text rows.
pub fn replayed_rows(
    env: &TestEnv,
    table: &str,
    key: &[&str],
    columns: &[&str],
) -> Vec<Vec<Option<String>>> {
    let dir = env.lake_dir().join("ds").join(table);
    let mut rows = crate::support::lake_replay(&dir, key, columns);
    rows.sort();
    rows
}

/// Asserts that the replayed changelog equals the source, with a readable diff.
pub fn assert_replay_equals_source(env: &TestEnv, table: &str, key: &[&str], columns: &[&str]) {
    let src = source_rows(env, table, columns);
    let dst = replayed_rows(env, table, key, columns);
    if src != dst {
        let s: BTreeSet<_> = src.iter().collect();
        let d: BTreeSet<_> = dst.iter().collect();
        let missing: Vec<_> = s.difference(&d).take(5).collect();
        let extra: Vec<_> = d.difference(&s).take(5).collect();
        panic!(
            "table {table}: destination ({} rows) differs from source ({} rows)\nmissing (first 5): {missing:?}\nunexpected (first 5): {extra:?}",
            dst.len(),
            src.len()
        );
    }
}

/// Every changelog row of `table`, ordered as replayed.
pub fn changelog(env: &TestEnv, table: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let dir = env.lake_dir().join("ds").join(table);
    crate::support::lake_rows(&dir, None)
}

/// Asserts no change record appears twice: (lsn, op) pairs are unique.
pub fn assert_each_change_once(rows: &[serde_json::Map<String, serde_json::Value>]) {
    let mut seen = BTreeSet::new();
    for r in rows {
        let key = (
            r["_pgcdc_lsn"].as_i64(),
            r["_pgcdc_op"].as_str().map(str::to_string),
        );
        assert!(seen.insert(key.clone()), "change {key:?} appears twice");
    }
}

fn ops(rows: &[serde_json::Map<String, serde_json::Value>]) -> Vec<String> {
    rows.iter()
        .map(|r| r["_pgcdc_op"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn count(rows: &[serde_json::Map<String, serde_json::Value>], op: &str) -> usize {
    rows.iter().filter(|r| r["_pgcdc_op"] == op).count()
}

/// Load ids of a table's data files (one per destination commit).
fn load_ids(env: &TestEnv, table: &str) -> BTreeSet<String> {
    let dir = env.lake_dir().join("ds").join(table);
    std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.split('.').next())
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn changes_across_tables_and_transactions_replay_to_the_source() {
    let env = TestEnv::new("changes_replay");
    env.sql(
        "CREATE TABLE customers (id bigint PRIMARY KEY, name text, balance numeric(12,2), active bool, seen timestamptz);
         CREATE TABLE orders (id serial PRIMARY KEY, customer bigint, amount float8, note jsonb, placed date, tag uuid, data bytea);",
    );
    configure(
        &env,
        Some(&["customers", "orders"]),
        "",
        "[batch]\nmax_rows = 500\n",
    );
    pgcdc_ok(&env, &["init", "--no-snapshot"]);
    for i in 0..40 {
        env.sql(&format!(
            "BEGIN;
             INSERT INTO customers SELECT g, 'c' || g || ' ☃ \"quoted\"', g * 1.25, g % 2 = 0, '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 second'
               FROM generate_series({a}, {b}) g;
             INSERT INTO orders (customer, amount, note, placed, tag, data)
               SELECT g, g / 3.0, jsonb_build_object('k', g, 's', 'x y'), date '2020-02-29' + g, md5(g::text)::uuid, decode(md5(g::text), 'hex')
               FROM generate_series({a}, {b}) g;
             UPDATE customers SET balance = balance + 1, name = NULL WHERE id % 7 = 0 AND id BETWEEN {a} AND {b};
             DELETE FROM orders WHERE id % 5 = 0;
             COMMIT;",
            a = i * 25 + 1,
            b = i * 25 + 25
        ));
    }
    env.sql("UPDATE customers SET active = NOT active WHERE id < 100; DELETE FROM customers WHERE id BETWEEN 200 AND 260;");
    let out = pgcdc_ok(&env, &["run"]);
    assert!(out.contains("customers"), "{out}");
    assert_replay_equals_source(
        &env,
        "customers",
        &["id"],
        &["id", "name", "balance", "active", "seen"],
    );
    assert_replay_equals_source(
        &env,
        "orders",
        &["id"],
        &["id", "customer", "amount", "note", "placed", "tag", "data"],
    );
    let rows = changelog(&env, "customers");
    assert_each_change_once(&rows);
    assert_eq!(count(&rows, "insert"), 1000);
    assert_eq!(count(&rows, "delete"), 61);
    // A second run with nothing new lands nothing and changes nothing.
    pgcdc_ok(&env, &["run"]);
    assert_eq!(changelog(&env, "customers").len(), rows.len());
    // More changes land in the next run, exactly once.
    env.sql("INSERT INTO customers VALUES (5000, 'late', 1, true, now()); DELETE FROM customers WHERE id = 1;");
    pgcdc_ok(&env, &["run"]);
    let rows = changelog(&env, "customers");
    assert_each_change_once(&rows);
    assert_replay_equals_source(
        &env,
        "customers",
        &["id"],
        &["id", "name", "balance", "active", "seen"],
    );
}

#[test]
fn a_second_init_adds_tables_and_rows_before_init_are_absent() {
    let env = TestEnv::new("second_init");
    env.sql(
        "CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, v text);
         INSERT INTO a VALUES (1, 'before'); INSERT INTO b VALUES (1, 'before');",
    );
    configure(&env, Some(&["a"]), "", "");
    pgcdc_ok(&env, &["init", "--no-snapshot"]);
    pgcdc_ok(&env, &["init", "--no-snapshot"]); // idempotent
    env.sql("INSERT INTO a VALUES (2, 'after'); INSERT INTO b VALUES (2, 'not published yet');");
    pgcdc_ok(&env, &["run"]);
    let a = changelog(&env, "a");
    assert_eq!(
        a.iter()
            .map(|r| r["id"].as_str().unwrap_or(""))
            .collect::<Vec<_>>(),
        vec!["2"]
    );
    assert!(!env.lake_dir().join("ds").join("b").exists());

    configure(&env, Some(&["a", "b"]), "", "");
    let out = pgcdc_ok(&env, &["init", "--no-snapshot"]);
    assert!(out.contains("added: b"), "{out}");
    env.sql("INSERT INTO b VALUES (3, 'published'); UPDATE a SET v = 'changed' WHERE id = 2;");
    pgcdc_ok(&env, &["run"]);
    let b = changelog(&env, "b");
    assert_eq!(
        b.iter()
            .map(|r| r["id"].as_str().unwrap_or(""))
            .collect::<Vec<_>>(),
        vec!["3"]
    );
    assert_eq!(ops(&changelog(&env, "a")), vec!["insert", "update"]);
}

#[test]
fn an_insert_only_publication_takes_a_table_without_a_key() {
    let env = TestEnv::new("keyless");
    env.sql("CREATE TABLE events (at timestamptz, payload text);");
    configure(&env, Some(&["events"]), "", "");
    // With updates and deletes published, a keyless table is refused up front.
    let err = pgcdc_err(&env, &["init", "--no-snapshot"]);
    assert!(
        err.contains("\"events\"") && err.contains("REPLICA IDENTITY FULL"),
        "{err}"
    );
    configure(&env, Some(&["events"]), "publish = \"insert\"\n", "");
    pgcdc_ok(&env, &["init", "--no-snapshot"]);
    env.sql("INSERT INTO events SELECT '2024-05-01'::timestamptz + g * interval '1 min', 'e' || g FROM generate_series(1, 300) g;");
    pgcdc_ok(&env, &["run"]);
    let rows = changelog(&env, "events");
    assert_eq!(rows.len(), 300);
    assert!(rows.iter().all(|r| r["_pgcdc_op"] == "insert"));
    assert_replay_equals_source(&env, "events", &["at", "payload"], &["at", "payload"]);
}

#[test]
fn batches_end_at_transaction_boundaries() {
    let env = TestEnv::new("batches");
    env.sql("CREATE TABLE big (id int PRIMARY KEY); CREATE TABLE small (id int PRIMARY KEY);");
    configure(
        &env,
        Some(&["big", "small"]),
        "",
        "[batch]\nmax_rows = 50\n",
    );
    pgcdc_ok(&env, &["init", "--no-snapshot"]);
    env.sql("INSERT INTO big SELECT generate_series(1, 100);");
    pgcdc_ok(&env, &["run"]);
    assert_eq!(changelog(&env, "big").len(), 100);
    assert_eq!(
        load_ids(&env, "big").len(),
        1,
        "a 100-row transaction must land in one batch"
    );
    for i in 0..5 {
        env.sql(&format!(
            "INSERT INTO small SELECT generate_series({}, {});",
            i * 20 + 1,
            i * 20 + 20
        ));
    }
    pgcdc_ok(&env, &["run"]);
    assert_eq!(changelog(&env, "small").len(), 100);
    assert_eq!(
        load_ids(&env, "small").len(),
        2,
        "five 20-row transactions with max_rows = 50 make two batches"
    );
}

/// `source.reader = "sql"` makes mini-batch runs read pages through the SQL interface;
/// the default reads the replication stream. Over the same changes, both land
/// the very same changelog rows, and pages of about `batch.max_rows` changes (one
/// transaction larger than a page included) resume where the last one stopped.
#[test]
fn pages_and_the_stream_land_identical_changes() {
    let env = TestEnv::new("pages_vs_stream");
    env.sql(
        "CREATE TABLE a (id int PRIMARY KEY, v text, n numeric(10,2));
         CREATE TABLE b (k bigint, v int); ALTER TABLE b REPLICA IDENTITY FULL;
         INSERT INTO a SELECT g, 'x' || g, g / 3.0 FROM generate_series(1, 100) g;",
    );
    configure(&env, Some(&["a", "b"]), "", "[batch]\nmax_rows = 40\n");
    let pages_lake = env.dir().join("lake_pages");
    let pages_slot = format!("--set=source.slot={}_p", env.slot);
    let pages_url = format!("--set=destination.url={}", pages_lake.display());
    let pages = |cmd: &str| -> Vec<String> {
        vec![
            pages_slot.clone(),
            pages_url.clone(),
            "--set=source.reader=sql".into(),
            cmd.into(),
        ]
    };
    let run_both = |env: &TestEnv| {
        pgcdc_ok(env, &["--set=source.reader=stream", "run"]);
        let args = pages("run");
        pgcdc_ok(env, &args.iter().map(String::as_str).collect::<Vec<_>>());
    };
    pgcdc_ok(&env, &["init"]);
    let args = pages("init");
    pgcdc_ok(&env, &args.iter().map(String::as_str).collect::<Vec<_>>());
    for i in 0..12 {
        env.sql(&format!(
            "BEGIN; INSERT INTO a SELECT g, 'y' || g, g FROM generate_series({lo}, {hi}) g;
             UPDATE a SET v = v || '+' WHERE id % 7 = {m}; DELETE FROM a WHERE id = {d};
             INSERT INTO b VALUES ({i}, {i}), ({i}, {i}); COMMIT;",
            lo = 1000 + i * 10,
            hi = 1009 + i * 10,
            m = i % 7,
            d = 3 + i * 5
        ));
    }
    // Larger than a page; a non-transactional message; a rolled-back transaction.
    env.sql("BEGIN; INSERT INTO a SELECT g, 'big', 1 FROM generate_series(5000, 5150) g; DELETE FROM b WHERE k = 1; COMMIT;");
    env.sql("SELECT pg_logical_emit_message(false, 'test', 'not a change');");
    let _ = env.try_sql("BEGIN; INSERT INTO a VALUES (9999, 'never', 0); SELECT 1/0; COMMIT;");
    run_both(&env);
    // More changes, a schema change and a truncate: the next runs resume.
    env.sql("ALTER TABLE a ADD COLUMN extra int; UPDATE a SET extra = id WHERE id < 20; TRUNCATE b; INSERT INTO b VALUES (7, 7);");
    env.sql("UPDATE a SET id = id + 100000 WHERE id = 50;");
    run_both(&env);
    for table in ["a", "b"] {
        let streamed = changelog(&env, table);
        let paged = crate::support::lake_rows(&pages_lake.join("ds").join(table), None);
        let changed: Vec<_> = paged
            .iter()
            .filter(|r| r["_pgcdc_op"] != "snapshot")
            .cloned()
            .collect();
        assert_each_change_once(&changed);
        let changes = |rows: &[serde_json::Map<String, serde_json::Value>]| -> Vec<String> {
            rows.iter()
                .filter(|r| r["_pgcdc_op"] != "snapshot")
                .map(|r| serde_json::Value::Object(r.clone()).to_string())
                .collect()
        };
        let (s, p) = (changes(&streamed), changes(&paged));
        assert!(s.len() > 20, "{table}: only {} changes", s.len());
        assert_eq!(s, p, "{table}: the stream and the pages differ");
    }
    assert_replay_equals_source(&env, "a", &["id"], &["id", "v", "n", "extra"]);
    let mut replayed = crate::support::lake_replay(
        &pages_lake.join("ds").join("a"),
        &["id"],
        &["id", "v", "n", "extra"],
    );
    replayed.sort();
    assert_eq!(replayed, source_rows(&env, "a", &["id", "v", "n", "extra"]));
    // The slot was advanced to the checkpoint the pages committed.
    let args = pages("status");
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.push("--json");
    let status: serde_json::Value = serde_json::from_str(&pgcdc_ok(&env, &args)).unwrap();
    assert_eq!(
        status["checkpoint"]["lsn"],
        status["slot"]["confirmed_flush_lsn"]
    );
}

/// A run holds the slot's advisory lock, whichever way it reads: a second pgcdc for the
/// same slot is refused, and so is a snapshot.
#[test]
fn a_second_pgcdc_for_the_same_slot_is_refused() {
    let env = TestEnv::new("slot_lock");
    env.sql("CREATE TABLE t (id int PRIMARY KEY);");
    configure(&env, Some(&["t"]), "", "");
    pgcdc_ok(&env, &["init"]);
    env.sql("INSERT INTO t VALUES (1);");
    // Another session holds the lock, as a running pgcdc would between two pages.
    let app = format!("lock_holder_{}", env.slot);
    let holder = std::process::Command::new(crate::support::psql_bin())
        .args(["-X", "-q", "-d", &env.url(), "-c"])
        .arg(format!(
            "SELECT pg_advisory_lock(1885562724, hashtext('{}')); SELECT pg_sleep(60);",
            env.slot
        ))
        .env("PGAPPNAME", &app)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let holder = KillOnDrop(holder);
    let held = format!("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = '{app}'");
    let mut waited = 0;
    while env.sql(&held).trim() == "0" && waited < 100 {
        std::thread::sleep(Duration::from_millis(100));
        waited += 1;
    }
    assert_eq!(env.sql(&held).trim(), "1", "the lock holder did not start");
    for args in [
        &["run"][..],
        &["run", "--follow"],
        &["snapshot", "--table", "t"],
        &["drop", "--yes"],
        &["init", "--reset"],
    ] {
        let err = pgcdc_err(&env, args);
        assert!(
            err.contains(&format!("slot {} is in use", env.slot)),
            "{args:?}: {err}"
        );
    }
    let status: serde_json::Value =
        serde_json::from_str(&pgcdc_ok(&env, &["status", "--json"])).unwrap();
    assert_eq!(status["slot"]["held_by_pgcdc"], true, "{status}");
    drop(holder);
    env.sql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{app}'"
    ));
    while env.sql(&held).trim() != "0" {
        std::thread::sleep(Duration::from_millis(50));
    }
    pgcdc_ok(&env, &["run"]);
    assert_replay_equals_source(&env, "t", &["id"], &["id"]);
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn schema_changes_mid_stream_add_columns() {
    let env = TestEnv::new("schema_change");
    env.sql("CREATE TABLE t (id int PRIMARY KEY, a text);");
    configure(&env, Some(&["t"]), "", "");
    pgcdc_ok(&env, &["init", "--no-snapshot"]);
    env.sql("INSERT INTO t VALUES (1, 'one');");
    env.sql("ALTER TABLE t ADD COLUMN b int;");
    env.sql("INSERT INTO t VALUES (2, 'two', 2);");
    // DDL between DML on the same table inside one transaction (dlt crashes here).
    env.sql("BEGIN; INSERT INTO t VALUES (3, 'three', 3); ALTER TABLE t ADD COLUMN c text; INSERT INTO t VALUES (4, 'four', 4, 'c4'); UPDATE t SET c = 'c1' WHERE id = 1; COMMIT;");
    pgcdc_ok(&env, &["run"]);
    assert_replay_equals_source(&env, "t", &["id"], &["id", "a", "b", "c"]);
    let rows = changelog(&env, "t");
    assert_each_change_once(&rows);
    assert_eq!(rows.len(), 5);
}

#[test]
fn enums_domains_unchanged_toast_infinity_and_truncate_replicate() {
    let env = TestEnv::new("special_values");
    env.sql(
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
         CREATE DOMAIN money2 AS numeric(10,2) CHECK (VALUE >= 0);
         CREATE TABLE t (id int PRIMARY KEY, m mood, d money2, big text, ts timestamp, tz timestamptz, day date, n int);
         ALTER TABLE t ALTER COLUMN big SET STORAGE EXTERNAL;",
    );
    configure(&env, Some(&["t"]), "", "");
    pgcdc_ok(&env, &["init", "--no-snapshot"]);
    env.sql(
        "INSERT INTO t VALUES
           (1, 'happy', 12.5, repeat('x', 100000), 'infinity', '-infinity', 'infinity', 1),
           (2, 'sad', 0, repeat('y', 50000), '-infinity', 'infinity', '-infinity', 2),
           (3, 'ok', 99999999.99, 'short', '2024-02-29 12:34:56.789', '1999-12-31 23:59:59.999999+05:30', '0044-03-15 BC', 3);",
    );
    // Leaves the TOASTed `big` unchanged: pgoutput sends it as 'u', not its value.
    env.sql("UPDATE t SET n = n + 10, m = 'ok' WHERE id IN (1, 2);");
    pgcdc_ok(&env, &["run"]);
    let cols = ["id", "m", "d", "big", "ts", "tz", "day", "n"];
    assert_replay_equals_source(&env, "t", &["id"], &cols);
    let rows = changelog(&env, "t");
    let updates: Vec<_> = rows.iter().filter(|r| r["_pgcdc_op"] == "update").collect();
    assert_eq!(updates.len(), 2);
    for u in updates {
        assert_eq!(
            u["_pgcdc_toast_unchanged"],
            serde_json::json!(["big"]),
            "{u:?}"
        );
        assert!(u["big"].is_null());
    }
    env.sql("TRUNCATE t; INSERT INTO t (id, n) VALUES (10, 10);");
    pgcdc_ok(&env, &["run"]);
    assert_replay_equals_source(&env, "t", &["id"], &cols);
    assert_eq!(count(&changelog(&env, "t"), "truncate"), 1);
}

#[test]
fn a_key_changing_update_moves_the_row() {
    let env = TestEnv::new("key_change");
    env.sql("CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE f (a int, b text); ALTER TABLE f REPLICA IDENTITY FULL;");
    configure(&env, Some(&["t", "f"]), "", "");
    pgcdc_ok(&env, &["init", "--no-snapshot"]);
    env.sql("INSERT INTO t VALUES (1, 'a'), (2, 'b'); UPDATE t SET id = 3 WHERE id = 1;
             INSERT INTO f VALUES (1, 'x'), (1, 'x'), (2, 'y'); UPDATE f SET b = 'z' WHERE a = 2; DELETE FROM f WHERE b = 'x';");
    pgcdc_ok(&env, &["run"]);
    assert_replay_equals_source(&env, "t", &["id"], &["id", "v"]);
    assert_eq!(
        ops(&changelog(&env, "t")),
        vec!["insert", "insert", "delete", "update"]
    );
    let f = changelog(&env, "f");
    assert_eq!(count(&f, "delete"), 3, "{f:?}");

    // A key change that leaves a TOASTed value alone: PostgreSQL sends neither the value
    // nor the old row; the update's unchanged column keeps the old key's value.
    env.sql(
        "CREATE TABLE big (id int PRIMARY KEY, doc text, n int);
         INSERT INTO big SELECT g, (SELECT string_agg(md5(random()::text || g || i), '') FROM generate_series(1, 400) i), g
           FROM generate_series(1, 3) g;",
    );
    configure(&env, Some(&["t", "f", "big"]), "", "");
    pgcdc_ok(&env, &["init"]);
    env.sql("UPDATE big SET id = 10 WHERE id = 1; UPDATE big SET id = 20, n = 0 WHERE id = 2; UPDATE big SET id = 30 WHERE id = 10;");
    pgcdc_ok(&env, &["run"]);
    let rows = changelog(&env, "big");
    assert!(
        rows.iter().any(|r| r["_pgcdc_toast_unchanged"]
            .as_array()
            .is_some_and(|a| !a.is_empty())),
        "the TOASTed value was sent after all; the test no longer tests anything: {rows:?}"
    );
    assert_replay_equals_source(&env, "big", &["id"], &["id", "doc", "n"]);
}

#[test]
fn an_idle_publication_still_advances_the_slot() {
    let env = TestEnv::new("idle_slot");
    env.sql("CREATE TABLE published (id int PRIMARY KEY); CREATE TABLE other (id int PRIMARY KEY, pad text);");
    configure(&env, Some(&["published"]), "", "");
    pgcdc_ok(&env, &["init", "--no-snapshot"]);
    let confirmed = || {
        env.sql(&format!(
            "SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots WHERE slot_name = '{}'",
            env.slot
        ))
        .trim()
        .parse::<i64>()
        .unwrap_or(0)
    };
    let before = confirmed();
    env.sql("INSERT INTO other SELECT g, repeat('p', 200) FROM generate_series(1, 2000) g;");
    let wal_after_writes: i64 = env
        .sql("SELECT pg_current_wal_lsn() - '0/0'")
        .trim()
        .parse()
        .unwrap_or(0);
    pgcdc_ok(&env, &["run"]);
    let after = confirmed();
    assert!(after >= wal_after_writes, "slot did not advance past unrelated WAL: before {before}, after {after}, WAL was at {wal_after_writes}");
    // And the destination agrees, so the next run starts there.
    pgcdc_ok(&env, &["run"]);
}

#[test]
fn sigkill_and_crashes_during_run_lose_and_duplicate_nothing() {
    let env = TestEnv::new("crash_run");
    env.sql("CREATE TABLE t (id int PRIMARY KEY, v int, note text);");
    configure(&env, Some(&["t"]), "", "[batch]\nmax_rows = 200\n");
    pgcdc_ok(&env, &["init", "--no-snapshot"]);
    for i in 0..60 {
        env.sql(&format!(
            "BEGIN; INSERT INTO t SELECT g, g, 'n' || g FROM generate_series({a}, {b}) g; UPDATE t SET v = v + 1 WHERE id % 3 = 0; DELETE FROM t WHERE id = {d}; COMMIT;",
            a = i * 50 + 1,
            b = i * 50 + 50,
            d = i * 50 + 7
        ));
    }
    // Crash at each failpoint in turn: after data files, after the manifest, after the
    // commit but before the flush report, between a page's commit and the slot's
    // advance, after a spill write.
    for point in [
        "files.after_data_files",
        "files.after_manifest",
        "pipeline.after_commit",
        "pipeline.before_advance",
        "files.after_data_files",
    ] {
        // The advance happens with SQL pages; the others with both readers.
        let reader = if point == "pipeline.before_advance" || point == "files.after_manifest" {
            "--set=source.reader=sql"
        } else {
            "--set=source.reader=stream"
        };
        let out = env.pgcdc_with_env(&[reader, "run"], &[("PGCDC_FAILPOINT", point)]);
        assert!(!out.status.success(), "failpoint {point} did not fire");
    }
    // SIGKILL at a few moments of a run.
    for (delay_ms, reader) in [
        (50u64, "stream"),
        (150, "sql"),
        (300, "stream"),
        (200, "sql"),
    ] {
        env.sql("UPDATE t SET v = v * 2 WHERE id % 11 = 0;");
        let reader = format!("--set=source.reader={reader}");
        let mut child = env.spawn_pgcdc(&[&reader, "run"]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
    }
    pgcdc_ok(&env, &["run"]);
    let rows = changelog(&env, "t");
    assert_each_change_once(&rows);
    assert_replay_equals_source(&env, "t", &["id"], &["id", "v", "note"]);
}

#[test]
fn hostile_table_and_column_names_replicate() {
    let env = TestEnv::new("hostile_names");
    let table = "we\"ird; DROP TABLE x; -- ☃/..";
    env.sql(&format!(
        "CREATE TABLE x (id int); CREATE TABLE \"{t}\" (\"id \"\"key\"\"\" int PRIMARY KEY, \"Ünïcode col\" text, \"a'b\" int);",
        t = table.replace('"', "\"\"")
    ));
    configure(&env, Some(&[table]), "", "");
    pgcdc_ok(&env, &["init", "--no-snapshot"]);
    env.sql(&format!(
        "INSERT INTO \"{t}\" VALUES (1, 'ü', 1), (2, NULL, 2); UPDATE \"{t}\" SET \"a'b\" = 3 WHERE \"id \"\"key\"\"\" = 2;",
        t = table.replace('"', "\"\"")
    ));
    pgcdc_ok(&env, &["run"]);
    // The decoy table survived, and the table landed in one (encoded) directory.
    assert_eq!(env.sql("SELECT count(*) FROM x").trim(), "0");
    let dirs: Vec<String> = std::fs::read_dir(env.lake_dir().join("ds"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "_pgcdc_state")
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let rows = crate::support::lake_rows(&env.lake_dir().join("ds").join(&dirs[0]), None);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["Ünïcode col"], "ü");
    assert_eq!(rows[2]["a'b"], "3");
    assert_eq!(rows[2]["id \"key\""], "2");

    // A hostile schema and publication name, with the initial snapshot.
    let schema = format!("{} we\"ird; --", env.schema);
    let publication = format!("{}'p\"; DROP TABLE x; --", env.publication);
    env.sql(&format!(
        "CREATE SCHEMA \"{s}\"; CREATE TABLE \"{s}\".\"{t}\" (id int PRIMARY KEY); INSERT INTO \"{s}\".\"{t}\" VALUES (1), (2);",
        s = schema.replace('"', "\"\""),
        t = table.replace('"', "\"\"")
    ));
    let slot2 = format!("{}_2", env.slot);
    let sets = [
        format!("source.schema={schema}"),
        format!("source.publication={publication}"),
        format!("source.slot={slot2}"),
        "destination.dataset=hostile".to_string(),
    ];
    let mut args: Vec<&str> = Vec::new();
    for s in &sets {
        args.push("--set");
        args.push(s);
    }
    let mut init = args.clone();
    init.push("init");
    pgcdc_ok(&env, &init);
    env.sql(&format!(
        "INSERT INTO \"{s}\".\"{t}\" VALUES (3);",
        s = schema.replace('"', "\"\""),
        t = table.replace('"', "\"\"")
    ));
    let mut run = args.clone();
    run.push("run");
    pgcdc_ok(&env, &run);
    let dirs: Vec<_> = std::fs::read_dir(env.lake_dir().join("hostile"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() != "_pgcdc_state")
        .collect();
    let rows = crate::support::lake_rows(&dirs[0].path(), None);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(env.sql("SELECT count(*) FROM x").trim(), "0");
    let mut drop = args.clone();
    drop.extend(["drop", "--yes"]);
    pgcdc_ok(&env, &drop);
    env.sql(&format!(
        "DROP SCHEMA \"{}\" CASCADE",
        schema.replace('"', "\"\"")
    ));
}
