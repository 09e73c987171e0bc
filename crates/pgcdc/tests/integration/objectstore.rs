//! The files destination on S3-compatible object storage, over HTTP against a real
//! server (s3s-fs), read back by pyarrow's own S3 client: the seed's dlt configuration
//! unchanged, an outage of the store mid-run, crashes, and credential errors.

use std::time::{Duration, Instant};

use crate::replication::{assert_each_change_once, pgcdc_err, pgcdc_ok, source_rows};
use crate::support::s3::{self, S3Server};
use crate::support::{lake_replay_at, lake_rows_at, TestEnv};

/// pgcdc.toml for `env` writing to `url` on `server` with the seed's credentials.
fn configure_s3(env: &TestEnv, server: &S3Server, url: &str, secret: &str, extra: &str) {
    env.write_file(
        "pgcdc.toml",
        &format!(
            "[source]\nurl = \"{url_pg}\"\nslot = \"{slot}\"\npublication = \"{slot}\"\nschema = \"{schema}\"\n\n\
             [destination]\nurl = \"{url}\"\ndataset = \"ds\"\n\n\
             [destination.credentials]\naws_access_key_id = \"{key}\"\naws_secret_access_key = \"{secret}\"\nendpoint_url = \"{endpoint}\"\n\n{extra}\n",
            url_pg = env.url(),
            slot = env.slot,
            schema = env.schema,
            key = s3::ACCESS_KEY,
            endpoint = server.endpoint(),
        ),
    );
}

fn assert_s3_replay_equals_source(
    env: &TestEnv,
    server: &S3Server,
    dir: &str,
    table: &str,
    key: &[&str],
    columns: &[&str],
) {
    let src = source_rows(env, table, columns);
    let mut dst = lake_replay_at(dir, key, columns, &server.reader_env());
    dst.sort();
    assert_eq!(
        dst.len(),
        src.len(),
        "{dir}: destination has {} rows, source {}",
        dst.len(),
        src.len()
    );
    assert!(
        dst == src,
        "{dir}: the replayed changelog differs from the source"
    );
}

#[test]
fn the_seeds_dlt_files_land_parquet_in_s3_unchanged() {
    let server = s3::shared();
    let env = TestEnv::new("seed_s3");
    env.sql(
        "CREATE TABLE orders (id int PRIMARY KEY, amount numeric(12,2), note text);
         INSERT INTO orders SELECT g, g * 1.25, 'before init ' || g FROM generate_series(1, 300) g;",
    );
    let pg = url::Url::parse(&env.url()).expect("test URL");
    std::fs::create_dir_all(env.dir().join(".dlt")).expect("mkdir .dlt");
    // A dlt user's secrets.toml as dlt documents it, verbatim but for the test server's ports, plus the names this
    // test needs to stay apart from the others (slot, publication, schema, table).
    env.write_file(
        ".dlt/secrets.toml",
        &format!(
            "[sources.pg_replication.credentials]\ndrivername = \"postgresql\"\ndatabase = \"{db}\" \npassword = \"postgres\" \nusername = \"postgres\" \nhost = \"{host}\" \nport = {port}\n\n\
             [sources.pg_replication]\nslot_name = \"{slot}\"\npub_name = \"{slot}\"\nschema_name = \"{schema}\"\ntable_names = [\"orders\"]\n\n\
             [destination.filesystem]\nbucket_url = \"s3://demo/\"\n\n\
             [destination.filesystem.credentials]\naws_access_key_id = \"minio\" \naws_secret_access_key = \"minio123\"\nendpoint_url=\"{endpoint}\"\n",
            db = pg.path().trim_start_matches('/'),
            host = pg.host_str().unwrap_or("127.0.0.1"),
            port = pg.port().unwrap_or(5432),
            slot = env.slot,
            schema = env.schema,
            endpoint = server.endpoint(),
        ),
    );
    env.write_file(
        ".dlt/config.toml",
        "# put your configuration values here\n\n[runtime]\nlog_level=\"WARNING\"  # the system log level of dlt\ndlthub_telemetry = true\n\n[normalize]\nloader_file_format=\"parquet\"\n\n[normalize.data_writer]\ndisable_compression=true\n",
    );
    pgcdc_ok(&env, &["init"]);
    env.sql(
        "INSERT INTO orders SELECT g, g, 'after ' || g FROM generate_series(301, 400) g;
         UPDATE orders SET amount = amount + 1 WHERE id % 7 = 0;
         DELETE FROM orders WHERE id % 10 = 3;
         UPDATE orders SET id = 10000 WHERE id = 2;",
    );
    let out = pgcdc_ok(&env, &["run"]);
    assert!(out.contains("orders"), "{out}");
    let dir = "s3://demo/pgcdc/orders";
    assert_s3_replay_equals_source(
        &env,
        server,
        dir,
        "orders",
        &["id"],
        &["id", "amount", "note"],
    );
    let rows = lake_rows_at(dir, &server.reader_env());
    assert_eq!(
        rows.iter().filter(|r| r["_pgcdc_op"] == "snapshot").count(),
        300
    );
    assert_each_change_once(&changes(rows));
    assert!(
        s3::exists(
            server,
            "demo",
            std::path::Path::new("pgcdc/_pgcdc_state/checkpoint.json")
        ),
        "the checkpoint manifest is not in the bucket"
    );
    // status reads the checkpoint back from the bucket.
    let status = pgcdc_ok(&env, &["status", "--json"]);
    assert!(status.contains("s3://demo/"), "{status}");
    assert!(
        !status.contains("minio123"),
        "status shows the secret: {status}"
    );
}

