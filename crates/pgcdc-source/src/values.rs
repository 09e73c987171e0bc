//! PostgreSQL wire values (text output format) → Arrow array builders.
//!
//! One [`ColumnBuilder`] per column, chosen by the column's [`ValueKind`]; the arrays it
//! builds have exactly the Arrow type [`ValueKind::arrow_type`] names. Values arrive in
//! the text form PostgreSQL's output functions produce in the session `wire` sets up
//! (`DateStyle=ISO`, `TimeZone=UTC`, `IntervalStyle=postgres`, `extra_float_digits=3`,
//! `bytea_output=hex`, `client_encoding=UTF8`). They are parsed straight from the bytes:
//! no allocation per value beyond what the Arrow builder itself does.
//!
//! Binary (send-format) values, from binary COPY and binary pgoutput, are read by
//! [`ColumnBuilder::append_binary`] (the fixed-width kinds) and
//! [`ColumnBuilder::append_send`], which takes each column's [`BinaryForm`] (text-like
//! types, jsonb, numeric, arrays) and stores the same values the text path would.
//!
//! # Accepted text, per kind
//!
//! | kind | text | stored as |
//! |------|------|-----------|
//! | `Bool` | `t`, `f` | Boolean |
//! | `Int16`, `Int32`, `Int64` | `[-+]digits`, range-checked | Int16/32/64 |
//! | `UInt32` (oid, xid) | `digits`, range-checked | UInt32 |
//! | `Float32`, `Float64` | `1.5`, `1.5e+30`, `1e-45`, `-0`, `NaN`, `Infinity`, `-Infinity` | Float32/64 (NaN and -0 kept) |
//! | `Decimal128`, `Decimal256` | `123.45`, `-0.001`, `7`, also `1.5e3`; `NaN`, `±Infinity` per policy | the value × 10^scale |
//! | `NumericString` | anything UTF-8, unchanged | Utf8 |
//! | `NumericFloat` | as `Float64` (numeric's long digit strings too) | Float64 |
//! | `Text`, `Json` | anything UTF-8, unchanged | Utf8 |
//! | `Bytea` | `\x` + hex pairs (either case) | Binary |
//! | `Date` | `YYYY-MM-DD[ BC]`, years of 4+ digits; `±infinity` per policy | days since 1970-01-01 |
//! | `Time` | `HH:MM:SS[.f…]` (1–6 fraction digits), `24:00:00` | µs since midnight |
//! | `Timestamp` | `YYYY-MM-DD HH:MM:SS[.f…][ BC]`; `±infinity` per policy | µs since 1970 |
//! | `TimestampTz` | as `Timestamp` with `±HH[:MM[:SS]]` before ` BC` | µs since 1970 UTC |
//! | `Uuid` | `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (either case) | FixedSizeBinary(16) |
//! | `Interval` | IntervalStyle postgres: `1 year -2 mons +3 days -04:05:06.5`, `00:00:00`; `±infinity` (PG 17+) per policy | Struct(months, days, microseconds) |
//! | `List` | array_out's `{a,"b c",NULL}`: elements as their kind's text, `"…"` with `\` escapes | List of the element kind |
//!
//! Dates are proleptic Gregorian like PostgreSQL's (year *N* BC is astronomical year
//! 1 − *N*); anything else than the forms above is an error.
//!
//! # Values Arrow cannot hold
//!
//! They follow the [`ValuePolicy`]:
//! - `infinity` / `-infinity` dates and timestamps
//!   ([`InfinityPolicy`](pgcdc_core::InfinityPolicy)): `Clamp` stores `i32::MAX` /
//!   `-i32::MAX` days or `i64::MAX` / `-i64::MAX` µs (DuckDB's encoding of infinity;
//!   intervals keep PostgreSQL's own), `Null` stores NULL, `Error` fails with
//!   [`ValueError::Infinite`].
//! - numeric `NaN` / `Infinity` / `-Infinity` in a decimal column
//!   ([`NumericNanPolicy`](pgcdc_core::NumericNanPolicy)): `Null` stores NULL, `Error`
//!   fails with [`ValueError::NumericNan`]. Float and
//!   `NumericFloat` columns keep them; `NumericString` keeps the text.
//! - Nothing is ever rounded silently: a numeric with nonzero digits beyond the column's
//!   scale ([`ValueError::Scale`]) or more digits than its precision
//!   ([`ValueError::Precision`]) is an error. Fewer fraction digits are zero-padded.
//! - A finite float or `NumericFloat` text beyond the type's range is an error, not
//!   infinity; integers are range-checked against the column type.
//! - Utf8/Binary columns use i32 offsets: a value that would take a batch's text or
//!   bytes past 2 GiB is an error instead of a panic (finish the batch earlier).
//! - Timestamps in the last ~30 years of PostgreSQL's range (after 294247-01-10) do not
//!   fit in i64 µs since 1970 and are an error ([`ValueError::OutOfRange`]); every
//!   PostgreSQL date fits Date32.
//!
//! Errors name the kind and the reason, never the value: row contents must not reach logs.
//! A failed append leaves the builder unchanged (nothing appended), so a caller that
//! wants to keep going appends a null in its place — except for `List` kinds, where an
//! element that fails may leave earlier elements of that array in the child builder: a
//! caller must stop using the builder (the pipeline fails the batch).
//!
//! Arrays: a column declared with n dimensions is n nested Lists (see
//! [`ValueKind::array_of`]); only values with the default lower bounds 1 and the
//! declared number of dimensions fit (`array`).
//!
//! # Where things are
//!
//! This file owns the dispatch: [`ColumnBuilder`], the one builder enum (`Inner`) and
//! the match over it in each operation. The parsers live by type family, each file
//! with its own overview: `number` (bool, integers, floats), `numeric` (numeric,
//! money), `bytes` (text, json, bytea, uuid), `time` (date, time, timetz, timestamp and
//! the infinities), `interval`, `array`, `range` (ranges, multiranges), `record`
//! (composite types), `ext` (hstore, pgvector), `net` (inet, macaddr, bit strings, from
//! their binary forms), `send` ([`BinaryForm`]: how each binary column is read), and
//! `error` ([`ValueError`]).

