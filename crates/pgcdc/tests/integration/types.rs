//! Value fidelity beyond the base types: arrays as Arrow lists, in the snapshot and the
//! stream, read back by pyarrow and compared with PostgreSQL's own text output.

use crate::replication::{assert_replay_equals_source, configure, pgcdc_ok};
use crate::support::TestEnv;

const ARRAYS: &str = r#"
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

const COLS: [&str; 13] = [
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
    let check = std::process::Command::new(crate::support::python())
        .arg("-c")
        .arg(format!(
            r#"import glob, pyarrow as pa, pyarrow.parquet as pq
for f in glob.glob('{dir}/*.parquet'):
    s = pq.read_schema(f)
    assert s.field('ia').type == pa.list_(pa.int32()), s.field('ia').type
    assert s.field('ta').type == pa.list_(pa.string()), s.field('ta').type
    assert s.field('na').type == pa.list_(pa.decimal128(10, 2)), s.field('na').type
    assert s.field('ba').type == pa.list_(pa.bool_()), s.field('ba').type
    assert pa.types.is_timestamp(s.field('tsa').type.value_type), s.field('tsa').type
    assert s.field('da').type == pa.list_(pa.int32()), s.field('da').type
    assert s.field('m2').type == pa.string(), s.field('m2').type
"#,
            dir = dir.display()
        ))
        .output()
        .expect("python");
    assert!(
        check.status.success(),
        "array columns are not lists: {}",
        String::from_utf8_lossy(&check.stderr)
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