#[test]
fn an_outage_of_the_store_pauses_the_run_and_crashes_lose_nothing() {
    let server = S3Server::start();
    let env = TestEnv::new("s3_outage");
    env.sql(
        "CREATE TABLE t (id int PRIMARY KEY, v int, note text);
         INSERT INTO t SELECT g, g, repeat('x', g % 50) FROM generate_series(1, 2000) g;",
    );
    configure_s3(
        &env,
        &server,
        "s3://demo/nested/prefix",
        s3::SECRET_KEY,
        "[batch]\nmax_rows = 300\n",
    );
    pgcdc_ok(&env, &["init"]);
    for i in 0..20 {
        env.sql(&format!(
            "BEGIN; INSERT INTO t SELECT g, g, 'n' || g FROM generate_series({a}, {b}) g; UPDATE t SET v = v + 1 WHERE id % 5 = {m}; DELETE FROM t WHERE id = {d}; COMMIT;",
            a = 10_000 + i * 100,
            b = 10_000 + i * 100 + 99,
            m = i % 5,
            d = 10_000 + i * 100 + 42,
        ));
    }
    // The store goes away before the run reaches it and comes back 4 s later: the run
    // waits (object_store retries with backoff) instead of failing, then completes.
    server.stop();
    let mut child = env.spawn_pgcdc(&["run"]);
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "pgcdc run gave up while the store was down"
    );
    server.resume();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "pgcdc run did not finish after the store came back"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "pgcdc run failed after the outage: {status}"
    );
    let dir = "s3://demo/nested/prefix/ds/t";
    assert_s3_replay_equals_source(&env, &server, dir, "t", &["id"], &["id", "v", "note"]);

    // Crashes between the data files and the manifest, and after it: the rerun removes
    // the orphaned objects and streams their changes again, once.
    for point in ["files.after_data_files", "files.after_manifest"] {
        env.sql("UPDATE t SET v = v * 3 WHERE id % 4 = 0; DELETE FROM t WHERE id % 97 = 1;");
        let out = env.pgcdc_with_env(&["run"], &[("PGCDC_FAILPOINT", point)]);
        assert!(!out.status.success(), "failpoint {point} did not fire");
    }
    pgcdc_ok(&env, &["run"]);
    let rows = lake_rows_at(dir, &server.reader_env());
    assert_eq!(
        rows.iter().filter(|r| r["_pgcdc_op"] == "snapshot").count(),
        2000
    );
    assert_each_change_once(&changes(rows));
    assert_s3_replay_equals_source(&env, &server, dir, "t", &["id"], &["id", "v", "note"]);
}

