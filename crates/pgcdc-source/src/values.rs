//! PostgreSQL wire values (text output format) → Arrow array builders.
//!
//! One [`ColumnBuilder`] per column, chosen by its [`ValueKind`]. Values arrive in the
//! text form the server session produces with `DateStyle=ISO`, `TimeZone=UTC`,
//! `extra_float_digits=3`, `bytea_output=hex` (set by `wire` at startup) and are parsed
//! straight from the bytes, without allocating. Values Arrow cannot hold follow
//! [`ValuePolicy`]: `±infinity` dates/timestamps are clamped (DuckDB's encoding), nulled
//! or refused; numeric NaN/±Infinity in a decimal column are nulled or refused. Nothing is
//! ever rounded silently: a numeric with more fraction digits than the column's scale, or
//! more digits than its precision, is an error. Errors never contain the value.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Decimal256Builder,
    FixedSizeBinaryBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder,
    Int64Builder, StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
    UInt32Builder,
};
use arrow_array::ArrayRef;
use arrow_buffer::i256;
use pgcdc_core::{InfinityPolicy, NumericNanPolicy, ValueKind, ValuePolicy};

/// A value that could not be stored. Names the kind and the reason, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} ({kind})")]
pub struct ValueError {
    kind: &'static str,
    reason: &'static str,
}

fn err(kind: &'static str, reason: &'static str) -> ValueError {
    ValueError { kind, reason }
}

