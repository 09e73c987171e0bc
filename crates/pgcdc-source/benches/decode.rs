//! Micro-benchmarks of the source's hot paths, on one core: pgoutput message decoding
//! (messages/s; target ≥ 1M/s) and text and binary value decoding into Arrow builders
//! (values/s; the same values in both, binary as binary pgoutput sends them). Run: `cargo bench -p pgcdc-source --bench decode`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use pgcdc_core::{ValueKind, ValuePolicy};
use pgcdc_source::pgoutput::{self, DecodeOptions, Decoder, Message};
use pgcdc_source::values::{numeric_send, BinaryForm, ColumnBuilder};

/// An XLogData frame carrying an Insert of the benchmark's `orders` row (6 text columns).
fn insert_frame(id: i64) -> Vec<u8> {
    let cols: [String; 6] = [
        id.to_string(),
        (id % 1000).to_string(),
        format!("order note {id}"),
        format!("{}.{:02}", id % 10000, id % 100),
        "2024-01-01 00:00:01+00".into(),
        format!("{{\"k\": {id}, \"tags\": [\"a\", \"b\"]}}"),
    ];
    let mut m = vec![b'w'];
    m.extend(1u64.to_be_bytes());
    m.extend(2u64.to_be_bytes());
    m.extend(0i64.to_be_bytes());
    m.push(b'I');
    m.extend(16385u32.to_be_bytes());
    m.push(b'N');
    m.extend((cols.len() as u16).to_be_bytes());
    for c in &cols {
        m.push(b't');
        m.extend((c.len() as i32).to_be_bytes());
        m.extend(c.as_bytes());
    }
    m
}

fn decode(c: &mut Criterion) {
    let frames: Vec<Vec<u8>> = (0..1000).map(insert_frame).collect();
    let mut g = c.benchmark_group("pgoutput");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.bench_function("insert_6_text_columns", |b| {
        let mut decoder = Decoder::new(DecodeOptions {
            protocol_version: 3,
            streaming_parallel: false,
        });
        b.iter(|| {
            let mut cells = 0usize;
            for f in &frames {
                let Ok(pgoutput::Frame::XLogData { data, .. }) = pgoutput::parse_frame(f) else {
                    panic!("not a frame");
                };
                if let Ok(Message::Insert { new, .. }) = decoder.decode(data) {
                    cells += new.iter().count();
                }
            }
            black_box(cells)
        })
    });
    g.finish();
}

fn text_values(c: &mut Criterion) {
    let policy = ValuePolicy::default();
    let n = 10_000;
    let cases: Vec<(&str, ValueKind, Vec<String>)> = vec![
        (
            "int8",
            ValueKind::Int64,
            (0..n).map(|i| (i * 7919).to_string()).collect(),
        ),
        (
            "numeric(12,2)",
            ValueKind::Decimal128 {
                precision: 12,
                scale: 2,
            },
            (0..n)
                .map(|i| format!("{}.{:02}", i * 13, i % 100))
                .collect(),
        ),
        (
            "timestamptz",
            ValueKind::TimestampTz,
            (0..n)
                .map(|i| {
                    format!(
                        "2024-01-{:02} 10:{:02}:{:02}.123456+00",
                        i % 28 + 1,
                        i % 60,
                        i % 60
                    )
                })
                .collect(),
        ),
        (
            "text",
            ValueKind::Text,
            (0..n).map(|i| format!("order note {i}")).collect(),
        ),
        (
            "jsonb",
            ValueKind::Json,
            (0..n)
                .map(|i| format!("{{\"k\": {i}, \"tags\": [\"a\", \"b\"]}}"))
                .collect(),
        ),
        (
            "int4[]",
            ValueKind::List {
                element: Box::new(ValueKind::Int32),
            },
            (0..n).map(|i| format!("{{{i},{},NULL}}", i + 1)).collect(),
        ),
    ];
    let mut g = c.benchmark_group("text_values");
    g.throughput(Throughput::Elements(n as u64));
    for (name, kind, values) in cases {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut builder = ColumnBuilder::new(kind.clone(), values.len());
                for v in &values {
                    builder
                        .append_text(v.as_bytes(), &policy)
                        .expect("valid value");
                }
                black_box(builder.finish())
            })
        });
    }
    g.finish();
}

/// array_send of a one-dimensional int4 array (None = NULL element).
fn int4_array_send(elements: &[Option<i32>]) -> Vec<u8> {
    let mut v = Vec::new();
    for h in [1i32, 1, 23, elements.len() as i32, 1] {
        v.extend(h.to_be_bytes());
    }
    for e in elements {
        match e {
            Some(i) => {
                v.extend(4i32.to_be_bytes());
                v.extend(i.to_be_bytes());
            }
            None => v.extend((-1i32).to_be_bytes()),
        }
    }
    v
}

/// The same values as `text_values` (and float8), in their binary (send) forms, read
/// through each column's `BinaryForm` as binary pgoutput delivers them.
fn binary_values(c: &mut Criterion) {
    let policy = ValuePolicy::default();
    let n = 10_000i64;
    let cases: Vec<(&str, ValueKind, BinaryForm, Vec<Vec<u8>>)> = vec![
        (
            "int8",
            ValueKind::Int64,
            BinaryForm::Native,
            (0..n).map(|i| (i * 7919).to_be_bytes().to_vec()).collect(),
        ),
        (
            "numeric(12,2)",
            ValueKind::Decimal128 {
                precision: 12,
                scale: 2,
            },
            BinaryForm::Numeric,
            (0..n)
                .map(|i| numeric_send(&format!("{}.{:02}", i * 13, i % 100)).expect("a decimal"))
                .collect(),
        ),
        (
            "timestamptz",
            ValueKind::TimestampTz,
            BinaryForm::Native,
            (0..n)
                .map(|i| {
                    (757_382_400_000_000i64 + i * 1_000_001)
                        .to_be_bytes()
                        .to_vec()
                })
                .collect(),
        ),
        (
            "text",
            ValueKind::Text,
            BinaryForm::Text,
            (0..n)
                .map(|i| format!("order note {i}").into_bytes())
                .collect(),
        ),
        (
            "jsonb",
            ValueKind::Json,
            BinaryForm::Jsonb,
            (0..n)
                .map(|i| format!("\x01{{\"k\": {i}, \"tags\": [\"a\", \"b\"]}}").into_bytes())
                .collect(),
        ),
        (
            "int4[]",
            ValueKind::List {
                element: Box::new(ValueKind::Int32),
            },
            BinaryForm::Array(Box::new(BinaryForm::Native)),
            (0..n as i32)
                .map(|i| int4_array_send(&[Some(i), Some(i + 1), None]))
                .collect(),
        ),
        (
            "float8",
            ValueKind::Float64,
            BinaryForm::Native,
            (0..n)
                .map(|i| (i as f64 / 3.0).to_bits().to_be_bytes().to_vec())
                .collect(),
        ),
    ];
    let mut g = c.benchmark_group("binary_values");
    g.throughput(Throughput::Elements(n as u64));
    for (name, kind, form, values) in cases {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut builder = ColumnBuilder::new(kind.clone(), values.len());
                for v in &values {
                    if let Err(e) = builder.append_send(&form, v, &policy) {
                        panic!("{name}: {e:?}");
                    }
                }
                black_box(builder.finish())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, decode, text_values, binary_values);
criterion_main!(benches);