use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Decimal256Builder, FixedSizeBinaryBuilder, Float32Builder, Float64Builder, Int16Builder,
    Int32Builder, Int64Builder, NullBuilder, PrimitiveBuilder, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder, UInt32Builder,
};
use arrow_array::{ArrayRef, ArrowPrimitiveType};
use pgcdc_core::types::{multirange_item, MONEY_PRECISION};
use pgcdc_core::{ValueKind, ValuePolicy};

mod array;
mod bytes;
mod error;
mod ext;
mod interval;
mod net;
mod number;
mod numeric;
mod range;
mod record;
mod send;
#[cfg(test)]
mod tests;
mod time;

use array::ListBuilder;
use error::kind_name;
use interval::IntervalBuilder;
use time::TimeTzBuilder;

pub use error::ValueError;
pub use send::{numeric_send, numeric_text, BinaryForm, NATIVE};

/// The Arrow builder of one column, by what its kind stores.
enum Inner {
    Bool(BooleanBuilder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    UInt32(UInt32Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal128(Decimal128Builder, u8, i8),
    Decimal256(Decimal256Builder, u8, i8),
    /// money: the count of its smallest unit, at this scale.
    Money(Decimal128Builder, i8),
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
    Date32(Date32Builder),
    Time64(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Uuid(FixedSizeBinaryBuilder),
    Interval(Box<IntervalBuilder>),
    TimeTz(Box<TimeTzBuilder>),
    List(Box<ListBuilder>),
    Struct(Box<record::StructBuilder>),
    Range(Box<range::RangeBuilder>),
    Hstore(Box<ext::HstoreBuilder>),
    Vector(Box<ext::VectorBuilder>),
    /// A decimal kind Arrow rejects: only nulls can be appended.
    Unsupported(NullBuilder),
}

impl Inner {
    /// For a kind Arrow cannot hold (a decimal it rejects, or something made of one).
    fn nulls_only() -> Self {
        Inner::Unsupported(NullBuilder::new())
    }
}

/// Evaluates `$body` with `$b` bound to the builder inside `$inner`, whichever variant it
/// is: a plain `match` with one arm per variant, each a static call (no dyn dispatch),
/// for the operations every builder has ([`Part`]).
macro_rules! each_part {
    ($inner:expr, $b:ident => $body:expr) => {
        match $inner {
            Inner::Bool($b) => $body,
            Inner::Int16($b) => $body,
            Inner::Int32($b) => $body,
            Inner::Int64($b) => $body,
            Inner::UInt32($b) => $body,
            Inner::Float32($b) => $body,
            Inner::Float64($b) => $body,
            Inner::Decimal128($b, ..) => $body,
            Inner::Decimal256($b, ..) => $body,
            Inner::Money($b, _) => $body,
            Inner::Utf8($b) => $body,
            Inner::Binary($b) => $body,
            Inner::Date32($b) => $body,
            Inner::Time64($b) => $body,
            Inner::Timestamp($b) => $body,
            Inner::Uuid($b) => $body,
            Inner::Interval($b) => $body,
            Inner::TimeTz($b) => $body,
            Inner::List($b) => $body,
            Inner::Struct($b) => $body,
            Inner::Range($b) => $body,
            Inner::Hstore($b) => $body,
            Inner::Vector($b) => $body,
            Inner::Unsupported($b) => $body,
        }
    };
}

/// What every builder inside a [`ColumnBuilder`] does, whatever it parses.
trait Part {
    /// Values (including nulls) appended since the last finish.
    fn len(&self) -> usize;
    fn append_null(&mut self);
    /// The array built so far; the builder is reset for reuse.
    fn finish(&mut self) -> ArrayRef;
}

/// Arrow's builders, through their own methods.
macro_rules! arrow_part {
    ($($t:ty),+ $(,)?) => {$(
        impl Part for $t {
            #[inline]
            fn len(&self) -> usize {
                ArrayBuilder::len(self)
            }
            #[inline]
            fn append_null(&mut self) {
                <$t>::append_null(self)
            }
            #[inline]
            fn finish(&mut self) -> ArrayRef {
                Arc::new(<$t>::finish(self))
            }
        }
    )+};
}
arrow_part!(
    BooleanBuilder,
    StringBuilder,
    BinaryBuilder,
    FixedSizeBinaryBuilder,
    NullBuilder,
);

impl<T: ArrowPrimitiveType> Part for PrimitiveBuilder<T> {
    #[inline]
    fn len(&self) -> usize {
        ArrayBuilder::len(self)
    }
    #[inline]
    fn append_null(&mut self) {
        PrimitiveBuilder::append_null(self)
    }
    #[inline]
    fn finish(&mut self) -> ArrayRef {
        Arc::new(PrimitiveBuilder::finish(self))
    }
}

/// pgcdc's builders of nested values, through their own methods (each `finish` already
/// gives an [`ArrayRef`]).
macro_rules! own_part {
    ($($t:ty),+ $(,)?) => {$(
        impl Part for Box<$t> {
            #[inline]
            fn len(&self) -> usize {
                <$t>::len(self)
            }
            #[inline]
            fn append_null(&mut self) {
                <$t>::append_null(self)
            }
            #[inline]
            fn finish(&mut self) -> ArrayRef {
                <$t>::finish(self)
            }
        }
    )+};
}
own_part!(
    IntervalBuilder,
    TimeTzBuilder,
    ListBuilder,
    record::StructBuilder,
    range::RangeBuilder,
    ext::HstoreBuilder,
    ext::VectorBuilder,
);

/// Builds one Arrow column from PostgreSQL text values. See the [module docs](self).
pub struct ColumnBuilder {
    kind: ValueKind,
    inner: Inner,
    /// Reused for values rendered to text first (binary numerics).
    scratch: Vec<u8>,
}

impl std::fmt::Debug for ColumnBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColumnBuilder")
            .field("kind", &self.kind)
            .field("len", &self.len())
            .finish()
    }
}

impl ColumnBuilder {
    /// A builder for `kind` with room for `capacity` values.
    ///
    /// A decimal kind Arrow cannot represent (precision 0 or above 38/76, scale above the
    /// precision) gives a builder that accepts only nulls: every
    /// [`append_text`](Self::append_text) fails with [`ValueError::UnsupportedDecimal`]
    /// and [`finish`](Self::finish) returns a `Null` array.
    pub fn new(kind: ValueKind, capacity: usize) -> Self {
        let inner = Self::new_inner(&kind, capacity);
        ColumnBuilder {
            kind,
            inner,
            scratch: Vec::new(),
        }
    }

