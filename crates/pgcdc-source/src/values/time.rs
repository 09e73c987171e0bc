//! date, time, timetz, timestamp and timestamptz, from their output text and their
//! binary (send) forms.
//!
//! Text is what the session's `DateStyle=ISO` and `TimeZone=UTC` make PostgreSQL write.
//! Dates are proleptic Gregorian like PostgreSQL's; year *N* BC is astronomical year
//! 1 − *N* (so 1 BC is year 0, a leap year). Anything else (surrounding spaces, a
//! `Feb 30`, a year 0, an hour 25, an offset beyond ±15:59:59) is an error. Stored as
//! Arrow counts from 1970-01-01 (days, or µs in UTC); the binary forms count from
//! PostgreSQL's 2000-01-01 ([`PG_EPOCH_OFFSET_DAYS`], [`PG_EPOCH_OFFSET_MICROS`]).
//!
//! The infinities of date, timestamp(tz) and interval are a [`Special`], stored as the
//! [`InfinityPolicy`] says ([`Special::stored`]). Intervals themselves are in
//! [`interval`](super::interval).

use std::sync::Arc;

use arrow_array::builder::{Int32Builder, Time64MicrosecondBuilder};
use arrow_array::{ArrayRef, StructArray};
use arrow_buffer::NullBufferBuilder;
use pgcdc_core::{InfinityPolicy, ValuePolicy, PG_EPOCH_OFFSET_DAYS, PG_EPOCH_OFFSET_MICROS};

use super::{be_bytes, ValueError};

pub(super) const MICROS_PER_SECOND: i64 = 1_000_000;
pub(super) const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

/// A date, timestamp or interval, or one of PostgreSQL's infinities.
pub(super) enum Special<T> {
    Finite(T),
    PosInfinity,
    NegInfinity,
}

/// The values an infinity is stored as under [`InfinityPolicy::Clamp`].
pub(super) trait Clamp: Sized {
    /// `infinity`.
    const POS: Self;
    /// `-infinity`.
    const NEG: Self;
}

/// Date32 days: `±i32::MAX`, DuckDB's encoding of infinity.
impl Clamp for i32 {
    const POS: i32 = i32::MAX;
    const NEG: i32 = -i32::MAX;
}

/// Timestamp µs: `±i64::MAX`, DuckDB's encoding of infinity.
impl Clamp for i64 {
    const POS: i64 = i64::MAX;
    const NEG: i64 = -i64::MAX;
}

impl<T: Clamp> Special<T> {
    /// `infinity` or `-infinity`, as PostgreSQL writes them; None for any other text.
    pub(super) fn infinite(text: &[u8]) -> Option<Self> {
        match text {
            b"infinity" => Some(Special::PosInfinity),
            b"-infinity" => Some(Special::NegInfinity),
            _ => None,
        }
    }

    /// The value to store: a finite value itself; an infinity as `policy.infinity` says
    /// (its [`Clamp`] value, None for NULL, or [`ValueError::Infinite`]).
    pub(super) fn stored(
        self,
        policy: &ValuePolicy,
        kind: &'static str,
    ) -> Result<Option<T>, ValueError> {
        let clamp = match self {
            Special::Finite(v) => return Ok(Some(v)),
            Special::PosInfinity => T::POS,
            Special::NegInfinity => T::NEG,
        };
        match policy.infinity {
            InfinityPolicy::Clamp => Ok(Some(clamp)),
            InfinityPolicy::Null => Ok(None),
            InfinityPolicy::Error => Err(ValueError::Infinite { kind }),
        }
    }
}

