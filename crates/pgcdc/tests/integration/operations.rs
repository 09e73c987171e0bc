//! Operating pgcdc: large streamed transactions, follow mode and signals, dlt's own
//! configuration files, JSONL output, status.

use std::time::{Duration, Instant};

use crate::replication::{
    assert_each_change_once, assert_replay_equals_source, changelog, configure, pgcdc_ok,
};
use crate::support::{start_cluster, TestEnv};

#[test]
fn large_transactions_stream_in_pieces_and_aborted_parts_never_land() {
    let env = TestEnv::new("streamed_tx");
    env.sql("CREATE TABLE t (id int PRIMARY KEY, pad text);");
    // A 1 MiB memory budget: streamed pieces spill to disk.
    configure(
        &env,
        Some(&["t"]),
        "",
        "[batch]\nmax_mb = 1\nmax_rows = 1000\n",
    );
    pgcdc_ok(&env, &["init", "--no-snapshot"]);
    // A large transaction (far over logical_decoding_work_mem = 64kB) with a rolled-back
    // savepoint, interleaved with small committed transactions from another session.
    let session = env.session();
    let big = std::thread::spawn(move || {
        session.sql(
            "BEGIN;
            INSERT INTO t SELECT g, repeat('a', 200) FROM generate_series(1, 6000) g;
            SELECT pg_sleep(0.5);
            SAVEPOINT s;
            INSERT INTO t SELECT g, repeat('r', 200) FROM generate_series(6001, 9000) g;
            ROLLBACK TO SAVEPOINT s;
            UPDATE t SET pad = 'updated' WHERE id % 100 = 0;
            SELECT pg_sleep(0.5);
            INSERT INTO t SELECT g, 'late' FROM generate_series(9001, 9500) g;
            COMMIT;",
        )
    });
    for i in 0..5 {
        env.sql(&format!("INSERT INTO t VALUES ({}, 'small')", 100_000 + i));
        std::thread::sleep(Duration::from_millis(150));
    }
    big.join().unwrap();
    // And a large transaction that aborts as a whole.
    let _ = env.try_sql("BEGIN; INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(200000, 206000) g; SELECT 1/0; COMMIT;");
    env.sql("INSERT INTO t VALUES (300000, 'after the abort');");
    // The stream (mini-batch runs read whole transactions through the SQL interface).
    pgcdc_ok(&env, &["--set=source.reader=stream", "run"]);
    let streamed: i64 = env
        .sql(&format!(
            "SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = '{}'",
            env.slot
        ))
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(
        streamed >= 1,
        "the server did not stream the large transaction (stream_txns = {streamed})"
    );
    assert_replay_equals_source(&env, "t", &["id"], &["id", "pad"]);
    let rows = changelog(&env, "t");
    assert_each_change_once(&rows);
    assert_eq!(
        rows.iter().filter(|r| r["_pgcdc_op"] == "insert").count(),
        6000 + 500 + 5 + 1
    );
    assert!(
        rows.iter().all(|r| !r["_pgcdc_commit_ts"].is_null()),
        "streamed rows get their commit time"
    );
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn follow_mode_streams_continuously_and_sigterm_ends_cleanly() {
    let env = TestEnv::new("follow");
    env.sql("CREATE TABLE t (id int PRIMARY KEY, v int);");
    configure(&env, Some(&["t"]), "", "[batch]\nflush_interval_ms = 200\n");
    pgcdc_ok(&env, &["init", "--no-snapshot"]);
    let mut child = env.spawn_pgcdc(&["run", "--follow"]);
    env.sql("INSERT INTO t SELECT g, g FROM generate_series(1, 100) g;");
    wait_for("the first rows", Duration::from_secs(30), || {
        changelog(&env, "t").len() == 100
    });
    env.sql("UPDATE t SET v = v + 1 WHERE id <= 10; DELETE FROM t WHERE id > 90;");
    wait_for("the next changes", Duration::from_secs(30), || {
        changelog(&env, "t").len() == 120
    });
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(
        exit.success(),
        "SIGTERM should end follow mode cleanly: {exit:?}"
    );
    assert_replay_equals_source(&env, "t", &["id"], &["id", "v"]);
    // The slot is released and confirmed where the destination is.
    let active = env.sql(&format!(
        "SELECT active FROM pg_replication_slots WHERE slot_name = '{}'",
        env.slot
    ));
    assert_eq!(active.trim(), "f");
    env.sql("INSERT INTO t VALUES (1000, 1000);");
    pgcdc_ok(&env, &["run"]);
    assert_each_change_once(&changelog(&env, "t"));
    assert_replay_equals_source(&env, "t", &["id"], &["id", "v"]);
}

#[test]
fn dlt_configuration_files_work_unchanged() {
    let env = TestEnv::new("dlt_layout");
    env.sql("CREATE TABLE orders (id int PRIMARY KEY, amount numeric(12,2));");
    let url = url::Url::parse(&env.url()).unwrap();
    let bucket = env.dir().join("bucket");
    std::fs::create_dir_all(env.dir().join(".dlt")).unwrap();
    env.write_file(
        ".dlt/secrets.toml",
        &format!(
            "[sources.pg_replication.credentials]\ndrivername = \"postgresql\"\ndatabase = \"{db}\"\npassword = \"unused-pw\"\nusername = \"postgres\"\nhost = \"{host}\"\nport = {port}\n\n[sources.pg_replication]\nslot_name = \"{slot}\"\npub_name = \"{slot}\"\nschema_name = \"{schema}\"\ntable_names = [\"orders\"]\n\n[destination.filesystem]\nbucket_url = \"{bucket}\"\n",
            db = url.path().trim_start_matches('/'),
            host = url.host_str().unwrap(),
            port = url.port().unwrap(),
            slot = env.slot,
            schema = env.schema,
            bucket = bucket.display(),
        ),
    );
    env.write_file(
        ".dlt/config.toml",
        "[runtime]\nlog_level=\"WARNING\"\ndlthub_telemetry = true\n\n[normalize]\nloader_file_format=\"parquet\"\n\n[normalize.data_writer]\ndisable_compression=true\n",
    );
    pgcdc_ok(&env, &["init", "--no-snapshot"]);
    env.sql("INSERT INTO orders SELECT g, g * 0.5 FROM generate_series(1, 50) g; UPDATE orders SET amount = 0 WHERE id = 7;");
    let out = pgcdc_ok(&env, &["run"]);
    assert!(out.contains("orders"), "{out}");
    let table_dir = bucket.join("pgcdc").join("orders");
    let rows = crate::support::lake_rows(&table_dir, None);
    assert_eq!(rows.len(), 51);
    let check = std::process::Command::new(crate::support::python())
        .arg("-c")
        .arg(format!(
            "import glob, pyarrow.parquet as pq\nfor f in glob.glob('{}/*.parquet'):\n    m = pq.ParquetFile(f).metadata\n    assert m.row_group(0).column(0).compression == 'UNCOMPRESSED', m.row_group(0).column(0).compression\n",
            table_dir.display()
        ))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "disable_compression not honoured: {}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn jsonl_output_and_status_report_the_pipeline() {
    let env = TestEnv::new("jsonl_status");
    env.sql("CREATE TABLE t (id int PRIMARY KEY, note text, at timestamptz);");
    configure(&env, Some(&["t"]), "", "[destination]\n");
    // Replace the destination section with a JSONL one.
    let cfg = std::fs::read_to_string(env.dir().join("pgcdc.toml"))
        .unwrap()
        .replace("dataset = \"ds\"", "dataset = \"ds\"\nformat = \"jsonl\"")
        .replace("[destination]\n\n", "");
    env.write_file("pgcdc.toml", &cfg);
    pgcdc_ok(&env, &["init", "--no-snapshot"]);
    env.sql("INSERT INTO t VALUES (1, 'line\nbreak \"q\"', '2024-01-01 10:00:00+00'), (2, NULL, NULL); DELETE FROM t WHERE id = 2;");
    pgcdc_ok(&env, &["run"]);
    let files: Vec<_> = std::fs::read_dir(env.lake_dir().join("ds").join("t"))
        .unwrap()
        .filter_map(|e| e.ok())
        .collect();
    assert!(files
        .iter()
        .all(|f| f.file_name().to_string_lossy().ends_with(".jsonl")));
    let text = std::fs::read_to_string(files[0].path()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["note"], "line\nbreak \"q\"");
    assert_eq!(lines[2]["_pgcdc_op"], "delete");

    let out = pgcdc_ok(&env, &["status", "--json"]);
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["slot"]["name"], env.slot.as_str());
    assert_eq!(s["slot"]["active"], false);
    assert_eq!(s["slot"]["wal_status"], "reserved");
    assert_eq!(s["checkpoint"]["lsn"], s["slot"]["confirmed_flush_lsn"]);
    assert_eq!(s["publication"]["tables"][0], format!("{}.t", env.schema));
    let human = pgcdc_ok(&env, &["status"]);
    assert!(
        human.contains("lag") && human.contains("retained WAL"),
        "{human}"
    );
    // drop removes slot and publication, keeps the data.
    pgcdc_ok(&env, &["drop", "--yes"]);
    assert_eq!(
        env.sql(&format!(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{}'",
            env.slot
        ))
        .trim(),
        "0"
    );
    assert!(env.lake_dir().join("ds").join("t").exists());
}

