//! Text and binary value parsers into Arrow builders, for every value kind, on arbitrary
//! bytes: a value either appends exactly one entry or is an error; nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgcdc_core::{InfinityPolicy, ValueKind, ValuePolicy};
use pgcdc_source::values::ColumnBuilder;

fn kinds() -> Vec<ValueKind> {
    let scalar = vec![
        ValueKind::Bool,
        ValueKind::Int16,
        ValueKind::Int32,
        ValueKind::Int64,
        ValueKind::UInt32,
        ValueKind::Float32,
        ValueKind::Float64,
        ValueKind::Decimal128 { precision: 12, scale: 2 },
        ValueKind::Decimal128 { precision: 38, scale: 0 },
        ValueKind::Decimal256 { precision: 60, scale: 10 },
        ValueKind::Decimal128 { precision: 0, scale: 0 },
        ValueKind::NumericString,
        ValueKind::NumericFloat,
        ValueKind::Text,
        ValueKind::Json,
        ValueKind::Bytea,
        ValueKind::Date,
        ValueKind::Time,
        ValueKind::Timestamp,
        ValueKind::TimestampTz,
        ValueKind::Uuid,
        ValueKind::Interval,
    ];
    let mut all = scalar.clone();
    all.extend(scalar.into_iter().map(|k| ValueKind::List { element: Box::new(k) }));
    all
}

fuzz_target!(|data: &[u8]| {
    let [kind, mode, value @ ..] = data else {
        return;
    };
    let kinds = kinds();
    let kind = kinds[usize::from(*kind) % kinds.len()].clone();
    let policy = ValuePolicy {
        infinity: if mode & 2 == 0 { InfinityPolicy::Clamp } else { InfinityPolicy::Error },
        ..ValuePolicy::default()
    };
    let mut b = ColumnBuilder::new(kind.clone(), 4);
    let binary = mode & 1 == 1 && ColumnBuilder::binary_kind(&kind);
    let ok = if binary {
        b.append_binary(value, &policy).is_ok()
    } else {
        b.append_text(value, &policy).is_ok()
    };
    if ok {
        assert_eq!(b.len(), 1);
        let a = b.finish();
        assert_eq!(a.len(), 1);
        assert_eq!(a.data_type(), &kind.arrow_type());
    } else if !matches!(kind, ValueKind::List { .. }) {
        // A failed append leaves scalar builders unchanged.
        assert_eq!(b.len(), 0);
    }
});