    fn new_inner(kind: &ValueKind, capacity: usize) -> Inner {
        let n = capacity;
        let bytes = n.saturating_mul(16).min(1 << 24);
        match kind {
            ValueKind::Bool => Inner::Bool(BooleanBuilder::with_capacity(n)),
            ValueKind::Int16 => Inner::Int16(Int16Builder::with_capacity(n)),
            ValueKind::Int32 => Inner::Int32(Int32Builder::with_capacity(n)),
            ValueKind::Int64 => Inner::Int64(Int64Builder::with_capacity(n)),
            ValueKind::UInt32 => Inner::UInt32(UInt32Builder::with_capacity(n)),
            ValueKind::Float32 => Inner::Float32(Float32Builder::with_capacity(n)),
            ValueKind::Float64 | ValueKind::NumericFloat => {
                Inner::Float64(Float64Builder::with_capacity(n))
            }
            &ValueKind::Decimal128 {
                precision: p,
                scale: s,
            } => Decimal128Builder::with_capacity(n)
                .with_precision_and_scale(p, s)
                .map_or_else(|_| Inner::nulls_only(), |b| Inner::Decimal128(b, p, s)),
            &ValueKind::Decimal256 {
                precision: p,
                scale: s,
            } => Decimal256Builder::with_capacity(n)
                .with_precision_and_scale(p, s)
                .map_or_else(|_| Inner::nulls_only(), |b| Inner::Decimal256(b, p, s)),
            &ValueKind::Money { scale } => Decimal128Builder::with_capacity(n)
                .with_precision_and_scale(MONEY_PRECISION, scale)
                .map_or_else(|_| Inner::nulls_only(), |b| Inner::Money(b, scale)),
            ValueKind::NumericString | ValueKind::Text | ValueKind::Json => {
                Inner::Utf8(StringBuilder::with_capacity(n, bytes))
            }
            ValueKind::Bytea => Inner::Binary(BinaryBuilder::with_capacity(n, bytes)),
            ValueKind::Date => Inner::Date32(Date32Builder::with_capacity(n)),
            ValueKind::Time => Inner::Time64(Time64MicrosecondBuilder::with_capacity(n)),
            ValueKind::Timestamp => Inner::Timestamp(TimestampMicrosecondBuilder::with_capacity(n)),
            ValueKind::TimestampTz => {
                Inner::Timestamp(TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC"))
            }
            ValueKind::Uuid => Inner::Uuid(FixedSizeBinaryBuilder::with_capacity(n, 16)),
            ValueKind::TimeTz => Inner::TimeTz(Box::new(TimeTzBuilder::new(n))),
            ValueKind::Interval => Inner::Interval(Box::new(IntervalBuilder::new(n))),
            ValueKind::List { element } => {
                let child = ColumnBuilder::new((**element).clone(), n.saturating_mul(4));
                ListBuilder::inner(child, Arc::new(element.arrow_field("item")), n)
            }
            ValueKind::Multirange { element } => {
                let range = ValueKind::Range {
                    element: element.clone(),
                };
                let field = Arc::new(multirange_item(element));
                ListBuilder::inner(ColumnBuilder::new(range, n), field, n)
            }
            ValueKind::Range { element } => {
                let r = range::RangeBuilder::new(element, n);
                if r.supported() {
                    Inner::Range(Box::new(r))
                } else {
                    Inner::nulls_only()
                }
            }
            ValueKind::Hstore => Inner::Hstore(Box::new(ext::HstoreBuilder::new(n))),
            ValueKind::Vector { dim } => Inner::Vector(Box::new(ext::VectorBuilder::new(*dim, n))),
            ValueKind::Struct { fields } => {
                let s = record::StructBuilder::new(fields, n);
                if s.supported() {
                    Inner::Struct(Box::new(s))
                } else {
                    // An attribute Arrow cannot hold: nulls only, like that attribute.
                    Inner::nulls_only()
                }
            }
        }
    }

    /// Whether this kind has no Arrow type (a decimal Arrow rejects, or a list or struct
    /// of one): only nulls can be appended.
    fn is_unsupported(&self) -> bool {
        matches!(self.inner, Inner::Unsupported(_))
    }

    /// The kind this builder parses and stores.
    pub fn kind(&self) -> &ValueKind {
        &self.kind
    }

    /// Values (including nulls) appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        each_part!(&self.inner, b => Part::len(b))
    }

