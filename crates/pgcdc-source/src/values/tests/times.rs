//! date, time, timestamp(tz), timetz and interval, checked against PostgreSQL 15, and
//! the infinity policy.

use super::*;
use crate::values::time::{parse_timetz, MICROS_PER_DAY};

/// Every expectation here was checked against PostgreSQL 15.18 with
/// `SELECT t::date::text = t, t::date - '1970-01-01'::date`.
#[test]
fn dates_checked_against_postgres() {
    for (text, days) in [
        ("2024-01-31", 19753),
        ("1970-01-01", 0),
        ("1969-12-31", -1),
        ("2000-02-29", 11016),
        ("1900-03-01", -25508),
        ("0001-01-01", -719162),
        ("0001-01-01 BC", -719528),
        ("0001-12-31 BC", -719163),
        ("0044-03-15 BC", -735160),
        ("0005-02-29 BC", -720930),
        ("4714-11-24 BC", -2440588), // PostgreSQL's earliest date
        ("9999-12-31", 2932896),
        ("10000-01-01", 2932897),
        ("12345-06-07", 3789548),
        ("5874897-12-31", 2145042905), // PostgreSQL's latest date
        ("1582-10-04", -141438),
    ] {
        assert_eq!(date(text), Ok(days), "{text}");
    }
}

#[test]
fn malformed_dates() {
    for bad in [
        "",
        "2024-02-30",
        "2023-02-29",
        "1900-02-29",
        "0004-02-29 BC", // 4 BC is astronomical -3: not a leap year
        "0000-01-01",
        "2024-13-01",
        "2024-00-10",
        "2024-01-00",
        "2024-04-31",
        "2024-1-01",
        "2024-01-1",
        "24-01-01",
        "2024/01/01",
        "2024-01-01 AD",
        "2024-01-01 bc",
        "2024-01-01 BC ",
        " 2024-01-01",
        "2024-01-01 00:00:00",
        "1234567890-01-01",
        "Infinity",
        "+infinity",
    ] {
        assert!(
            matches!(date(bad), Err(ValueError::Invalid { kind: "date", .. })),
            "{bad:?}"
        );
    }
    // Valid syntax beyond Date32 (and beyond PostgreSQL's range).
    assert!(matches!(
        date("999999999-12-31"),
        Err(ValueError::OutOfRange { .. })
    ));
}

/// Checked against PostgreSQL 15.18: `(extract(epoch from t::time) * 1000000)::bigint`.
#[test]
fn times_checked_against_postgres() {
    for (text, us) in [
        ("00:00:00", 0),
        ("24:00:00", 86_400_000_000),
        ("23:59:59.999999", 86_399_999_999),
        ("00:00:00.1", 100_000),
        ("12:34:56.0001", 45_296_000_100),
        ("13:07:00.5", 47_220_500_000),
    ] {
        assert_eq!(time(text), Ok(us), "{text}");
    }
    for bad in [
        "",
        "24:00:01",
        "24:00:00.000001",
        "24:01:00",
        "25:00:00",
        "12:60:00",
        "12:00:60",
        "12:00",
        "1:00:00",
        "12:00:00.",
        "12:00:00.1234567",
        "12:00:00 ",
        "12:00:00+00",
        "12-00-00",
        "12:00:00.12a",
    ] {
        assert!(
            matches!(time(bad), Err(ValueError::Invalid { kind: "time", .. })),
            "{bad:?}"
        );
    }
}

