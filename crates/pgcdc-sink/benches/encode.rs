//! Micro-benchmark of Parquet encoding (rows/s) of the benchmark's `orders` changelog
//! rows, zstd as the files destination writes them. Run:
//! `cargo bench -p pgcdc-sink --bench encode`.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, Decimal128Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

fn orders(n: i64) -> RecordBatch {
    let ids = 0..n;
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(Int64Array::from_iter_values(ids.clone()))),
        (
            "customer",
            Arc::new(Int32Array::from_iter_values(
                ids.clone().map(|i| (i % 1000) as i32),
            )),
        ),
        (
            "note",
            Arc::new(StringArray::from_iter_values(
                ids.clone().map(|i| format!("order note {i}")),
            )),
        ),
        (
            "amount",
            Arc::new(
                Decimal128Array::from_iter_values(ids.clone().map(|i| (i % 10000) as i128))
                    .with_precision_and_scale(12, 2)
                    .expect("decimal"),
            ),
        ),
        (
            "placed",
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    ids.clone().map(|i| 1_704_067_200_000_000 + i * 1_000_000),
                )
                .with_timezone("UTC"),
            ),
        ),
        (
            "attrs",
            Arc::new(StringArray::from_iter_values(
                ids.clone()
                    .map(|i| format!("{{\"k\": {i}, \"tags\": [\"a\", \"b\"]}}")),
            )),
        ),
        (
            "_pgcdc_lsn",
            Arc::new(Int64Array::from_iter_values(
                ids.clone().map(|i| 1000 + i * 80),
            )),
        ),
        (
            "_pgcdc_op",
            Arc::new(StringArray::from_iter_values(ids.map(|i| {
                if i % 8 < 5 {
                    "insert"
                } else {
                    "update"
                }
            }))),
        ),
    ];
    RecordBatch::try_from_iter(cols).expect("batch")
}

fn encode(c: &mut Criterion) {
    let batch = orders(100_000);
    let mut g = c.benchmark_group("parquet");
    g.throughput(Throughput::Elements(batch.num_rows() as u64));
    g.sample_size(10);
    for (name, compression) in [
        ("zstd", Compression::ZSTD(ZstdLevel::default())),
        ("uncompressed", Compression::UNCOMPRESSED),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let props = WriterProperties::builder()
                    .set_compression(compression)
                    .build();
                let mut out = Vec::with_capacity(8 << 20);
                let mut w =
                    ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).expect("writer");
                w.write(&batch).expect("write");
                w.close().expect("close");
                black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
