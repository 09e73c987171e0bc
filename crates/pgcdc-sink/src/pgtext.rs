//! Arrow values back into PostgreSQL's text input syntax, as `COPY … FROM STDIN` (text
//! format) reads it: the inverse of the source's PostgreSQL → Arrow mapping, for the
//! PostgreSQL mirror.
//!
//! Every Arrow type the mapping produces has a rendering that PostgreSQL reads back to the
//! same value: integers and decimals exactly, floats in Rust's shortest round-trip form
//! (`NaN`, `Infinity`, `-0` kept), timestamps and dates with their `i64::MAX`/`i32::MAX`
//! infinity encoding as `infinity`, years ≤ 0 as `BC`, intervals from their three fields,
//! UUIDs from their 16 bytes, bytea as `\x…` hex, lists as array literals with every
//! element quoted. COPY's own escapes (backslash, tab, newline, carriage return) are
//! applied last; NULL is `\N`.

use std::fmt::Write;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Int8Type, Time64MicrosecondType, TimestampMicrosecondType, UInt32Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, TimeUnit};

use crate::{Error, ErrorKind, Result};
use pgcdc_core::types::MULTIRANGE_ITEM;

const US_PER_DAY: i64 = 86_400_000_000;

/// Appends value `row` of `array` to `out` in COPY text format (escaped, `\N` for NULL).
pub fn copy_value(array: &ArrayRef, row: usize, out: &mut String) -> Result<()> {
    if array.is_null(row) {
        out.push_str("\\N");
        return Ok(());
    }
    // Written in place; escaped only when it has something to escape (rare).
    let start = out.len();
    literal(array, row, out)?;
    if out[start..]
        .bytes()
        .any(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r'))
    {
        let text = out.split_off(start);
        for ch in text.chars() {
            match ch {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c => out.push(c),
            }
        }
    }
    Ok(())
}

/// The PostgreSQL input text of non-null value `row` (unescaped).
pub fn literal(array: &ArrayRef, row: usize, out: &mut String) -> Result<()> {
    let a = array.as_ref();
    match array.data_type() {
        DataType::Boolean => out.push(if a.as_boolean().value(row) { 't' } else { 'f' }),
        DataType::Int8 => push(out, a.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => push(out, a.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => push(out, a.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => push(out, a.as_primitive::<Int64Type>().value(row)),
        DataType::UInt32 => push(out, a.as_primitive::<UInt32Type>().value(row)),
        DataType::Float32 => float(out, a.as_primitive::<Float32Type>().value(row) as f64, true),
        DataType::Float64 => float(out, a.as_primitive::<Float64Type>().value(row), false),
        DataType::Decimal128(_, _) => {
            out.push_str(&a.as_primitive::<Decimal128Type>().value_as_string(row))
        }
        DataType::Decimal256(_, _) => {
            out.push_str(&a.as_primitive::<Decimal256Type>().value_as_string(row))
        }
        DataType::Utf8 => out.push_str(a.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => out.push_str(a.as_string::<i64>().value(row)),
        DataType::Binary => hex(out, a.as_binary::<i32>().value(row)),
        DataType::LargeBinary => hex(out, a.as_binary::<i64>().value(row)),
        DataType::FixedSizeBinary(16) => uuid(out, a.as_fixed_size_binary().value(row)),
        DataType::FixedSizeBinary(_) => hex(out, a.as_fixed_size_binary().value(row)),
        DataType::Date32 => date(out, a.as_primitive::<Date32Type>().value(row)),
        DataType::Time64(TimeUnit::Microsecond) => {
            time(out, a.as_primitive::<Time64MicrosecondType>().value(row))
        }
        DataType::Timestamp(TimeUnit::Microsecond, tz) => timestamp(
            out,
            a.as_primitive::<TimestampMicrosecondType>().value(row),
            tz.is_some(),
        ),
        DataType::Struct(fields)
            if fields
                .iter()
                .map(|f| f.name().as_str())
                .eq(["months", "days", "microseconds"]) =>
        {
            // An interval: months, days, microseconds (checked, not assumed).
            let s = a.as_struct();
            let parts = (
                s.column(0).as_primitive_opt::<Int32Type>(),
                s.column(1).as_primitive_opt::<Int32Type>(),
                s.column(2).as_primitive_opt::<Int64Type>(),
            );
            let (Some(months), Some(days), Some(us)) = parts else {
                return Err(Error::new(
                    ErrorKind::Encode,
                    format!(
                        "the PostgreSQL mirror cannot write Arrow type {}",
                        array.data_type()
                    ),
                ));
            };
            let _ = write!(
                out,
                "{} mons {} days {} microseconds",
                months.value(row),
                days.value(row),
                us.value(row)
            );
        }
        DataType::Struct(fields)
            if fields
                .iter()
                .map(|f| f.name().as_str())
                .eq(["time", "utc_offset"]) =>
        {
            // A timetz: the local time, then the offset east of UTC as ±HH:MM:SS.
            let s = a.as_struct();
            let parts = (
                s.column(0).as_primitive_opt::<Time64MicrosecondType>(),
                s.column(1).as_primitive_opt::<Int32Type>(),
            );
            let (Some(t), Some(offset)) = parts else {
                return Err(Error::new(
                    ErrorKind::Encode,
                    "a timetz's parts are not a time and an offset",
                ));
            };
            time(out, t.value(row));
            let offset = offset.value(row);
            let secs = offset.unsigned_abs();
            let _ = write!(
                out,
                "{}{:02}:{:02}:{:02}",
                if offset < 0 { '-' } else { '+' },
                secs / 3600,
                secs / 60 % 60,
                secs % 60
            );
        }
        DataType::Struct(fields)
            if fields
                .iter()
                .map(|f| f.name().as_str())
                .eq(pgcdc_core::types::RANGE_FIELD_NAMES) =>
        {
            range(a.as_struct(), row, out)?
        }
        DataType::Struct(_) => record(a.as_struct(), row, out)?,
        DataType::List(item) if item.name() == MULTIRANGE_ITEM => {
            // A multirange: `{` ranges `,` `}`, unquoted.
            let ranges = a.as_list::<i32>().value(row);
            out.push('{');
            for i in 0..ranges.len() {
                if i > 0 {
                    out.push(',');
                }
                literal(&ranges, i, out)?;
            }
            out.push('}');
        }
        DataType::List(_) => array_literal(&a.as_list::<i32>().value(row), out)?,
        DataType::FixedSizeList(..) => array_literal(&a.as_fixed_size_list().value(row), out)?,
        DataType::Map(..) => {
            // hstore_out: "key"=>"value" (or NULL) pairs, ", " apart.
            let entries = a.as_map().value(row);
            let (keys, values) = (entries.column(0), entries.column(1));
            for i in 0..entries.len() {
                if i > 0 {
                    out.push_str(", ");
                }
                quoted(keys, i, out)?;
                out.push_str("=>");
                if values.is_null(i) {
                    out.push_str("NULL");
                } else {
                    quoted(values, i, out)?;
                }
            }
        }
        other => {
            return Err(Error::new(
                ErrorKind::Encode,
                format!("the PostgreSQL mirror cannot write Arrow type {other}"),
            ))
        }
    }
    Ok(())
}

fn push(out: &mut String, v: impl std::fmt::Display) {
    let _ = write!(out, "{v}");
}

fn float(out: &mut String, v: f64, single: bool) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
    } else if single {
        // Shortest text that reads back as the same f32.
        shortest(out, format!("{:e}", v as f32), || (v as f32).to_string(), 6);
    } else {
        shortest(out, format!("{v:e}"), || v.to_string(), 15);
    }
}

/// float4out/float8out's layout of the shortest round-trip digits (`sci`, Rust's `{:e}`):
/// scientific (`1.5e+300`, `1e-05`) below 1e-4 and from 10^`digits`, else `fixed`.
fn shortest(out: &mut String, sci: String, fixed: impl Fn() -> String, digits: i32) {
    match sci.split_once('e').map(|(m, e)| (m, e.parse::<i32>())) {
        Some((mantissa, Ok(exp))) if exp < -4 || exp >= digits => {
            let sign = if exp < 0 { '-' } else { '+' };
            let _ = write!(out, "{mantissa}e{sign}{:02}", exp.unsigned_abs());
        }
        _ => out.push_str(&fixed()),
    }
}

fn hex(out: &mut String, bytes: &[u8]) {
    out.push_str("\\x");
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

fn uuid(out: &mut String, b: &[u8]) {
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        let _ = write!(out, "{byte:02x}");
    }
}

/// Days since 1970-01-01 → proleptic Gregorian (astronomical year, month, day), for the
/// whole range PostgreSQL's dates and timestamps have (beyond chrono's).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Writes the date of `days`; returns whether it is BC.
fn ymd(out: &mut String, days: i64) -> bool {
    let (y, m, d) = civil_from_days(days);
    let bc = y <= 0;
    let _ = write!(out, "{:04}-{m:02}-{d:02}", if bc { 1 - y } else { y });
    bc
}

fn date(out: &mut String, days: i32) {
    match days {
        i32::MAX => out.push_str("infinity"),
        d if d == -i32::MAX => out.push_str("-infinity"),
        d => {
            if ymd(out, i64::from(d)) {
                out.push_str(" BC");
            }
        }
    }
}

fn time(out: &mut String, us: i64) {
    let secs = us.div_euclid(1_000_000);
    let frac = us.rem_euclid(1_000_000);
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}.{frac:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
}

fn timestamp(out: &mut String, us: i64, tz: bool) {
    match us {
        i64::MAX => out.push_str("infinity"),
        v if v == -i64::MAX => out.push_str("-infinity"),
        v => {
            let bc = ymd(out, v.div_euclid(US_PER_DAY));
            out.push(' ');
            time(out, v.rem_euclid(US_PER_DAY));
            if tz {
                out.push_str("+00");
            }
            if bc {
                out.push_str(" BC");
            }
        }
    }
}

/// An array literal `{"…",NULL,…}` of `items`' values; items that are Lists themselves
/// (a multi-dimensional array) are sub-arrays `{…}`, unquoted.
fn array_literal(items: &ArrayRef, out: &mut String) -> Result<()> {
    let nested = matches!(items.data_type(), DataType::List(f) if f.name() != MULTIRANGE_ITEM);
    out.push('{');
    for i in 0..items.len() {
        if i > 0 {
            out.push(',');
        }
        if items.is_null(i) {
            out.push_str("NULL");
        } else if nested {
            array_literal(&items.as_list::<i32>().value(i), out)?;
        } else {
            quoted(items, i, out)?;
        }
    }
    out.push('}');
    Ok(())
}

/// `"…"` around a value's literal, with `"` and `\` backslash-escaped (array and hstore
/// syntax alike).
fn quoted(a: &ArrayRef, row: usize, out: &mut String) -> Result<()> {
    let mut el = String::new();
    literal(a, row, &mut el)?;
    out.push('"');
    for ch in el.chars() {
        if ch == '"' || ch == '\\' {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('"');
    Ok(())
}

/// A range as range_out writes it: `empty`, or `[`/`(`, the bounds quoted (nothing for
/// an unbounded side), `]`/`)`.
fn range(s: &arrow_array::StructArray, row: usize, out: &mut String) -> Result<()> {
    let flag = |i: usize| {
        s.column(i)
            .as_boolean_opt()
            .map(|b| b.value(row))
            .ok_or_else(|| Error::new(ErrorKind::Encode, "a range's flags are not booleans"))
    };
    if flag(4)? {
        out.push_str("empty");
        return Ok(());
    }
    out.push(if flag(2)? { '[' } else { '(' });
    for (i, bound) in [s.column(0), s.column(1)].into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if !bound.is_null(row) {
            // range_bound_escape: quoted when empty or holding a quote, backslash,
            // bracket, parenthesis, comma or white space, with " and \ doubled.
            let mut text = String::new();
            literal(bound, row, &mut text)?;
            let quote = text.is_empty()
                || text.chars().any(|c| {
                    matches!(c, '"' | '\\' | '(' | ')' | '[' | ']' | ',')
                        || c.is_ascii_whitespace()
                        || c == '\x0b'
                });
            if quote {
                out.push('"');
            }
            for ch in text.chars() {
                if quote && (ch == '"' || ch == '\\') {
                    out.push(ch);
                }
                out.push(ch);
            }
            if quote {
                out.push('"');
            }
        }
    }
    out.push(if flag(3)? { ']' } else { ')' });
    Ok(())
}

/// A composite value as record_out writes it: `(f1,f2,…)`, NULL attributes empty, and
/// attributes that are empty or hold `"`, `\`, `(`, `)`, `,` or white space quoted with
/// `"` and `\` doubled.
fn record(s: &arrow_array::StructArray, row: usize, out: &mut String) -> Result<()> {
    out.push('(');
    for (i, column) in s.columns().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if column.is_null(row) {
            continue;
        }
        let mut v = String::new();
        literal(column, row, &mut v)?;
        let quote = v.is_empty()
            || v.chars().any(|c| {
                matches!(c, '"' | '\\' | '(' | ')' | ',') || c.is_ascii_whitespace() || c == '\x0b'
            });
        if !quote {
            out.push_str(&v);
            continue;
        }
        out.push('"');
        for c in v.chars() {
            if c == '"' || c == '\\' {
                out.push(c);
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push(')');
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::{
        BinaryArray, Date32Array, Float32Array, Float64Array, StringArray,
        TimestampMicrosecondArray,
    };

    use super::*;

    fn text(a: ArrayRef) -> Vec<String> {
        (0..a.len())
            .map(|i| {
                let mut s = String::new();
                copy_value(&a, i, &mut s).unwrap();
                s
            })
            .collect()
    }

    #[test]
    fn values_render_as_postgresql_reads_them() {
        assert_eq!(
            text(Arc::new(Float64Array::from(vec![
                0.1,
                -0.0,
                f64::NAN,
                f64::NEG_INFINITY,
                1e300,
                -1.5e-5,
                123456789012345.0,
                1e15,
                0.0001,
            ]))),
            [
                "0.1",
                "-0",
                "NaN",
                "-Infinity",
                "1e+300",
                "-1.5e-05",
                "123456789012345",
                "1e+15",
                "0.0001"
            ]
        );
        assert_eq!(
            text(Arc::new(Float32Array::from(vec![
                0.1f32, 1234567.0, 123456.0
            ]))),
            ["0.1", "1.234567e+06", "123456"]
        );
        assert_eq!(
            text(Arc::new(StringArray::from(vec![Some("a\tb\\c\nd"), None]))),
            ["a\\tb\\\\c\\nd", "\\N"]
        );
        assert_eq!(
            text(Arc::new(BinaryArray::from(vec![&b"\x00\xff"[..]]))),
            ["\\\\x00ff"]
        );
        assert_eq!(
            text(Arc::new(Date32Array::from(vec![
                0,
                i32::MAX,
                -i32::MAX,
                -719_528
            ]))),
            ["1970-01-01", "infinity", "-infinity", "0001-01-01 BC"]
        );
        let ts =
            TimestampMicrosecondArray::from(vec![1_500_000, -1, i64::MAX]).with_timezone("UTC");
        assert_eq!(
            text(Arc::new(ts)),
            [
                "1970-01-01 00:00:01.500000+00",
                "1969-12-31 23:59:59.999999+00",
                "infinity"
            ]
        );
        let mut l = ListBuilder::new(StringBuilder::new());
        l.values().append_value("a\"b");
        l.values().append_null();
        l.values().append_value("NULL");
        l.append(true);
        assert_eq!(text(Arc::new(l.finish())), ["{\"a\\\\\"b\",NULL,\"NULL\"}"]);
    }
}