#[test]
fn the_dlt_naming_preset_writes_lsn_and_deleted_ts() {
    let env = TestEnv::new("dlt_naming");
    env.sql("CREATE TABLE t (id int PRIMARY KEY, v text);");
    configure(&env, Some(&["t"]), "", "");
    let cfg = std::fs::read_to_string(env.dir().join("pgcdc.toml"))
        .unwrap()
        .replace("dataset = \"ds\"", "dataset = \"ds\"\nnaming = \"dlt\"");
    env.write_file("pgcdc.toml", &cfg);
    pgcdc_ok(&env, &["init", "--no-snapshot"]);
    env.sql("INSERT INTO t VALUES (1, 'a'), (2, 'b'); DELETE FROM t WHERE id = 1;");
    pgcdc_ok(&env, &["run"]);
    let rows = crate::support::lake_rows(&env.lake_dir().join("ds").join("t"), None);
    assert_eq!(rows.len(), 3);
    for r in &rows {
        assert!(r["lsn"].as_i64().unwrap_or(0) > 0, "{r:?}");
        assert!(
            !r.contains_key("_pgcdc_lsn") && !r.contains_key("_pgcdc_commit_ts"),
            "{r:?}"
        );
        let deleted = r["_pgcdc_op"] == "delete";
        assert_eq!(r["deleted_ts"].is_null(), !deleted, "{r:?}");
    }
    assert_replay_equals_source(&env, "t", &["id"], &["id", "v"]);
}

