//! bool, integers, floats, numeric (as decimals, floats and strings) and money.

use super::*;
use crate::values::numeric::parse_money;

#[test]
fn bools() {
    let a = one(ValueKind::Bool, "t").unwrap();
    assert!(a.as_boolean().value(0));
    let a = one(ValueKind::Bool, "f").unwrap();
    assert!(!a.as_boolean().value(0));
    for bad in ["", "T", "true", "1", "tt", " t"] {
        assert!(one(ValueKind::Bool, bad).is_err(), "{bad:?}");
    }
}

#[test]
fn integers_and_their_limits() {
    assert_eq!(int16("-32768").unwrap(), i16::MIN);
    assert_eq!(int16("32767").unwrap(), i16::MAX);
    assert!(matches!(
        int16("32768"),
        Err(ValueError::OutOfRange { kind: "int2", .. })
    ));
    assert!(int16("-32769").is_err());
    assert_eq!(int32("-2147483648").unwrap(), i32::MIN);
    assert_eq!(int32("2147483647").unwrap(), i32::MAX);
    assert!(int32("2147483648").is_err());
    assert_eq!(int64("-9223372036854775808").unwrap(), i64::MIN);
    assert_eq!(int64("9223372036854775807").unwrap(), i64::MAX);
    assert!(int64("9223372036854775808").is_err());
    assert!(int64("-9223372036854775809").is_err());
    assert!(int64("99999999999999999999999999999").is_err());
    assert_eq!(int64("0").unwrap(), 0);
    assert_eq!(int64("-0").unwrap(), 0);
    assert_eq!(int64("+17").unwrap(), 17);
    assert_eq!(int64("00000000000000000000000042").unwrap(), 42);
    assert_eq!(oid("4294967295").unwrap(), u32::MAX);
    assert_eq!(oid("0").unwrap(), 0);
    assert!(oid("4294967296").is_err());
    assert!(oid("-1").is_err());
    assert!(oid("18446744073709551616").is_err());
    for bad in ["", "-", "+", "1.5", " 1", "1 ", "0x10", "1e3", "١"] {
        assert!(
            matches!(int32(bad), Err(ValueError::Invalid { kind: "int4", .. })),
            "{bad:?}"
        );
        assert!(oid(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn floats_keep_nan_infinities_and_negative_zero() {
    // Texts as PostgreSQL 15 prints them with extra_float_digits=3.
    let z = f64v("-0").unwrap();
    assert!(z == 0.0 && z.is_sign_negative());
    let z = f32v("-0").unwrap();
    assert!(z == 0.0 && z.is_sign_negative());
    assert!(f64v("NaN").unwrap().is_nan());
    assert!(f32v("NaN").unwrap().is_nan());
    assert_eq!(f64v("Infinity").unwrap(), f64::INFINITY);
    assert_eq!(f64v("-Infinity").unwrap(), f64::NEG_INFINITY);
    assert_eq!(f32v("Infinity").unwrap(), f32::INFINITY);
    assert_eq!(f32v("-Infinity").unwrap(), f32::NEG_INFINITY);
    assert_eq!(f64v("1.5e+30").unwrap(), 1.5e30);
    assert_eq!(f32v("1.5e+30").unwrap(), 1.5e30_f32);
    assert_eq!(
        f32v("1e-45").unwrap().to_bits(),
        1,
        "smallest f32 subnormal"
    );
    assert_eq!(
        f64v("5e-324").unwrap().to_bits(),
        1,
        "smallest f64 subnormal"
    );
    assert_eq!(f64v("1.7976931348623157e+308").unwrap(), f64::MAX);
    assert_eq!(f32v("3.4028235e+38").unwrap(), f32::MAX);
    assert_eq!(f32v("1.6777216e+07").unwrap(), 16_777_216.0);
    assert_eq!(f64v("0.1").unwrap(), 0.1);
    assert_eq!(
        f64v("1.2345678901234568e+20").unwrap(),
        1.2345678901234568e20
    );
    assert!(matches!(f64v("1e400"), Err(ValueError::OutOfRange { .. })));
    assert!(
        f32v("3.5e+38").is_err(),
        "beyond f32::MAX is not silently infinity"
    );
    for bad in ["", "x", "1.5.5", " 1", "1,5", "--1", "Infinityx", "0x1p3"] {
        assert!(f64v(bad).is_err(), "{bad:?}");
        assert!(f32v(bad).is_err(), "{bad:?}");
    }
    assert!(one_with(ValueKind::Float64, &[b'1', 0xff], &pol()).is_err());
}

#[test]
fn numeric_as_float_and_as_string() {
    let f =
        |t: &str| one(ValueKind::NumericFloat, t).map(|a| a.as_primitive::<Float64Type>().value(0));
    assert_eq!(f("1234.50").unwrap(), 1234.5);
    assert_eq!(f("-0.001").unwrap(), -0.001);
    assert!(f("NaN").unwrap().is_nan());
    assert_eq!(f("-Infinity").unwrap(), f64::NEG_INFINITY);
    let long = format!("0.{}1", "0".repeat(300));
    assert_eq!(f(&long).unwrap(), 1e-301);
    assert!(
        f(&format!("1{}", "0".repeat(400))).is_err(),
        "overflow is an error"
    );
    assert!(f("12a").is_err());
    let s = one(ValueKind::NumericString, "-1234.5000").unwrap();
    assert_eq!(s.as_string::<i32>().value(0), "-1234.5000");
    let s = one(ValueKind::NumericString, "NaN").unwrap();
    assert_eq!(s.as_string::<i32>().value(0), "NaN");
}

#[test]
fn decimals_rescale_exactly_and_check_precision() {
    // numeric(12,2) outputs, as PostgreSQL 15 prints them.
    assert_eq!(dec(12, 2, "1234.50").unwrap(), 123_450);
    assert_eq!(dec(12, 2, "9999999999.99").unwrap(), 999_999_999_999);
    assert_eq!(dec(12, 2, "-9999999999.99").unwrap(), -999_999_999_999);
    assert_eq!(dec(12, 2, "0.00").unwrap(), 0);
    assert_eq!(dec(12, 2, "-0.00").unwrap(), 0);
    // Fewer fraction digits are padded, extra zero digits dropped.
    assert_eq!(dec(12, 2, "7").unwrap(), 700);
    assert_eq!(dec(12, 2, "1.5").unwrap(), 150);
    assert_eq!(dec(12, 2, "1.5000000").unwrap(), 150);
    assert_eq!(dec(12, 2, ".5").unwrap(), 50);
    assert_eq!(dec(12, 2, "5.").unwrap(), 500);
    assert_eq!(dec(12, 2, "+5").unwrap(), 500);
    assert_eq!(dec(12, 2, "000000000000000001.25").unwrap(), 125);
    // Never rounds.
    assert!(matches!(
        dec(12, 2, "1.234"),
        Err(ValueError::Scale {
            precision: 12,
            scale: 2
        })
    ));
    assert!(dec(12, 2, "0.001").is_err());
    assert!(dec(12, 2, "1.2300001").is_err());
    // Precision.
    assert!(matches!(
        dec(12, 2, "99999999999.99"),
        Err(ValueError::Precision {
            precision: 12,
            scale: 2
        })
    ));
    assert!(dec(12, 2, "10000000000").is_err());
    assert_eq!(dec(3, 3, "0.999").unwrap(), 999);
    assert!(dec(3, 3, "1.000").is_err());
    // numeric(3,5) is Decimal(5,5): PostgreSQL prints 0.00999.
    assert_eq!(dec(5, 5, "0.00999").unwrap(), 999);
    // numeric(3,-2) is Decimal(5,0): PostgreSQL prints 12300.
    assert_eq!(dec(5, 0, "12300").unwrap(), 12300);
    // A negative Arrow scale works too.
    assert_eq!(dec(3, -2, "12300").unwrap(), 123);
    assert!(dec(3, -2, "12345").is_err());
    assert!(dec(3, -2, "123400").is_err());
    // Decimal128's extremes.
    let max38 = "9".repeat(38);
    assert_eq!(dec(38, 0, &max38).unwrap(), 10i128.pow(38) - 1);
    assert_eq!(
        dec(38, 0, &format!("-{max38}")).unwrap(),
        1 - 10i128.pow(38)
    );
    assert!(dec(38, 0, &"9".repeat(39)).is_err());
    assert_eq!(
        dec(38, 38, &format!("0.{max38}")).unwrap(),
        10i128.pow(38) - 1
    );
    assert!(dec(38, 10, &format!("1{}", "0".repeat(28))).is_err());
    // Lenient exponents (not PostgreSQL numeric output, but cheap).
    assert_eq!(dec(12, 2, "1e5").unwrap(), 10_000_000);
    assert_eq!(dec(12, 2, "1.5E-1").unwrap(), 15);
    assert_eq!(dec(12, 2, "0e999").unwrap(), 0);
    assert_eq!(dec(12, 2, "12300e-2").unwrap(), 12300);
    assert!(dec(12, 2, "1e-3").is_err());
    assert!(dec(12, 2, "1e10").is_err());
    assert!(dec(12, 2, "1e99999999999").is_err());
    assert!(dec(12, 2, "1e-99999999999").is_err());
    for bad in [
        "", "-", ".", "-.", "1.2.3", "1e", "1e+", "e5", "1 ", " 1", "1,5", "0x1", "nan", "Inf",
        "--1", "1-",
    ] {
        assert!(
            matches!(
                dec(12, 2, bad),
                Err(ValueError::Invalid { .. } | ValueError::OutOfRange { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn decimal256_holds_76_digits() {
    let max76 = "9".repeat(76);
    let v = dec256(76, 0, &max76).unwrap();
    assert_eq!(v, i256::from_string(&max76).unwrap());
    assert_eq!(
        dec256(76, 0, &format!("-{max76}")).unwrap(),
        v.wrapping_neg()
    );
    assert!(dec256(76, 0, &"9".repeat(77)).is_err());
    let t = "123456789012345678901234567890123456789012345678901234567890.0123456789";
    assert_eq!(
        dec256(76, 10, t).unwrap(),
        i256::from_string(&t.replace('.', "")).unwrap()
    );
    assert_eq!(
        dec256(60, 10, "1.5").unwrap(),
        i256::from_i128(15_000_000_000)
    );
    assert_eq!(
        dec256(76, 20, "-1").unwrap(),
        i256::from_string(&format!("-1{}", "0".repeat(20))).unwrap()
    );
    assert!(matches!(
        dec256(76, 20, &format!("1{}", "0".repeat(56))),
        Err(ValueError::Precision {
            precision: 76,
            scale: 20
        })
    ));
    assert!(dec256(76, 2, "1.001").is_err());
}

#[test]
fn numeric_nan_and_infinity_follow_the_policy() {
    for kind in [
        ValueKind::Decimal128 {
            precision: 12,
            scale: 2,
        },
        ValueKind::Decimal256 {
            precision: 50,
            scale: 2,
        },
    ] {
        for t in ["NaN", "Infinity", "-Infinity"] {
            let a = one_with(kind.clone(), t.as_bytes(), &pol()).unwrap();
            assert!(a.is_null(0), "null by default");
            let a = one_with(
                kind.clone(),
                t.as_bytes(),
                &with_nan(NumericNanPolicy::Null),
            )
            .unwrap();
            assert!(a.is_null(0));
            let e = one_with(
                kind.clone(),
                t.as_bytes(),
                &with_nan(NumericNanPolicy::Error),
            )
            .unwrap_err();
            assert!(matches!(e, ValueError::NumericNan { .. }), "{e}");
        }
    }
}

#[test]
fn unsupported_decimal_kinds_do_not_panic() {
    for kind in [
        ValueKind::Decimal128 {
            precision: 0,
            scale: 0,
        },
        ValueKind::Decimal128 {
            precision: 39,
            scale: 0,
        },
        ValueKind::Decimal128 {
            precision: 5,
            scale: 6,
        },
        ValueKind::Decimal256 {
            precision: 77,
            scale: 0,
        },
    ] {
        let mut b = ColumnBuilder::new(kind.clone(), 2);
        assert!(matches!(
            b.append_text(b"1", &pol()),
            Err(ValueError::UnsupportedDecimal { .. })
        ));
        b.append_null();
        assert_eq!(b.finish().len(), 1);
    }
}

#[test]
fn money_text_in_any_locale_reads_its_digits() {
    for (text, scale, v) in [
        ("$1,234.56", 2, 123_456),
        ("-$0.01", 2, -1),
        ("($5.00)", 2, -500),
        ("1.234,56 €", 2, 123_456),
        ("-1 234,5 kr", 1, -12_345),
        ("¥1,234", 0, 1_234),
        ("-$92,233,720,368,547,758.08", 2, i128::from(i64::MIN)),
        ("$92,233,720,368,547,758.07", 2, i128::from(i64::MAX)),
    ] {
        assert_eq!(parse_money(text.as_bytes(), scale), Ok(v), "{text}");
    }
    for (text, scale) in [
        ("$1.5", 2),
        ("", 2),
        ("$", 2),
        ("$1.234", 2),
        ("$99,999,999,999,999,999,999.00", 2),
    ] {
        assert!(parse_money(text.as_bytes(), scale).is_err(), "{text}");
    }
    // Text and binary (cash_send's int8) give the same decimal.
    let kind = ValueKind::Money { scale: 2 };
    let (mut t, mut b) = (
        ColumnBuilder::new(kind.clone(), 1),
        ColumnBuilder::new(kind, 1),
    );
    t.append_text(b"-$1,234.56", &pol()).unwrap();
    b.append_binary(&(-123_456i64).to_be_bytes(), &pol())
        .unwrap();
    assert_eq!(t.finish().to_data(), b.finish().to_data());
}
