//! Value fidelity beyond the base types: arrays as Arrow lists, in the snapshot and the
//! stream, read back by pyarrow and compared with PostgreSQL's own text output.

use crate::replication::{assert_replay_equals_source, configure, pgcdc_ok};
use crate::support::TestEnv;

pub const ARRAYS: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE arr (
    id int PRIMARY KEY,
    ia int[],
    ta text[],
    na numeric(10,2)[],
    fa float8[],
    ba bool[],
    tsa timestamptz[],
    ua uuid[],
    ja jsonb[],
    bya bytea[],
    ea mood[],
    da posint[],
    m2 int[][]
);
INSERT INTO arr VALUES
  (1, '{1,2,3}', '{a,b,c}', '{1.50,-2.25}', '{1.5,NaN,-Infinity,-0}', '{t,f,NULL}',
      '{"2024-01-01 10:00:00+00","infinity"}', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}',
      ARRAY['{"k": [1, 2]}'::jsonb, 'null'], ARRAY['\x00ff'::bytea, ''], '{sad,happy}', '{1,7}',
      '{{1,2},{3,4}}'),
  (2, '{}', '{"",NULL,"NULL","null","with space","quote\"in","back\\slash","{braces}","comma,in","☃ emoji 🎉"}',
      '{NULL}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}'),
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (4, '{NULL,NULL}', ARRAY[E'tab\there', E'new\nline', 'x'], '{0.01}', '{1e300}', '{f}',
      '{"1999-12-31 23:59:59.999999+00"}', '{}', '{}', '{}', '{ok}', '{2}', '{{5}}');
"#;

/// Asserts, with pyarrow, that every Parquet file in `dir` has these column types
/// (pyarrow expressions, e.g. `pa.list_(pa.int32())`).
fn assert_parquet_types(dir: &std::path::Path, types: &[(&str, &str)]) {
    let checks: String = types
        .iter()
        .map(|(c, t)| {
            format!("    assert s.field('{c}').type == {t}, ('{c}', s.field('{c}').type)\n")
        })
        .collect();
    let script = format!(
        "import glob, pyarrow as pa, pyarrow.parquet as pq\nfiles = glob.glob('{}/*.parquet')\nassert files, 'no parquet files'\nfor f in files:\n    s = pq.read_schema(f)\n{checks}",
        dir.display()
    );
    let out = std::process::Command::new(crate::support::python())
        .arg("-c")
        .arg(&script)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "column types differ: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub const COLS: [&str; 13] = [
    "id", "ia", "ta", "na", "fa", "ba", "tsa", "ua", "ja", "bya", "ea", "da", "m2",
];

#[test]
fn arrays_land_as_lists_in_the_snapshot_and_the_stream() {
    let env = TestEnv::new("arrays");
    env.sql(ARRAYS);
    configure(&env, Some(&["arr"]), "", "[snapshot]\nworkers = 2\n");
    pgcdc_ok(&env, &["init"]);
    assert_replay_equals_source(&env, "arr", &["id"], &COLS);
    env.sql(
        r#"INSERT INTO arr SELECT 10 + g, ARRAY[g, NULL, -g], ARRAY['s' || g, NULL], ARRAY[g * 1.25],
                  ARRAY[g / 3.0], ARRAY[g % 2 = 0], ARRAY['2020-02-29 00:00:00+00'::timestamptz + g * interval '1 hour'],
                  ARRAY[md5(g::text)::uuid], ARRAY[jsonb_build_object('g', g)], ARRAY[decode(md5(g::text), 'hex')],
                  ARRAY['happy'::mood], ARRAY[g::posint], ARRAY[ARRAY[g, g], ARRAY[g, g]]
             FROM generate_series(1, 50) g;
           UPDATE arr SET ia = ia || 99, ta = array_append(ta, 'added "q"') WHERE id % 3 = 0;
           UPDATE arr SET ia = '{}' WHERE id = 1;
           UPDATE arr SET m2 = '{{NULL,7},{8,NULL}}' WHERE id = 12;
           DELETE FROM arr WHERE id = 4;"#,
    );
    pgcdc_ok(&env, &["run"]);
    assert_replay_equals_source(&env, "arr", &["id"], &COLS);
    // The independent reader sees real lists (nested for the declared 2-D column).
    let dir = env.lake_dir().join("ds").join("arr");
    assert_parquet_types(
        &dir,
        &[
            ("ia", "pa.list_(pa.int32())"),
            ("ta", "pa.list_(pa.string())"),
            ("na", "pa.list_(pa.decimal128(10, 2))"),
            ("ba", "pa.list_(pa.bool_())"),
            ("tsa", "pa.list_(pa.timestamp('us', tz='UTC'))"),
            ("da", "pa.list_(pa.int32())"),
            ("m2", "pa.list_(pa.list_(pa.int32()))"),
        ],
    );
}

