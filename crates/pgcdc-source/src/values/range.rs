//! Range and multirange values → Arrow: a range is a Struct of its bounds and flags
//! ([`pgcdc_core::types::range_fields`]), a multirange a List of such Structs.
//!
//! `range_out` writes `empty`, or `[` / `(`, the lower bound, `,`, the upper bound, `]` /
//! `)`; an unbounded side is nothing at all, and a bound holding `"`, `\`, `(`, `)`, `[`,
//! `]`, `,` or white space (or empty) is quoted with `"` and `\` doubled inside — the same
//! quoting as `record_out`, read by the same scanner. `multirange_out` writes `{` ranges
//! `,` `}`. `range_send` is a flags byte, then each present bound as a length and its own
//! send format; `multirange_send` a count, then each range as a length and its
//! `range_send`. Each bound's text or bytes are parsed by a child builder of the subtype's
//! kind, so `infinity` bounds follow `types.infinity` like any date or timestamp (an
//! unbounded side is NULL, as PostgreSQL's `lower()` / `upper()` return).

use std::sync::Arc;

use arrow_array::builder::BooleanBuilder;
use arrow_array::{ArrayRef, StructArray};
use arrow_buffer::NullBufferBuilder;
use arrow_schema::Fields;
use pgcdc_core::types::range_fields;
use pgcdc_core::{ValueKind, ValuePolicy};

use super::array::ListBuilder;
use super::record::scan_quoted;
use super::send::Reader;
use super::{BinaryForm, ColumnBuilder, Inner, ValueError};

const NAME: &str = "range";
const MULTI: &str = "multirange";

// range_send's flag bits (rangetypes.h).
const EMPTY: u8 = 0x01;
const LB_INC: u8 = 0x02;
const UB_INC: u8 = 0x04;
const LB_INF: u8 = 0x08;
const UB_INF: u8 = 0x10;
const LB_NULL: u8 = 0x20;
const UB_NULL: u8 = 0x40;

/// The parts of a range column: a child builder per bound, the three flags, and a
/// validity bit per row.
pub(super) struct RangeBuilder {
    lower: ColumnBuilder,
    upper: ColumnBuilder,
    lower_inc: BooleanBuilder,
    upper_inc: BooleanBuilder,
    empty: BooleanBuilder,
    nulls: NullBufferBuilder,
    fields: Fields,
    scratch: Vec<u8>,
}

/// A range's flags as stored: (lower_inclusive, upper_inclusive, empty).
type Flags = (bool, bool, bool);

impl RangeBuilder {
    pub(super) fn new(element: &ValueKind, capacity: usize) -> Self {
        RangeBuilder {
            lower: ColumnBuilder::new(element.clone(), capacity),
            upper: ColumnBuilder::new(element.clone(), capacity),
            lower_inc: BooleanBuilder::with_capacity(capacity),
            upper_inc: BooleanBuilder::with_capacity(capacity),
            empty: BooleanBuilder::with_capacity(capacity),
            nulls: NullBufferBuilder::new(capacity),
            fields: range_fields(element),
            scratch: Vec::new(),
        }
    }

    /// Whether the subtype's kind has an Arrow type.
    pub(super) fn supported(&self) -> bool {
        !self.lower.is_unsupported()
    }

    pub(super) fn len(&self) -> usize {
        self.nulls.len()
    }

    pub(super) fn append_null(&mut self) {
        self.end_row(None);
    }

    /// Parses range_out's text (see the [module docs](self)). On error the row is a NULL.
    pub(super) fn append_text(
        &mut self,
        text: &[u8],
        policy: &ValuePolicy,
    ) -> Result<(), ValueError> {
        let result = self.parse_text(text, policy);
        self.end_row(result.as_ref().ok().copied());
        result.map(|_| ())
    }