/// A cursor over ASCII date/time text; every read is bounds-checked.
struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a [u8]) -> Self {
        Cursor { s, pos: 0 }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.pos) == Some(&c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Between `min` and `max` (≤ 9) ASCII digits, as a number.
    fn digits(&mut self, min: usize, max: usize) -> Option<i64> {
        let mut v: i64 = 0;
        let mut n = 0;
        while let Some(&c) = self.s.get(self.pos) {
            if !c.is_ascii_digit() {
                break;
            }
            if n == max {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
            n += 1;
            self.pos += 1;
        }
        (n >= min).then_some(v)
    }

    /// Exactly two digits.
    fn two(&mut self) -> Option<i64> {
        self.digits(2, 2)
    }

    /// `YYYY-MM-DD` (4 to 9 year digits) → (year ≥ 1, month, day); the day is checked
    /// against the month later, once ` BC` is known.
    fn ymd(&mut self) -> Option<(i64, i64, i64)> {
        let y = self.digits(4, 9)?;
        if !self.eat(b'-') {
            return None;
        }
        let m = self.two()?;
        if !self.eat(b'-') {
            return None;
        }
        let d = self.two()?;
        (y >= 1 && (1..=12).contains(&m) && d >= 1).then_some((y, m, d))
    }

    /// `HH:MM:SS[.f…]` (1–6 fraction digits) → µs; `24:00:00` only if `allow_24`.
    fn hms(&mut self, allow_24: bool) -> Option<i64> {
        let h = self.two()?;
        if !self.eat(b':') {
            return None;
        }
        let m = self.two()?;
        if !self.eat(b':') {
            return None;
        }
        let s = self.two()?;
        let mut frac = 0;
        if self.eat(b'.') {
            let start = self.pos;
            let f = self.digits(1, 6)?;
            let n = u32::try_from(self.pos - start).ok()?;
            frac = f * 10i64.pow(6 - n);
        }
        let ok =
            (h < 24 && m < 60 && s < 60) || (allow_24 && h == 24 && m == 0 && s == 0 && frac == 0);
        ok.then_some(((h * 60 + m) * 60 + s) * MICROS_PER_SECOND + frac)
    }

    /// `±HH[:MM[:SS]]` → seconds east of UTC (PostgreSQL's limit: ±15:59:59).
    fn utc_offset(&mut self) -> Option<i64> {
        let sign = if self.eat(b'+') {
            1
        } else if self.eat(b'-') {
            -1
        } else {
            return None;
        };
        let h = self.two()?;
        let mut m = 0;
        let mut s = 0;
        if self.eat(b':') {
            m = self.two()?;
            if self.eat(b':') {
                s = self.two()?;
            }
        }
        (h <= 15 && m < 60 && s < 60).then_some(sign * ((h * 60 + m) * 60 + s))
    }

    /// An optional ` BC` suffix.
    fn bc(&mut self) -> bool {
        if self.s.get(self.pos..) == Some(b" BC") {
            self.pos += 3;
            true
        } else {
            false
        }
    }

    fn at_end(&self) -> bool {
        self.pos == self.s.len()
    }
}

fn is_leap(y: i64) -> bool {
    y.rem_euclid(4) == 0 && (y.rem_euclid(100) != 0 || y.rem_euclid(400) == 0)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (astronomical year: 1 BC = 0),
/// after Howard Hinnant's `days_from_civil`.
fn days_from_civil(y: i64, m: i64, d: i64) -> Option<i64> {
    let y = if m <= 2 { y.checked_sub(1)? } else { y };
    let era = y.div_euclid(400);
    let yoe = y.checked_sub(era.checked_mul(400)?)?; // [0, 399]
    let mp = (m + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + d - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era.checked_mul(146_097)?
        .checked_add(doe)?
        .checked_sub(719_468)
}

/// Days since 1970 of a parsed `YYYY-MM-DD[ BC]`, checking the day against the month.
fn civil_days(ymd: (i64, i64, i64), bc: bool) -> Option<i64> {
    let (y, m, d) = ymd;
    let y = if bc { 1 - y } else { y };
    if d > days_in_month(y, m) {
        return None;
    }
    days_from_civil(y, m, d)
}

/// date_out's text: `YYYY-MM-DD[ BC]` → days since 1970, or `±infinity`.
pub(super) fn parse_date(text: &[u8]) -> Result<Special<i32>, ValueError> {
    const K: &str = "date";
    if let Some(infinite) = Special::infinite(text) {
        return Ok(infinite);
    }
    let bad = || ValueError::invalid(K, "expected YYYY-MM-DD[ BC]");
    let mut c = Cursor::new(text);
    let ymd = c.ymd().ok_or_else(bad)?;
    let bc = c.bc();
    if !c.at_end() {
        return Err(bad());
    }
    let days = civil_days(ymd, bc).ok_or_else(bad)?;
    i32::try_from(days)
        .map(Special::Finite)
        .map_err(|_| ValueError::range(K, "beyond Date32"))
}

/// time_out's text: `HH:MM:SS[.ffffff]` (or `24:00:00`) → µs since midnight.
pub(super) fn parse_time(text: &[u8]) -> Result<i64, ValueError> {
    let mut c = Cursor::new(text);
    match c.hms(true) {
        Some(us) if c.at_end() => Ok(us),
        _ => Err(ValueError::invalid("time", "expected HH:MM:SS[.ffffff]")),
    }
}

/// timestamp_out's (or with `tz`, timestamptz_out's) text:
/// `YYYY-MM-DD HH:MM:SS[.ffffff][±HH[:MM[:SS]]][ BC]` → µs since 1970 UTC, or `±infinity`.
pub(super) fn parse_timestamp(
    text: &[u8],
    tz: bool,
    kind: &'static str,
) -> Result<Special<i64>, ValueError> {
    if let Some(infinite) = Special::infinite(text) {
        return Ok(infinite);
    }
    let bad = || {
        ValueError::invalid(
            kind,
            if tz {
                "expected YYYY-MM-DD HH:MM:SS[.ffffff]+HH[:MM[:SS]][ BC]"
            } else {
                "expected YYYY-MM-DD HH:MM:SS[.ffffff][ BC]"
            },
        )
    };
    let mut c = Cursor::new(text);
    let ymd = c.ymd().ok_or_else(bad)?;
    if !c.eat(b' ') {
        return Err(bad());
    }
    let time = c.hms(false).ok_or_else(bad)?;
    let offset = if tz {
        c.utc_offset().ok_or_else(bad)?
    } else {
        0
    };
    let bc = c.bc();
    if !c.at_end() {
        return Err(bad());
    }
    let days = civil_days(ymd, bc).ok_or_else(bad)?;
    days.checked_mul(MICROS_PER_DAY)
        .and_then(|us| us.checked_add(time))
        .and_then(|us| us.checked_sub(offset * MICROS_PER_SECOND))
        .map(Special::Finite)
        .ok_or(ValueError::range(
            kind,
            "beyond i64 microseconds since 1970",
        ))
}

/// The largest timetz offset PostgreSQL keeps: ±15:59:59.
const TIMETZ_MAX_OFFSET: u32 = 15 * 3600 + 59 * 60 + 59;

/// The parts of a timetz column (a Struct of two non-null children).
pub(super) struct TimeTzBuilder {
    time: Time64MicrosecondBuilder,
    offset: Int32Builder,
    nulls: NullBufferBuilder,
}

impl TimeTzBuilder {
    pub(super) fn new(capacity: usize) -> Self {
        TimeTzBuilder {
            time: Time64MicrosecondBuilder::with_capacity(capacity),
            offset: Int32Builder::with_capacity(capacity),
            nulls: NullBufferBuilder::new(capacity),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.nulls.len()
    }

    pub(super) fn append_null(&mut self) {
        self.append(None);
    }

    /// Appends (µs of the day, seconds east of UTC), or a NULL.
    pub(super) fn append(&mut self, v: Option<(i64, i32)>) {
        let (us, offset) = v.unwrap_or_default();
        self.time.append_value(us);
        self.offset.append_value(offset);
        self.nulls.append(v.is_some());
    }

    pub(super) fn finish(&mut self) -> ArrayRef {
        let children: Vec<ArrayRef> =
            vec![Arc::new(self.time.finish()), Arc::new(self.offset.finish())];
        // Two non-null children of equal length, matching timetz_fields(): by construction.
        Arc::new(StructArray::new(
            pgcdc_core::types::timetz_fields(),
            children,
            self.nulls.finish(),
        ))
    }
}

/// Parses timetz_out's text: `HH:MM:SS[.ffffff]±HH[:MM[:SS]]` → (µs, seconds east of UTC).
pub(super) fn parse_timetz(text: &[u8]) -> Result<(i64, i32), ValueError> {
    let mut c = Cursor::new(text);
    let parsed = c.hms(true).zip(c.utc_offset());
    match parsed {
        Some((us, offset)) if c.at_end() => Ok((us, i32::try_from(offset).unwrap_or(0))),
        _ => Err(ValueError::invalid(
            "timetz",
            "expected HH:MM:SS[.ffffff]+HH[:MM[:SS]]",
        )),
    }
}

/// date_send: int4 days since 2000-01-01 (`i32::MAX` / `i32::MIN`: `±infinity`) → days
/// since 1970.
pub(super) fn date_send(v: &[u8], kind: &'static str) -> Result<Special<i32>, ValueError> {
    Ok(match i32::from_be_bytes(be_bytes(v, kind)?) {
        i32::MAX => Special::PosInfinity,
        i32::MIN => Special::NegInfinity,
        d => Special::Finite(
            d.checked_add(PG_EPOCH_OFFSET_DAYS)
                .ok_or(ValueError::range(kind, "date out of range"))?,
        ),
    })
}

/// timestamp_send / timestamptz_send: int8 µs since 2000-01-01 (`i64::MAX` /
/// `i64::MIN`: `±infinity`) → µs since 1970.
pub(super) fn timestamp_send(v: &[u8], kind: &'static str) -> Result<Special<i64>, ValueError> {
    Ok(match i64::from_be_bytes(be_bytes(v, kind)?) {
        i64::MAX => Special::PosInfinity,
        i64::MIN => Special::NegInfinity,
        us => Special::Finite(
            us.checked_add(PG_EPOCH_OFFSET_MICROS)
                .ok_or(ValueError::range(kind, "timestamp out of range"))?,
        ),
    })
}

/// timetz_send: int8 µs of the day, int4 zone in seconds *west* of UTC → (µs, seconds
/// east of UTC).
pub(super) fn timetz_send(v: &[u8], kind: &'static str) -> Result<(i64, i32), ValueError> {
    let raw = be_bytes::<12>(v, kind)?;
    let (t, z) = raw.split_at(8);
    let us = i64::from_be_bytes(be_bytes(t, kind)?);
    let zone = i32::from_be_bytes(be_bytes(z, kind)?);
    if !(0..=MICROS_PER_DAY).contains(&us) || zone.unsigned_abs() > TIMETZ_MAX_OFFSET {
        return Err(ValueError::range(kind, "time or zone out of range"));
    }
    Ok((us, -zone))
}