enum Inner {
    Bool(BooleanBuilder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    U32(UInt32Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    D128(Decimal128Builder, u8, i8),
    D256(Decimal256Builder, u8, i8),
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Ts(TimestampMicrosecondBuilder, bool),
    Uuid(FixedSizeBinaryBuilder),
}

/// Builds one Arrow column from wire values. See the [module docs](self).
pub struct ColumnBuilder {
    kind: ValueKind,
    inner: Inner,
}

const MICROS_PER_DAY: i64 = 86_400_000_000;
const DAYS_1970_FROM_0000: i64 = 719_468;

impl ColumnBuilder {
    /// A builder for `kind` with room for `capacity` values.
    pub fn new(kind: ValueKind, capacity: usize) -> Self {
        let inner = match kind {
            ValueKind::Bool => Inner::Bool(BooleanBuilder::with_capacity(capacity)),
            ValueKind::Int16 => Inner::I16(Int16Builder::with_capacity(capacity)),
            ValueKind::Int32 => Inner::I32(Int32Builder::with_capacity(capacity)),
            ValueKind::Int64 => Inner::I64(Int64Builder::with_capacity(capacity)),
            ValueKind::UInt32 => Inner::U32(UInt32Builder::with_capacity(capacity)),
            ValueKind::Float32 => Inner::F32(Float32Builder::with_capacity(capacity)),
            ValueKind::Float64 | ValueKind::NumericFloat => {
                Inner::F64(Float64Builder::with_capacity(capacity))
            }
            ValueKind::Decimal128 { precision, scale } => Inner::D128(
                Decimal128Builder::with_capacity(capacity)
                    .with_precision_and_scale(precision, scale)
                    .unwrap_or_else(|_| Decimal128Builder::with_capacity(capacity)),
                precision,
                scale,
            ),
            ValueKind::Decimal256 { precision, scale } => Inner::D256(
                Decimal256Builder::with_capacity(capacity)
                    .with_precision_and_scale(precision, scale)
                    .unwrap_or_else(|_| Decimal256Builder::with_capacity(capacity)),
                precision,
                scale,
            ),
            ValueKind::NumericString | ValueKind::Text | ValueKind::Json => {
                Inner::Utf8(StringBuilder::with_capacity(capacity, capacity * 16))
            }
            ValueKind::Bytea => {
                Inner::Binary(BinaryBuilder::with_capacity(capacity, capacity * 16))
            }
            ValueKind::Date => Inner::Date(Date32Builder::with_capacity(capacity)),
            ValueKind::Time => Inner::Time(Time64MicrosecondBuilder::with_capacity(capacity)),
            ValueKind::Timestamp => {
                Inner::Ts(TimestampMicrosecondBuilder::with_capacity(capacity), false)
            }
            ValueKind::TimestampTz => Inner::Ts(
                TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"),
                true,
            ),
            ValueKind::Uuid => Inner::Uuid(FixedSizeBinaryBuilder::with_capacity(capacity, 16)),
        };
        ColumnBuilder { kind, inner }
    }

    /// The kind this builder stores.
    pub fn kind(&self) -> ValueKind {
        self.kind
    }

    /// Values appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        use arrow_array::builder::ArrayBuilder;
        match &self.inner {
            Inner::Bool(b) => b.len(),
            Inner::I16(b) => b.len(),
            Inner::I32(b) => b.len(),
            Inner::I64(b) => b.len(),
            Inner::U32(b) => b.len(),
            Inner::F32(b) => b.len(),
            Inner::F64(b) => b.len(),
            Inner::D128(b, ..) => b.len(),
            Inner::D256(b, ..) => b.len(),
            Inner::Utf8(b) => b.len(),
            Inner::Binary(b) => b.len(),
            Inner::Date(b) => b.len(),
            Inner::Time(b) => b.len(),
            Inner::Ts(b, _) => b.len(),
            Inner::Uuid(b) => b.len(),
        }
    }

    /// Whether nothing was appended since the last finish.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends NULL.
    pub fn append_null(&mut self) {
        match &mut self.inner {
            Inner::Bool(b) => b.append_null(),
            Inner::I16(b) => b.append_null(),
            Inner::I32(b) => b.append_null(),
            Inner::I64(b) => b.append_null(),
            Inner::U32(b) => b.append_null(),
            Inner::F32(b) => b.append_null(),
            Inner::F64(b) => b.append_null(),
            Inner::D128(b, ..) => b.append_null(),
            Inner::D256(b, ..) => b.append_null(),
            Inner::Utf8(b) => b.append_null(),
            Inner::Binary(b) => b.append_null(),
            Inner::Date(b) => b.append_null(),
            Inner::Time(b) => b.append_null(),
            Inner::Ts(b, _) => b.append_null(),
            Inner::Uuid(b) => b.append_null(),
        }
    }

    /// Appends one value given in PostgreSQL's text output format.
    pub fn append_text(&mut self, text: &[u8], policy: &ValuePolicy) -> Result<(), ValueError> {
        match &mut self.inner {
            Inner::Bool(b) => match text {
                b"t" => b.append_value(true),
                b"f" => b.append_value(false),
                _ => return Err(err("bool", "invalid text")),
            },
            Inner::I16(b) => b.append_value(parse_int(text, "int2")?),
            Inner::I32(b) => b.append_value(parse_int(text, "int4")?),
            Inner::I64(b) => b.append_value(parse_int(text, "int8")?),
            Inner::U32(b) => b.append_value(parse_int(text, "oid")?),
            Inner::F32(b) => b.append_value(parse_float(text, "float4")?),
            Inner::F64(b) => {
                let kind = if self.kind == ValueKind::NumericFloat {
                    "numeric"
                } else {
                    "float8"
                };
                b.append_value(parse_float(text, kind)?)
            }
            Inner::D128(b, precision, scale) => match parse_decimal(text, *precision, *scale)? {
                Some(v) => {
                    let v = v
                        .to_i128()
                        .ok_or_else(|| err("numeric", "value exceeds the column's precision"))?;
                    b.append_value(v)
                }
                None => nan_policy(policy, || b.append_null())?,
            },
            Inner::D256(b, precision, scale) => match parse_decimal(text, *precision, *scale)? {
                Some(v) => b.append_value(v),
                None => nan_policy(policy, || b.append_null())?,
            },
            Inner::Utf8(b) => {
                let s = std::str::from_utf8(text).map_err(|_| err("text", "invalid UTF-8"))?;
                b.append_value(s)
            }
            Inner::Binary(b) => {
                let hex = text
                    .strip_prefix(b"\\x")
                    .ok_or_else(|| err("bytea", "expected hex format"))?;
                if hex.len() % 2 != 0 {
                    return Err(err("bytea", "odd number of hex digits"));
                }
                let mut out = Vec::with_capacity(hex.len() / 2);
                for pair in hex.chunks_exact(2) {
                    let (hi, lo) = (hex_digit(pair[0]), hex_digit(pair[1]));
                    match (hi, lo) {
                        (Some(h), Some(l)) => out.push(h << 4 | l),
                        _ => return Err(err("bytea", "invalid hex digit")),
                    }
                }
                b.append_value(&out)
            }
            Inner::Date(b) => match parse_date(text)? {
                Special::Value(days) => {
                    let days = i32::try_from(days).map_err(|_| err("date", "out of range"))?;
                    b.append_value(days)
                }
                Special::PosInf => b.append_option(infinity(policy, "date", i32::MAX)?),
                Special::NegInf => b.append_option(infinity(policy, "date", -i32::MAX)?),
            },
            Inner::Time(b) => {
                let mut c = Cursor::new(text);
                let t = c.time("time")?;
                c.end("time")?;
                b.append_value(t)
            }
            Inner::Ts(b, tz) => {
                let kind = if *tz { "timestamptz" } else { "timestamp" };
                match parse_timestamp(text, *tz)? {
                    Special::Value(us) => b.append_value(us),
                    Special::PosInf => b.append_option(infinity(policy, kind, i64::MAX)?),
                    Special::NegInf => b.append_option(infinity(policy, kind, -i64::MAX)?),
                }
            }
            Inner::Uuid(b) => {
                let bytes = parse_uuid(text)?;
                b.append_value(bytes)
                    .map_err(|_| err("uuid", "wrong length"))?
            }
        }
        Ok(())
    }

    /// Returns the built array and resets the builder.
    pub fn finish(&mut self) -> ArrayRef {
        match &mut self.inner {
            Inner::Bool(b) => Arc::new(b.finish()),
            Inner::I16(b) => Arc::new(b.finish()),
            Inner::I32(b) => Arc::new(b.finish()),
            Inner::I64(b) => Arc::new(b.finish()),
            Inner::U32(b) => Arc::new(b.finish()),
            Inner::F32(b) => Arc::new(b.finish()),
            Inner::F64(b) => Arc::new(b.finish()),
            Inner::D128(b, ..) => Arc::new(b.finish()),
            Inner::D256(b, ..) => Arc::new(b.finish()),
            Inner::Utf8(b) => Arc::new(b.finish()),
            Inner::Binary(b) => Arc::new(b.finish()),
            Inner::Date(b) => Arc::new(b.finish()),
            Inner::Time(b) => Arc::new(b.finish()),
            Inner::Ts(b, _) => Arc::new(b.finish()),
            Inner::Uuid(b) => Arc::new(b.finish()),
        }
    }
}

fn nan_policy(policy: &ValuePolicy, null: impl FnOnce()) -> Result<(), ValueError> {
    match policy.numeric_nan {
        NumericNanPolicy::Null => {
            null();
            Ok(())
        }
        NumericNanPolicy::Error => Err(err(
            "numeric",
            "NaN or infinity in a decimal column and types.numeric_nan is 'error'",
        )),
    }
}

/// The value to store for an infinite date/timestamp: the clamp value, None for NULL.
fn infinity<T>(
    policy: &ValuePolicy,
    kind: &'static str,
    clamp: T,
) -> Result<Option<T>, ValueError> {
    match policy.infinity {
        InfinityPolicy::Clamp => Ok(Some(clamp)),
        InfinityPolicy::Null => Ok(None),
        InfinityPolicy::Error => Err(err(kind, "infinite value and types.infinity is 'error'")),
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn parse_int<T: std::str::FromStr>(text: &[u8], kind: &'static str) -> Result<T, ValueError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| err(kind, "invalid or out-of-range integer"))
}

fn parse_float<T: std::str::FromStr>(text: &[u8], kind: &'static str) -> Result<T, ValueError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| err(kind, "invalid number"))
}

/// A decimal scaled to `scale`; None for NaN/±Infinity. Checks precision; never rounds.
fn parse_decimal(text: &[u8], precision: u8, scale: i8) -> Result<Option<i256>, ValueError> {
    const K: &str = "numeric";
    if matches!(text, b"NaN" | b"Infinity" | b"-Infinity") {
        return Ok(None);
    }
    let (neg, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    let (int_part, frac_part) = match digits.iter().position(|&c| c == b'.') {
        Some(p) => (
            digits.get(..p).unwrap_or_default(),
            digits.get(p + 1..).unwrap_or_default(),
        ),
        None => (digits, &[][..]),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(err(K, "invalid number"));
    }
    let scale = usize::try_from(scale).map_err(|_| err(K, "negative scale"))?;
    let ten = i256::from_i128(10);
    let mut v = i256::ZERO;
    let mut significant = 0usize;
    let push = |v: i256, c: u8| -> Result<i256, ValueError> {
        if !c.is_ascii_digit() {
            return Err(err(K, "invalid number"));
        }
        v.checked_mul(ten)
            .and_then(|x| x.checked_add(i256::from_i128(i128::from(c - b'0'))))
            .ok_or_else(|| err(K, "value exceeds the column's precision"))
    };
    for &c in int_part {
        v = push(v, c)?;
        if v != i256::ZERO {
            significant += 1;
        }
    }
    for (i, &c) in frac_part.iter().enumerate() {
        if i < scale {
            v = push(v, c)?;
            if v != i256::ZERO {
                significant += 1;
            }
        } else if c != b'0' {
            if !c.is_ascii_digit() {
                return Err(err(K, "invalid number"));
            }
            return Err(err(K, "more fraction digits than the column's scale"));
        }
    }
    for _ in frac_part.len()..scale {
        v = v
            .checked_mul(ten)
            .ok_or_else(|| err(K, "value exceeds the column's precision"))?;
        if v != i256::ZERO {
            significant += 1;
        }
    }
    if significant > usize::from(precision) {
        return Err(err(K, "value exceeds the column's precision"));
    }
    Ok(Some(if neg { v.wrapping_neg() } else { v }))
}

enum Special {
    Value(i64),
    PosInf,
    NegInf,
}

/// A small cursor over ASCII date/time text.
struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a [u8]) -> Self {
        Cursor { s, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8, kind: &'static str) -> Result<(), ValueError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(err(kind, "invalid text"))
        }
    }

    /// At least `min` digits (at most 9), as a number.
    fn digits(&mut self, min: usize, kind: &'static str) -> Result<i64, ValueError> {
        let start = self.pos;
        let mut v: i64 = 0;
        while let Some(c) = self.peek().filter(u8::is_ascii_digit) {
            if self.pos - start >= 9 {
                return Err(err(kind, "out of range"));
            }
            v = v * 10 + i64::from(c - b'0');
            self.pos += 1;
        }
        if self.pos - start < min {
            return Err(err(kind, "invalid text"));
        }
        Ok(v)
    }

    /// YYYY-MM-DD → (year, month, day).
    fn date(&mut self, kind: &'static str) -> Result<(i64, i64, i64), ValueError> {
        let y = self.digits(4, kind)?;
        self.expect(b'-', kind)?;
        let m = self.digits(2, kind)?;
        self.expect(b'-', kind)?;
        let d = self.digits(2, kind)?;
        if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
            return Err(err(kind, "invalid date"));
        }
        Ok((y, m, d))
    }

    /// HH:MM:SS[.ffffff] → µs (24:00:00 allowed).
    fn time(&mut self, kind: &'static str) -> Result<i64, ValueError> {
        let h = self.digits(2, kind)?;
        self.expect(b':', kind)?;
        let mi = self.digits(2, kind)?;
        self.expect(b':', kind)?;
        let s = self.digits(2, kind)?;
        let mut frac = 0i64;
        if self.eat(b'.') {
            let start = self.pos;
            let f = self.digits(1, kind)?;
            let n = self.pos - start;
            if n > 6 {
                return Err(err(kind, "more than 6 fraction digits"));
            }
            frac = f * 10i64.pow(6 - n as u32);
        }
        if h > 24 || mi > 59 || s > 60 || (h == 24 && (mi, s, frac) != (0, 0, 0)) {
            return Err(err(kind, "invalid time"));
        }
        Ok(((h * 60 + mi) * 60 + s) * 1_000_000 + frac)
    }

    /// `+HH[:MM[:SS]]` → seconds east of UTC.
    fn offset(&mut self, kind: &'static str) -> Result<i64, ValueError> {
        let sign = match self.peek() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return Err(err(kind, "missing UTC offset")),
        };
        self.pos += 1;
        let h = self.digits(2, kind)?;
        let mut secs = h * 3600;
        if self.eat(b':') {
            secs += self.digits(2, kind)? * 60;
            if self.eat(b':') {
                secs += self.digits(2, kind)?;
            }
        }
        Ok(sign * secs)
    }