    /// Reads range_send, the bounds in `form`. On error the row is a NULL.
    pub(super) fn append_send(
        &mut self,
        form: &BinaryForm,
        v: &[u8],
        policy: &ValuePolicy,
    ) -> Result<(), ValueError> {
        let result = self.parse_send(form, v, policy);
        self.end_row(result.as_ref().ok().copied());
        result.map(|_| ())
    }

    /// Closes the row: the bounds padded with NULL, then the flags, or a NULL row (flags
    /// false) when there are none.
    fn end_row(&mut self, flags: Option<Flags>) {
        let len = self.nulls.len() + 1;
        for bound in [&mut self.lower, &mut self.upper] {
            while bound.len() < len {
                bound.append_null();
            }
        }
        let (lower_inc, upper_inc, empty) = flags.unwrap_or((false, false, false));
        self.lower_inc.append_value(lower_inc);
        self.upper_inc.append_value(upper_inc);
        self.empty.append_value(empty);
        self.nulls.append(flags.is_some());
    }

    fn parse_text(&mut self, text: &[u8], policy: &ValuePolicy) -> Result<Flags, ValueError> {
        if text.eq_ignore_ascii_case(b"empty") {
            return Ok((false, false, true));
        }
        let (lower_inc, body, upper_inc) = match (text.split_first(), text.split_last()) {
            (Some((&open, _)), Some((&close, _))) if text.len() >= 3 => (
                match open {
                    b'[' => true,
                    b'(' => false,
                    _ => return Err(ValueError::invalid(NAME, "expected '[' or '('")),
                },
                &text[1..text.len() - 1],
                match close {
                    b']' => true,
                    b')' => false,
                    _ => return Err(ValueError::invalid(NAME, "expected ']' or ')'")),
                },
            ),
            _ => return Err(ValueError::invalid(NAME, "expected a range")),
        };
        let mut i = 0;
        if body.first() != Some(&b',') {
            scan_quoted(body, &mut i, &mut self.scratch, NAME)?;
            self.lower.append_text(&self.scratch, policy)?;
        }
        if body.get(i) != Some(&b',') {
            return Err(ValueError::invalid(NAME, "expected ',' between the bounds"));
        }
        i += 1;
        if i < body.len() {
            scan_quoted(body, &mut i, &mut self.scratch, NAME)?;
            if i != body.len() {
                return Err(ValueError::invalid(NAME, "more than two bounds"));
            }
            self.upper.append_text(&self.scratch, policy)?;
        }
        Ok((lower_inc, upper_inc, false))
    }

    fn parse_send(
        &mut self,
        form: &BinaryForm,
        v: &[u8],
        policy: &ValuePolicy,
    ) -> Result<Flags, ValueError> {
        let mut r = Reader {
            rest: v,
            name: NAME,
        };
        let flags = *r
            .take(1)?
            .first()
            .ok_or(ValueError::invalid(NAME, "binary value too short"))?;
        if flags & EMPTY != 0 {
            r.end()?;
            return Ok((false, false, true));
        }
        for (bound, absent) in [
            (&mut self.lower, LB_INF | LB_NULL),
            (&mut self.upper, UB_INF | UB_NULL),
        ] {
            if flags & absent == 0 {
                let len = r.count("negative bound length")?;
                bound.append_send(form, r.take(len)?, policy)?;
            } else {
                bound.append_null();
            }
        }
        r.end()?;
        Ok((flags & LB_INC != 0, flags & UB_INC != 0, false))
    }

    pub(super) fn finish(&mut self) -> ArrayRef {
        let columns: Vec<ArrayRef> = vec![
            self.lower.finish(),
            self.upper.finish(),
            Arc::new(self.lower_inc.finish()),
            Arc::new(self.upper_inc.finish()),
            Arc::new(self.empty.finish()),
        ];
        // Every child has one value per row (end_row pads the bounds; the flags are
        // never null), of its field's type.
        Arc::new(StructArray::new(
            self.fields.clone(),
            columns,
            self.nulls.finish(),
        ))
    }
}

