//! bool, the integers (int2, int4, int8, oid, xid) and the floats (float4, float8, and
//! numeric read as a float): the fixed-width numbers, from their output text.
//!
//! Integers are range-checked against the column type, floats keep `NaN`, `±Infinity`
//! and `-0`, and a finite float too large for its type is an error, never infinity.
//! Their binary (send) forms are plain big-endian integers and IEEE floats, read by
//! [`ColumnBuilder::append_binary`](super::ColumnBuilder::append_binary).

use super::ValueError;

/// bool_out's `t` or `f`.
pub(super) fn parse_bool(text: &[u8], kind: &'static str) -> Result<bool, ValueError> {
    match text {
        b"t" => Ok(true),
        b"f" => Ok(false),
        _ => Err(ValueError::invalid(kind, "expected 't' or 'f'")),
    }
}

/// `[-+]digits` as the column's signed integer type, range-checked.
pub(super) fn parse_int_as<T: TryFrom<i64>>(
    text: &[u8],
    kind: &'static str,
) -> Result<T, ValueError> {
    T::try_from(parse_int(text, kind)?).map_err(|_| int_range(kind))
}

/// `digits` as the column's unsigned integer type, range-checked.
pub(super) fn parse_uint_as<T: TryFrom<u64>>(
    text: &[u8],
    kind: &'static str,
) -> Result<T, ValueError> {
    T::try_from(parse_uint(text, kind)?).map_err(|_| int_range(kind))
}

// Integers and floats

fn int_range(kind: &'static str) -> ValueError {
    ValueError::range(kind, "integer does not fit the column type")
}

/// An optional leading `-` or `+`: whether it was `-`, and the rest.
pub(super) fn split_sign(text: &[u8]) -> (bool, &[u8]) {
    match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    }
}

/// `[-+]digits` as i64 (accumulated negatively so that i64::MIN parses).
pub(super) fn parse_int(text: &[u8], kind: &'static str) -> Result<i64, ValueError> {
    let (neg, digits) = split_sign(text);
    if digits.is_empty() {
        return Err(ValueError::invalid(kind, "expected an integer"));
    }
    let mut v: i64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return Err(ValueError::invalid(kind, "expected an integer"));
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_sub(i64::from(d)))
            .ok_or_else(|| int_range(kind))?;
    }
    if neg {
        Ok(v)
    } else {
        v.checked_neg().ok_or_else(|| int_range(kind))
    }
}

/// `digits` as u64.
fn parse_uint(text: &[u8], kind: &'static str) -> Result<u64, ValueError> {
    if text.is_empty() {
        return Err(ValueError::invalid(kind, "expected an unsigned integer"));
    }
    let mut v: u64 = 0;
    for &c in text {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return Err(ValueError::invalid(kind, "expected an unsigned integer"));
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d)))
            .ok_or_else(|| int_range(kind))?;
    }
    Ok(v)
}

pub(super) trait Float: std::str::FromStr + Copy {
    fn is_infinite(self) -> bool;
}
impl Float for f32 {
    fn is_infinite(self) -> bool {
        f32::is_infinite(self)
    }
}
impl Float for f64 {
    fn is_infinite(self) -> bool {
        f64::is_infinite(self)
    }
}

/// A float in any form Rust's exact parser takes (which includes PostgreSQL's `NaN`,
/// `Infinity`, `-Infinity`, `-0`, `1.5e+30`). A finite number too large for the type is
/// an error rather than infinity.
pub(super) fn parse_float<F: Float>(text: &[u8], kind: &'static str) -> Result<F, ValueError> {
    let s =
        std::str::from_utf8(text).map_err(|_| ValueError::invalid(kind, "expected a number"))?;
    let v: F = s
        .parse()
        .map_err(|_| ValueError::invalid(kind, "expected a number"))?;
    // Finite spellings end in a digit or '.'; `Infinity`/`inf` end in a letter.
    if v.is_infinite() && !text.last().is_some_and(u8::is_ascii_alphabetic) {
        return Err(ValueError::range(
            kind,
            "number too large for the column type",
        ));
    }
    Ok(v)
}