/// Checked against PostgreSQL 15.18 (`SET TimeZone=UTC`):
/// `t::timestamp::text = t, (extract(epoch from t::timestamp) * 1000000)::bigint`.
#[test]
fn timestamps_checked_against_postgres() {
    for (text, us) in [
        ("1970-01-01 00:00:00", 0),
        ("2024-01-31 12:34:56.789", 1_706_704_496_789_000),
        ("1969-12-31 23:59:59.999999", -1),
        ("0044-03-15 12:00:00 BC", -63_517_780_800_000_000),
        ("4714-11-24 00:00:00 BC", -210_866_803_200_000_000), // PostgreSQL's earliest
        ("0001-01-01 00:00:00", -62_135_596_800_000_000),
        ("0001-12-31 23:59:59.999999 BC", -62_135_596_800_000_001),
        ("1900-01-01 00:00:00.5", -2_208_988_799_500_000),
        ("2024-02-29 23:59:59.000001", 1_709_251_199_000_001),
        ("12345-06-07 01:02:03.000004", 327_416_950_923_000_004),
        ("294247-01-10 04:00:54.775806", 9_223_372_036_854_775_806),
    ] {
        assert_eq!(ts(text), Ok(us), "{text}");
    }
    // PostgreSQL's latest timestamp is 9224318016000000000 µs after 1970 (checked in
    // PostgreSQL 15): beyond i64, an error rather than a wrapped value.
    assert!(matches!(
        ts("294276-12-31 23:59:59.999999"),
        Err(ValueError::OutOfRange {
            kind: "timestamp",
            ..
        })
    ));
    assert!(ts("294247-01-10 04:00:54.775808").is_err());
}

/// Checked against PostgreSQL 15.18: `(extract(epoch from t::timestamptz) * 1000000)::bigint`;
/// the non-UTC offsets are what PostgreSQL prints under other TimeZone settings
/// (e.g. `America/New_York` prints 1850-01-01 UTC as `1849-12-31 19:03:58-04:56:02`).
#[test]
fn timestamptz_offsets_checked_against_postgres() {
    for (text, us) in [
        ("2024-01-31 12:34:56+00", 1_706_704_496_000_000),
        ("2024-01-01 05:30:00+05:30", 1_704_067_200_000_000),
        ("2024-06-01 12:00:00-05", 1_717_261_200_000_000),
        ("1849-12-31 19:03:58-04:56:02", -3_786_825_600_000_000),
        ("1900-01-01 00:19:32+00:19:32", -2_208_988_800_000_000),
        ("1969-12-31 20:59:29.5-03:00:30", -500_000),
        ("0044-03-15 12:00:00+00 BC", -63_517_780_800_000_000),
        ("0044-03-15 07:03:58-04:56:02 BC", -63_517_780_800_000_000),
        ("1970-01-01 00:00:00+15:59:59", -57_599_000_000),
        ("1970-01-01 00:00:00-15:59:59", 57_599_000_000),
        ("4714-11-24 00:00:00+00 BC", -210_866_803_200_000_000),
        ("2024-01-31 12:34:56.123456-09:30", 1_706_738_696_123_456),
    ] {
        assert_eq!(tstz(text), Ok(us), "{text}");
    }
}

