//! The harness itself: the server is set up for logical replication, environments are
//! isolated, and the independent reader renders values as PostgreSQL does.

use crate::support::{cluster, TestEnv};

#[test]
fn the_test_server_runs_with_logical_wal() {
    let env = TestEnv::new("harness_wal");
    assert_eq!(env.sql("SHOW wal_level").trim(), "logical");
    assert!(cluster().port > 0);
}

#[test]
fn environments_are_isolated_and_rows_keep_nulls_and_unicode() {
    let a = TestEnv::new("harness_a");
    let b = TestEnv::new("harness_a");
    assert_ne!(a.schema, b.schema);
    a.sql("CREATE TABLE t (x text)");
    b.sql("CREATE TABLE t (x text)");
    a.sql("INSERT INTO t VALUES (NULL), ('snow ☃ \"q\" \\ tab\tend')");
    let rows = a.rows("SELECT json_build_array(x) FROM t ORDER BY x NULLS FIRST");
    assert_eq!(
        rows,
        vec![
            vec![None],
            vec![Some("snow ☃ \"q\" \\ tab\tend".to_string())]
        ]
    );
    assert!(b.rows("SELECT json_build_array(x) FROM t").is_empty());
}

/// lake.py renders what pyarrow reads exactly as PostgreSQL prints it: checked by writing
/// values from PostgreSQL's own output through pyarrow and reading them back.
#[test]
fn the_lake_reader_renders_values_like_postgres() {
    let env = TestEnv::new("harness_lake");
    let dir = env.dir().join("t");
    std::fs::create_dir_all(&dir).unwrap();
    let script = format!(
        r#"
import pyarrow as pa, pyarrow.parquet as pq, decimal
t = pa.table({{
  "i": pa.array([1, None], pa.int32()),
  "f": pa.array([1.5, -0.0], pa.float64()),
  "d": pa.array([decimal.Decimal("1.50"), None], pa.decimal128(12, 2)),
  "dt": pa.array([-719162 - 366, 2**31 - 1], pa.int32()).cast(pa.date32()),
  "ts": pa.array([0, 2**63 - 1], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
  "tm": pa.array([86400000000, 500000], pa.int64()).cast(pa.time64("us")),
  "b": pa.array([b"\xde\xad", None]),
  "_pgcdc_lsn": pa.array([1, 2], pa.int64()),
  "_pgcdc_op": pa.array(["insert", "insert"]),
}})
pq.write_table(t, "{dir}/1.0.parquet")
pq.write_table(pa.table({{"i": pa.array([3], pa.int32()), "_pgcdc_lsn": pa.array([3], pa.int64()), "_pgcdc_op": pa.array(["insert"])}}), "{dir}/2.0.parquet")
"#,
        dir = dir.display()
    );
    let out = std::process::Command::new(crate::support::python())
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = crate::support::lake_rows(&dir, None);
    assert_eq!(rows.len(), 3);
    let r = &rows[0];
    assert_eq!(r["i"], "1");
    assert_eq!(r["f"], "1.5");
    assert_eq!(r["d"], "1.50");
    assert_eq!(r["dt"], "0001-01-01 BC");
    assert_eq!(r["ts"], "1970-01-01 00:00:00+00");
    assert_eq!(r["tm"], "24:00:00");
    assert_eq!(r["b"], "\\xdead");
    let r = &rows[1];
    assert_eq!(
        (
            r["f"].as_str(),
            r["dt"].as_str(),
            r["ts"].as_str(),
            r["tm"].as_str()
        ),
        (
            Some("-0"),
            Some("infinity"),
            Some("infinity"),
            Some("00:00:00.5")
        )
    );
    assert!(
        rows[2]["f"].is_null(),
        "columns missing in older files read as null"
    );
    // The same text PostgreSQL prints for these values.
    assert_eq!(
        env.sql("SELECT '0001-01-01 BC'::date, '24:00:00'::time, 1.5::float8, '-0'::float8")
            .trim(),
        "0001-01-01 BC|24:00:00|1.5|-0"
    );
}

#[test]
fn names_are_valid_identifiers_and_never_prefixes_of_each_other() {
    let long = "Harness::A very long test name, with UPPER case, punctuation and ☃ too";
    let a = TestEnv::new(long);
    let b = TestEnv::new(long);
    for env in [&a, &b] {
        assert!(
            env.slot.len() <= 47,
            "{} leaves room for suffixes",
            env.slot
        );
        assert!(
            env.slot
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{}",
            env.slot
        );
        assert_eq!((&env.schema, &env.publication), (&env.slot, &env.slot));
    }
    assert!(!a.slot.starts_with(&b.slot) && !b.slot.starts_with(&a.slot));
}

/// Dropping an env drops its slots (its name and its name + suffix), active ones too, and
/// nobody else's.
#[test]
fn dropping_an_env_drops_its_slots_even_active_ones() {
    let other = TestEnv::new("harness_slots_other");
    other.sql(&format!(
        "SELECT pg_create_logical_replication_slot('{}', 'pgoutput')",
        other.slot
    ));
    let env = TestEnv::new("harness_slots");
    let (slot, extra) = (env.slot.clone(), format!("{}_x", env.slot));
    for s in [&slot, &extra] {
        env.sql(&format!(
            "SELECT pg_create_logical_replication_slot('{s}', 'test_decoding')"
        ));
    }
    // Keep one slot busy with a streaming client.
    let mut client = std::process::Command::new(crate::support::pg_bin().join("pg_recvlogical"))
        .args([
            "-d",
            &env.url(),
            "--slot",
            &extra,
            "--start",
            "-f",
            "/dev/null",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("pg_recvlogical");
    let active =
        format!("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{extra}' AND active");
    let mut waited = 0;
    while env.sql(&active).trim() != "1" && waited < 100 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        waited += 1;
    }
    assert_eq!(
        env.sql(&active).trim(),
        "1",
        "pg_recvlogical did not attach"
    );
    let count = format!(
        "SELECT count(*) FROM pg_replication_slots WHERE slot_name IN ('{slot}', '{extra}')"
    );
    let schema = env.schema.clone();
    drop(env);
    let _ = client.kill();
    let _ = client.wait();
    assert_eq!(other.sql(&count).trim(), "0");
    assert_eq!(
        other
            .sql(&format!(
                "SELECT count(*) FROM pg_namespace WHERE nspname = '{schema}'"
            ))
            .trim(),
        "0"
    );
    let mine = format!(
        "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{}'",
        other.slot
    );
    assert_eq!(other.sql(&mine).trim(), "1", "another env's slot survives");
}
