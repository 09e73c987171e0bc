//! Micro-benchmarks of the source's hot paths, on one core: pgoutput message decoding
//! (messages/s; target ≥ 1M/s) and text and binary value decoding into Arrow builders
//! (values/s; numeric is read as text, its binary form is not used). Run: `cargo bench -p pgcdc-source --bench decode`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use pgcdc_core::{ValueKind, ValuePolicy};
use pgcdc_source::pgoutput::{self, DecodeOptions, Decoder, Message};
use pgcdc_source::values::ColumnBuilder;

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

fn binary_values(c: &mut Criterion) {
    let policy = ValuePolicy::default();
    let n = 10_000i64;
    let cases: Vec<(&str, ValueKind, Vec<Vec<u8>>)> = vec![
        (
            "int8",
            ValueKind::Int64,
            (0..n).map(|i| (i * 7919).to_be_bytes().to_vec()).collect(),
        ),
        (
            "float8",
            ValueKind::Float64,
            (0..n)
                .map(|i| (i as f64 / 3.0).to_bits().to_be_bytes().to_vec())
                .collect(),
        ),
        (
            "timestamptz",
            ValueKind::TimestampTz,
            (0..n)
                .map(|i| {
                    (757_382_400_000_000i64 + i * 1_000_001)
                        .to_be_bytes()
                        .to_vec()
                })
                .collect(),
        ),
    ];
    let mut g = c.benchmark_group("binary_values");
    g.throughput(Throughput::Elements(n as u64));
    for (name, kind, values) in cases {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut builder = ColumnBuilder::new(kind.clone(), values.len());
                for v in &values {
                    if let Err(e) = builder.append_binary(v, &policy) {
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
