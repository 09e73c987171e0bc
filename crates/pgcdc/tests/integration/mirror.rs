//! Mirror mode, one suite for every mirror destination (DuckDB, PostgreSQL, Delta) against a real
//! PostgreSQL source: after snapshots, mixed workloads, schema changes and crashes, every
//! mirrored table equals the source table row for row. The mirror is read back
//! independently of pgcdc: DuckDB files by DuckDB's own Python package (lake.py
//! `mirror`), Delta tables by the `deltalake` Python package (lake.py `delta`), PostgreSQL
//! tables by psql with each type's output function.

use std::time::Duration;

use crate::replication::{pgcdc_ok, source_rows, toml_str};
use crate::support::TestEnv;

/// Where a test's mirror lives.
enum Target {
    /// A DuckDB file in the test's directory.
    #[cfg_attr(not(feature = "duckdb"), allow(dead_code))]
    DuckDb,
    /// A schema of its own in a database of its own on the test cluster.
    Postgres(TestEnv),
    /// Delta tables in the test's directory.
    #[cfg_attr(not(feature = "delta"), allow(dead_code))]
    Delta,
    /// Delta tables on an S3 server, under this prefix of bucket `demo`, read back with
    /// the server's reader environment ([`crate::support::s3::S3Server::reader_env`]).
    #[cfg_attr(not(feature = "delta"), allow(dead_code))]
    DeltaS3(String, Vec<(String, String)>),
}

impl Target {
    #[cfg(feature = "duckdb")]
    fn duckdb() -> Target {
        Target::DuckDb
    }

    fn postgres(env: &TestEnv) -> Target {
        let db = format!("{}_m", env.schema);
        env.sql(&format!("CREATE DATABASE {}", crate::support::quote(&db)));
        let url = env.url();
        let (base, query) = url
            .split_once('?')
            .map_or((url.as_str(), None), |(b, q)| (b, Some(q)));
        let (server, _) = base.rsplit_once('/').expect("a URL with a database");
        let target = format!(
            "{server}/{db}{}",
            query.map(|q| format!("?{q}")).unwrap_or_default()
        );
        Target::Postgres(TestEnv::on(target, "mirror_target"))
    }

    fn url(&self, env: &TestEnv) -> String {
        match self {
            Target::DuckDb => env.dir().join("mirror.duckdb").display().to_string(),
            Target::Postgres(t) => t.url(),
            Target::Delta => format!("delta:{}", env.dir().join("lake").display()),
            Target::DeltaS3(prefix, _) => format!("delta:s3://demo/{prefix}"),
        }
    }

    fn dataset(&self) -> String {
        match self {
            Target::DuckDb | Target::Delta | Target::DeltaS3(..) => "ds".into(),
            Target::Postgres(t) => t.schema.clone(),
        }
    }

    /// What the error of an incompatible type change tells the user to do by hand.
    fn manual_step(&self) -> &'static str {
        match self {
            Target::Delta | Target::DeltaS3(..) => "delete the table's directory",
            _ => "ALTER TABLE",
        }
    }

    /// How many rows the mirrored table has (0 while it does not exist).
    fn count(&self, env: &TestEnv, table: &str) -> usize {
        match self {
            Target::DuckDb => self.rows(env, table, &["1"]).len(),
            Target::Delta | Target::DeltaS3(..) => self.rows(env, table, &[]).len(),
            Target::Postgres(t) => t
                .try_sql(&format!(
                    "SELECT count(*) FROM {}",
                    crate::support::quote(table)
                ))
                .unwrap_or_default()
                .trim()
                .parse()
                .unwrap_or(0),
        }
    }

    /// The mirrored table's rows as PostgreSQL text, sorted.
    fn rows(&self, env: &TestEnv, table: &str, columns: &[&str]) -> Vec<Vec<Option<String>>> {
        // DuckDB and Delta keep a multirange as a list of ranges, without the item name
        // that tells it from an array of ranges: the reader is told.
        let marked: Vec<String> = columns
            .iter()
            .map(|c| match (table, *c) {
                ("rng", "mr" | "dm") => format!("{c}@multirange"),
                _ => c.to_string(),
            })
            .collect();
        let marked: Vec<&str> = marked.iter().map(String::as_str).collect();
        let columns = match self {
            Target::Postgres(_) => columns,
            _ => &marked[..],
        };
        match self {
            Target::DuckDb => {
                crate::support::mirror_rows(&env.dir().join("mirror.duckdb"), table, columns)
            }
            Target::Postgres(t) => source_rows(t, table, columns),
            Target::Delta => crate::support::delta_rows(
                &env.dir().join("lake/ds").join(table).display().to_string(),
                columns,
                &[],
            ),
            Target::DeltaS3(prefix, reader) => crate::support::delta_rows(
                &format!("s3://demo/{prefix}/ds/{table}"),
                columns,
                reader,
            ),
        }
    }
}