#[test]
fn arrays_as_text_by_policy_and_multidimensional_values_are_explained() {
    let env = TestEnv::new("arrays_policy");
    env.sql("CREATE TABLE a (id int PRIMARY KEY, v int[]); INSERT INTO a VALUES (1, '{1,2}');");
    configure(&env, Some(&["a"]), "", "[types]\narrays = \"text\"\n");
    pgcdc_ok(&env, &["init"]);
    env.sql("INSERT INTO a VALUES (2, '{{1,2},{3,4}}'), (3, '[0:1]={7,8}');");
    pgcdc_ok(&env, &["run"]);
    assert_replay_equals_source(&env, "a", &["id"], &["id", "v"]);

    // Under the default policy a 2-D value in a column declared int[] cannot be a list:
    // the run stops with the fix, and nothing of that batch lands.
    let env = TestEnv::new("arrays_dims");
    env.sql("CREATE TABLE a (id int PRIMARY KEY, v int[]);");
    configure(&env, Some(&["a"]), "", "");
    pgcdc_ok(&env, &["init", "--no-snapshot"]);
    env.sql("INSERT INTO a VALUES (1, '{1}'); INSERT INTO a VALUES (2, '{{1,2},{3,4}}');");
    let out = env.pgcdc(&["run"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a 2-D value in an int[] column was accepted"
    );
    assert!(err.contains("types.arrays"), "{err}");
    // With the policy switched, the same changes replicate exactly.
    configure(&env, Some(&["a"]), "", "[types]\narrays = \"text\"\n");
    pgcdc_ok(&env, &["run"]);
    assert_replay_equals_source(&env, "a", &["id"], &["id", "v"]);
}

#[test]
fn column_hints_set_the_destination_type_in_snapshot_and_stream() {
    let env = TestEnv::new("hints");
    env.sql(
        "CREATE TABLE h (id int PRIMARY KEY, qty int, price numeric, u uuid, tags int[], note text);
         INSERT INTO h SELECT g, g * 3, g + 0.25, md5(g::text)::uuid, ARRAY[g, g + 1], 'n' || g
           FROM generate_series(1, 200) g;",
    );
    configure(
        &env,
        Some(&["h"]),
        "",
        "[columns.h.qty]\ndata_type = \"double\"\nnullable = true\n\n[columns.h.price]\ndata_type = \"decimal\"\nprecision = 12\nscale = 2\n\n[columns.h.u]\ndata_type = \"text\"\n\n[columns.h.tags]\ndata_type = \"text\"\n\n[columns.h.id]\ndata_type = \"bigint\"\n",
    );
    pgcdc_ok(&env, &["init"]);
    env.sql("INSERT INTO h VALUES (1000, 7, 99.99, NULL, '{}', 'x'); UPDATE h SET qty = -1, price = 0.5 WHERE id % 10 = 0; DELETE FROM h WHERE id = 3;");
    pgcdc_ok(&env, &["run"]);
    let cols = ["id", "qty", "u", "tags", "note"];
    assert_replay_equals_source(&env, "h", &["id"], &cols);
    // numeric renders with the hinted scale: compare against the same formatting.
    let src = env.rows(
        "SELECT json_build_array(id::text, to_char(price, 'FM999999999990.00')) FROM h ORDER BY id",
    );
    let mut dst = crate::support::lake_replay(
        &env.lake_dir().join("ds").join("h"),
        &["id"],
        &["id", "price"],
    );
    dst.sort_by_key(|r| r[0].as_deref().and_then(|v| v.parse::<i64>().ok()));
    assert_eq!(dst, src);
    let dir = env.lake_dir().join("ds").join("h");
    assert_parquet_types(
        &dir,
        &[
            ("id", "pa.int64()"),
            ("qty", "pa.float64()"),
            ("price", "pa.decimal128(12, 2)"),
            ("u", "pa.string()"),
            ("tags", "pa.string()"),
        ],
    );
    // A value the hinted type cannot hold exactly stops the run, naming the column.
    env.sql("INSERT INTO h VALUES (2000, 1, 1.125, NULL, NULL, NULL);");
    let out = env.pgcdc(&["run"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "1.125 was rounded into decimal(12,2)"
    );
    assert!(err.contains("price"), "{err}");
}

#[test]
fn hints_for_missing_or_excluded_columns_are_named() {
    let env = TestEnv::new("hints_bad");
    env.sql("CREATE TABLE h (id int PRIMARY KEY, a int, b int);");
    configure(
        &env,
        Some(&["h"]),
        "include_columns = { h = [\"id\", \"a\"] }\n",
        "[columns.h.nope]\ndata_type = \"text\"\n",
    );
    let err = crate::replication::pgcdc_err(&env, &["init"]);
    assert!(err.contains("columns.h.nope"), "{err}");
    configure(
        &env,
        Some(&["h"]),
        "include_columns = { h = [\"id\", \"a\"] }\n",
        "[columns.h.b]\ndata_type = \"text\"\n",
    );
    let err = crate::replication::pgcdc_err(&env, &["init"]);
    assert!(
        err.contains("columns.h.b") && err.contains("included"),
        "{err}"
    );
    configure(
        &env,
        Some(&["h"]),
        "",
        "[columns.h.a]\ndata_type = \"varchar\"\n",
    );
    let err = crate::replication::pgcdc_err(&env, &["init"]);
    assert!(err.contains("varchar"), "{err}");
}

#[test]
fn intervals_keep_months_days_and_microseconds_apart() {
    let env = TestEnv::new("intervals");
    env.sql(
        "CREATE TABLE iv (id int PRIMARY KEY, i interval, ia interval[]);
         INSERT INTO iv VALUES
           (1, '1 year 2 mons 3 days 04:05:06.789', '{\"1 day\",\"-00:00:00.000001\",NULL}'),
           (2, '-1 years -2 mons +3 days -04:05:06', '{}'),
           (3, '0', NULL), (4, NULL, '{\"100 hours\"}'),
           (5, '-178000000 years', '{\"178000000 years\"}'),
           (6, '1 mon -1 day +2562047788:00:54.775807', '{\"-1 mons -1 days -00:00:00.5\"}');
         INSERT INTO iv SELECT 100 + g, g * interval '1 mon 1 day 1.000001 sec' * (CASE WHEN g % 2 = 0 THEN -1 ELSE 1 END), NULL
           FROM generate_series(1, 300) g;",
    );
    configure(&env, Some(&["iv"]), "", "");
    // The snapshot reads intervals in binary (interval_send).
    pgcdc_ok(&env, &["init"]);
    assert_replay_equals_source(&env, "iv", &["id"], &["id", "i", "ia"]);
    // The stream reads them as text (interval_out).
    env.sql(
        "INSERT INTO iv SELECT 1000 + id, i, ia FROM iv;
         UPDATE iv SET i = i - interval '1 microsecond' WHERE id % 7 = 0;
         DELETE FROM iv WHERE id = 2;",
    );
    pgcdc_ok(&env, &["run"]);
    assert_replay_equals_source(&env, "iv", &["id"], &["id", "i", "ia"]);
}

#[test]
fn text_typed_values_are_the_same_in_the_snapshot_and_the_stream() {
    // Types kept as text: the snapshot must produce exactly what pgoutput sends (each
    // type's output function), or a delete or update of a snapshot row misses it.
    let env = TestEnv::new("text_types");
    // Some builds (the PostgreSQL 18 wheel) have no libxml: x is then plain text.
    let xml = if env.try_sql("SELECT '<r/>'::xml").is_ok() {
        "xml"
    } else {
        "text"
    };
    env.sql(&format!(
        "CREATE TABLE tt (code char(4) PRIMARY KEY, ip inet, net cidr, mac macaddr, x {xml}, m money,
                          tz timetz, b bit(4), vb varbit, ts tsvector, p point, r int4range, v int);
         INSERT INTO tt VALUES
           ('ab', '10.0.0.1', '10.0.0.0/8', '08:00:2b:01:02:03', '<?xml version=\"1.0\"?><r/>', 12.5,
            '04:05:06+02', B'1010', B'1', 'a fat cat', '(1,2)', '[1,5)', 1),
           ('cd', '::1', '2001:db8::/32', NULL, '<r a=\"1\"/>', -1, '23:59:59.5-07:30', B'0000', B'', '', '(0,-0.5)', 'empty', 1);"
    ));
    let cols = [
        "code", "ip", "net", "mac", "x", "m", "tz", "b", "vb", "ts", "p", "r", "v",
    ];
    configure(&env, Some(&["tt"]), "", "");
    pgcdc_ok(&env, &["init"]);
    assert_replay_equals_source(&env, "tt", &["code"], &cols);
    env.sql("DELETE FROM tt WHERE code = 'ab'; UPDATE tt SET v = 2 WHERE code = 'cd'; INSERT INTO tt (code, ip, v) VALUES ('e', '192.168.0.1/24', 3);");
    pgcdc_ok(&env, &["run"]);
    assert_replay_equals_source(&env, "tt", &["code"], &cols);
}

/// One column per type whose binary (send) form pgcdc reads, and rows of edge values.
const WIRE: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE wire (
    id int PRIMARY KEY, b bool, i2 int2, i4 int4, i8 int8, o oid, f4 float4, f8 float8,
    n38 numeric(38,10), n76 numeric(76,20), nu numeric, t text, vc varchar(12), c5 char(5),
    nm name, j json, jb jsonb, by bytea, d date, tm time, ts timestamp, tz timestamptz,
    u uuid, iv interval, e mood, dm posint,
    ia int[], ta text[], na numeric(10,2)[], jba jsonb[], tza timestamptz[], bya bytea[],
    ba bool[], ua uuid[], ea mood[], nua numeric[], da posint[]
);
INSERT INTO wire (id) VALUES (1);
INSERT INTO wire VALUES
  (2, true, 1, 2, 3, 4, 1.5, 2.25, 12.5, 1.5, 3.14159, 'plain', 'vc', 'c', 'nm',
   '{"a": 1}', '{"b": 2}', '\xdeadbeef', '2024-02-29', '12:34:56.789', '2024-01-01 00:00:00',
   '2024-01-01 00:00:00+00', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '1 day', 'ok', 5,
   '{1,2,3}', '{a,b}', '{1.50,2.25}', ARRAY['{"k": 1}'::jsonb], '{"2024-01-01 10:00:00+00"}',
   ARRAY['\x01'::bytea], '{t,f}', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', '{sad,happy}',
   '{1.5,2}', '{1,2}'),
  (3, false, -32768, 2147483647, -9223372036854775808, 4294967295, 'NaN', '-Infinity',
   '-1234567890123456789012345678.0123456789',
   '12345678901234567890123456789012345678901234567890123456.01234567890123456789', 'NaN',
   E'emoji 🎉, control \x01\t\n, quote "'' and \\', '', 'ab', 'Name With Space',
   '{"a": [1, 2.50, "x"],  "z" :null}', '{"b": 1, "a": [true, null, 1.50]}', '\x00ff', '4713-01-01 BC',
   '24:00:00', 'infinity', '-infinity', '00000000-0000-0000-0000-000000000000',
   '-1 year -2 mons +3 days -04:05:06.789', 'happy', 2147483647,
   '{1,NULL,3}', '{"",NULL,"a,b","q\"uote","NULL","☃ 🎉"}', '{1.50,NULL}',
   ARRAY['{"k": [1, 2]}'::jsonb, NULL, 'null'], '{"2024-01-01 10:00:00+00",infinity,NULL}',
   ARRAY['\x00'::bytea, NULL, ''], '{t,NULL,f}', '{NULL}', '{sad,NULL}',
   '{NaN,1.5,-0.001,NULL,Infinity,-Infinity}', '{NULL,7}'),
  (4, NULL, 0, 0, 0, 0, '-0', '2.2250738585072014e-308', 0, 0, '0.000000000000000000001',
   repeat('x', 3000), repeat('y', 12), 'abcde', '', '[]', '[]', '', '0001-01-01 BC', '00:00:00',
   '1000-01-01 12:00:00 BC', '2024-02-29 23:59:59.999999+05:30', 'ffffffff-ffff-ffff-ffff-ffffffffffff',
   '0', 'sad', 1, '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}'),
  (5, true, 7, 7, 7, 7, '1e-45', '-1.7976931348623157e308', 99999999.9999999999,
   '-0.00000000000000000001', '1e100', 'tab	end', 'ünïcødé', '🎉', 'n', 'null', 'null',
   '\x', '5874897-12-31', '23:59:59.999999', '294246-12-31 23:59:59.999999',
   '-infinity', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '178000000 years', 'ok', 3,
   '{-1}', '{"\\"}', '{0.01}', '{}', '{"-infinity"}', '{"\\x"}', '{f}', '{}', '{ok}', '{0}', '{3}');
"#;

/// Snapshot rows (5), then 5 inserts, 2 updates, a key move (delete + update), 1 delete.
const WIRE_ROWS_WRITTEN: usize = 15;

const WIRE_COLS: [&str; 37] = [
    "id", "b", "i2", "i4", "i8", "o", "f4", "f8", "n38", "n76", "nu", "t", "vc", "c5", "nm", "j",
    "jb", "by", "d", "tm", "ts", "tz", "u", "iv", "e", "dm", "ia", "ta", "na", "jba", "tza", "bya",
    "ba", "ua", "ea", "nua", "da",
];

/// A second pipeline over the same WAL, on its own slot, publication and lake, that
/// reads text (`source.binary = false`); returns its lake.
fn init_text_pipeline(env: &TestEnv) -> std::path::PathBuf {
    let lake = env.dir().join("text_lake");
    let args = text_pipeline_args(env, &lake, "init");
    pgcdc_ok(env, &args.iter().map(String::as_str).collect::<Vec<_>>());
    lake
}

/// The text pipeline's arguments: its slot and publication are the env's names plus
/// `_txt` (tests share a database: a fixed name would be one slot for concurrent tests;
/// the env's prefix also has the slot dropped with the env).
fn text_pipeline_args(env: &TestEnv, lake: &std::path::Path, command: &str) -> Vec<String> {
    vec![
        format!("--set=source.slot={}_txt", env.slot),
        format!("--set=source.publication={}_txt", env.publication),
        "--set=source.binary=false".to_string(),
        format!("--set=destination.url={}", lake.display()),
        command.to_string(),
    ]
}

/// Runs the text pipeline and checks that its lake holds the same rows of `table` as
/// the binary run's (`rows` of them): same values, same change LSNs.
fn assert_text_pipeline_lands_the_same(
    env: &TestEnv,
    lake: &std::path::Path,
    table: &str,
    rows: usize,
) {
    let args = text_pipeline_args(env, lake, "run");
    let log = run_logged(env, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(log.contains("binary=false"), "{log}");
    let dir = |lake: &std::path::Path| lake.join("ds").join(table);
    // Every change has the same LSN in both; snapshot rows differ only in the snapshot's.
    let canonical = |lake: &std::path::Path| {
        let mut out: Vec<String> = crate::support::lake_rows(&dir(lake), None)
            .into_iter()
            .map(|mut r| {
                let snapshot = r.get("_pgcdc_op") == Some(&serde_json::json!("snapshot"));
                r.retain(|k, _| {
                    !k.starts_with("_pgcdc_")
                        || k == "_pgcdc_op"
                        || k == "_pgcdc_toast_unchanged"
                        || (!snapshot && (k == "_pgcdc_lsn" || k == "_pgcdc_commit_lsn"))
                });
                serde_json::Value::Object(r).to_string()
            })
            .collect();
        out.sort();
        out
    };
    let (binary, text) = (canonical(&env.lake_dir()), canonical(lake));
    assert_eq!(binary.len(), rows, "rows in the binary run's lake");
    assert_eq!(
        binary, text,
        "binary and text pgoutput landed different rows"
    );
}

/// `pgcdc run` with info logs; panics unless it succeeds; returns stderr.
fn run_logged(env: &TestEnv, args: &[&str]) -> String {
    let out = env.pgcdc_with_env(args, &[("RUST_LOG", "pgcdc=info")]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "pgcdc {args:?} failed ({}):\n{stderr}\nstdout:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// Binary pgoutput (`binary 'true'`) and the text protocol land identical rows, and both
/// equal the source; a type without a binary reader added mid-stream makes the run read
/// that stretch again in text, exactly.
#[test]
fn binary_and_text_pgoutput_land_the_same_values() {
    let env = TestEnv::new("wire");
    env.sql(WIRE);
    configure(&env, Some(&["wire"]), "", "");
    pgcdc_ok(&env, &["init"]);
    let text_lake = init_text_pipeline(&env);
    env.sql(
        "INSERT INTO wire SELECT id + 10, b, i2, i4, i8, o, f4, f8, n38, n76, nu, t, vc, c5, nm, j, jb, by,
                d, tm, ts, tz, u, iv, e, dm, ia, ta, na, jba, tza, bya, ba, ua, ea, nua, da FROM wire;
         UPDATE wire SET t = t || '!', nu = nu * 2, ia = ia || 9 WHERE id IN (12, 14);
         UPDATE wire SET id = 100 WHERE id = 15;
         DELETE FROM wire WHERE id = 13;",
    );
    let log = run_logged(&env, &["run"]);
    assert!(
        log.contains("binary=true"),
        "the run did not ask for binary values:\n{log}"
    );
    assert_replay_equals_source(&env, "wire", &["id"], &WIRE_COLS);
    assert_text_pipeline_lands_the_same(&env, &text_lake, "wire", WIRE_ROWS_WRITTEN);

    // point has no binary reader: added, used and dropped again before the run, so the
    // run starts in binary (the catalog shows no point), meets the Relation with it and
    // reads again in text.
    // A change before it is read twice (once in binary, uncommitted): counted once.
    env.sql(
        "INSERT INTO wire (id, t) VALUES (199, 'before the DDL');
         ALTER TABLE wire ADD COLUMN addr point;
         INSERT INTO wire (id, t, addr) VALUES (200, 'with a point', '(1.5,-2)');
         UPDATE wire SET addr = '(0,1e+300)' WHERE id = 2;
         ALTER TABLE wire DROP COLUMN addr;
         INSERT INTO wire (id, t, nu) VALUES (201, 'after the drop', 1.25);",
    );
    let out = env.pgcdc_with_env(&["run"], &[("RUST_LOG", "pgcdc=info")]);
    let (log, summary) = (
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout),
    );
    assert!(out.status.success(), "{log}");
    assert!(log.contains("in text"), "no fallback to text:\n{log}");
    assert!(summary.contains("replicated 4 changes"), "{summary}");
    assert_replay_equals_source(&env, "wire", &["id"], &WIRE_COLS);
    let addr: Vec<_> = crate::support::lake_rows(
        &env.lake_dir().join("ds").join("wire"),
        Some(&["id", "addr"]),
    )
    .into_iter()
    .filter(|r| r.get("addr").is_some_and(|a| !a.is_null()))
    .map(|r| r["addr"].clone())
    .collect();
    assert_eq!(
        addr,
        vec![
            serde_json::json!("(1.5,-2)"),
            serde_json::json!("(0,1e+300)")
        ]
    );
    // With a point column in the catalog a run reads text from the start.
    // (Another name: a column dropped and added again under its old name is a new column
    // to the source, but rows the stream has not touched since keep the old one's values.)
    env.sql("ALTER TABLE wire ADD COLUMN host point; INSERT INTO wire (id, host) VALUES (300, '(3,4)');");
    let log = run_logged(&env, &["run"]);
    assert!(
        log.contains("binary=false") && !log.contains("in text"),
        "{log}"
    );
    let mut cols = WIRE_COLS.to_vec();
    cols.push("host");
    assert_replay_equals_source(&env, "wire", &["id"], &cols);
}

const COMPOSITES: &str = r#"
CREATE TYPE pt AS (x int, y float8, label text, at timestamptz, amount numeric(12,2), tags text[]);
CREATE TYPE seg AS (lo pt, hi pt, note varchar(20));
CREATE TABLE comp (id int PRIMARY KEY, p pt, s seg, ps pt[]);
INSERT INTO comp VALUES
  (1, NULL, NULL, NULL),
  (2, ROW(NULL, NULL, NULL, NULL, NULL, NULL), ROW(NULL, NULL, NULL), '{}'),
  (3, ROW(1, 1.5, 'plain', '2024-01-01 00:00:00+00', 12.50, '{a,b}'),
      ROW(ROW(-1, '-Infinity', '', 'infinity', 0, '{}'), ROW(2, 'NaN', 'a "quoted" (paren), comma\back', NULL, -0.01, '{"x y",NULL}'), 'n'),
      ARRAY[ROW(1, 2, 'one', NULL, NULL, NULL)::pt, NULL, ROW(NULL, NULL, ' lead space', NULL, NULL, '{"{}"}')::pt]),
  (4, ROW(7, -0, E'tab\there\nnewline ☃ 🎉', '1000-01-01 00:00:00+00 BC', 99.99, ARRAY['', 'NULL']), NULL, ARRAY[NULL]::pt[]);
"#;

const COMPOSITE_COLS: [&str; 4] = ["id", "p", "s", "ps"];

/// Composite types land as Structs (nested, in arrays, NULL attributes and NULL values
/// apart), in the snapshot and the stream, binary and text alike, and read back as the
/// source's own record text.
#[test]
fn composite_types_land_as_structs() {
    let env = TestEnv::new("composites");
    env.sql(COMPOSITES);
    configure(&env, Some(&["comp"]), "", "");
    pgcdc_ok(&env, &["init"]);
    assert_replay_equals_source(&env, "comp", &["id"], &COMPOSITE_COLS);
    let text_lake = init_text_pipeline(&env);
    env.sql(
        "INSERT INTO comp SELECT id + 10, p, s, ps FROM comp;
         UPDATE comp SET p.label = 'changed', s.note = NULL WHERE id = 13;
         UPDATE comp SET ps = ps || ROW(9, 9, 'nine', now(), 9, '{9}')::pt WHERE id = 14;
         DELETE FROM comp WHERE id = 11;",
    );
    let log = run_logged(&env, &["run"]);
    assert!(log.contains("binary=true"), "{log}");
    assert_replay_equals_source(&env, "comp", &["id"], &COMPOSITE_COLS);
    // 4 snapshot rows, 4 inserts, 2 updates, 1 delete.
    assert_text_pipeline_lands_the_same(&env, &text_lake, "comp", 11);
    assert_parquet_types(
        &env.lake_dir().join("ds").join("comp"),
        &[
            ("p", "pa.struct([('x', pa.int32()), ('y', pa.float64()), ('label', pa.string()), ('at', pa.timestamp('us', tz='UTC')), ('amount', pa.decimal128(12, 2)), ('tags', pa.list_(pa.string()))])"),
        ],
    );
    // Rows written before ALTER TYPE … ADD ATTRIBUTE are read (from the WAL, with the
    // catalog of their time) with fewer attributes than the type has now: NULL there.
    env.sql(
        "INSERT INTO comp VALUES (30, ROW(30, 3, 'before', NULL, 3, '{}'), NULL, NULL);
         ALTER TYPE pt ADD ATTRIBUTE extra int;
         INSERT INTO comp VALUES (31, ROW(31, 3, 'after', NULL, 3, '{}', 7), NULL, NULL);
         UPDATE comp SET p.extra = 5 WHERE id = 3;",
    );
    pgcdc_ok(&env, &["run"]);
    let dir = env.lake_dir().join("ds").join("comp");
    let p_of = |id: i64| {
        crate::support::lake_rows(&dir, Some(&["id", "p"]))
            .into_iter()
            .rev()
            .find(|r| r["id"] == serde_json::json!(id.to_string()))
            .map(|r| r["p"].clone())
    };
    assert_eq!(p_of(30), Some(serde_json::json!("(30,3,before,,3.00,{},)")));
    assert_eq!(p_of(31), Some(serde_json::json!("(31,3,after,,3.00,{},7)")));
    // Rows last written before the ALTER keep the narrower Struct in their older files;
    // once rewritten, every row equals the source.
    env.sql("UPDATE comp SET s = s;");
    pgcdc_ok(&env, &["run"]);
    assert_replay_equals_source(&env, "comp", &["id"], &COMPOSITE_COLS);
}

/// Creates `ext` if this server has it; false (and says so) when it does not.
fn try_extension(env: &TestEnv, ext: &str) -> bool {
    let have = env.sql(&format!(
        "SELECT count(*) FROM pg_available_extensions WHERE name = '{ext}'"
    ));
    if have.trim() != "1" {
        eprintln!("skipping the {ext} part: this PostgreSQL has no {ext} extension");
        return false;
    }
    env.sql(&format!("CREATE EXTENSION {ext}"));
    true
}

/// hstore lands as a Map, pgvector's vector as a FixedSizeList<Float32> (a List without
/// a dimension), citext as text; in the snapshot and the stream, binary and text alike.
#[test]
fn extension_types_land_as_maps_vectors_and_text() {
    let env = TestEnv::new("exttypes");
    assert!(
        try_extension(&env, "hstore"),
        "hstore is in PostgreSQL's contrib"
    );
    let citext = try_extension(&env, "citext");
    let vector = try_extension(&env, "vector");
    let mut columns = vec!["id", "h", "hs"];
    let mut ddl = String::from("CREATE TABLE ext (id int PRIMARY KEY, h hstore, hs hstore[]");
    let mut values = vec![
        "1, NULL, NULL".to_string(),
        r#"2, '', '{}'"#.to_string(),
        r#"3, 'a=>1, b=>NULL, "k y"=>"v \"q\" \\ back", "☃"=>"🎉", ""=>""', ARRAY['x=>1'::hstore, NULL, '']"#.to_string(),
    ];
    if citext {
        columns.push("ci");
        ddl.push_str(", ci citext");
        for (v, c) in values.iter_mut().zip(["NULL", "''", "'MiXeD Case ☃'"]) {
            v.push_str(&format!(", {c}"));
        }
    }
    if vector {
        columns.extend(["v3", "vn"]);
        ddl.push_str(", v3 vector(3), vn vector");
        for (v, c) in values.iter_mut().zip([
            "NULL, NULL",
            "'[0,-0,1e-45]', '[1]'",
            "'[1.5,-2.25,3.4028235e+38]', '[0.1,0.2,0.3,0.4,1e-05]'",
        ]) {
            v.push_str(&format!(", {c}"));
        }
    }
    ddl.push_str(");\n");
    for v in &values {
        ddl.push_str(&format!("INSERT INTO ext VALUES ({v});\n"));
    }
    env.sql(&ddl);
    configure(&env, Some(&["ext"]), "", "");
    pgcdc_ok(&env, &["init"]);
    assert_replay_equals_source(&env, "ext", &["id"], &columns);
    let text_lake = init_text_pipeline(&env);
    let cols = columns[1..].join(", ");
    env.sql(&format!(
        "INSERT INTO ext SELECT id + 10, {cols} FROM ext;
         UPDATE ext SET h = h || 'added=>x'::hstore WHERE id = 13;
         DELETE FROM ext WHERE id = 11;"
    ));
    let log = run_logged(&env, &["run"]);
    assert!(log.contains("binary=true"), "{log}");
    assert_replay_equals_source(&env, "ext", &["id"], &columns);
    // 3 snapshot rows, 3 inserts, 1 update, 1 delete.
    assert_text_pipeline_lands_the_same(&env, &text_lake, "ext", 8);
    let mut types = vec![("h", "pa.map_(pa.string(), pa.string())")];
    if vector {
        types.push(("v3", "pa.list_(pa.float32(), 3)"));
        types.push(("vn", "pa.list_(pa.float32())"));
    }
    assert_parquet_types(&env.lake_dir().join("ds").join("ext"), &types);
}

pub const RANGES: &str = r#"
CREATE TYPE floatrange AS RANGE (subtype = float8);
CREATE TYPE textrange AS RANGE (subtype = text, collation = "C");
CREATE DOMAIN posrange AS int4range CHECK (NOT isempty(VALUE));
CREATE TABLE rng (
    id int PRIMARY KEY,
    i4 int4range, i8 int8range, nr numrange, dr daterange, tr tsrange, tz tstzrange,
    fr floatrange, xr textrange, pr posrange, ia int4range[],
    mr int4multirange, dm datemultirange, m3 int[][][]
);
INSERT INTO rng VALUES
  (1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (2, 'empty', 'empty', 'empty', 'empty', 'empty', 'empty', 'empty', 'empty', '[1,2)', '{}', '{}', '{}', '{}'),
  (3, '[1,5)', '(,9223372036854775806]', '(1.50,2.25]', '[-infinity,infinity)', '["2024-01-01 10:00:00",)',
      '("2024-01-01 10:00:00+00","2024-06-30 23:59:59.999999+00"]', '(-Infinity,1.5e300]',
      '["","a ""q"" (b), [c] \\ d")', '(,)', ARRAY['[1,3)'::int4range, NULL, 'empty', '(,)'],
      '{[1,3), [5,7), [10,)}', '{[2020-01-01,2020-02-01), [2021-01-01,infinity]}',
      '{{{1,NULL},{3,4}},{{5,6},{NULL,8}}}'),
  (4, '[-2147483648,2147483647)', '[-9223372036854775808,0]', '[-0.000001,)', '[4714-11-24 BC,5874897-12-30]',
      '(,"294246-12-31 23:59:59.999999")', '["1000-01-01 00:00:00+00 BC",)', '[-0,NaN]',
      '["☃ 🎉",)', '[7,8]', '{}', '{(,0), [2,4]}', '{}', '{{{9}}}');
"#;

pub const RANGE_COLS: [&str; 14] = [
    "id", "i4", "i8", "nr", "dr", "tr", "tz", "fr", "xr", "pr", "ia", "mr", "dm", "m3",
];

/// Range and multirange types land as Structs of their bounds and flags (Lists of them),
/// arrays declared with several dimensions as nested Lists; in the snapshot and the
/// stream, binary and text alike, equal to the source's own values.
#[test]
fn ranges_multiranges_and_nested_arrays_land_as_structs_and_lists() {
    let env = TestEnv::new("ranges");
    env.sql(RANGES);
    configure(&env, Some(&["rng"]), "", "");
    pgcdc_ok(&env, &["init"]);
    assert_replay_equals_source(&env, "rng", &["id"], &RANGE_COLS);
    let text_lake = init_text_pipeline(&env);
    env.sql(
        "INSERT INTO rng SELECT id + 10, i4, i8, nr, dr, tr, tz, fr, xr, pr, ia, mr, dm, m3 FROM rng;
         UPDATE rng SET i4 = int4range(lower(i4), upper(i4) + 10), mr = mr + '{[100,200)}' WHERE id = 13;
         UPDATE rng SET xr = textrange('x', 'y', '(]'), m3 = '{{{0}}}' WHERE id = 12;
         UPDATE rng SET tz = tstzrange(now(), NULL), ia = ia || '[9,10)'::int4range WHERE id = 14;
         DELETE FROM rng WHERE id = 11;",
    );
    let log = run_logged(&env, &["run"]);
    assert!(log.contains("binary=true"), "{log}");
    assert_replay_equals_source(&env, "rng", &["id"], &RANGE_COLS);
    // 4 snapshot rows, 4 inserts, 3 updates, 1 delete.
    assert_text_pipeline_lands_the_same(&env, &text_lake, "rng", 12);
    let range = |t: &str| {
        format!("pa.struct([pa.field('lower', {t}), pa.field('upper', {t}), pa.field('lower_inclusive', pa.bool_(), nullable=False), pa.field('upper_inclusive', pa.bool_(), nullable=False), pa.field('empty', pa.bool_(), nullable=False)])")
    };
    assert_parquet_types(
        &env.lake_dir().join("ds").join("rng"),
        &[
            ("i4", &range("pa.int32()")),
            ("tz", &range("pa.timestamp('us', tz='UTC')")),
            ("xr", &range("pa.string()")),
            ("pr", &range("pa.int32()")),
            ("ia", &format!("pa.list_({})", range("pa.int32()"))),
            (
                "mr",
                &format!("pa.list_(pa.field('range', {}))", range("pa.int32()")),
            ),
            (
                "dm",
                &format!("pa.list_(pa.field('range', {}))", range("pa.date32()")),
            ),
            ("m3", "pa.list_(pa.list_(pa.list_(pa.int32())))"),
        ],
    );
}

pub const NETWORK: &str = r#"
CREATE TABLE net (id int PRIMARY KEY, ip inet, cn cidr, mac macaddr, m8 macaddr8, bt bit(5), vb varbit, ips inet[],
                  cash money, cashes money[], tt timetz, tts timetz[]);
INSERT INTO net VALUES
  (1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (2, '10.1.2.3', '10.0.0.0/8', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:ff', B'10101', B'', '{}', 0, '{}', '00:00:00+00', '{}'),
  (3, '10.1.2.3/8', '0.0.0.0/0', 'ff:ff:ff:ff:ff:ff', '00:00:00:00:00:00:00:00', B'00000', B'1', '{NULL,::1}',
      '-92233720368547758.08', '{92233720368547758.07,NULL,-0.01}', '24:00:00-15:59:59', '{23:59:59.999999+15:59:59,NULL}'),
  (4, '::1', '2001:db8::/64', '00:00:00:00:00:00', 'ff:ff:ff:ff:ff:ff:ff:ff', B'11111', B'0000000011', '{10.0.0.1/32}',
      '1234567.89', '{0.5}', '12:34:56.5+05:30', '{01:02:03-00:00:01}'),
  (5, '::', '::/0', NULL, NULL, NULL, B'101010101010101010101', NULL, '-1', NULL, '01:02:03-00:00:01', NULL),
  (6, '2001:db8:0:1::1', '2001:db8:0:1::1/128', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (7, '1::2:0:0:3:4', '10.1.2.3/32', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (8, '::ffff:1.2.3.4', '::ffff:1.2.3.4/128', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (9, '::1.2.3.4/100', '::1.2.3.4/128', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (10, '1:0:3:4:5:6:7:0', '1:2:3:4:5:6:7:8/128', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (11, '::ffff:0.0.0.1', '::2/128', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (12, '0:0:0:0:0:1:0:0', '::ffff:0:0/96', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"#;

pub const NETWORK_COLS: [&str; 12] = [
    "id", "ip", "cn", "mac", "m8", "bt", "vb", "ips", "cash", "cashes", "tt", "tts",
];

/// inet, cidr, macaddr(8), bit and varbit have binary readers that write PostgreSQL's
/// own text, money reads as a decimal and timetz as its time and offset: a session with them reads binary, and the
/// lake equals the source, over edge values and two thousand generated addresses (IPv6
/// with random runs of zero words, IPv4-mapped and -compatible, random prefixes) and
/// amounts, like the text protocol's.
#[test]
fn network_money_timetz_and_bit_types_read_binary_exactly() {
    let env = TestEnv::new("nettypes");
    env.sql(NETWORK);
    configure(&env, Some(&["net"]), "", "");
    pgcdc_ok(&env, &["init"]);
    assert_replay_equals_source(&env, "net", &["id"], &NETWORK_COLS);
    let text_lake = init_text_pipeline(&env);
    env.sql(
        "INSERT INTO net (id, ip, cn, mac, m8, bt, vb, ips, cash, cashes, tt, tts)
         SELECT 100 + g, a, network(set_masklen(a, (random() * CASE WHEN family(a) = 4 THEN 32 ELSE 128 END)::int))::cidr,
                substr(md5(g::text), 1, 12)::macaddr, substr(md5(g::text), 1, 16)::macaddr8,
                (g % 32)::bit(5), ('x' || substr(md5(g::text), 1, g % 9))::varbit, ARRAY[a, NULL],
                ((random() - 0.5) * 10 ^ (g % 18))::numeric(20,2)::money, ARRAY[(g / 7.0)::numeric(10,2)::money],
                (('00:00'::time + random() * interval '24 hours')::text || CASE WHEN g % 2 = 0 THEN '+' ELSE '-' END
                   || ((random() * 15)::int) || ':' || lpad(((random() * 59)::int)::text, 2, '0')
                   || CASE WHEN g % 7 = 0 THEN ':' || lpad(((random() * 59)::int)::text, 2, '0') ELSE '' END)::timetz,
                ARRAY[('12:00:00+' || (g % 16))::timetz]
           FROM (SELECT g, (CASE g % 5
                     WHEN 0 THEN (SELECT string_agg(CASE WHEN random() < 0.6 THEN '0' ELSE to_hex((random() * 65535)::int) END, ':')
                                    FROM generate_series(1, 8) WHERE g = g)
                     WHEN 1 THEN '::ffff:' || (random() * 255)::int || '.' || (random() * 255)::int || '.0.' || (random() * 255)::int
                     WHEN 2 THEN '::' || (random() * 255)::int || '.' || (random() * 255)::int || '.' || (random() * 255)::int || '.' || (random() * 255)::int
                     WHEN 3 THEN (random() * 255)::int || '.' || (random() * 255)::int || '.' || (random() * 255)::int || '.' || (random() * 255)::int
                     ELSE (SELECT string_agg(CASE WHEN random() < 0.3 THEN '0' ELSE to_hex((random() * 65535)::int) END, ':')
                             FROM generate_series(1, 8) WHERE g = g)
                   END || '/' || CASE WHEN g % 5 = 3 THEN (random() * 32)::int ELSE (random() * 128)::int END)::inet AS a
                 FROM generate_series(1, 2000) g) s;
         UPDATE net SET ip = '::', vb = B'0', cash = cash + 1::money WHERE id = 2;
         DELETE FROM net WHERE id = 3;",
    );
    let log = run_logged(&env, &["run"]);
    assert!(log.contains("binary=true"), "{log}");
    assert_replay_equals_source(&env, "net", &["id"], &NETWORK_COLS);
    // 12 snapshot rows, 2000 inserts, 1 update, 1 delete.
    assert_text_pipeline_lands_the_same(&env, &text_lake, "net", 2014);
}