#[test]
fn follow_mode_reconnects_after_the_walsender_is_terminated() {
    let env = TestEnv::new("follow_reconnect");
    env.sql("CREATE TABLE t (id int PRIMARY KEY);");
    configure(&env, Some(&["t"]), "", "[batch]\nflush_interval_ms = 200\n");
    pgcdc_ok(&env, &["init", "--no-snapshot"]);
    let mut child = env.spawn_pgcdc(&["run", "--follow"]);
    env.sql("INSERT INTO t SELECT generate_series(1, 50);");
    wait_for("the first rows", Duration::from_secs(30), || {
        changelog(&env, "t").len() == 50
    });
    for round in 0..2 {
        let killed = env.sql(&format!(
            "SELECT count(pg_terminate_backend(active_pid)) FROM pg_replication_slots WHERE slot_name = '{}' AND active_pid IS NOT NULL",
            env.slot
        ));
        assert_eq!(
            killed.trim(),
            "1",
            "round {round}: no active walsender to terminate"
        );
        let base = 100 * (round + 1);
        env.sql(&format!(
            "INSERT INTO t SELECT generate_series({base}, {});",
            base + 49
        ));
        wait_for("rows after a reconnect", Duration::from_secs(60), || {
            changelog(&env, "t").len() == 50 * (round + 2)
        });
    }
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_each_change_once(&changelog(&env, "t"));
    assert_replay_equals_source(&env, "t", &["id"], &["id"]);
}

/// One HTTP GET on 127.0.0.1:`port`, with std only; the whole response.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l[name.len()..].trim().parse().ok())
}

