//! The independent reader (lake.py) itself: its own tests (test_lake.py), and a cross-check
//! against the server: values PostgreSQL prints are stored through pyarrow in the Arrow
//! encoding pgcdc uses (days / microseconds since 1970, IEEE floats, decimals) and must be
//! rendered back by lake.py as exactly the same text.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{lake_rows, python, TestEnv};

#[test]
fn lake_py_self_tests_pass() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/test_lake.py");
    let out = Command::new(python())
        .arg(&script)
        .output()
        .expect("run test_lake.py");
    assert!(
        out.status.success(),
        "{} {} failed:\n{}{}",
        python(),
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes `<dir>/<kind>/1.0.parquet` per kind: one column `v` of the kind's Arrow type,
/// from [kind, raw, text] rows (raw: days, microseconds, or the float/decimal text).
const WRITER: &str = r#"
import decimal, json, os, sys
import pyarrow as pa, pyarrow.parquet as pq
out = sys.argv[1]
by_kind = {}
for line in sys.stdin:
    if line.strip():
        kind, raw, _ = json.loads(line)
        by_kind.setdefault(kind, []).append(raw)
types = {
    "date": lambda v: pa.array([int(x) for x in v], pa.int32()).cast(pa.date32()),
    "timestamp": lambda v: pa.array([int(x) for x in v], pa.int64()).cast(pa.timestamp("us")),
    "timestamptz": lambda v: pa.array([int(x) for x in v], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
    "time": lambda v: pa.array([int(x) for x in v], pa.int64()).cast(pa.time64("us")),
    "float8": lambda v: pa.array([float(x) for x in v], pa.float64()),
    "float4": lambda v: pa.array([float(x) for x in v], pa.float32()),
    "numeric": lambda v: pa.array([decimal.Decimal(x) for x in v], pa.decimal128(30, 4)),
}
for kind, raw in by_kind.items():
    os.makedirs(os.path.join(out, kind))
    t = pa.table({"v": types[kind](raw), "_pgcdc_lsn": pa.array(range(len(raw)), pa.int64()), "_pgcdc_op": ["insert"] * len(raw)})
    pq.write_table(t, os.path.join(out, kind, "1.0.parquet"))
"#;

#[test]
fn lake_py_renders_what_postgres_prints() {
    let env = TestEnv::new("lake_reader_vs_pg");
    let micros =
        |expr: &str| format!("(extract(epoch FROM {expr}) * 1000000)::numeric(30,0)::text");
    // Every query yields json [kind, raw Arrow value as text, PostgreSQL's text output].
    let queries = [
        "SELECT json_build_array('date', (d - date '1970-01-01')::text, format('%s', d)) FROM unnest(ARRAY[
           '1970-01-01','1969-12-31','2024-02-29','1900-03-01','2000-02-29','0001-01-01','0001-12-31 BC',
           '0002-03-01 BC','0044-03-15 BC','4714-11-24 BC','9999-12-31','10000-01-01','5874897-12-31']::date[]) d"
            .to_string(),
        format!(
            "SELECT json_build_array('timestamp', {}, format('%s', t)) FROM unnest(ARRAY[
               '1970-01-01 00:00:00','2024-01-01 10:00:00.5','1999-12-31 23:59:59.999999','1969-07-20 20:17:40.000001',
               '0001-01-01 00:00:00','0001-12-31 23:59:59.999999 BC','0068-03-15 12:00:00.5 BC','4713-01-01 00:00:00 BC',
               '294246-12-31 23:59:59.999999','1900-02-28 01:02:03.04']::timestamp[]) t",
            micros("t")
        ),
        format!(
            "SELECT json_build_array('timestamptz', {}, format('%s', t)) FROM unnest(ARRAY[
               '1970-01-01 00:00:00+00','2024-06-30 23:59:60+02','1999-12-31 23:59:59.999999-08','0010-05-06 07:08:09.1+00 BC',
               '0001-01-01 00:00:00+00']::timestamptz[]) t",
            micros("t")
        ),
        format!(
            "SELECT json_build_array('time', {}, format('%s', t)) FROM unnest(ARRAY[
               '00:00','24:00:00','12:34:56.789','23:59:59.999999','00:00:00.000001','10:00:00.1']::time[]) t",
            micros("t")
        ),
        // Shortest round-trip floats over all magnitudes (notation switches at 1e-4 and at
        // 1e15 / 1e6, halfway ties above 2^53), from a fixed seed.
        "SELECT setseed(0.25); SELECT json_build_array('float8', x::text, x::text) FROM (
           SELECT ((random() - 0.5) * 10 ^ (random() * 80 - 40))::float8 AS x FROM generate_series(1, 400)
           UNION ALL SELECT ((random() - 0.5) * 10 ^ (15 + random() * 4))::float8 FROM generate_series(1, 200)
           UNION ALL SELECT unnest(ARRAY['0','-0','1','-1','0.1','1.5','100','1e-4','1e-5','123456789012345','1e15',
             '1234567890123456','1e16','7.333843033019599e17','1e300','-2.5e-300','5e-324','2.2250738585072014e-308',
             '1.7976931348623157e308','Infinity','-Infinity','NaN']::float8[])
         ) s"
            .to_string(),
        "SELECT setseed(0.75); SELECT json_build_array('float4', x::text, x::text) FROM (
           SELECT ((random() - 0.5) * 10 ^ (random() * 65 - 35))::float4 AS x FROM generate_series(1, 400)
           UNION ALL SELECT unnest(ARRAY['0','-0','0.1','1.5','123456','1e6','1234567','-1.5783421e8','1e-5','3.4e-38',
             '1e-45','3.4028235e38','Infinity','NaN']::float4[])
         ) s"
            .to_string(),
        "SELECT json_build_array('numeric', x::text, x::text) FROM unnest(ARRAY[
           '0','1.5','-0.0001','12345678901234567890.1234','-7']::numeric(30,4)[]) x"
            .to_string(),
    ];
    let mut expected: Vec<(String, String, String)> = Vec::new();
    for q in &queries {
        for row in env.rows(q) {
            let [kind, raw, text]: [Option<String>; 3] = row.try_into().expect("3 values");
            expected.push((kind.unwrap(), raw.unwrap(), text.unwrap()));
        }
    }
    let lake = env.lake_dir();
    let mut child = Command::new(python())
        .arg("-c")
        .arg(WRITER)
        .arg(&lake)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python");
    {
        let mut stdin = child.stdin.take().unwrap();
        for (k, r, t) in &expected {
            writeln!(stdin, "{}", serde_json::json!([k, r, t])).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "writing parquet: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut mismatches = Vec::new();
    let mut checked = 0;
    for kind in [
        "date",
        "timestamp",
        "timestamptz",
        "time",
        "float8",
        "float4",
        "numeric",
    ] {
        let want: Vec<&(String, String, String)> =
            expected.iter().filter(|(k, _, _)| k == kind).collect();
        let got = lake_rows(&lake.join(kind), None);
        assert_eq!(got.len(), want.len(), "{kind}: row count");
        for ((_, raw, text), row) in want.iter().zip(&got) {
            checked += 1;
            if row["v"].as_str() != Some(text.as_str()) {
                mismatches.push(format!(
                    "{kind} raw {raw}: PostgreSQL {text:?}, lake.py {}",
                    row["v"]
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {checked} values differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert!(checked > 1000, "only {checked} values checked");
}
