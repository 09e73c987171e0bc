//! interval, from interval_out's text (IntervalStyle `postgres`) and interval_send.
//!
//! Stored as a Struct of months, days and microseconds, PostgreSQL's own three fields
//! (never normalised: `1 mon` and `30 days` stay different). PostgreSQL 17's
//! `±infinity` intervals follow the infinity policy like dates'
//! ([`Special`](super::time::Special)).

use std::sync::Arc;

use arrow_array::builder::{Int32Builder, Int64Builder};
use arrow_array::{ArrayRef, StructArray};
use arrow_buffer::NullBufferBuilder;

use super::number::{parse_int, split_sign};
use super::time::{Clamp, Special};
use super::{be_bytes, ValueError};

/// An interval's fields: months, days, microseconds.
pub(super) type Interval = (i32, i32, i64);

/// PostgreSQL 17's `infinity` interval as PostgreSQL itself encodes it (the clamp).
const INTERVAL_MAX: Interval = (i32::MAX, i32::MAX, i64::MAX);
/// `-infinity`, as PostgreSQL encodes it.
const INTERVAL_MIN: Interval = (i32::MIN, i32::MIN, i64::MIN);

/// The parts of an interval column (a Struct of three non-null children).
pub(super) struct IntervalBuilder {
    months: Int32Builder,
    days: Int32Builder,
    micros: Int64Builder,
    nulls: NullBufferBuilder,
}

/// PostgreSQL's own encoding of the infinities, kept under the clamp policy.
impl Clamp for Interval {
    const POS: Interval = INTERVAL_MAX;
    const NEG: Interval = INTERVAL_MIN;
}

impl IntervalBuilder {
    pub(super) fn new(capacity: usize) -> Self {
        IntervalBuilder {
            months: Int32Builder::with_capacity(capacity),
            days: Int32Builder::with_capacity(capacity),
            micros: Int64Builder::with_capacity(capacity),
            nulls: NullBufferBuilder::new(capacity),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.nulls.len()
    }

    pub(super) fn append_null(&mut self) {
        self.append(None);
    }

    /// Appends (months, days, µs), or a NULL.
    pub(super) fn append(&mut self, v: Option<Interval>) {
        let (m, d, us) = v.unwrap_or_default();
        self.months.append_value(m);
        self.days.append_value(d);
        self.micros.append_value(us);
        self.nulls.append(v.is_some());
    }

    pub(super) fn finish(&mut self) -> ArrayRef {
        let children: Vec<ArrayRef> = vec![
            Arc::new(self.months.finish()),
            Arc::new(self.days.finish()),
            Arc::new(self.micros.finish()),
        ];
        // Three children of equal length, non-null, matching interval_fields(): by construction.
        Arc::new(StructArray::new(
            pgcdc_core::types::interval_fields(),
            children,
            self.nulls.finish(),
        ))
    }
}

/// Parses interval_out's text under IntervalStyle `postgres`: `[±N year[s]] [±N mon[s]]
/// [±N day[s]] [±HH:MM:SS[.f…]]` (hours may exceed 24), or `±infinity`.
pub(super) fn parse_interval(text: &[u8]) -> Result<Special<Interval>, ValueError> {
    const NAME: &str = "interval";
    if let Some(infinite) = Special::infinite(text) {
        return Ok(infinite);
    }
    let bad = |why| ValueError::invalid(NAME, why);
    let (mut months, mut days, mut us) = (0i64, 0i64, None::<i64>);
    let mut parts = text.split(|b| *b == b' ').peekable();
    if parts.peek().is_none_or(|p| p.is_empty()) {
        return Err(bad("empty"));
    }
    while let Some(part) = parts.next() {
        if part.contains(&b':') {
            if us.is_some() || parts.peek().is_some() {
                return Err(bad("the time part must come last, once"));
            }
            us = Some(parse_interval_time(part)?);
            continue;
        }
        let n = parse_int(part, NAME)?;
        let unit = parts.next().ok_or(bad("a number without a unit"))?;
        match unit {
            b"year" | b"years" => months += n.checked_mul(12).ok_or(bad("too many years"))?,
            b"mon" | b"mons" => months += n,
            b"day" | b"days" => days += n,
            _ => return Err(bad("unknown unit (IntervalStyle must be postgres)")),
        }
    }
    let months = i32::try_from(months).map_err(|_| ValueError::range(NAME, "months"))?;
    let days = i32::try_from(days).map_err(|_| ValueError::range(NAME, "days"))?;
    Ok(Special::Finite((months, days, us.unwrap_or(0))))
}

/// `[±]H+:MM:SS[.f{1,6}]` → µs (the sign applies to the whole time).
fn parse_interval_time(t: &[u8]) -> Result<i64, ValueError> {
    const NAME: &str = "interval";
    let bad = |why| ValueError::invalid(NAME, why);
    let (neg, t) = split_sign(t);
    let mut fields = t.splitn(3, |b| *b == b':');
    let (h, m, s) = match (fields.next(), fields.next(), fields.next()) {
        (Some(h), Some(m), Some(s)) => (h, m, s),
        _ => return Err(bad("expected HH:MM:SS")),
    };
    let digits = |d: &[u8]| -> Result<i64, ValueError> {
        if d.is_empty() || !d.iter().all(u8::is_ascii_digit) {
            return Err(bad("expected digits in the time part"));
        }
        parse_int(d, NAME)
    };
    let (sec, frac) = match s.iter().position(|b| *b == b'.') {
        Some(p) => (s.get(..p).unwrap_or_default(), s.get(p + 1..)),
        None => (s, None),
    };
    let (hours, minutes, seconds) = (digits(h)?, digits(m)?, digits(sec)?);
    if m.len() != 2 || sec.len() != 2 || minutes > 59 || seconds > 59 {
        return Err(bad("minutes and seconds must be two digits below 60"));
    }
    let micros = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 6 => digits(f)? * 10i64.pow(6 - f.len() as u32),
        Some(_) => return Err(bad("1 to 6 fraction digits")),
    };
    let total = hours
        .checked_mul(3_600_000_000)
        .and_then(|v| v.checked_add(minutes * 60_000_000 + seconds * 1_000_000 + micros))
        .ok_or(ValueError::range(NAME, "hours"))?;
    Ok(if neg { -total } else { total })
}

/// interval_send: int8 µs, int4 days, int4 months (PostgreSQL's encodings of the
/// infinities included).
pub(super) fn interval_send(v: &[u8], kind: &'static str) -> Result<Special<Interval>, ValueError> {
    let raw = be_bytes::<16>(v, kind)?;
    let (t, rest) = raw.split_at(8);
    let (d, m) = rest.split_at(4);
    let us = i64::from_be_bytes(be_bytes(t, kind)?);
    let days = i32::from_be_bytes(be_bytes(d, kind)?);
    let months = i32::from_be_bytes(be_bytes(m, kind)?);
    Ok(match (months, days, us) {
        INTERVAL_MAX => Special::PosInfinity,
        INTERVAL_MIN => Special::NegInfinity,
        v => Special::Finite(v),
    })
}