#[test]
fn follow_mode_serves_prometheus_metrics() {
    let env = TestEnv::new("metrics");
    env.sql("CREATE TABLE t (id int PRIMARY KEY, v int);");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    configure(
        &env,
        Some(&["t"]),
        "",
        &format!("[batch]\nflush_interval_ms = 200\n\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    pgcdc_ok(&env, &["init", "--no-snapshot"]);
    let mut child = env.spawn_pgcdc(&["run", "--follow"]);
    env.sql("INSERT INTO t SELECT g, g FROM generate_series(1, 50) g; UPDATE t SET v = 0 WHERE id <= 5; DELETE FROM t WHERE id = 50;");
    let mut last = String::new();
    wait_for("metrics with the changes", Duration::from_secs(30), || {
        last = http_get(port, "/metrics").unwrap_or_default();
        last.contains(r#"pgcdc_changes_total{table="t",op="insert"} 50"#)
    });
    assert!(last.starts_with("HTTP/1.1 200"), "{last}");
    assert!(
        last.contains(r#"pgcdc_changes_total{table="t",op="update"} 5"#),
        "{last}"
    );
    assert!(
        last.contains(r#"pgcdc_changes_total{table="t",op="delete"} 1"#),
        "{last}"
    );
    assert_eq!(metric(&last, "pgcdc_up"), Some(1.0), "{last}");
    assert!(
        metric(&last, "pgcdc_batches_total").unwrap_or(0.0) >= 1.0,
        "{last}"
    );
    // The checkpoint gauge is the slot's confirmed LSN, as PostgreSQL reports it.
    wait_for(
        "the checkpoint to reach the slot",
        Duration::from_secs(30),
        || {
            let text = http_get(port, "/metrics").unwrap_or_default();
            let confirmed = env.sql(&format!(
            "SELECT (confirmed_flush_lsn - '0/0')::text FROM pg_replication_slots WHERE slot_name = '{}'",
            env.slot
        ));
            metric(&text, "pgcdc_checkpoint_lsn") == confirmed.trim().parse().ok()
        },
    );
    let text = http_get(port, "/metrics").unwrap_or_default();
    assert_eq!(
        metric(&text, "pgcdc_lag_seconds"),
        Some(0.0),
        "caught up: {text}"
    );
    assert!(http_get(port, "/other")
        .unwrap_or_default()
        .starts_with("HTTP/1.1 404"));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
    assert_replay_equals_source(&env, "t", &["id"], &["id", "v"]);
}

#[test]
fn status_warns_about_retained_wal_and_heartbeats_move_an_idle_slot() {
    let env = TestEnv::new("slot_health");
    env.sql("CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE other (id int, pad text);");
    configure(
        &env,
        Some(&["t"]),
        "max_retained_wal_mb = 1\nheartbeat_interval_s = 1\n",
        "[batch]\nflush_interval_ms = 200\n",
    );
    pgcdc_ok(&env, &["init", "--no-snapshot"]);
    // 2+ MiB of WAL from a table outside the publication, with nobody consuming (the
    // shared test server's other tests add theirs: no "before" assertion is possible).
    env.sql("INSERT INTO other SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g;");
    let out = pgcdc_ok(&env, &["status", "--json"]);
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    let w = s["warnings"][0].as_str().unwrap_or_default().to_string();
    assert!(
        w.contains("retains") && w.contains("max_retained_wal_mb"),
        "{out}"
    );
    let text = pgcdc_ok(&env, &["status"]);
    assert!(text.contains("warning"), "{text}");
    // Follow mode on a quiet database: the heartbeats' WAL reaches pgcdc and is confirmed.
    let mut child = env.spawn_pgcdc(&["run", "--follow"]);
    let mark = env
        .sql("SELECT (pg_current_wal_lsn() - '0/0')::text")
        .trim()
        .parse::<u64>()
        .unwrap();
    wait_for(
        "the slot to move past the heartbeats",
        Duration::from_secs(60),
        || {
            let confirmed = env.sql(&format!(
            "SELECT (confirmed_flush_lsn - '0/0')::text FROM pg_replication_slots WHERE slot_name = '{}'",
            env.slot
        ));
            confirmed.trim().parse::<u64>().unwrap_or(0) > mark
        },
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
}

#[test]
fn follow_mode_rides_out_a_postgresql_restart() {
    // A server of its own: the restart cuts every connection, the SQL one included.
    let cluster = start_cluster(&[]);
    let env = TestEnv::on(cluster.url(), "follow_restart");
    env.sql("CREATE TABLE t (id int PRIMARY KEY, v int, note text);");
    configure(&env, Some(&["t"]), "", "[batch]\nflush_interval_ms = 200\n");
    pgcdc_ok(&env, &["init", "--no-snapshot"]);
    let mut child = env.spawn_pgcdc_logged(&["run", "--follow"], "follow");
    let mut expected = 0;
    for round in 0..4 {
        let base = 1000 * round;
        env.sql(&format!(
            "INSERT INTO t SELECT g, g, 'r{round}' FROM generate_series({base} + 1, {base} + 200) g;
             UPDATE t SET v = v + 1 WHERE id % 7 = 0;
             DELETE FROM t WHERE id % 50 = 0 AND id > {base};"
        ));
        expected = changelog_len_after(&env, round);
        if round == 0 {
            // Streaming first (a run that cannot connect at its start fails at once).
            wait_for("the first round", Duration::from_secs(60), || {
                changelog(&env, "t").len() >= expected
            });
        }
        if round == 1 {
            // Down for 3 s while pgcdc is streaming (and maybe mid-commit).
            cluster.restart(Duration::from_secs(3));
        }
    }
    let start = Instant::now();
    while changelog(&env, "t").len() < expected {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "timed out waiting for every change after the restart ({} of {expected} rows):\n{}",
            changelog(&env, "t").len(),
            env.log("follow")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let exit = child.wait().unwrap();
    assert!(
        exit.success(),
        "follow mode should end cleanly after the restart: {exit:?}"
    );
    let rows = changelog(&env, "t");
    assert_eq!(rows.len(), expected, "each change exactly once");
    assert_each_change_once(&rows);
    assert_replay_equals_source(&env, "t", &["id"], &["id", "v", "note"]);
}

/// How many changelog rows the workload of rounds 0..=round makes (inserts, updates of
/// every 7th row so far, deletes of every 50th new row).
fn changelog_len_after(env: &TestEnv, round: i64) -> usize {
    let _ = env;
    let mut rows = 0i64;
    let mut live: Vec<i64> = Vec::new();
    for r in 0..=round {
        let base = 1000 * r;
        live.extend(base + 1..=base + 200);
        rows += 200;
        rows += live.iter().filter(|id| *id % 7 == 0).count() as i64;
        let before = live.len();
        live.retain(|id| !(*id % 50 == 0 && *id > base));
        rows += (before - live.len()) as i64;
    }
    rows as usize
}

/// A slot the server invalidated (more WAL than `max_slot_wal_keep_size` behind it) is a
/// clear error naming the recovery, in `run` and in `status`; the recovery works.
#[test]
fn an_invalidated_slot_is_a_clear_error_with_its_recovery() {
    let cluster = start_cluster(&[("max_slot_wal_keep_size", "1MB")]);
    let env = TestEnv::on(cluster.url(), "lost_slot");
    env.sql("CREATE TABLE t (id int PRIMARY KEY, pad text); INSERT INTO t VALUES (1, 'a');");
    configure(&env, Some(&["t"]), "", "");
    pgcdc_ok(&env, &["init"]);
    let lost = format!(
        "SELECT wal_status FROM pg_replication_slots WHERE slot_name = '{}'",
        env.slot
    );
    let mut n = 0;
    wait_for(
        "the slot to be invalidated",
        Duration::from_secs(60),
        || {
            n += 1;
            // Far more WAL than the slot may keep, then a checkpoint removes it.
            env.sql(&format!(
            "INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series({a}, {b}) g; SELECT pg_switch_wal(); CHECKPOINT;",
            a = n * 100_000,
            b = n * 100_000 + 99_999
        ));
            env.sql(&lost).trim() == "lost"
        },
    );
    let err = crate::replication::pgcdc_err(&env, &["run"]);
    assert!(
        err.contains("invalidated") && err.contains("pgcdc init --reset"),
        "{err}"
    );
    let status: serde_json::Value =
        serde_json::from_str(&pgcdc_ok(&env, &["status", "--json"])).unwrap();
    assert!(
        status["warnings"].to_string().contains("invalidated"),
        "{status}"
    );
    // The documented recovery: a new slot and snapshot.
    pgcdc_ok(&env, &["init", "--reset"]);
    env.sql("UPDATE t SET pad = 'after the reset' WHERE id = 1;");
    pgcdc_ok(&env, &["run"]);
    let rows = changelog(&env, "t");
    assert!(
        rows.iter()
            .any(|r| r["pad"] == "after the reset" && r["_pgcdc_op"] == "update"),
        "the change after the reset did not land"
    );
}