    /// Whether nothing was appended since the last [`finish`](Self::finish).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a NULL.
    pub fn append_null(&mut self) {
        each_part!(&mut self.inner, b => Part::append_null(b))
    }

    /// Returns the array built so far and resets the builder for reuse (same kind).
    pub fn finish(&mut self) -> ArrayRef {
        each_part!(&mut self.inner, b => Part::finish(b))
    }

    /// Appends one value given in PostgreSQL's text output format (see the
    /// [module docs](self) for the accepted forms and the policies applied).
    ///
    /// On error nothing is appended and the builder is unchanged.
    pub fn append_text(&mut self, text: &[u8], policy: &ValuePolicy) -> Result<(), ValueError> {
        let kind = &self.kind;
        let name = kind_name(kind);
        match &mut self.inner {
            Inner::Bool(b) => b.append_value(number::parse_bool(text, name)?),
            Inner::Int16(b) => b.append_value(number::parse_int_as(text, name)?),
            Inner::Int32(b) => b.append_value(number::parse_int_as(text, name)?),
            Inner::Int64(b) => b.append_value(number::parse_int(text, name)?),
            Inner::UInt32(b) => b.append_value(number::parse_uint_as(text, name)?),
            Inner::Float32(b) => b.append_value(number::parse_float(text, name)?),
            Inner::Float64(b) => b.append_value(number::parse_float(text, name)?),
            Inner::Decimal128(b, p, s) => numeric::append_decimal(b, text, *p, *s, policy)?,
            Inner::Decimal256(b, p, s) => numeric::append_decimal(b, text, *p, *s, policy)?,
            Inner::Money(b, scale) => b.append_value(numeric::parse_money(text, *scale)?),
            Inner::Utf8(b) => bytes::append_utf8(b, text, name)?,
            Inner::Binary(b) => bytes::append_bytea(b, text)?,
            Inner::Date32(b) => b.append_option(time::parse_date(text)?.stored(policy, name)?),
            Inner::Time64(b) => b.append_value(time::parse_time(text)?),
            Inner::Timestamp(b) => {
                let tz = *kind == ValueKind::TimestampTz;
                let us = time::parse_timestamp(text, tz, name)?;
                b.append_option(us.stored(policy, name)?)
            }
            Inner::Uuid(b) => bytes::append_uuid(b, text, name)?,
            Inner::TimeTz(b) => b.append(Some(time::parse_timetz(text)?)),
            Inner::Interval(b) => b.append(interval::parse_interval(text)?.stored(policy, name)?),
            Inner::List(l) if matches!(kind, ValueKind::Multirange { .. }) => {
                l.append_multirange_text(text, policy)?
            }
            Inner::List(l) => l.append_text(text, policy)?,
            Inner::Struct(s) => s.append_text(text, policy)?,
            Inner::Range(r) => r.append_text(text, policy)?,
            Inner::Hstore(h) => h.append_text(text)?,
            Inner::Vector(v) => v.append_text(text)?,
            Inner::Unsupported(_) => return Err(ValueError::unsupported(kind)),
        }
        Ok(())
    }

