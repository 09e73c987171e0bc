//! Edge values of every kind, each policy, malformed input, expectations checked
//! against PostgreSQL 15, and property tests (no panics; round trips through a
//! test-only formatter that writes what PostgreSQL writes), one file per type family.

mod arrays;
mod numbers;
mod properties;
mod texts;
mod times;

use super::*;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Time64MicrosecondType, TimestampMicrosecondType, UInt32Type,
};
use arrow_array::Array;
use arrow_buffer::i256;
use pgcdc_core::{InfinityPolicy, NumericNanPolicy};
use proptest::prelude::*;

fn pol() -> ValuePolicy {
    ValuePolicy::default()
}

fn with_infinity(infinity: InfinityPolicy) -> ValuePolicy {
    ValuePolicy { infinity, ..pol() }
}

fn with_nan(numeric_nan: NumericNanPolicy) -> ValuePolicy {
    ValuePolicy {
        numeric_nan,
        ..pol()
    }
}

/// One value through a fresh builder; checks the array type and length.
fn one_with(kind: ValueKind, text: &[u8], policy: &ValuePolicy) -> Result<ArrayRef, ValueError> {
    let mut b = ColumnBuilder::new(kind.clone(), 1);
    let r = b.append_text(text, policy);
    assert_eq!(
        b.len(),
        usize::from(r.is_ok()),
        "a failed append appends nothing"
    );
    r?;
    let a = b.finish();
    assert_eq!(a.data_type(), &kind.arrow_type());
    assert_eq!(a.len(), 1);
    Ok(a)
}

fn one(kind: ValueKind, text: &str) -> Result<ArrayRef, ValueError> {
    one_with(kind.clone(), text.as_bytes(), &pol())
}

fn int16(t: &str) -> Result<i16, ValueError> {
    one(ValueKind::Int16, t).map(|a| a.as_primitive::<Int16Type>().value(0))
}
fn int32(t: &str) -> Result<i32, ValueError> {
    one(ValueKind::Int32, t).map(|a| a.as_primitive::<Int32Type>().value(0))
}
fn int64(t: &str) -> Result<i64, ValueError> {
    one(ValueKind::Int64, t).map(|a| a.as_primitive::<Int64Type>().value(0))
}
fn oid(t: &str) -> Result<u32, ValueError> {
    one(ValueKind::UInt32, t).map(|a| a.as_primitive::<UInt32Type>().value(0))
}
fn f32v(t: &str) -> Result<f32, ValueError> {
    one(ValueKind::Float32, t).map(|a| a.as_primitive::<Float32Type>().value(0))
}
fn f64v(t: &str) -> Result<f64, ValueError> {
    one(ValueKind::Float64, t).map(|a| a.as_primitive::<Float64Type>().value(0))
}
fn dec(p: u8, s: i8, t: &str) -> Result<i128, ValueError> {
    one(
        ValueKind::Decimal128 {
            precision: p,
            scale: s,
        },
        t,
    )
    .map(|a| a.as_primitive::<Decimal128Type>().value(0))
}
fn dec256(p: u8, s: i8, t: &str) -> Result<i256, ValueError> {
    one(
        ValueKind::Decimal256 {
            precision: p,
            scale: s,
        },
        t,
    )
    .map(|a| a.as_primitive::<Decimal256Type>().value(0))
}
fn date(t: &str) -> Result<i32, ValueError> {
    one(ValueKind::Date, t).map(|a| a.as_primitive::<Date32Type>().value(0))
}
fn time(t: &str) -> Result<i64, ValueError> {
    one(ValueKind::Time, t).map(|a| a.as_primitive::<Time64MicrosecondType>().value(0))
}
fn ts(t: &str) -> Result<i64, ValueError> {
    one(ValueKind::Timestamp, t).map(|a| a.as_primitive::<TimestampMicrosecondType>().value(0))
}
fn tstz(t: &str) -> Result<i64, ValueError> {
    one(ValueKind::TimestampTz, t).map(|a| a.as_primitive::<TimestampMicrosecondType>().value(0))
}

