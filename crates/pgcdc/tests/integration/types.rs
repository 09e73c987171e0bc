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
           DELETE FROM arr WHERE id = 4;"#,
    );
    pgcdc_ok(&env, &["run"]);
    assert_replay_equals_source(&env, "arr", &["id"], &COLS);
    // The independent reader sees real lists (and text for the declared 2-D column).
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
            ("m2", "pa.string()"),
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
