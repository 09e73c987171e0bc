//! Text and binary value parsers into Arrow builders, for every value kind, on arbitrary
//! bytes (binary ones in every `BinaryForm`): a value either appends exactly one entry or
//! is an error; nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgcdc_core::{InfinityPolicy, StructField, ValueKind, ValuePolicy};
use pgcdc_source::values::{BinaryForm, ColumnBuilder};

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
        ValueKind::Money { scale: 2 },
        ValueKind::Text,
        ValueKind::Json,
        ValueKind::Bytea,
        ValueKind::Date,
        ValueKind::Time,
        ValueKind::Timestamp,
        ValueKind::TimestampTz,
        ValueKind::Uuid,
        ValueKind::Interval,
        ValueKind::TimeTz,
    ];
    let mut all = scalar.clone();
    all.extend(scalar.iter().cloned().map(|k| ValueKind::List { element: Box::new(k) }));
    // Composites: two attributes of each scalar kind pair, and one nested.
    let pair = |a: &ValueKind, b: &ValueKind| ValueKind::Struct {
        fields: vec![
            StructField { name: "a".into(), kind: a.clone() },
            StructField { name: "b".into(), kind: b.clone() },
        ],
    };
    for w in scalar.windows(2) {
        all.push(pair(&w[0], &w[1]));
    }
    all.push(pair(&pair(&ValueKind::Int32, &ValueKind::Text), &ValueKind::List { element: Box::new(ValueKind::Text) }));
    // Ranges and multiranges of each scalar kind; 2-D and 3-D arrays.
    for k in &scalar {
        all.push(ValueKind::Range { element: Box::new(k.clone()) });
        all.push(ValueKind::Multirange { element: Box::new(k.clone()) });
    }
    for n in [2, 3] {
        all.push(ValueKind::array_of(ValueKind::Int32, n, &ValuePolicy::default()));
        all.push(ValueKind::array_of(ValueKind::Text, n, &ValuePolicy::default()));
    }
    all.extend([
        ValueKind::Hstore,
        ValueKind::Vector { dim: Some(3) },
        ValueKind::Vector { dim: None },
    ]);
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
    // Binary values in every form (as binary COPY and binary pgoutput send them), the
    // forms that do not fit the kind included: those must be errors too.
    let scalar = [BinaryForm::Native, BinaryForm::Text, BinaryForm::Jsonb, BinaryForm::Numeric];
    let pick = usize::from(mode >> 2) % 23;
    let form = match scalar.get(pick) {
        Some(f) => f.clone(),
        None if pick < 8 => BinaryForm::Array(Box::new(scalar[pick % 4].clone())),
        None if pick == 8 => BinaryForm::Record(vec![scalar[1].clone(), scalar[3].clone()]),
        None if pick == 10 => BinaryForm::Hstore,
        None if pick == 11 => BinaryForm::Vector,
        None if (12..16).contains(&pick) => BinaryForm::Range(Box::new(scalar[pick % 4].clone())),
        None if (16..20).contains(&pick) => BinaryForm::Multirange(Box::new(scalar[pick % 4].clone())),
        None if pick == 20 => BinaryForm::Inet,
        None if pick == 21 => BinaryForm::MacAddr,
        None if pick == 22 => BinaryForm::Bits,
        None => BinaryForm::Record(vec![BinaryForm::Record(vec![BinaryForm::Native, BinaryForm::Text]), BinaryForm::Array(Box::new(BinaryForm::Text))]),
    };
    let ok = if mode & 1 == 1 {
        b.append_send(&form, value, &policy).is_ok()
    } else {
        b.append_text(value, &policy).is_ok()
    };
    if ok {
        assert_eq!(b.len(), 1);
        let a = b.finish();
        assert_eq!(a.len(), 1);
        assert_eq!(a.data_type(), &kind.arrow_type());
    } else if matches!(kind, ValueKind::Struct { .. } | ValueKind::Range { .. }) {
        // A failed composite or range is a NULL row, its attributes padded to it (or nothing, for
        // a composite Arrow cannot hold).
        let n = b.len();
        assert!(n <= 1);
        assert_eq!(b.finish().len(), n);
    } else if !matches!(kind, ValueKind::List { .. } | ValueKind::Multirange { .. }) {
        // A failed append leaves scalar builders unchanged.
        assert_eq!(b.len(), 0);
    }
});
