//! Arrays: a column declared with n dimensions is n nested Lists of the element's kind,
//! from array_out's text and array_send.
//!
//! Only values with the default lower bounds 1 fit. A value with another number of
//! dimensions than the column declares (PostgreSQL does not enforce them), or explicit
//! bounds (`[0:2]={…}`), is [`ValueError::Invalid`] with the fix (`types.arrays =
//! "text"`). The empty array `{}` has no dimensions and fits any column. Elements are
//! parsed by the element kind's own [`ColumnBuilder`]; an element that fails may leave
//! earlier elements of its array in that child builder, so the caller stops using the
//! builder (the pipeline fails the batch). Multiranges are Lists too (see `range`).

use std::sync::Arc;

use arrow_array::{ArrayRef, ListArray};
use arrow_buffer::{NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::FieldRef;
use pgcdc_core::{ValueKind, ValuePolicy};

use super::send::Reader;
use super::{BinaryForm, ColumnBuilder, Inner, ValueError};

const NAME: &str = "array";

pub(super) const ARRAY_BOUNDS: &str =
    "explicit bounds (a lower bound other than 1) do not fit a List; set types.arrays = \"text\"";
pub(super) const ARRAY_DIMS: &str = "a value with more dimensions than the column declares does not fit its Lists; set types.arrays = \"text\" or declare the column's dimensions (e.g. int[][])";
pub(super) const ARRAY_FEWER_DIMS: &str = "a value with fewer dimensions than the column declares does not fit its nested Lists; set types.arrays = \"text\"";

fn bad(reason: &'static str) -> ValueError {
    ValueError::invalid(NAME, reason)
}

/// The parts of a List column: offsets into the element builder, a validity bit per
/// array, and a scratch buffer for unescaping quoted elements (reused, no allocation per
/// element).
pub(super) struct ListBuilder {
    pub(super) child: ColumnBuilder,
    field: FieldRef,
    offsets: Vec<i32>,
    nulls: NullBufferBuilder,
    scratch: Vec<u8>,
}

impl ListBuilder {
    /// A List of `child`'s values, in `field`; nulls only when the child's kind has no
    /// Arrow type.
    pub(super) fn inner(child: ColumnBuilder, field: FieldRef, capacity: usize) -> Inner {
        if child.is_unsupported() {
            // Elements Arrow cannot hold: the list takes nulls only, like its element.
            return Inner::nulls_only();
        }
        let mut offsets = Vec::with_capacity(capacity + 1);
        offsets.push(0);
        Inner::List(Box::new(ListBuilder {
            child,
            field,
            offsets,
            nulls: NullBufferBuilder::new(capacity),
            scratch: Vec::new(),
        }))
    }

    pub(super) fn len(&self) -> usize {
        self.nulls.len()
    }

    pub(super) fn append_null(&mut self) {
        let end = self.offsets.last().copied().unwrap_or(0);
        self.offsets.push(end);
        self.nulls.append_null();
    }

    /// Parses array_out's text: `{` elements separated by `,` `}`; an element is `NULL`,
    /// unquoted text, or `"…"` with `\\` escapes.
    pub(super) fn append_text(
        &mut self,
        text: &[u8],
        policy: &ValuePolicy,
    ) -> Result<(), ValueError> {
        match text.first() {
            Some(b'{') => {}
            Some(b'[') => return Err(bad(ARRAY_BOUNDS)),
            _ => return Err(bad("expected '{'")),
        }
        let body = match text.split_last() {
            Some((b'}', rest)) if !rest.is_empty() => &rest[1..],
            _ => return Err(bad("expected a closing '}'")),
        };
        // Another dimension below: every element is a sub-array.
        let nested = matches!(self.child.kind, ValueKind::List { .. });
        let mut i = 0;
        while let Some(&c) = body.get(i) {
            i = match c {
                b'{' if nested => {
                    let end = sub_array_end(body, i)?;
                    self.child.append_text(&body[i..end], policy)?;
                    end
                }
                b'{' => return Err(bad(ARRAY_DIMS)),
                _ if nested => return Err(bad(ARRAY_FEWER_DIMS)),
                b'"' => self.quoted_element(body, i, policy)?,
                _ => self.plain_element(body, i, policy)?,
            };
            match body.get(i) {
                None => break,
                Some(b',') if i + 1 < body.len() => i += 1,
                Some(_) => return Err(bad("expected ',' between elements")),
            }
        }
        self.close_entry()
    }

    /// Appends the quoted element that starts at `body[i]` (its `"`; `\` takes the next
    /// byte as it is). Returns the index after its closing quote.
    fn quoted_element(
        &mut self,
        body: &[u8],
        mut i: usize,
        policy: &ValuePolicy,
    ) -> Result<usize, ValueError> {
        self.scratch.clear();
        i += 1;
        loop {
            match body.get(i) {
                Some(b'"') => break,
                Some(b'\\') => {
                    let c = body.get(i + 1).ok_or(bad("an escape at the end"))?;
                    self.scratch.push(*c);
                    i += 2;
                }
                Some(c) => {
                    self.scratch.push(*c);
                    i += 1;
                }
                None => return Err(bad("an unterminated quote")),
            }
        }
        self.child.append_text(&self.scratch, policy)?;
        Ok(i + 1)
    }

    /// Appends the unquoted element that starts at `body[start]`, up to the next `,` or
    /// the end (`NULL`, in any case, is a NULL). Returns the index after it.
    fn plain_element(
        &mut self,
        body: &[u8],
        start: usize,
        policy: &ValuePolicy,
    ) -> Result<usize, ValueError> {
        let mut i = start;
        while body.get(i).is_some_and(|c| *c != b',') {
            if matches!(body.get(i), Some(b'{' | b'}' | b'"' | b'\\')) {
                return Err(bad("a special character in an unquoted element"));
            }
            i += 1;
        }
        let element = body.get(start..i).unwrap_or_default();
        if element.is_empty() {
            return Err(bad("an empty element"));
        }
        if element.eq_ignore_ascii_case(b"NULL") {
            self.child.append_null();
        } else {
            self.child.append_text(element, policy)?;
        }
        Ok(i)
    }

    /// Ends the array whose elements were just appended to the child.
    pub(super) fn close_entry(&mut self) -> Result<(), ValueError> {
        let end = i32::try_from(self.child.len())
            .map_err(|_| ValueError::range(NAME, "more than 2^31 elements in one batch"))?;
        self.offsets.push(end);
        self.nulls.append_non_null();
        Ok(())
    }

    pub(super) fn finish(&mut self) -> ArrayRef {
        let values = self.child.finish();
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        let nulls = self.nulls.finish();
        // Offsets start at 0, never decrease and end at the child's length: by construction.
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
        Arc::new(ListArray::new(
            Arc::clone(&self.field),
            offsets,
            values,
            nulls,
        ))
    }

    /// Reads array_send: ndim, has-nulls flag, element type, (size, lower bound) per
    /// dimension, then each element as a length (-1: NULL) and its bytes, in row-major
    /// order. `ndim` must be this List's depth (or 0: the empty array).
    pub(super) fn append_send(
        &mut self,
        element: &BinaryForm,
        v: &[u8],
        policy: &ValuePolicy,
    ) -> Result<(), ValueError> {
        let mut r = Reader {
            rest: v,
            name: NAME,
        };
        let ndim = r.i32()?;
        let _has_nulls = r.i32()?;
        let _element_type = r.i32()?;
        let depth = 1 + self.child.kind.list_depth();
        let ndim = usize::try_from(ndim).map_err(|_| bad("negative dimension count"))?;
        if ndim == 0 {
            r.end()?;
            return self.close_entry();
        }
        if ndim > depth {
            return Err(bad(ARRAY_DIMS));
        }
        if ndim < depth {
            return Err(bad(ARRAY_FEWER_DIMS));
        }
        let mut dims = Vec::with_capacity(ndim);
        let mut total = 1usize;
        for _ in 0..ndim {
            let size = usize::try_from(r.i32()?)
                .ok()
                .filter(|n| *n > 0)
                .ok_or(bad("a dimension without elements"))?;
            if r.i32()? != 1 {
                return Err(bad(ARRAY_BOUNDS));
            }
            total = total.saturating_mul(size);
            dims.push(size);
        }
        // Each element takes at least its 4-byte length: no loop longer than the data.
        if total > r.rest.len() / 4 {
            return Err(bad("binary value too short"));
        }
        self.fill_send(&dims, &mut r, element, policy)?;
        r.end()
    }

    /// Appends one array of `dims` (outermost first) from `r`'s elements.
    fn fill_send(
        &mut self,
        dims: &[usize],
        r: &mut Reader<'_>,
        element: &BinaryForm,
        policy: &ValuePolicy,
    ) -> Result<(), ValueError> {
        let Some((&size, inner)) = dims.split_first() else {
            return Err(bad("no dimensions"));
        };
        for _ in 0..size {
            if inner.is_empty() {
                match r.field("negative element length")? {
                    None => self.child.append_null(),
                    Some(bytes) => self.child.append_send(element, bytes, policy)?,
                }
            } else {
                let Inner::List(sub) = &mut self.child.inner else {
                    return Err(bad(ARRAY_DIMS));
                };
                sub.fill_send(inner, r, element, policy)?;
            }
        }
        self.close_entry()
    }
}

/// The end (exclusive) of the sub-array `{…}` starting at `body[start]`: its matching
/// `}`, outside quotes.
fn sub_array_end(body: &[u8], start: usize) -> Result<usize, ValueError> {
    let (mut depth, mut quoted, mut i) = (0usize, false, start);
    while let Some(&c) = body.get(i) {
        match c {
            b'\\' => i += 1,
            b'"' => quoted = !quoted,
            b'{' if !quoted => depth += 1,
            b'}' if !quoted => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Ok(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    Err(bad("an unterminated sub-array"))
}