#[test]
fn bad_s3_credentials_are_explained_without_the_secret() {
    let server = s3::shared();
    let env = TestEnv::new("s3_bad_creds");
    env.sql("CREATE TABLE t (id int PRIMARY KEY);");
    let wrong = "wrong-secret-4711";
    configure_s3(&env, server, "s3://demo/badcreds", wrong, "");
    let err = pgcdc_err(&env, &["init"]);
    assert!(!err.contains(wrong), "the secret leaked: {err}");
    assert!(
        err.contains("403")
            || err.to_lowercase().contains("signature")
            || err.contains("Forbidden"),
        "no hint at the rejected credentials: {err}"
    );
    // A misspelt key is named (not its value), before anything is contacted.
    env.write_file(
        "pgcdc.toml",
        &format!(
            "[source]\nurl = \"{}\"\nslot = \"{}\"\n\n[destination]\nurl = \"s3://demo/x\"\n\n[destination.credentials]\naws_secret_acess_key = \"{wrong}\"\n",
            env.url(),
            env.slot
        ),
    );
    let err = pgcdc_err(&env, &["status"]);
    assert!(err.contains("aws_secret_acess_key"), "{err}");
    assert!(!err.contains(wrong), "the secret leaked: {err}");
}

/// dlt's `profile_name` (and `AWS_PROFILE`) read the key, secret, region and endpoint
/// from the AWS files; an unknown profile is a clear error, and no secret shows.
#[test]
fn an_aws_profile_supplies_the_s3_credentials() {
    let server = s3::shared();
    let env = TestEnv::new("s3_profile");
    env.sql("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');");
    env.write_file(
        "aws_credentials",
        &format!(
            "[default]\naws_access_key_id = nobody\n\n[lake]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            s3::ACCESS_KEY,
            s3::SECRET_KEY
        ),
    );
    env.write_file(
        "aws_config",
        &format!(
            "[profile lake]\nregion = us-east-1\nendpoint_url = {}\ns3 =\n  addressing_style = path\n",
            server.endpoint()
        ),
    );
    let files = [
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            env.dir().join("aws_credentials"),
        ),
        ("AWS_CONFIG_FILE", env.dir().join("aws_config")),
    ];
    let vars: Vec<(&str, &str)> = files
        .iter()
        .map(|(k, v)| (*k, v.to_str().unwrap()))
        .collect();
    let write = |credentials: &str| {
        env.write_file(
            "pgcdc.toml",
            &format!(
                "[source]\nurl = \"{}\"\nslot = \"{}\"\npublication = \"{}\"\nschema = \"{}\"\n\n[destination]\nurl = \"s3://demo/profile\"\ndataset = \"ds\"\n\n[destination.credentials]\n{credentials}\n",
                env.url(),
                env.slot,
                env.slot,
                env.schema
            ),
        )
    };
    let ok = |args: &[&str], vars: &[(&str, &str)]| {
        let out = env.pgcdc_with_env(args, vars);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "pgcdc {args:?}: {text}");
        assert!(!text.contains(s3::SECRET_KEY), "the secret leaked: {text}");
    };
    write("profile_name = \"lake\"");
    ok(&["init"], &vars);
    env.sql("INSERT INTO t VALUES (2, 'b'); UPDATE t SET v = 'A' WHERE id = 1;");
    // AWS_PROFILE when nothing names a profile.
    write("");
    let mut with_env = vars.clone();
    with_env.push(("AWS_PROFILE", "lake"));
    ok(&["run"], &with_env);
    assert_s3_replay_equals_source(
        &env,
        server,
        "s3://demo/profile/ds/t",
        "t",
        &["id"],
        &["id", "v"],
    );
    write("profile_name = \"nope\"");
    let out = env.pgcdc_with_env(&["status"], &vars);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("AWS profile \"nope\""), "{err}");
}

/// Change rows only (snapshot rows share the snapshot's LSN by design).
fn changes(
    rows: Vec<serde_json::Map<String, serde_json::Value>>,
) -> Vec<serde_json::Map<String, serde_json::Value>> {
    rows.into_iter()
        .filter(|r| r["_pgcdc_op"] != "snapshot")
        .collect()
}
