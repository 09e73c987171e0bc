//! The initial snapshot: equal to the source for any worker count, consistent with the
//! stream under concurrent writes, resumable after a crash without re-reading finished
//! chunks, and taken for tables added later.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::replication::{
    assert_each_change_once, assert_replay_equals_source, changelog, configure, pgcdc_err, pgcdc_ok,
};
use crate::support::TestEnv;

const MIXED: &str = "CREATE TABLE mixed (id int PRIMARY KEY, t text, n numeric(12,2), f float8, b bool, ts timestamptz, d date, j jsonb, u uuid, raw bytea);
     INSERT INTO mixed SELECT g, 'row ' || g || E' tab\\there \\\\ ☃', g * 1.01, g / 7.0, g % 2 = 0,
            '2024-01-01 00:00:00+00'::timestamptz + g * interval '37 seconds', date '1999-12-31' + g,
            jsonb_build_object('g', g), md5(g::text)::uuid, decode(md5(g::text), 'hex')
       FROM generate_series(1, 20000) g;
     UPDATE mixed SET t = NULL, n = NULL WHERE id % 97 = 0;
     INSERT INTO mixed (id, ts, d, f) VALUES (30000, 'infinity', '-infinity', 'NaN'), (30001, '-infinity', '0044-03-15 BC', '-0');
     ANALYZE mixed;";
const MIXED_COLS: [&str; 10] = ["id", "t", "n", "f", "b", "ts", "d", "j", "u", "raw"];

#[test]
fn the_snapshot_equals_the_source_with_1_2_and_4_workers() {
    for workers in [1, 2, 4] {
        let env = TestEnv::new(&format!("snapshot_w{workers}"));
        env.sql(MIXED);
        configure(
            &env,
            Some(&["mixed"]),
            "",
            &format!("[snapshot]\nworkers = {workers}\nchunk_mb = 1\n"),
        );
        let out = pgcdc_ok(&env, &["init"]);
        assert!(out.contains("20002 rows"), "{out}");
        let rows = changelog(&env, "mixed");
        assert_eq!(rows.len(), 20002);
        assert!(rows.iter().all(|r| r["_pgcdc_op"] == "snapshot"));
        assert_replay_equals_source(&env, "mixed", &["id"], &MIXED_COLS);
        // Changes after the snapshot follow it.
        env.sql("UPDATE mixed SET f = -1 WHERE id < 10; DELETE FROM mixed WHERE id > 19990;");
        pgcdc_ok(&env, &["run"]);
        assert_replay_equals_source(&env, "mixed", &["id"], &MIXED_COLS);
    }
}