    /// Whether [`append_binary`](Self::append_binary) reads this kind's PostgreSQL binary
    /// (send) format. Other kinds are read as text (select them with a `::text` cast).
    pub fn binary_kind(kind: &ValueKind) -> bool {
        matches!(
            kind,
            ValueKind::Bool
                | ValueKind::Int16
                | ValueKind::Int32
                | ValueKind::Int64
                | ValueKind::UInt32
                | ValueKind::Float32
                | ValueKind::Float64
                | ValueKind::Bytea
                | ValueKind::Date
                | ValueKind::Time
                | ValueKind::Timestamp
                | ValueKind::TimestampTz
                | ValueKind::Uuid
                | ValueKind::Interval
                | ValueKind::Money { .. }
                | ValueKind::TimeTz
        )
    }

    /// Appends one value in PostgreSQL's binary format (as binary COPY and binary
    /// pgoutput send it), for the kinds [`binary_kind`](Self::binary_kind) accepts. Dates
    /// and timestamps count from 2000-01-01; `±infinity` follows `policy.infinity`.
    pub fn append_binary(&mut self, v: &[u8], policy: &ValuePolicy) -> Result<(), ValueError> {
        let name = kind_name(&self.kind);
        let no_binary = || ValueError::invalid(name, "no binary form is read for this type");
        if !Self::binary_kind(&self.kind) {
            return Err(no_binary());
        }
        match &mut self.inner {
            Inner::Bool(b) => b.append_value(be_bytes::<1>(v, name)? != [0]),
            Inner::Int16(b) => b.append_value(i16::from_be_bytes(be_bytes(v, name)?)),
            Inner::Int32(b) => b.append_value(i32::from_be_bytes(be_bytes(v, name)?)),
            Inner::Int64(b) => b.append_value(i64::from_be_bytes(be_bytes(v, name)?)),
            // cash_send: the int8 count of the smallest unit.
            Inner::Money(b, _) => {
                b.append_value(i128::from(i64::from_be_bytes(be_bytes(v, name)?)))
            }
            Inner::UInt32(b) => b.append_value(u32::from_be_bytes(be_bytes(v, name)?)),
            Inner::Float32(b) => {
                b.append_value(f32::from_bits(u32::from_be_bytes(be_bytes(v, name)?)))
            }
            Inner::Float64(b) => {
                b.append_value(f64::from_bits(u64::from_be_bytes(be_bytes(v, name)?)))
            }
            Inner::Binary(b) => bytes::append_bytes(b, v, name)?,
            Inner::Date32(b) => b.append_option(time::date_send(v, name)?.stored(policy, name)?),
            Inner::Time64(b) => b.append_value(i64::from_be_bytes(be_bytes(v, name)?)),
            Inner::Timestamp(b) => {
                b.append_option(time::timestamp_send(v, name)?.stored(policy, name)?)
            }
            Inner::Uuid(b) => b
                .append_value(be_bytes::<16>(v, name)?)
                .map_err(|_| ValueError::invalid(name, "not 16 bytes"))?,
            Inner::TimeTz(b) => b.append(Some(time::timetz_send(v, name)?)),
            Inner::Interval(b) => b.append(interval::interval_send(v, name)?.stored(policy, name)?),
            _ => return Err(no_binary()),
        }
        Ok(())
    }
}

/// `v` as exactly `N` bytes (a fixed-width binary value).
fn be_bytes<const N: usize>(v: &[u8], kind: &'static str) -> Result<[u8; N], ValueError> {
    v.try_into()
        .map_err(|_| ValueError::invalid(kind, "wrong length of the binary value"))
}
