//! Value parsing tests: edge values of every kind, each policy, malformed input, and
//! property round trips against a test-only formatter that writes what PostgreSQL writes.

use super::*;
use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Decimal128Type, Int64Type, TimestampMicrosecondType};
use arrow_array::Array;
use proptest::prelude::*;

fn pol() -> ValuePolicy {
    ValuePolicy::default()
}

fn one(kind: ValueKind, text: &str) -> Result<ArrayRef, ValueError> {
    let mut b = ColumnBuilder::new(kind, 1);
    b.append_text(text.as_bytes(), &pol())?;
    let a = b.finish();
    assert_eq!(a.data_type(), &kind.arrow_type());
    Ok(a)
}

fn ts(text: &str, tz: bool) -> i64 {
    let k = if tz {
        ValueKind::TimestampTz
    } else {
        ValueKind::Timestamp
    };
    one(k, text)
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>()
        .value(0)
}

fn date(text: &str) -> i32 {
    one(ValueKind::Date, text)
        .unwrap()
        .as_primitive::<Date32Type>()
        .value(0)
}

#[test]
fn integers_and_their_limits() {
    assert_eq!(
        one(ValueKind::Int64, "-9223372036854775808")
            .unwrap()
            .as_primitive::<Int64Type>()
            .value(0),
        i64::MIN
    );
    assert!(one(ValueKind::Int16, "32768").is_err());
    assert!(one(ValueKind::Int32, "1.5").is_err());
    assert!(one(ValueKind::Bool, "true").is_err());
}

#[test]
fn floats_keep_nan_infinities_and_negative_zero() {
    let a = one(ValueKind::Float64, "-0").unwrap();
    let v = a.as_primitive::<arrow_array::types::Float64Type>().value(0);
    assert!(v == 0.0 && v.is_sign_negative());
    for t in ["NaN", "Infinity", "-Infinity", "1.5e+300", "4.9e-324"] {
        one(ValueKind::Float64, t).unwrap();
    }
    assert!(one(ValueKind::Float32, "x").is_err());
}

#[test]
fn decimals_rescale_exactly_and_check_precision() {
    let k = ValueKind::Decimal128 {
        precision: 12,
        scale: 2,
    };
    let v = |t: &str| one(k, t).map(|a| a.as_primitive::<Decimal128Type>().value(0));
    assert_eq!(v("1.50").unwrap(), 150);
    assert_eq!(v("-0.01").unwrap(), -1);
    assert_eq!(v("7").unwrap(), 700);
    assert_eq!(v("9999999999.99").unwrap(), 999_999_999_999);
    assert!(v("99999999999.99").is_err(), "13 digits in numeric(12,2)");
    assert!(v("1.234").is_err(), "never rounds");
    assert_eq!(v("1.230").unwrap(), 123);
    assert!(v("1.2.3").is_err());
    assert!(v("").is_err());
    let nan = one(k, "NaN").unwrap();
    assert!(nan.is_null(0), "NaN is NULL by default");
    let strict = ValuePolicy {
        numeric_nan: NumericNanPolicy::Error,
        ..pol()
    };
    let mut b = ColumnBuilder::new(k, 1);
    assert!(b.append_text(b"Infinity", &strict).is_err());
    let wide = ValueKind::Decimal256 {
        precision: 76,
        scale: 10,
    };
    one(
        wide,
        "123456789012345678901234567890123456789012345678901234567890.0123456789",
    )
    .unwrap();
}

#[test]
fn dates_in_the_common_era_bc_and_beyond_9999() {
    assert_eq!(date("1970-01-01"), 0);
    assert_eq!(date("2024-01-31"), 19753);
    assert_eq!(date("1969-12-31"), -1);
    assert_eq!(date("2000-02-29"), 11016);
    assert_eq!(date("0001-01-01"), -719162);
    // 1 BC is astronomical year 0, a leap year: 0001-01-01 minus 366 days.
    assert_eq!(date("0001-01-01 BC"), -719162 - 366);
    assert_eq!(date("12345-06-07"), days_from_civil(12345, 6, 7) as i32);
    assert_eq!(date("infinity"), i32::MAX);
    assert_eq!(date("-infinity"), -i32::MAX);
    assert!(one(ValueKind::Date, "2024-13-01").is_err());
    assert!(one(ValueKind::Date, "2024-01-01 AD").is_err());
}

#[test]
fn times_allow_24_00_and_fractions() {
    let t = |s: &str| {
        one(ValueKind::Time, s).map(|a| {
            a.as_primitive::<arrow_array::types::Time64MicrosecondType>()
                .value(0)
        })
    };
    assert_eq!(t("24:00:00").unwrap(), 86_400_000_000);
    assert_eq!(t("00:00:00.5").unwrap(), 500_000);
    assert_eq!(t("23:59:59.999999").unwrap(), 86_399_999_999);
    assert!(t("24:00:01").is_err());
    assert!(t("12:00").is_err());
    assert!(t("12:00:00.1234567").is_err());
}