#[test]
fn empty_keyless_and_partitioned_tables_snapshot() {
    let env = TestEnv::new("snapshot_shapes");
    env.sql(
        "CREATE TABLE empty (id int PRIMARY KEY);
         CREATE TABLE log (at int, msg text);
         INSERT INTO log SELECT g, 'm' || g FROM generate_series(1, 500) g;
         CREATE TABLE parted (id int, region text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
         CREATE TABLE parted_eu PARTITION OF parted FOR VALUES IN ('eu');
         CREATE TABLE parted_us PARTITION OF parted FOR VALUES IN ('us');
         INSERT INTO parted SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END FROM generate_series(1, 300) g;",
    );
    configure(
        &env,
        Some(&["empty", "log", "parted"]),
        "publish = \"insert\"\n",
        "",
    );
    let out = pgcdc_ok(&env, &["init"]);
    assert!(out.contains("800 rows"), "{out}");
    assert!(changelog(&env, "empty").is_empty());
    assert_eq!(changelog(&env, "log").len(), 500);
    // Partitions land under the partitioned root's name, snapshot and stream alike.
    assert!(!env.lake_dir().join("ds").join("parted_eu").exists());
    env.sql("INSERT INTO parted VALUES (1000, 'eu'), (1001, 'us');");
    pgcdc_ok(&env, &["run"]);
    assert!(!env.lake_dir().join("ds").join("parted_eu").exists());
    assert_replay_equals_source(&env, "parted", &["id", "region"], &["id", "region"]);
    assert_replay_equals_source(&env, "log", &["at", "msg"], &["at", "msg"]);
}

#[test]
fn writes_during_the_snapshot_appear_exactly_once() {
    let env = TestEnv::new("snapshot_concurrent");
    env.sql(MIXED);
    configure(
        &env,
        Some(&["mixed"]),
        "",
        "[snapshot]\nworkers = 2\nchunk_mb = 1\n",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (session, stop) = (env.session(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) && i < 400 {
                session.sql(&format!(
                    "INSERT INTO mixed (id, t) VALUES ({}, 'new'); UPDATE mixed SET f = {i} WHERE id = {}; DELETE FROM mixed WHERE id = {};",
                    100_000 + i,
                    1 + (i * 37) % 20000,
                    1 + (i * 53) % 20000
                ));
                i += 1;
            }
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    pgcdc_ok(&env, &["init"]);
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    pgcdc_ok(&env, &["run"]);
    assert_replay_equals_source(&env, "mixed", &["id"], &MIXED_COLS);
    let changes: Vec<_> = changelog(&env, "mixed")
        .into_iter()
        .filter(|r| r["_pgcdc_op"] != "snapshot")
        .collect();
    assert_each_change_once(&changes);
}

#[test]
fn a_killed_snapshot_resumes_without_rereading_finished_chunks() {
    let env = TestEnv::new("snapshot_resume");
    env.sql(MIXED);
    configure(
        &env,
        Some(&["mixed"]),
        "",
        "[snapshot]\nworkers = 1\nchunk_mb = 1\n",
    );
    // Dies right after the first chunk is committed.
    let out = env.pgcdc_with_env(&["init"], &[("PGCDC_FAILPOINT", "snapshot.after_chunk")]);
    assert!(!out.status.success());
    let first = changelog(&env, "mixed").len();
    assert!(
        first > 0 && first < 20000,
        "one chunk should have landed, got {first} rows"
    );
    // Incomplete: run refuses rather than stream over a partial copy.
    let e = pgcdc_err(&env, &["run"]);
    assert!(e.contains("snapshot") && e.contains("pgcdc init"), "{e}");
    // The source changes before the resume, in finished and unfinished chunks alike.
    env.sql("UPDATE mixed SET t = 'moved' WHERE id % 500 = 0; DELETE FROM mixed WHERE id % 777 = 0; INSERT INTO mixed (id, t) VALUES (50000, 'added');");
    let first_rows = changelog(&env, "mixed");
    let first_lsn = first_rows[0]["_pgcdc_lsn"].clone();
    pgcdc_ok(&env, &["init"]);
    let rows = changelog(&env, "mixed");
    let snap: Vec<_> = rows
        .iter()
        .filter(|r| r["_pgcdc_op"] == "snapshot")
        .collect();
    // The finished chunk was not read again: its rows are exactly the first attempt's.
    let old: Vec<_> = snap
        .iter()
        .filter(|r| r["_pgcdc_lsn"] == first_lsn)
        .collect();
    assert_eq!(old.len(), first);
    // The rest comes from the newer snapshot; an id in both is a row an UPDATE moved into
    // an unfinished chunk in between, never a re-read.
    let old_ids: std::collections::HashSet<_> =
        old.iter().map(|r| r["id"].as_str().unwrap_or("")).collect();
    for r in snap.iter().filter(|r| r["_pgcdc_lsn"] != first_lsn) {
        let id = r["id"].as_str().unwrap_or("");
        if old_ids.contains(id) {
            assert_eq!(r["t"], "moved", "row {id} read twice without having moved");
        }
    }
    pgcdc_ok(&env, &["run"]);
    assert_replay_equals_source(&env, "mixed", &["id"], &MIXED_COLS);
}

#[test]
fn a_snapshot_killed_between_chunk_files_and_commit_lands_each_row_once() {
    let env = TestEnv::new("snapshot_orphans");
    env.sql(MIXED);
    configure(
        &env,
        Some(&["mixed"]),
        "",
        "[snapshot]\nworkers = 1\nchunk_mb = 1\n",
    );
    // The 1st commit records the plan, the 2nd the first chunk; die in the 3rd, after its
    // data files and before its manifest.
    let out = env.pgcdc_with_env(
        &["init"],
        &[("PGCDC_FAILPOINT", "files.after_data_files:3")],
    );
    assert!(!out.status.success(), "the failpoint did not fire");
    pgcdc_ok(&env, &["init"]);
    let snap: Vec<_> = changelog(&env, "mixed")
        .into_iter()
        .filter(|r| r["_pgcdc_op"] == "snapshot")
        .collect();
    let ids: std::collections::HashSet<_> = snap.iter().map(|r| r["id"].to_string()).collect();
    assert_eq!(ids.len(), snap.len(), "a snapshot row landed twice");
    assert_eq!(snap.len(), 20002);
    pgcdc_ok(&env, &["run"]);
    assert_replay_equals_source(&env, "mixed", &["id"], &MIXED_COLS);
}

#[test]
fn a_snapshot_is_refused_while_a_run_holds_the_slot() {
    let env = TestEnv::new("snapshot_busy");
    env.sql("CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a SELECT generate_series(1, 100);");
    configure(&env, Some(&["a"]), "", "[batch]\nflush_interval_ms = 100\n");
    pgcdc_ok(&env, &["init"]);
    let mut follow = env.spawn_pgcdc(&["run", "--follow"]);
    let started = std::time::Instant::now();
    while env
        .sql(&format!(
            "SELECT active FROM pg_replication_slots WHERE slot_name = '{}'",
            env.slot
        ))
        .trim()
        != "t"
    {
        assert!(
            started.elapsed().as_secs() < 30,
            "run --follow never took the slot"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let err = pgcdc_err(&env, &["snapshot", "--table", "a"]);
    assert!(err.contains("in use") && err.contains("pgcdc run"), "{err}");
    env.sql("INSERT INTO a VALUES (1000);");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &follow.id().to_string()])
        .status();
    assert!(follow.wait().unwrap().success());
    pgcdc_ok(&env, &["run"]);
    pgcdc_ok(&env, &["snapshot", "--table", "a"]);
    pgcdc_ok(&env, &["run"]);
    assert_replay_equals_source(&env, "a", &["id"], &["id"]);
}

#[test]
fn a_table_added_later_arrives_with_its_earlier_rows() {
    let env = TestEnv::new("snapshot_added");
    env.sql("CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, v text);
             INSERT INTO a VALUES (1, 'a1'); INSERT INTO b SELECT g, 'b' || g FROM generate_series(1, 1000) g;");
    configure(&env, Some(&["a"]), "", "");
    pgcdc_ok(&env, &["init"]);
    env.sql(
        "INSERT INTO a VALUES (2, 'a2'); UPDATE b SET v = 'changed before add' WHERE id <= 10;",
    );
    configure(&env, Some(&["a", "b"]), "", "");
    let out = pgcdc_ok(&env, &["init"]);
    assert!(
        out.contains("added: b") && out.contains("1000 rows"),
        "{out}"
    );
    env.sql("DELETE FROM b WHERE id > 990; UPDATE b SET v = 'after' WHERE id = 500; INSERT INTO a VALUES (3, 'a3');");
    pgcdc_ok(&env, &["run"]);
    assert_replay_equals_source(&env, "a", &["id"], &["id", "v"]);
    assert_replay_equals_source(&env, "b", &["id"], &["id", "v"]);
}

#[test]
fn the_snapshot_command_copies_a_table_again_consistently() {
    let env = TestEnv::new("snapshot_command");
    env.sql("CREATE TABLE a (id int PRIMARY KEY, v text); INSERT INTO a SELECT g, 'before' FROM generate_series(1, 300) g;");
    configure(&env, Some(&["a"]), "", "");
    pgcdc_ok(&env, &["init", "--no-snapshot"]);
    env.sql("UPDATE a SET v = 'changed' WHERE id <= 5; INSERT INTO a VALUES (1000, 'new');");
    let out = pgcdc_ok(&env, &["snapshot", "--table", "a"]);
    assert!(out.contains("301 rows"), "{out}");
    env.sql("DELETE FROM a WHERE id = 1;");
    pgcdc_ok(&env, &["run"]);
    assert_replay_equals_source(&env, "a", &["id"], &["id", "v"]);
    let e = pgcdc_err(&env, &["snapshot", "--table", "nope"]);
    assert!(e.contains("\"nope\" is not in publication"), "{e}");
}

#[test]
fn persisted_snapshot_tables_reproduce_dlt_and_are_dropped_afterwards() {
    for unlogged in [false, true] {
        let env = TestEnv::new(&format!("snapshot_persist_{unlogged}"));
        env.sql("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 2000) g;");
        // Whole-schema publication: the `_dlt_` copy is in the published schema.
        configure(&env, None, "", "");
        let mut args = vec!["init", "--persist-snapshot-tables"];
        if unlogged {
            args.push("--unlogged");
        }
        // Dies after the first chunk: the persisted copy is what the resume reads.
        let cfg = std::fs::read_to_string(env.dir().join("pgcdc.toml")).unwrap()
            + "[snapshot]\nchunk_mb = 1\nworkers = 1\n";
        env.write_file("pgcdc.toml", &cfg);
        env.sql("INSERT INTO t SELECT g, 'v' || g FROM generate_series(2001, 40000) g; ANALYZE t;");
        let out = env.pgcdc_with_env(&args, &[("PGCDC_FAILPOINT", "snapshot.after_chunk")]);
        assert!(
            !out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let copies = env.sql("SELECT relname || ':' || relpersistence::text FROM pg_class WHERE relname LIKE '\\_dlt\\_t\\_s\\_%'");
        assert!(
            copies.trim().ends_with(if unlogged { ":u" } else { ":p" }),
            "persisted copy: {copies:?}"
        );
        env.sql("UPDATE t SET v = 'changed' WHERE id % 1000 = 0;");
        pgcdc_ok(&env, &args);
        assert_eq!(
            env.sql("SELECT count(*) FROM pg_class WHERE relname LIKE '\\_dlt\\_%'")
                .trim(),
            "0",
            "copies are dropped"
        );
        pgcdc_ok(&env, &["run"]);
        assert_replay_equals_source(&env, "t", &["id"], &["id", "v"]);
        let dirs: Vec<String> = std::fs::read_dir(env.lake_dir().join("ds"))
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        assert!(dirs.iter().all(|d| !d.starts_with("_dlt_")), "{dirs:?}");
    }
}

#[test]
fn a_new_destination_for_an_existing_slot_gets_every_row() {
    let env = TestEnv::new("snapshot_new_dest");
    env.sql("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' FROM generate_series(1, 100) g;");
    configure(&env, Some(&["t"]), "", "");
    pgcdc_ok(&env, &["init"]);
    env.sql("UPDATE t SET v = 'w' WHERE id <= 10;");
    // The lake is lost; the slot is still there.
    std::fs::remove_dir_all(env.lake_dir()).unwrap();
    let out = pgcdc_ok(&env, &["init"]);
    assert!(
        out.contains("slot") && out.contains("exists") && out.contains("100 rows"),
        "{out}"
    );
    env.sql("DELETE FROM t WHERE id = 1;");
    pgcdc_ok(&env, &["run"]);
    for r in changelog(&env, "t")
        .iter()
        .filter(|r| r["id"] == "1" || r["_pgcdc_op"] != "snapshot")
    {
        eprintln!("{r:?}");
    }
    assert_replay_equals_source(&env, "t", &["id"], &["id", "v"]);
}
