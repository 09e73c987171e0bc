//! Bad input gets a clear error that names what to fix — never a panic, never a secret.

use std::process::{Command, Stdio};

use crate::replication::{configure, pgcdc_err, pgcdc_ok};
use crate::support::{start_cluster, TestEnv};

#[test]
fn preflight_errors_name_the_fix() {
    // A server with one slot and one WAL sender, to run out of both.
    let small = start_cluster(&[("max_replication_slots", "1"), ("max_wal_senders", "1")]);
    let env = TestEnv::on(small.url(), "preflight");
    env.sql("CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE keyless (v int);");

    configure(&env, Some(&["t", "missing_table"]), "", "");
    let e = pgcdc_err(&env, &["init", "--no-snapshot"]);
    assert!(
        e.contains("\"missing_table\"") && e.contains("not found"),
        "{e}"
    );

    configure(&env, Some(&["t", "keyless"]), "", "");
    let e = pgcdc_err(&env, &["init", "--no-snapshot"]);
    assert!(
        e.contains("\"keyless\"") && e.contains("replica identity"),
        "{e}"
    );

    env.sql("CREATE ROLE pgcdc_norepl LOGIN; GRANT USAGE ON SCHEMA public TO pgcdc_norepl;");
    let norepl = small
        .url()
        .replace("postgresql://postgres@", "postgresql://pgcdc_norepl@");
    configure(&env, Some(&["t"]), "", "");
    let e = String::from_utf8_lossy(
        &env.pgcdc(&[
            "--set",
            &format!("source.url={norepl}"),
            "init",
            "--no-snapshot",
        ])
        .stderr,
    )
    .into_owned();
    assert!(
        e.contains("REPLICATION") && e.contains("ALTER ROLE \"pgcdc_norepl\" REPLICATION"),
        "{e}"
    );

    env.sql("SELECT pg_create_logical_replication_slot('filler', 'pgoutput')");
    let e = pgcdc_err(&env, &["init", "--no-snapshot"]);
    assert!(e.contains("max_replication_slots"), "{e}");
    env.sql("SELECT pg_drop_replication_slot('filler')");

    // A physical WAL receiver takes the only WAL sender.
    let wal_dir = env.dir().join("wal");
    std::fs::create_dir_all(&wal_dir).unwrap();
    let mut receiver = Command::new(crate::support::pg_bin().join("pg_receivewal"))
        .args([
            "-d",
            &small.url(),
            "-D",
            wal_dir.to_str().unwrap(),
            "--no-loop",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut waited = 0;
    while env.sql("SELECT count(*) FROM pg_stat_replication").trim() == "0" && waited < 100 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        waited += 1;
    }
    let e = pgcdc_err(&env, &["init", "--no-snapshot"]);
    let _ = receiver.kill();
    let _ = receiver.wait();
    assert!(e.contains("max_wal_senders"), "{e}");

    // Once the sender is free, the same configuration works.
    let mut waited = 0;
    while env.sql("SELECT count(*) FROM pg_stat_replication").trim() != "0" && waited < 100 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        waited += 1;
    }
    pgcdc_ok(&env, &["init", "--no-snapshot"]);
}

#[test]
fn wal_level_replica_is_refused_with_the_setting_to_change() {
    let replica = start_cluster(&[("wal_level", "replica")]);
    let env = TestEnv::on(replica.url(), "wal_level");
    env.sql("CREATE TABLE t (id int PRIMARY KEY);");
    configure(&env, Some(&["t"]), "", "");
    let e = pgcdc_err(&env, &["init", "--no-snapshot"]);
    assert!(
        e.contains("wal_level is 'replica'") && e.contains("wal_level = logical"),
        "{e}"
    );
}

#[test]
fn unreachable_servers_and_bad_configs_are_explained_without_secrets() {
    let env = TestEnv::new("bad_input");
    env.write_file(
        "pgcdc.toml",
        "[source]\nurl = \"postgresql://someone:sekrit-pw@127.0.0.1:1/db\"\n",
    );
    let out = env.pgcdc(&["status"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot connect to PostgreSQL at someone@127.0.0.1:1/db"),
        "{err}"
    );
    assert!(!err.contains("sekrit-pw"), "password leaked: {err}");

    env.write_file("pgcdc.toml", "[source]\nslott = \"x\"\n");
    let out = env.pgcdc(&["run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("slott"));

    // run before init: says to run init.
    env.sql("CREATE TABLE t (id int PRIMARY KEY);");
    configure(&env, Some(&["t"]), "", "");
    let e = pgcdc_err(&env, &["run"]);
    assert!(e.contains("pgcdc init"), "{e}");
    // drop without --yes refuses.
    let e = pgcdc_err(&env, &["drop"]);
    assert!(e.contains("--yes"), "{e}");
}

#[test]
fn a_slot_advanced_behind_pgcdcs_back_is_an_error_not_a_gap() {
    let env = TestEnv::new("slot_advanced");
    env.sql("CREATE TABLE t (id int PRIMARY KEY);");
    configure(&env, Some(&["t"]), "", "");
    pgcdc_ok(&env, &["init", "--no-snapshot"]);
    // Committed synchronously, so the advance below surely passes it.
    env.sql("SET synchronous_commit = on; INSERT INTO t VALUES (1);");
    env.sql(&format!(
        "SELECT pg_replication_slot_advance('{}', pg_current_wal_flush_lsn())",
        env.slot
    ));
    let e = pgcdc_err(&env, &["run"]);
    assert!(e.contains("advanced") && e.contains("init --reset"), "{e}");
    // The documented recovery works.
    pgcdc_ok(&env, &["init", "--no-snapshot", "--reset"]);
    env.sql("INSERT INTO t VALUES (2);");
    pgcdc_ok(&env, &["run"]);
}

#[test]
fn column_choices_that_break_replay_are_refused_at_init() {
    let env = TestEnv::new("column_rules");
    env.sql(
        "CREATE TABLE ic (id int PRIMARY KEY, v int, w int);
         CREATE TABLE meta (id int PRIMARY KEY, _pgcdc_op text); INSERT INTO meta VALUES (1, 'x');",
    );
    // Deletes carry only the key: leaving it out would make them unreplayable.
    configure(
        &env,
        Some(&["ic"]),
        "include_columns = { ic = [\"v\"] }\n",
        "",
    );
    let e = pgcdc_err(&env, &["init"]);
    assert!(
        e.contains("include_columns.ic") && e.contains("\"id\""),
        "{e}"
    );
    let slots = env.sql(&format!(
        "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{}'",
        env.slot
    ));
    assert_eq!(slots.trim(), "0", "init created a slot before refusing");
    // An insert-only publication needs no key.
    configure(
        &env,
        Some(&["ic"]),
        "publish = \"insert\"\ninclude_columns = { ic = [\"v\"] }\n",
        "",
    );
    pgcdc_ok(&env, &["init", "--no-snapshot"]);
    pgcdc_ok(&env, &["drop", "--yes"]);

    // A source column named like a metadata column: refused before a file is written.
    configure(&env, Some(&["meta"]), "", "");
    let e = pgcdc_err(&env, &["init"]);
    assert!(e.contains("_pgcdc_op") && e.contains("metadata"), "{e}");
    assert!(!env.lake_dir().join("ds").join("meta").exists());
    // The fix the message names works.
    configure(
        &env,
        Some(&["meta"]),
        "include_columns = { meta = [\"id\"] }\n",
        "",
    );
    pgcdc_ok(&env, &["init"]);
}