#[test]
fn malformed_timestamps() {
    for bad in [
        "",
        "2024-01-31",
        "2024-01-31 12:34",
        "2024-01-31T12:34:56",
        "2024-01-31  12:34:56",
        "2024-02-30 00:00:00",
        "2024-01-31 24:00:00",
        "2024-01-31 12:34:56.",
        "2024-01-31 12:34:56.1234567",
        "2024-01-31 12:34:56 ",
        "2024-01-31 12:34:56+00",
        "2024-01-31 12:34:56 BCE",
        "0000-01-01 00:00:00",
        "Infinity",
    ] {
        assert!(
            matches!(
                ts(bad),
                Err(ValueError::Invalid {
                    kind: "timestamp",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
    for bad in [
        "2024-01-31 12:34:56",
        "2024-01-31 12:34:56 BC",
        "2024-01-31 12:34:56+",
        "2024-01-31 12:34:56+5",
        "2024-01-31 12:34:56+05:3",
        "2024-01-31 12:34:56+05:",
        "2024-01-31 12:34:56+05:30:",
        "2024-01-31 12:34:56+05:30:00:00",
        "2024-01-31 12:34:56+16",
        "2024-01-31 12:34:56+05:60",
        "2024-01-31 12:34:56+0530",
        "2024-01-31 12:34:56 +00",
        "2024-01-31 12:34:56+00BC",
        "2024-01-31 12:34:56 BC+00",
        "2024-01-31 12:34:56Z",
        "2024-01-31 12:34:56 UTC",
    ] {
        assert!(
            matches!(
                tstz(bad),
                Err(ValueError::Invalid {
                    kind: "timestamptz",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn infinity_follows_the_policy() {
    let cases: [(ValueKind, &str, i64); 6] = [
        (ValueKind::Date, "infinity", i64::from(i32::MAX)),
        (ValueKind::Date, "-infinity", -i64::from(i32::MAX)),
        (ValueKind::Timestamp, "infinity", i64::MAX),
        (ValueKind::Timestamp, "-infinity", -i64::MAX),
        (ValueKind::TimestampTz, "infinity", i64::MAX),
        (ValueKind::TimestampTz, "-infinity", -i64::MAX),
    ];
    for (kind, text, clamp) in cases {
        let value = |a: &ArrayRef| match kind {
            ValueKind::Date => i64::from(a.as_primitive::<Date32Type>().value(0)),
            _ => a.as_primitive::<TimestampMicrosecondType>().value(0),
        };
        let a = one_with(kind.clone(), text.as_bytes(), &pol()).unwrap();
        assert_eq!(value(&a), clamp, "clamp is the default");
        let a = one_with(
            kind.clone(),
            text.as_bytes(),
            &with_infinity(InfinityPolicy::Clamp),
        )
        .unwrap();
        assert_eq!(value(&a), clamp);
        let a = one_with(
            kind.clone(),
            text.as_bytes(),
            &with_infinity(InfinityPolicy::Null),
        )
        .unwrap();
        assert!(a.is_null(0));
        let e = one_with(
            kind.clone(),
            text.as_bytes(),
            &with_infinity(InfinityPolicy::Error),
        )
        .unwrap_err();
        assert_eq!(
            e,
            ValueError::Infinite {
                kind: kind_name(&kind)
            }
        );
        assert_eq!(
            e.to_string(),
            format!(
                "infinite {} and infinity policy is 'error'",
                kind_name(&kind)
            )
        );
    }
}

#[test]
fn timetz_keeps_its_time_and_offset_from_text_and_binary() {
    for (text, us, east) in [
        ("00:00:00+00", 0, 0),
        ("24:00:00-15:59:59", MICROS_PER_DAY, -57_599),
        ("12:34:56.5+05:30", 45_296_500_000, 19_800),
        ("01:02:03-00:00:01", 3_723_000_000, -1),
    ] {
        assert_eq!(parse_timetz(text.as_bytes()), Ok((us, east)), "{text}");
        let kind = ValueKind::TimeTz;
        let (mut t, mut b) = (
            ColumnBuilder::new(kind.clone(), 1),
            ColumnBuilder::new(kind, 1),
        );
        t.append_text(text.as_bytes(), &pol()).unwrap();
        let mut send = us.to_be_bytes().to_vec();
        send.extend_from_slice(&(-east).to_be_bytes());
        b.append_binary(&send, &pol()).unwrap();
        assert_eq!(t.finish().to_data(), b.finish().to_data(), "{text}");
    }
    for bad in [
        "12:00:00",
        "12:00:00+16",
        "25:00:00+00",
        "12:00+01",
        "12:00:00+01x",
    ] {
        assert!(parse_timetz(bad.as_bytes()).is_err(), "{bad}");
    }
    let mut b = ColumnBuilder::new(ValueKind::TimeTz, 1);
    let mut send = 0i64.to_be_bytes().to_vec();
    send.extend_from_slice(&60_000i32.to_be_bytes());
    assert!(
        b.append_binary(&send, &pol()).is_err(),
        "zone beyond ±15:59:59"
    );
}

/// EncodeInterval (IntervalStyle postgres), ported from PostgreSQL for the tests.
fn interval_out(months: i32, days: i32, us: i64) -> String {
    let (year, mon) = (months / 12, months % 12);
    let hour = us / 3_600_000_000;
    let rest = us - hour * 3_600_000_000;
    let (min, rest) = (rest / 60_000_000, rest % 60_000_000);
    let (sec, fsec) = (rest / 1_000_000, rest % 1_000_000);
    let (mut out, mut is_zero, mut is_before) = (String::new(), true, false);
    for (v, unit) in [
        (year as i64, "year"),
        (mon as i64, "mon"),
        (days as i64, "day"),
    ] {
        if v == 0 {
            continue;
        }
        let sep = if is_zero { "" } else { " " };
        let plus = if is_before && v > 0 { "+" } else { "" };
        let s = if v == 1 { "" } else { "s" };
        out.push_str(&format!("{sep}{plus}{v} {unit}{s}"));
        is_before = v < 0;
        is_zero = false;
    }
    if is_zero || hour != 0 || min != 0 || sec != 0 || fsec != 0 {
        let minus = hour < 0 || min < 0 || sec < 0 || fsec < 0;
        let sign = if minus {
            "-"
        } else if is_before {
            "+"
        } else {
            ""
        };
        let sep = if is_zero { "" } else { " " };
        out.push_str(&format!(
            "{sep}{sign}{:02}:{:02}:{:02}",
            hour.unsigned_abs(),
            min.unsigned_abs(),
            sec.unsigned_abs()
        ));
        if fsec != 0 {
            let f = format!("{:06}", fsec.unsigned_abs());
            out.push('.');
            out.push_str(f.trim_end_matches('0'));
        }
    }
    out
}

fn interval_fields_of(a: &ArrayRef, i: usize) -> Option<(i32, i32, i64)> {
    let s = a.as_struct();
    if s.is_null(i) {
        return None;
    }
    Some((
        s.column(0).as_primitive::<Int32Type>().value(i),
        s.column(1).as_primitive::<Int32Type>().value(i),
        s.column(2).as_primitive::<Int64Type>().value(i),
    ))
}

#[test]
fn intervals_parse_from_postgres_style_text() {
    for (text, want) in [
        ("1 year 2 mons 3 days 04:05:06.789", (14, 3, 14_706_789_000)),
        (
            "-1 years -2 mons +3 days -04:05:06",
            (-14, 3, -14_706_000_000),
        ),
        ("00:00:00", (0, 0, 0)),
        ("1 day", (0, 1, 0)),
        ("-1 days +00:00:01", (0, -1, 1_000_000)),
        ("-00:00:00.000001", (0, 0, -1)),
        ("100:00:00", (0, 0, 360_000_000_000)),
        ("-10 mons", (-10, 0, 0)),
        ("178000000 years", (2_136_000_000, 0, 0)),
    ] {
        let a = one(ValueKind::Interval, text).unwrap();
        assert_eq!(interval_fields_of(&a, 0), Some(want), "{text}");
        assert_eq!(
            interval_out(want.0, want.1, want.2),
            text,
            "the test's encoder"
        );
    }
    for bad in [
        "",
        "1",
        "1 week",
        "1 day 1 day x",
        "00:00",
        "00:60:00",
        "1:2:3",
        "00:00:00 1 day",
        "00:00:00.1234567",
        "--1 day",
        "1 Day",
        "300000000 years",
    ] {
        assert!(one(ValueKind::Interval, bad).is_err(), "{bad:?}");
    }
    let inf = one(ValueKind::Interval, "infinity").unwrap();
    assert_eq!(
        interval_fields_of(&inf, 0),
        Some((i32::MAX, i32::MAX, i64::MAX))
    );
    let mut nulls = pol();
    nulls.infinity = InfinityPolicy::Null;
    let a = one_with(ValueKind::Interval, b"-infinity", &nulls).unwrap();
    assert!(a.is_null(0));
}

proptest! {
    #[test]
    fn interval_text_and_binary_agree(months in any::<i32>(), days in any::<i32>(), us in any::<i64>()) {
        prop_assume!((months, days, us) != (i32::MAX, i32::MAX, i64::MAX));
        prop_assume!((months, days, us) != (i32::MIN, i32::MIN, i64::MIN));
        let text = interval_out(months, days, us);
        let mut bin = Vec::new();
        bin.extend_from_slice(&us.to_be_bytes());
        bin.extend_from_slice(&days.to_be_bytes());
        bin.extend_from_slice(&months.to_be_bytes());
        let mut t = ColumnBuilder::new(ValueKind::Interval, 1);
        t.append_text(text.as_bytes(), &pol()).unwrap();
        let mut b = ColumnBuilder::new(ValueKind::Interval, 1);
        b.append_binary(&bin, &pol()).unwrap();
        let (t, b) = (t.finish(), b.finish());
        prop_assert_eq!(interval_fields_of(&t, 0), Some((months, days, us)));
        prop_assert_eq!(interval_fields_of(&b, 0), Some((months, days, us)));
    }
}