const ALL_KINDS: [ValueKind; 21] = [
    ValueKind::Bool,
    ValueKind::Int16,
    ValueKind::Int32,
    ValueKind::Int64,
    ValueKind::UInt32,
    ValueKind::Float32,
    ValueKind::Float64,
    ValueKind::Decimal128 {
        precision: 12,
        scale: 2,
    },
    ValueKind::Decimal128 {
        precision: 38,
        scale: 0,
    },
    ValueKind::Decimal128 {
        precision: 5,
        scale: -2,
    },
    ValueKind::Decimal256 {
        precision: 76,
        scale: 20,
    },
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
];

#[test]
fn every_kind_builds_its_arrow_type_and_resets() {
    for kind in ALL_KINDS {
        let mut b = ColumnBuilder::new(kind.clone(), 4);
        assert_eq!(b.kind(), &kind);
        assert!(b.is_empty());
        b.append_null();
        b.append_null();
        assert_eq!(b.len(), 2);
        let a = b.finish();
        assert_eq!(a.data_type(), &kind.arrow_type(), "{kind:?}");
        assert_eq!((a.len(), a.null_count()), (2, 2));
        assert!(b.is_empty(), "finish resets");
        b.append_null();
        let a = b.finish();
        assert_eq!(a.data_type(), &kind.arrow_type(), "{kind:?} after a reset");
        assert_eq!(a.len(), 1);
    }
    let tz = ColumnBuilder::new(ValueKind::TimestampTz, 0).finish();
    assert_eq!(
        tz.data_type(),
        &arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some("UTC".into()))
    );
}

#[test]
fn builders_keep_many_values_in_order() {
    let mut b = ColumnBuilder::new(ValueKind::Int32, 2);
    for t in ["1", "-2", "3"] {
        b.append_text(t.as_bytes(), &pol()).unwrap();
    }
    assert!(b.append_text(b"x", &pol()).is_err());
    b.append_null();
    b.append_text(b"4", &pol()).unwrap();
    let a = b.finish();
    let a = a.as_primitive::<Int32Type>();
    assert_eq!(a.len(), 5);
    assert_eq!(
        a.iter().collect::<Vec<_>>(),
        vec![Some(1), Some(-2), Some(3), None, Some(4)]
    );
}

#[test]
fn errors_name_the_kind_and_never_the_value() {
    let cases: [(ValueKind, &str); 14] = [
        (ValueKind::Int16, "987654321"),
        (ValueKind::Int32, "98765x4321"),
        (ValueKind::Float64, "98765.4321q"),
        (
            ValueKind::Decimal128 {
                precision: 12,
                scale: 2,
            },
            "98765.4321",
        ),
        (
            ValueKind::Decimal128 {
                precision: 3,
                scale: 0,
            },
            "98765",
        ),
        (
            ValueKind::Decimal256 {
                precision: 50,
                scale: 2,
            },
            "98765..4321",
        ),
        (ValueKind::Bytea, "\\x98765z"),
        (ValueKind::Date, "98765-43-21"),
        (ValueKind::Time, "98:76:54"),
        (ValueKind::Timestamp, "98765-04-32 12:00:00"),
        (ValueKind::TimestampTz, "2024-01-01 12:00:00+98"),
        (ValueKind::Uuid, "98765432-1098-7654-3210-98765432109z"),
        (ValueKind::Bool, "98765"),
        (ValueKind::UInt32, "98765432109"),
    ];
    for (kind, text) in cases {
        let e = one(kind.clone(), text).unwrap_err();
        let msg = e.to_string();
        assert!(!msg.contains("98765") && !msg.contains("4321"), "{msg}");
        assert!(
            msg.contains(kind_name(&kind)),
            "{msg} names {}",
            kind_name(&kind)
        );
    }
    assert_eq!(
        dec(12, 2, "99999999999.99").unwrap_err().to_string(),
        "numeric value exceeds decimal(12,2)"
    );
    assert_eq!(
        tstz("2024-01-01").unwrap_err().to_string(),
        "invalid text for timestamptz: expected YYYY-MM-DD HH:MM:SS[.ffffff]+HH[:MM[:SS]][ BC]"
    );
    let e = one_with(ValueKind::Text, b"secret\xff", &pol()).unwrap_err();
    assert!(!e.to_string().contains("secret"));
}