impl ListBuilder {
    /// Parses multirange_out's text: `{` ranges separated by `,` `}` (white space
    /// between them allowed).
    pub(super) fn append_multirange_text(
        &mut self,
        text: &[u8],
        policy: &ValuePolicy,
    ) -> Result<(), ValueError> {
        let body = match (text.first(), text.last()) {
            (Some(b'{'), Some(b'}')) if text.len() >= 2 => &text[1..text.len() - 1],
            _ => return Err(ValueError::invalid(MULTI, "expected '{' … '}'")),
        };
        let mut i = skip_space(body, 0);
        while i < body.len() {
            let end = range_end(body, i)?;
            self.child.append_text(&body[i..end], policy)?;
            i = skip_space(body, end);
            match body.get(i) {
                None => break,
                Some(b',') => i = skip_space(body, i + 1),
                Some(_) => return Err(ValueError::invalid(MULTI, "expected ',' between ranges")),
            }
            if i == body.len() {
                return Err(ValueError::invalid(MULTI, "a ',' before the end"));
            }
        }
        self.close_entry()
    }

    /// Reads multirange_send: the count, then each range's length and range_send (the
    /// bounds in `form`).
    pub(super) fn append_multirange_send(
        &mut self,
        form: &BinaryForm,
        v: &[u8],
        policy: &ValuePolicy,
    ) -> Result<(), ValueError> {
        let mut r = Reader {
            rest: v,
            name: MULTI,
        };
        let count = r.count("negative range count")?;
        for _ in 0..count {
            let len = r.count("negative range length")?;
            let Inner::Range(range) = &mut self.child.inner else {
                return Err(ValueError::invalid(MULTI, "a multirange of something else"));
            };
            range.append_send(form, r.take(len)?, policy)?;
        }
        r.end()?;
        self.close_entry()
    }
}