    /// Optional ` BC`: returns whether it was there.
    fn bc(&mut self) -> bool {
        if self.s.get(self.pos..) == Some(b" BC") {
            self.pos += 3;
            true
        } else {
            false
        }
    }

    fn end(&self, kind: &'static str) -> Result<(), ValueError> {
        if self.pos == self.s.len() {
            Ok(())
        } else {
            Err(err(kind, "unexpected trailing text"))
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (astronomical year).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - DAYS_1970_FROM_0000
}

fn parse_date(text: &[u8]) -> Result<Special, ValueError> {
    match text {
        b"infinity" => return Ok(Special::PosInf),
        b"-infinity" => return Ok(Special::NegInf),
        _ => {}
    }
    let mut c = Cursor::new(text);
    let (y, m, d) = c.date("date")?;
    let y = if c.bc() { 1 - y } else { y };
    c.end("date")?;
    Ok(Special::Value(days_from_civil(y, m, d)))
}

fn parse_timestamp(text: &[u8], tz: bool) -> Result<Special, ValueError> {
    let kind = if tz { "timestamptz" } else { "timestamp" };
    match text {
        b"infinity" => return Ok(Special::PosInf),
        b"-infinity" => return Ok(Special::NegInf),
        _ => {}
    }
    let mut c = Cursor::new(text);
    let (y, m, d) = c.date(kind)?;
    c.expect(b' ', kind)?;
    let t = c.time(kind)?;
    let offset = if tz { c.offset(kind)? } else { 0 };
    let y = if c.bc() { 1 - y } else { y };
    c.end(kind)?;
    let days = days_from_civil(y, m, d);
    days.checked_mul(MICROS_PER_DAY)
        .and_then(|us| us.checked_add(t))
        .and_then(|us| us.checked_sub(offset * 1_000_000))
        .map(Special::Value)
        .ok_or_else(|| err(kind, "out of range"))
}

fn parse_uuid(text: &[u8]) -> Result<[u8; 16], ValueError> {
    let mut out = [0u8; 16];
    let mut n = 0usize;
    let mut hi: Option<u8> = None;
    for &c in text {
        if c == b'-' {
            continue;
        }
        let v = hex_digit(c).ok_or_else(|| err("uuid", "invalid hex digit"))?;
        match hi.take() {
            None => hi = Some(v),
            Some(h) => {
                let slot = out.get_mut(n).ok_or_else(|| err("uuid", "too long"))?;
                *slot = h << 4 | v;
                n += 1;
            }
        }
    }
    if n != 16 || hi.is_some() {
        return Err(err("uuid", "wrong length"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