/// pgcdc.toml for a mirror of `tables` into `target`, with extra TOML appended.
fn configure_mirror(env: &TestEnv, target: &Target, tables: &[&str], extra: &str) {
    let list: Vec<String> = tables.iter().map(|t| toml_str(t)).collect();
    let text = format!(
        "[source]\nurl = {url}\nslot = {slot}\npublication = {publication}\nschema = {schema}\ntables = [{list}]\n\n[destination]\nmode = \"mirror\"\nurl = {db}\ndataset = {ds}\n\n{extra}\n",
        url = toml_str(&env.url()),
        slot = toml_str(&env.slot),
        publication = toml_str(&env.publication),
        schema = toml_str(&env.schema),
        list = list.join(", "),
        db = toml_str(&target.url(env)),
        ds = toml_str(&target.dataset()),
    );
    env.write_file("pgcdc.toml", &text);
}

fn assert_mirrored(env: &TestEnv, target: &Target, table: &str, columns: &[&str]) {
    let source = source_rows(env, table, columns);
    let mirror = target.rows(env, table, columns);
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

/// Snapshot, a mixed workload, schema changes mid-transaction, another workload.
fn mixed_workload_and_schema_changes(env: &TestEnv, target: &Target) {
    create_tables(env);
    // Small batches: one transaction's changes span several writes and commits.
    configure_mirror(
        env,
        target,
        &["orders", "narrow", "dup"],
        "[batch]\nmax_rows = 97\n",
    );
    pgcdc_ok(env, &["init"]);
    assert_mirrored(env, target, "orders", ORDERS);
    assert_mirrored(env, target, "dup", &["a", "b"]);
    workload(env, 0);
    pgcdc_ok(env, &["run"]);
    assert_mirrored(env, target, "orders", ORDERS);
    assert_mirrored(env, target, "narrow", &["k", "v"]);
    assert_mirrored(env, target, "dup", &["a", "b"]);

    // Schema changes, with changes before and after them in the same transactions.
    env.sql(
        "BEGIN; UPDATE orders SET qty = 0 WHERE id = 3; ALTER TABLE orders ADD COLUMN extra text; UPDATE orders SET extra = 'e' || id WHERE id % 4 = 0; COMMIT;
         BEGIN; DELETE FROM orders WHERE id = 6; ALTER TABLE orders ALTER COLUMN qty TYPE bigint, ALTER COLUMN price TYPE numeric(16,3); UPDATE orders SET qty = 5000000000, price = 1.125 WHERE id = 8; COMMIT;
         ALTER TABLE orders DROP COLUMN customer;
         UPDATE orders SET note = 'after drop' WHERE id % 6 = 1;",
    );
    workload(env, 1);
    // This round through SQL pages (the reader does not change what a mirror gets).
    pgcdc_ok(env, &["--set=source.reader=sql", "run"]);
    let now: Vec<&str> = ORDERS
        .iter()
        .copied()
        .filter(|c| *c != "customer")
        .chain(["extra"])
        .collect();
    assert_mirrored(env, target, "orders", &now);
    assert_mirrored(env, target, "narrow", &["k", "v"]);
    assert_mirrored(env, target, "dup", &["a", "b"]);
    // The dropped column stays in the mirror, NULL for the rows written since.
    let kept = target.rows(env, "orders", &["id", "customer"]);
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
    let status = pgcdc_ok(env, &["status"]);
    assert!(status.contains("checkpoint"), "{status}");
}

/// Failpoints around the mirror's commit, and SIGKILLs mid-run; then a clean run.
fn crashes_and_sigkill(env: &TestEnv, target: &Target) {
    create_tables(env);
    configure_mirror(
        env,
        target,
        &["orders", "narrow", "dup"],
        "[batch]\nmax_rows = 150\n",
    );
    pgcdc_ok(env, &["init"]);
    workload(env, 0);
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
        workload(env, 1 + round as i64);
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
    pgcdc_ok(env, &["run"]);
    assert_mirrored(env, target, "orders", ORDERS);
    assert_mirrored(env, target, "narrow", &["k", "v"]);
    assert_mirrored(env, target, "dup", &["a", "b"]);
}

const SCALARS: &str = r#"
CREATE TABLE sc (id int PRIMARY KEY, i2 smallint, i8 bigint, f4 real, f8 double precision,
                 n numeric(38,10), nu numeric, b bool, by bytea, u uuid, d date, t time,
                 ts timestamp, tz timestamptz, iv interval, j json, jb jsonb, c char(3),
                 vc varchar(5), o oid, ip inet, m money, bits bit(4), r int4range, tv tsvector);
INSERT INTO sc VALUES
  (1, -32768, 9223372036854775807, 0.1, 1e-300, 1234567890123456789012345678.0123456789,
   '123456789012345678901234567890.123456789', true, '\x00ff10', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
   '0044-03-15 BC', '23:59:59.999999', '0001-01-01 00:00:00 BC', '100000-12-31 23:59:59.999999+00',
   '1 mon -2 days 3.000004 sec', '{"a":  1, "a": 2}', '{"b": [1, "x"]}', 'ab', 'abcde', 4294967295,
   '10.1.2.3/8', -12.34, B'1010', '[1,5)', 'a fat cat'),
  (2, 0, 0, 'NaN', '-0', 0, 'NaN', false, '', '00000000-0000-0000-0000-000000000000',
   'infinity', '00:00:00', '-infinity', 'infinity', '0', 'null', '[]', '', '', 0,
   '::1', 0, B'0000', 'empty', ''),
  (3, NULL, NULL, '-Infinity', 'Infinity', -0.0000000001, '-0.5', NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"#;

const SC: &[&str] = &[
    "id", "i2", "i8", "f4", "f8", "n", "nu", "b", "by", "u", "d", "t", "ts", "tz", "iv", "j", "jb",
    "c", "vc", "o", "ip", "m", "bits", "r", "tv",
];

/// Every type, in the snapshot and in the stream, lands with the source's value.
fn every_type(env: &TestEnv, target: &Target) {
    env.sql(SCALARS);
    env.sql(crate::types::ARRAYS);
    env.sql(crate::types::RANGES);
    env.sql(crate::types::NETWORK);
    configure_mirror(env, target, &["sc", "arr", "rng", "net"], "");
    pgcdc_ok(env, &["init"]);
    assert_mirrored(env, target, "sc", SC);
    assert_mirrored(env, target, "arr", &crate::types::COLS);
    assert_mirrored(env, target, "rng", &crate::types::RANGE_COLS);
    assert_mirrored(env, target, "net", &crate::types::NETWORK_COLS);
    // The same rows again through the stream, under new keys.
    env.sql(
        "INSERT INTO sc SELECT id + 10, i2, i8, f4, f8, n, nu, b, by, u, d, t, ts, tz, iv, j, jb, c, vc, o, ip, m, bits, r, tv FROM sc;
         INSERT INTO arr SELECT id + 10, ia, ta, na, fa, ba, tsa, ua, ja, bya, ea, da, m2 FROM arr;
         INSERT INTO rng SELECT id + 10, i4, i8, nr, dr, tr, tz, fr, xr, pr, ia, mr, dm, m3 FROM rng;
         UPDATE rng SET mr = mr + '{[100,200)}', m3 = '{{{0}}}' WHERE id = 13;
         INSERT INTO net SELECT id + 100, ip, cn, mac, m8, bt, vb, ips, cash, cashes, tt, tts FROM net;
         UPDATE sc SET f8 = f8 * 2, nu = nu * 3 WHERE id IN (1, 11);",
    );
    pgcdc_ok(env, &["run"]);
    assert_mirrored(env, target, "sc", SC);
    assert_mirrored(env, target, "arr", &crate::types::COLS);
    assert_mirrored(env, target, "rng", &crate::types::RANGE_COLS);
    assert_mirrored(env, target, "net", &crate::types::NETWORK_COLS);
}

/// Soft deletes: deleted rows stay with their last values and the flag set; the rest
/// equals the source.
fn soft_deletes(env: &TestEnv, target: &Target) {
    create_tables(env);
    // An audit of what the source deleted (and moved away from), with the last values.
    env.sql(
        "CREATE TABLE gone (id bigint PRIMARY KEY, note text, qty int);
         CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF TG_OP = 'INSERT' THEN DELETE FROM gone WHERE id = NEW.id; RETURN NEW; END IF;
           IF TG_OP = 'UPDATE' AND OLD.id = NEW.id THEN RETURN NEW; END IF;
           INSERT INTO gone VALUES (OLD.id, OLD.note, OLD.qty)
             ON CONFLICT (id) DO UPDATE SET note = excluded.note, qty = excluded.qty;
           IF TG_OP = 'UPDATE' THEN DELETE FROM gone WHERE id = NEW.id; RETURN NEW; END IF;
           RETURN OLD;
         END $$;
         CREATE TRIGGER audit BEFORE INSERT OR UPDATE OR DELETE ON orders FOR EACH ROW EXECUTE FUNCTION audit();",
    );
    configure_mirror(
        env,
        target,
        &["orders", "narrow", "dup"],
        "[batch]\nmax_rows = 97\n",
    );
    let text = std::fs::read_to_string(env.dir().join("pgcdc.toml")).unwrap();
    env.write_file(
        "pgcdc.toml",
        &text.replace(
            "dataset = ",
            "soft_delete_column = \"_deleted\"\ndataset = ",
        ),
    );
    pgcdc_ok(env, &["init"]);
    workload(env, 0);
    // Deleted twice over: in one batch, and across batches.
    env.sql(
        "INSERT INTO orders (id, note) VALUES (9001, 'brief'); DELETE FROM orders WHERE id = 9001;",
    );
    pgcdc_ok(env, &["run"]);
    env.sql("DELETE FROM orders WHERE id IN (2, 3); UPDATE orders SET id = 9002 WHERE id = 4;");
    pgcdc_ok(env, &["run"]);
    let rows = target.rows(env, "orders", &["id", "note", "qty", "_deleted"]);
    let live: Vec<Vec<Option<String>>> = rows
        .iter()
        .filter(|r| r[3].as_deref() == Some("f"))
        .map(|r| r[..3].to_vec())
        .collect();
    let deleted: Vec<Vec<Option<String>>> = rows
        .iter()
        .filter(|r| r[3].as_deref() == Some("t"))
        .map(|r| r[..3].to_vec())
        .collect();
    assert_eq!(
        live.len() + deleted.len(),
        rows.len(),
        "the flag is never NULL"
    );
    assert_eq!(live, source_rows(env, "orders", &["id", "note", "qty"]));
    assert_eq!(deleted, source_rows(env, "gone", &["id", "note", "qty"]));
    assert!(deleted.iter().any(|r| r[0].as_deref() == Some("9001")));
    assert!(deleted.iter().any(|r| r[0].as_deref() == Some("4")));
    // Truncate still empties; keyless tables are mirrored as they are.
    assert_mirrored(env, target, "narrow", &["k", "v"]);
    assert_mirrored(env, target, "dup", &["a", "b"]);
}

/// A type change the mirror cannot apply by itself stops the run with what to do; the
/// checkpoint stays, so after the manual step the run goes on from there.
fn incompatible_type_change(env: &TestEnv, target: &Target) {
    env.sql("CREATE TABLE kv (k int PRIMARY KEY, v text); INSERT INTO kv VALUES (1, 'one'), (2, 'two');");
    configure_mirror(env, target, &["kv"], "");
    pgcdc_ok(env, &["init"]);
    env.sql(
        "ALTER TABLE kv ALTER COLUMN v TYPE int USING length(v); INSERT INTO kv VALUES (3, 33);",
    );
    let err = crate::replication::pgcdc_err(env, &["run"]);
    assert!(
        err.contains("column \"v\"") && err.contains("changed type"),
        "{err}"
    );
    assert!(
        err.contains(target.manual_step()) && err.contains("pgcdc snapshot kv"),
        "{err}"
    );
    // Nothing of the failed batch landed.
    assert_eq!(target.rows(env, "kv", &["k"]).len(), 2);
}

#[test]
fn bad_mirror_destinations_are_named_before_anything_is_created() {
    let env = TestEnv::new("mirror_bad_dest");
    env.sql("CREATE TABLE kv (k int PRIMARY KEY);");
    let write = |destination: &str| {
        env.write_file(
            "pgcdc.toml",
            &format!(
                "[source]\nurl = {}\nslot = {}\npublication = {}\nschema = {}\ntables = [\"kv\"]\n\n[destination]\n{destination}\n",
                toml_str(&env.url()),
                toml_str(&env.slot),
                toml_str(&env.publication),
                toml_str(&env.schema),
            ),
        )
    };
    let cases: Vec<(String, &[&str])> = vec![
        (
            "mode = \"mirror\"\nurl = \"postgresql://mirror:s3cret-pw@127.0.0.1:1/db\"".into(),
            &["cannot connect to the mirror database", "127.0.0.1:1"],
        ),
        (
            "mode = \"mirror\"\nurl = \"./lake\"".into(),
            &["destination.url", "is not a mirror destination"],
        ),
        (
            "soft_delete_column = \"_deleted\"".into(),
            &["soft_delete_column", "mirror"],
        ),
        (
            format!(
                "mode = \"mirror\"\nurl = {}\ndataset = {}",
                toml_str(&env.url()),
                toml_str(&env.schema)
            ),
            &["would overwrite the source tables"],
        ),
        #[cfg(feature = "duckdb")]
        (
            format!(
                "mode = \"mirror\"\nurl = {}",
                toml_str(&env.dir().join("no/such/dir/m.duckdb").display().to_string())
            ),
            &["does not exist"],
        ),
        #[cfg(feature = "delta")]
        (
            format!(
                "mode = \"mirror\"\nurl = {}",
                toml_str(&format!("delta:{}", env.dir().join("no/such/lake").display()))
            ),
            &["does not exist"],
        ),
        #[cfg(feature = "delta")]
        (
            "mode = \"mirror\"\nurl = \"delta:ftp://host/x\"".into(),
            &["ftp://", "not supported"],
        ),
        #[cfg(feature = "delta")]
        (
            "mode = \"mirror\"\nurl = \"delta:s3://demo/x\"\n[destination.credentials]\naws_secret_access_key = \"s3cret-pw\"\naws_acess_key_id = \"k\"".into(),
            &["aws_acess_key_id", "not a setting"],
        ),
    ];
    for (destination, expected) in cases {
        write(&destination);
        let err = crate::replication::pgcdc_err(&env, &["init"]);
        for e in expected {
            assert!(err.contains(e), "{destination}: expected {e:?} in:\n{err}");
        }
        assert!(!err.contains("s3cret-pw"), "the password leaked: {err}");
        let slots = env.sql(&format!(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{}'",
            env.slot
        ));
        assert_eq!(slots.trim(), "0", "{destination}: a slot was created");
    }
}

#[test]
fn follow_mode_rides_out_a_restart_of_the_postgres_mirror() {
    let env = TestEnv::new("mirror_pg_restart");
    // The mirror on a server of its own, stopped for 3 s while pgcdc streams into it.
    let server = crate::support::start_cluster(&[]);
    let target = Target::Postgres(TestEnv::on(server.url(), "mirror_restart_target"));
    env.sql("CREATE TABLE kv (k int PRIMARY KEY, v int, note text);");
    configure_mirror(&env, &target, &["kv"], "[batch]\nflush_interval_ms = 200\n");
    pgcdc_ok(&env, &["init"]);
    let mut child = env.spawn_pgcdc_logged(&["run", "--follow"], "follow");
    for round in 0..4 {
        let base = 1000 * round;
        env.sql(&format!(
            "INSERT INTO kv SELECT g, g, 'r{round}' FROM generate_series({base} + 1, {base} + 300) g;
             UPDATE kv SET v = v + 1 WHERE k % 7 = 0;
             DELETE FROM kv WHERE k % 50 = 0;"
        ));
        if round == 1 {
            std::thread::sleep(Duration::from_millis(300));
            server.restart(Duration::from_secs(3));
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let want = source_rows(&env, "kv", &["k"]).len();
    while target.count(&env, "kv") != want
        || target.rows(&env, "kv", &["k", "v", "note"])
            != source_rows(&env, "kv", &["k", "v", "note"])
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the mirror did not catch up after its restart ({} of {want} rows): {}",
            target.count(&env, "kv"),
            env.log("follow")
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "follow mode should end cleanly: {exit:?}");
    assert_mirrored(&env, &target, "kv", &["k", "v", "note"]);
}

#[test]
fn a_postgres_mirror_connection_lost_mid_batch_replays_the_batch() {
    let env = TestEnv::new("mirror_pg_lost");
    let target = Target::postgres(&env);
    let Target::Postgres(t) = &target else {
        unreachable!()
    };
    let db = format!("{}_m", env.schema);
    env.sql("CREATE TABLE kv (k int PRIMARY KEY, v int);");
    // One batch of many streamed transactions: their rows are written one transaction at
    // a time, with the mirror's transaction idle in between.
    configure_mirror(
        &env,
        &target,
        &["kv"],
        "[batch]\nmax_rows = 1000000\nflush_interval_ms = 2000\n",
    );
    pgcdc_ok(&env, &["init"]);
    let mut child = env.spawn_pgcdc_logged(&["run", "--follow"], "follow");
    let writer = {
        let s = env.session();
        std::thread::spawn(move || {
            for i in 0..40 {
                s.sql(&format!(
                    "INSERT INTO kv SELECT g, g FROM generate_series({} + 1, {} + 3000) g;",
                    i * 3000,
                    i * 3000
                ));
            }
        })
    };
    // Cut the mirror's connection while its batch transaction is open between writes.
    let mut killed = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !killed && std::time::Instant::now() < deadline {
        let n = t.sql(&format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{db}' AND state = 'idle in transaction' AND pid <> pg_backend_pid()"
        ));
        killed = n.trim() != "0";
        std::thread::sleep(Duration::from_millis(20));
    }
    writer.join().unwrap();
    assert!(
        killed,
        "never saw the mirror's transaction idle between writes"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let count = || target.count(&env, "kv");
    while count() < 120_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the mirror did not catch up ({} rows): {}",
            count(),
            env.log("follow")
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_mirrored(&env, &target, "kv", &["k", "v"]);
}

/// Config for a Delta mirror on the S3 server at `endpoint`, in batches of 97 rows.
#[cfg(feature = "delta")]
fn delta_s3_extra(endpoint: &str) -> String {
    use crate::support::s3;
    format!(
        "[destination.credentials]\naws_access_key_id = \"{}\"\naws_secret_access_key = \"{}\"\nendpoint_url = \"{endpoint}\"\n\n[batch]\nmax_rows = 97\n",
        s3::ACCESS_KEY,
        s3::SECRET_KEY,
    )
}

/// Delta tables on S3 (a real S3-protocol server, read back over HTTP by the `deltalake`
/// package): the snapshot and a mixed workload land equal to the source.
#[cfg(feature = "delta")]
#[test]
fn a_delta_mirror_on_s3_equals_the_source_after_a_snapshot_and_a_mixed_workload() {
    use crate::support::s3;
    let server = s3::shared();
    let env = TestEnv::new("delta_s3");
    let target = Target::DeltaS3(env.schema.clone(), server.reader_env());
    create_tables(&env);
    let extra = delta_s3_extra(&server.endpoint());
    configure_mirror(&env, &target, &["orders", "narrow", "dup"], &extra);
    pgcdc_ok(&env, &["init"]);
    assert_mirrored(&env, &target, "orders", ORDERS);
    assert_mirrored(&env, &target, "narrow", &["k", "v"]);
    assert_mirrored(&env, &target, "dup", &["a", "b"]);
    workload(&env, 0);
    pgcdc_ok(&env, &["run"]);
    assert_mirrored(&env, &target, "orders", ORDERS);
    assert_mirrored(&env, &target, "narrow", &["k", "v"]);
    assert_mirrored(&env, &target, "dup", &["a", "b"]);
    let status = pgcdc_ok(&env, &["status"]);
    assert!(status.contains("checkpoint"), "{status}");
}

/// The S3 store goes away twice in the middle of a run, each time right after it wrote a
/// Delta log entry whose answer pgcdc never gets (first `_pgcdc_state`'s, the commit
/// point, then a table's): the run waits, finds out on its return that the commit
/// landed, and completes; the tables equal the source (nothing lost or doubled).
/// A Delta mirror on its own S3 server, reached through an outage proxy
/// ([`crate::support::outage`]); `init` done.
#[cfg(feature = "delta")]
fn delta_behind_a_proxy(
    name: &str,
) -> (
    crate::support::s3::S3Server,
    crate::support::outage::OutageProxy,
    TestEnv,
    Target,
) {
    use crate::support::s3::S3Server;
    let server = S3Server::start();
    let proxy = crate::support::outage::OutageProxy::start(server.port);
    let env = TestEnv::new(name);
    let target = Target::DeltaS3(env.schema.clone(), server.reader_env());
    create_tables(&env);
    let extra = delta_s3_extra(&proxy.endpoint());
    configure_mirror(&env, &target, &["orders", "narrow", "dup"], &extra);
    pgcdc_ok(&env, &["init"]);
    (server, proxy, env, target)
}

/// The S3 store goes away twice in the middle of a run, each time right after it wrote a
/// Delta log entry whose answer pgcdc never gets (first `_pgcdc_state`'s, the commit
/// point, then a table's): the run waits, finds out on its return that the commit
/// landed, and completes; the tables equal the source (nothing lost or doubled).
#[cfg(feature = "delta")]
#[test]
fn a_delta_mirror_on_s3_rides_out_an_outage_of_the_store() {
    let (server, proxy, env, target) = delta_behind_a_proxy("delta_s3_outage");
    for round in 0..3 {
        workload(&env, round);
    }
    let mut child = env.spawn_pgcdc_logged(&["run"], "outage");
    let log_of = |table: &str| format!("/ds/{table}/_delta_log/");
    for table in ["_pgcdc_state", "orders"] {
        proxy.arm("PUT", &log_of(table));
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while !proxy.tripped() {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the run ended before the outage at {table}: {}",
                env.log("outage")
            );
            assert!(std::time::Instant::now() < deadline, "no commit of {table}");
            std::thread::sleep(Duration::from_millis(5));
        }
        // The server itself is down too, for 4 s: the run waits instead of failing.
        server.stop();
        std::thread::sleep(Duration::from_secs(4));
        assert!(
            child.try_wait().unwrap().is_none(),
            "pgcdc run gave up while the store was down: {}",
            env.log("outage")
        );
        server.resume();
        proxy.up();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pgcdc run did not finish after the store came back"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "pgcdc run failed after the outage: {}",
        env.log("outage")
    );
    assert_mirrored(&env, &target, "orders", ORDERS);
    assert_mirrored(&env, &target, "narrow", &["k", "v"]);
    assert_mirrored(&env, &target, "dup", &["a", "b"]);
    // The next run has nothing left to finish, and the tables stay equal.
    workload(&env, 3);
    pgcdc_ok(&env, &["run"]);
    assert_mirrored(&env, &target, "orders", ORDERS);
    assert_mirrored(&env, &target, "dup", &["a", "b"]);
}

/// Right after the store wrote the commit point (`_pgcdc_state`'s log entry, its answer
/// lost), `_pgcdc_state` stays unreachable for longer than the retries while the tables'
/// objects can still be reached (deleted): the run fails without knowing whether the
/// commit landed, so it keeps the batch's files; the rerun finds the commit, finishes it
/// and goes on, and the tables equal the source.
#[cfg(feature = "delta")]
#[test]
fn a_delta_mirror_on_s3_reruns_cleanly_after_an_outage_longer_than_the_retries() {
    let (_server, proxy, env, target) = delta_behind_a_proxy("delta_s3_long_outage");
    workload(&env, 0);
    proxy.arm_then_block("PUT", "/ds/_pgcdc_state/_delta_log/", "/ds/_pgcdc_state/");
    let out = env.pgcdc_with_env(&["run"], &[("PGCDC_RETRY_TIMEOUT_MS", "3000")]);
    assert!(proxy.tripped(), "no commit point was written");
    assert!(
        !out.status.success(),
        "the run succeeded with the store down"
    );
    proxy.up();
    workload(&env, 1);
    pgcdc_ok(&env, &["run"]);
    assert_mirrored(&env, &target, "orders", ORDERS);
    assert_mirrored(&env, &target, "narrow", &["k", "v"]);
    assert_mirrored(&env, &target, "dup", &["a", "b"]);
}

/// Column names Delta (without column mapping) cannot hold — a space or one of
/// `,;{}()=`, names equal but for case — fail `init` naming the column and what to do,
/// before a slot or publication exists or anything is written; leaving the column out
/// works; such a column added later stops the run the same way.
#[cfg(feature = "delta")]
#[test]
fn a_delta_mirror_refuses_column_names_delta_cannot_hold() {
    let env = TestEnv::new("delta_bad_names");
    let target = Target::Delta;
    env.sql(
        r#"CREATE TABLE good (id int PRIMARY KEY, v text);
           CREATE TABLE odd (id int PRIMARY KEY, "unit price" numeric, "f(x)" int);
           CREATE TABLE cased (id int PRIMARY KEY, "Note" text, note text);
           INSERT INTO good VALUES (1, 'a'); INSERT INTO odd VALUES (1, 2.5, 3);"#,
    );
    let nothing_created = |what: &str| {
        let n = env.sql(&format!(
            "SELECT (SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{}') + (SELECT count(*) FROM pg_publication WHERE pubname = '{}')",
            env.slot, env.publication
        ));
        assert_eq!(n.trim(), "0", "{what}: a slot or publication was created");
        assert!(
            !env.dir().join("lake/ds/good").exists(),
            "{what}: a table was written"
        );
    };
    std::fs::create_dir_all(env.dir().join("lake")).unwrap();
    configure_mirror(&env, &target, &["good", "odd"], "");
    let err = crate::replication::pgcdc_err(&env, &["init"]);
    assert!(
        err.contains("column \"unit price\" of table") && err.contains("odd"),
        "{err}"
    );
    assert!(
        err.contains("' '") && err.contains("source.include_columns"),
        "{err}"
    );
    nothing_created("a space");
    configure_mirror(&env, &target, &["good", "cased"], "");
    let err = crate::replication::pgcdc_err(&env, &["init"]);
    assert!(
        err.contains("column \"note\" of table") && err.contains("only in case"),
        "{err}"
    );
    nothing_created("names equal but for case");
    // Without those columns the tables mirror.
    configure_mirror(
        &env,
        &target,
        &["good", "odd"],
        "[source.include_columns]\nodd = [\"id\"]\n",
    );
    pgcdc_ok(&env, &["init"]);
    assert_mirrored(&env, &target, "good", &["id", "v"]);
    assert_mirrored(&env, &target, "odd", &["id"]);
    // A bad name added later stops the run, naming it; nothing of the batch lands.
    env.sql(r#"ALTER TABLE good ADD COLUMN "a=b" int; INSERT INTO good VALUES (2, 'b', 1);"#);
    let err = crate::replication::pgcdc_err(&env, &["run"]);
    assert!(err.contains("column \"a=b\" of table"), "{err}");
    assert_eq!(target.rows(&env, "good", &["id"]).len(), 1);
}

/// A large transaction (streamed by the server while in progress) between small ones
/// (buffered by pgcdc) in one batch: the mirror applies them in commit order.
fn streamed_and_buffered_in_commit_order(env: &TestEnv, target: &Target) {
    env.sql("CREATE TABLE kv (k int PRIMARY KEY, v int, pad text); INSERT INTO kv VALUES (1, 0, ''), (2, 0, '');");
    configure_mirror(env, target, &["kv"], "");
    pgcdc_ok(env, &["init"]);
    env.sql("UPDATE kv SET v = 1 WHERE k = 1;");
    // Far above the test server's logical_decoding_work_mem (64kB): streamed.
    env.sql("BEGIN; INSERT INTO kv SELECT g, g, repeat('x', 100) FROM generate_series(10, 5000) g; UPDATE kv SET v = 2 WHERE k = 1; UPDATE kv SET v = 2 WHERE k = 2; COMMIT;");
    env.sql("UPDATE kv SET v = 3 WHERE k = 2;");
    // Streamed by the server only over the replication stream (pages hold whole
    // transactions), so this run reads the stream.
    pgcdc_ok(env, &["--set=source.reader=stream", "run"]);
    let streamed = env.sql(&format!(
        "SELECT stream_txns > 0 FROM pg_stat_replication_slots WHERE slot_name = '{}'",
        env.slot
    ));
    assert_eq!(
        streamed.trim(),
        "t",
        "the server did not stream the large transaction"
    );
    assert_mirrored(env, target, "kv", &["k", "v", "pad"]);
}

/// Many changes of the same keys in one batch — within one transaction and across the
/// transactions of the batch: upserts, deletes and re-inserts, key changes (back and
/// forth, onto a key deleted earlier) whose updates keep unchanged TOAST values, updates
/// that keep them, a truncate in the middle, duplicates in a keyless table. The mirror
/// applies the batch as the source did, change by change.
fn many_steps_in_one_batch(env: &TestEnv, target: &Target) {
    env.sql(
        "CREATE TABLE m (id int PRIMARY KEY, v int, note text, big text);
         ALTER TABLE m ALTER COLUMN big SET STORAGE EXTERNAL;
         INSERT INTO m SELECT g, g, 'n' || g, repeat(md5(g::text), 100) FROM generate_series(1, 40) g;
         CREATE TABLE bag (a int, b text);
         ALTER TABLE bag REPLICA IDENTITY FULL;
         INSERT INTO bag VALUES (1, 'x'), (1, 'x'), (2, 'y');
         CREATE TABLE tr (k int PRIMARY KEY, v text);
         INSERT INTO tr SELECT g, 'v' || g FROM generate_series(1, 5) g;",
    );
    // One batch for everything a run finds.
    configure_mirror(
        env,
        target,
        &["m", "bag", "tr"],
        "[batch]\nmax_rows = 1000000\n",
    );
    pgcdc_ok(env, &["init"]);
    let m = &["id", "v", "note", "big"];
    env.sql(
        "BEGIN;
         UPDATE m SET v = v + 1 WHERE id <= 20;
         UPDATE m SET id = id + 1000 WHERE id <= 10;
         UPDATE m SET note = 'after move' WHERE id > 1000;
         DELETE FROM m WHERE id IN (1003, 15);
         INSERT INTO m VALUES (15, -15, 'reborn', 'small');
         UPDATE m SET id = id - 1000 WHERE id IN (1001, 1002);
         UPDATE m SET v = v * 10 WHERE id IN (1, 2, 15);
         INSERT INTO m SELECT g, g, 'new', repeat(md5(g::text), 100) FROM generate_series(100, 120) g;
         DELETE FROM m WHERE id = 100;
         UPDATE m SET id = 100 WHERE id = 101;
         INSERT INTO bag VALUES (1, 'x'), (3, 'z');
         DELETE FROM bag WHERE ctid = (SELECT min(ctid) FROM bag WHERE a = 1);
         COMMIT;",
    );
    // Alternating steps, one transaction per round, all in the same batch.
    for round in 0..3 {
        env.sql(&format!(
            "DO $$ BEGIN FOR i IN 1..20 LOOP
               UPDATE m SET id = id + 500 WHERE id = 30;
               UPDATE m SET v = i + {round} * 100 WHERE id = 530;
               UPDATE m SET id = 30 WHERE id = 530;
               UPDATE m SET note = 'loop ' || i WHERE id = 31;
               DELETE FROM m WHERE id = 32;
               INSERT INTO m VALUES (32, i, 'again', repeat(md5(i::text), 100));
               UPDATE m SET v = -i WHERE id = 32;
               UPDATE m SET id = 33 + 1000 * (i % 2) WHERE id IN (33, 1033);
               INSERT INTO bag VALUES (i % 3, 'r');
               DELETE FROM bag WHERE ctid = (SELECT min(ctid) FROM bag WHERE a = (i + 1) % 3);
             END LOOP; END $$;"
        ));
    }
    env.sql(
        "UPDATE tr SET v = 'changed' WHERE k < 3;
         TRUNCATE tr;
         INSERT INTO tr SELECT g, 'after' || g FROM generate_series(3, 6) g;
         UPDATE tr SET v = NULL WHERE k = 4;
         DELETE FROM tr WHERE k = 6;",
    );
    pgcdc_ok(env, &["run"]);
    assert_mirrored(env, target, "m", m);
    assert_mirrored(env, target, "bag", &["a", "b"]);
    assert_mirrored(env, target, "tr", &["k", "v"]);
    // The next batch starts from the stored rows: moves and TOAST-keeping updates of them.
    env.sql(
        "BEGIN;
         UPDATE m SET id = id + 2000 WHERE id BETWEEN 100 AND 110;
         UPDATE m SET v = 0 WHERE id > 2000;
         UPDATE m SET id = id - 2000 WHERE id IN (2105, 2106);
         DELETE FROM m WHERE id = 2107;
         COMMIT;
         UPDATE m SET note = 'last' WHERE id % 3 = 0;",
    );
    pgcdc_ok(env, &["run"]);
    assert_mirrored(env, target, "m", m);
    assert_mirrored(env, target, "bag", &["a", "b"]);
}

/// Every scenario above, once per mirror destination: `mirror::in_duckdb::<scenario>`,
/// `mirror::in_postgres::<scenario>` and `mirror::in_delta::<scenario>`.
macro_rules! for_each_mirror {
    ($($scenario:ident),* $(,)?) => {
        #[cfg(feature = "duckdb")]
        mod in_duckdb {
            use crate::support::TestEnv;
            $(
                #[test]
                fn $scenario() {
                    let env = TestEnv::new(concat!("duckdb_", stringify!($scenario)));
                    super::$scenario(&env, &super::Target::duckdb());
                }
            )*
        }
        #[cfg(feature = "delta")]
        mod in_delta {
            use crate::support::TestEnv;
            $(
                #[test]
                fn $scenario() {
                    let env = TestEnv::new(concat!("delta_", stringify!($scenario)));
                    super::$scenario(&env, &super::Target::Delta);
                }
            )*
        }
        mod in_postgres {
            use crate::support::TestEnv;
            $(
                #[test]
                fn $scenario() {
                    let env = TestEnv::new(concat!("pg_", stringify!($scenario)));
                    let target = super::Target::postgres(&env);
                    super::$scenario(&env, &target);
                }
            )*
        }
    };
}

for_each_mirror!(
    mixed_workload_and_schema_changes,
    crashes_and_sigkill,
    every_type,
    soft_deletes,
    incompatible_type_change,
    streamed_and_buffered_in_commit_order,
    many_steps_in_one_batch,
);