fn skip_space(s: &[u8], mut i: usize) -> usize {
    while s.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// The end (exclusive) of the range starting at `start`: `empty`, or up to the first
/// `]` or `)` outside quotes.
fn range_end(s: &[u8], start: usize) -> Result<usize, ValueError> {
    let rest = s.get(start..).unwrap_or_default();
    if rest.len() >= 5 && rest[..5].eq_ignore_ascii_case(b"empty") {
        return Ok(start + 5);
    }
    let mut i = start;
    let mut quoted = false;
    while let Some(&c) = s.get(i) {
        match c {
            b'\\' => i += 1,
            b'"' => quoted = !quoted,
            b']' | b')' if !quoted && i > start => return Ok(i + 1),
            _ => {}
        }
        i += 1;
    }
    Err(ValueError::invalid(MULTI, "an unterminated range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int32Type;
    use arrow_array::Array;

    fn int4range() -> ValueKind {
        ValueKind::Range {
            element: Box::new(ValueKind::Int32),
        }
    }

    /// range_send of int4 bounds (None: unbounded).
    fn range_send(flags: u8, lower: Option<i32>, upper: Option<i32>) -> Vec<u8> {
        let mut v = vec![flags];
        for b in [lower, upper].into_iter().flatten() {
            v.extend_from_slice(&4i32.to_be_bytes());
            v.extend_from_slice(&b.to_be_bytes());
        }
        v
    }

    /// The column built from the texts, and from the binary values.
    fn both(kind: ValueKind, form: &BinaryForm, pairs: &[(&str, Vec<u8>)]) -> ArrayRef {
        let policy = ValuePolicy::default();
        let mut text = ColumnBuilder::new(kind.clone(), 4);
        let mut binary = ColumnBuilder::new(kind, 4);
        for (t, b) in pairs {
            text.append_text(t.as_bytes(), &policy).unwrap();
            binary.append_send(form, b, &policy).unwrap();
        }
        text.append_null();
        binary.append_null();
        let (t, b) = (text.finish(), binary.finish());
        assert_eq!(t.to_data(), b.to_data());
        t
    }

    type Row = Option<(Option<i32>, Option<i32>, bool, bool, bool)>;

    fn rows(a: &dyn Array) -> Vec<Row> {
        let s = a.as_struct();
        let bound = |c: usize, i: usize| {
            let p = s.column(c).as_primitive::<Int32Type>();
            p.is_valid(i).then(|| p.value(i))
        };
        let flag = |c: usize, i: usize| s.column(c).as_boolean().value(i);
        (0..s.len())
            .map(|i| {
                s.is_valid(i)
                    .then(|| (bound(0, i), bound(1, i), flag(2, i), flag(3, i), flag(4, i)))
            })
            .collect()
    }

    #[test]
    fn ranges_read_the_same_from_text_and_binary() {
        let form = BinaryForm::Range(Box::new(BinaryForm::Native));
        let a = both(
            int4range(),
            &form,
            &[
                ("[1,5)", range_send(LB_INC, Some(1), Some(5))),
                ("(,5)", range_send(LB_INF, None, Some(5))),
                ("[-3,)", range_send(LB_INC | UB_INF, Some(-3), None)),
                ("(,)", range_send(LB_INF | UB_INF, None, None)),
                ("empty", vec![EMPTY]),
                ("[2,2]", range_send(LB_INC | UB_INC, Some(2), Some(2))),
            ],
        );
        assert_eq!(
            rows(&a),
            vec![
                Some((Some(1), Some(5), true, false, false)),
                Some((None, Some(5), false, false, false)),
                Some((Some(-3), None, true, false, false)),
                Some((None, None, false, false, false)),
                Some((None, None, false, false, true)),
                Some((Some(2), Some(2), true, true, false)),
                None,
            ]
        );
    }

    #[test]
    fn quoted_bounds_unescape_like_range_out() {
        let kind = ValueKind::Range {
            element: Box::new(ValueKind::Text),
        };
        let mut b = ColumnBuilder::new(kind, 2);
        b.append_text(br#"["a ""b"" \\c","z,)"]"#, &ValuePolicy::default())
            .unwrap();
        b.append_text(br#"["",)"#, &ValuePolicy::default()).unwrap();
        let a = b.finish();
        let s = a.as_struct();
        let lower = s.column(0).as_string::<i32>();
        let upper = s.column(1).as_string::<i32>();
        assert_eq!(lower.value(0), r#"a "b" \c"#);
        assert_eq!(upper.value(0), "z,)");
        assert_eq!(lower.value(1), "");
        assert!(upper.is_null(1));
    }

    #[test]
    fn multiranges_read_the_same_from_text_and_binary() {
        let kind = ValueKind::Multirange {
            element: Box::new(ValueKind::Int32),
        };
        let form = BinaryForm::Multirange(Box::new(BinaryForm::Native));
        let multi = |ranges: &[Vec<u8>]| {
            let mut v = (ranges.len() as i32).to_be_bytes().to_vec();
            for r in ranges {
                v.extend_from_slice(&(r.len() as i32).to_be_bytes());
                v.extend_from_slice(r);
            }
            v
        };
        let a = both(
            kind,
            &form,
            &[
                ("{}", multi(&[])),
                (
                    "{(,3), [5,7)}",
                    multi(&[
                        range_send(LB_INF, None, Some(3)),
                        range_send(LB_INC, Some(5), Some(7)),
                    ]),
                ),
            ],
        );
        let l = a.as_list::<i32>();
        assert_eq!(l.value(0).len(), 0);
        assert_eq!(
            rows(&l.value(1)),
            vec![
                Some((None, Some(3), false, false, false)),
                Some((Some(5), Some(7), true, false, false))
            ]
        );
        assert!(l.is_null(2));
    }

    #[test]
    fn two_dimensional_arrays_are_nested_lists_from_text_and_binary() {
        let kind = ValueKind::array_of(ValueKind::Int32, 2, &ValuePolicy::default());
        let form = BinaryForm::Array(Box::new(BinaryForm::Native));
        let send = |dims: &[i32], elements: &[Option<i32>]| {
            let mut v = Vec::new();
            for x in [dims.len() as i32, 1, 23] {
                v.extend_from_slice(&x.to_be_bytes());
            }
            for d in dims {
                v.extend_from_slice(&d.to_be_bytes());
                v.extend_from_slice(&1i32.to_be_bytes());
            }
            for e in elements {
                match e {
                    None => v.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(x) => {
                        v.extend_from_slice(&4i32.to_be_bytes());
                        v.extend_from_slice(&x.to_be_bytes());
                    }
                }
            }
            v
        };
        let a = both(
            kind.clone(),
            &form,
            &[
                (
                    "{{1,NULL,3},{4,5,6}}",
                    send(
                        &[2, 3],
                        &[Some(1), None, Some(3), Some(4), Some(5), Some(6)],
                    ),
                ),
                ("{}", send(&[], &[])),
                ("{{7}}", send(&[1, 1], &[Some(7)])),
            ],
        );
        let outer = a.as_list::<i32>();
        let first = outer.value(0);
        let rows = first.as_list::<i32>();
        assert_eq!(rows.len(), 2);
        let second = rows.value(1);
        assert_eq!(second.as_primitive::<Int32Type>().values(), &[4, 5, 6]);
        assert!(rows.value(0).is_null(1));
        assert_eq!(outer.value(1).len(), 0);
        // Another number of dimensions than declared is an error naming the fix.
        let policy = ValuePolicy::default();
        for (text, binary) in [
            ("{1,2}", send(&[2], &[Some(1), Some(2)])),
            ("{{{1}}}", send(&[1, 1, 1], &[Some(1)])),
        ] {
            let mut b = ColumnBuilder::new(kind.clone(), 1);
            let e = b.append_text(text.as_bytes(), &policy).unwrap_err();
            assert!(e.to_string().contains("types.arrays"), "{e}");
            let mut b = ColumnBuilder::new(kind.clone(), 1);
            let e = b.append_send(&form, &binary, &policy).unwrap_err();
            assert!(e.to_string().contains("types.arrays"), "{e}");
        }
        // Dimensions claiming more elements than the bytes hold: an error, not a long loop.
        let mut b = ColumnBuilder::new(kind, 1);
        assert!(b
            .append_send(&form, &send(&[i32::MAX, i32::MAX], &[]), &policy)
            .is_err());
    }

    #[test]
    fn malformed_ranges_are_errors_and_leave_a_null_row() {
        let policy = ValuePolicy::default();
        for bad in [
            &b""[..],
            b"[",
            b"[1,2",
            b"1,2)",
            b"[1)",
            b"[1,2,3)",
            b"[x,2)",
            b"[\"1,2)",
            b"[1,2\\",
        ] {
            let mut b = ColumnBuilder::new(int4range(), 1);
            assert!(b.append_text(bad, &policy).is_err(), "{bad:?}");
            let a = b.finish();
            assert_eq!(rows(&a), vec![None], "{bad:?}");
        }
        let form = BinaryForm::Range(Box::new(BinaryForm::Native));
        for bad in [
            vec![],
            vec![LB_INC],
            range_send(EMPTY, Some(1), None),
            vec![0, 0, 0, 0, 9, 1, 2, 3, 4],
        ] {
            let mut b = ColumnBuilder::new(int4range(), 1);
            assert!(b.append_send(&form, &bad, &policy).is_err(), "{bad:?}");
        }
        for bad in [
            &b"{"[..],
            b"{[1,2)",
            b"{[1,2),}",
            b"{[1,2) [3,4)}",
            b"{[1,2",
        ] {
            let mut b = ColumnBuilder::new(
                ValueKind::Multirange {
                    element: Box::new(ValueKind::Int32),
                },
                1,
            );
            assert!(b.append_text(bad, &policy).is_err(), "{bad:?}");
        }
    }
}