#[test]
fn timestamps_with_offsets_bc_and_infinity() {
    assert_eq!(ts("1970-01-01 00:00:00", false), 0);
    assert_eq!(ts("2024-02-29 12:34:56.789", false), 1_709_210_096_789_000);
    assert_eq!(ts("1970-01-01 00:00:00+00", true), 0);
    assert_eq!(ts("1970-01-01 05:30:00+05:30", true), 0);
    assert_eq!(ts("1969-12-31 20:59:30-03:00:30", true), 0);
    assert_eq!(
        ts("0001-01-01 00:00:00+00 BC", true),
        (-719162 - 366) * MICROS_PER_DAY
    );
    assert_eq!(ts("infinity", true), i64::MAX);
    assert_eq!(ts("-infinity", false), -i64::MAX);
    let null = ValuePolicy {
        infinity: InfinityPolicy::Null,
        ..pol()
    };
    let mut b = ColumnBuilder::new(ValueKind::Timestamp, 1);
    b.append_text(b"infinity", &null).unwrap();
    assert!(b.finish().is_null(0));
    let strict = ValuePolicy {
        infinity: InfinityPolicy::Error,
        ..pol()
    };
    assert!(ColumnBuilder::new(ValueKind::Date, 1)
        .append_text(b"infinity", &strict)
        .is_err());
    assert!(
        one(ValueKind::TimestampTz, "2024-01-01 00:00:00").is_err(),
        "timestamptz needs an offset"
    );
}

#[test]
fn bytea_uuid_and_text() {
    let a = one(ValueKind::Bytea, "\\xdeadBEEF").unwrap();
    assert_eq!(a.as_binary::<i32>().value(0), &[0xde, 0xad, 0xbe, 0xef]);
    assert!(one(ValueKind::Bytea, "\\xabc").is_err());
    assert!(one(ValueKind::Bytea, "abc").is_err());
    let u = one(ValueKind::Uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap();
    assert_eq!(u.as_fixed_size_binary().value(0)[0], 0xa0);
    assert!(one(ValueKind::Uuid, "a0eebc99").is_err());
    assert!(one(ValueKind::Uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1100").is_err());
    let mut b = ColumnBuilder::new(ValueKind::Text, 1);
    assert!(b.append_text(&[0xff, 0xfe], &pol()).is_err());
    one(ValueKind::Json, "{\"emoji\": \"😀\\u0001\"}").unwrap();
}

/// What PostgreSQL prints for a timestamp (µs since 1970), ISO DateStyle.
fn pg_format(us: i64, tz: bool) -> String {
    let days = us.div_euclid(MICROS_PER_DAY);
    let rem = us.rem_euclid(MICROS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let (bc, year) = if y <= 0 { (true, 1 - y) } else { (false, y) };
    let secs = rem / 1_000_000;
    let frac = rem % 1_000_000;
    let mut s = format!(
        "{year:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if frac != 0 {
        let f = format!("{frac:06}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    if tz {
        s.push_str("+00");
    }
    if bc {
        s.push_str(" BC");
    }
    s
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + DAYS_1970_FROM_0000;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
        for kind in [ValueKind::Bool, ValueKind::Int16, ValueKind::Int64, ValueKind::UInt32, ValueKind::Float32,
                     ValueKind::Decimal128 { precision: 5, scale: 2 }, ValueKind::Decimal256 { precision: 70, scale: 5 },
                     ValueKind::Text, ValueKind::Bytea, ValueKind::Date, ValueKind::Time, ValueKind::Timestamp,
                     ValueKind::TimestampTz, ValueKind::Uuid, ValueKind::NumericFloat] {
            let mut b = ColumnBuilder::new(kind, 1);
            let _ = b.append_text(&bytes, &pol());
            let _ = b.finish();
        }
    }

    /// PostgreSQL's range: 4713 BC to 294276 AD.
    #[test]
    fn timestamps_round_trip(us in -210_866_803_200_000_000i64..9_223_371_331_200_000_000i64, tz: bool) {
        prop_assert_eq!(ts(&pg_format(us, tz), tz), us);
    }

    #[test]
    fn decimals_round_trip(v in -999_999_999_999i64..999_999_999_999i64) {
        let text = format!("{}{}.{:02}", if v < 0 { "-" } else { "" }, v.abs() / 100, v.abs() % 100);
        let a = one(ValueKind::Decimal128 { precision: 12, scale: 2 }, &text).unwrap();
        prop_assert_eq!(a.as_primitive::<Decimal128Type>().value(0), i128::from(v));
    }
}
