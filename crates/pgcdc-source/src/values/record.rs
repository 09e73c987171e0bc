//! Composite-type values (`record_out` text and `record_send` binary) → Arrow Struct.
//!
//! `record_out` writes `(f1,f2,…)`: a NULL attribute is nothing at all, an empty string
//! is `""`, and a value holding `"`, `\`, `(`, `)`, `,` or white space is quoted, with
//! `"` and `\` doubled inside. Each attribute's text is its own type's output, parsed by
//! a child builder of the attribute's kind (nested composites and arrays included).
//! `record_send` is the attribute count, then per attribute its type OID, a length (-1:
//! NULL) and its own send format.

use std::sync::Arc;

use arrow_array::{ArrayRef, StructArray};
use arrow_buffer::NullBufferBuilder;
use arrow_schema::Fields;
use pgcdc_core::{StructField, ValuePolicy};

use super::send::Reader;
use super::{BinaryForm, ColumnBuilder, ValueError};

const NAME: &str = "record";
const TOO_MANY: &str = "more attributes than the composite type has now (one was dropped since?); set types.composites = \"text\"";

/// The parts of a Struct column: a child builder per attribute and a validity bit per row.
pub(super) struct StructBuilder {
    children: Vec<ColumnBuilder>,
    fields: Fields,
    nulls: NullBufferBuilder,
    scratch: Vec<u8>,
}

impl StructBuilder {
    pub(super) fn new(fields: &[StructField], capacity: usize) -> Self {
        StructBuilder {
            children: fields
                .iter()
                .map(|f| ColumnBuilder::new(f.kind.clone(), capacity))
                .collect(),
            fields: fields.iter().map(|f| f.kind.arrow_field(&f.name)).collect(),
            nulls: NullBufferBuilder::new(capacity),
            scratch: Vec::new(),
        }
    }

    /// Whether every attribute's kind has an Arrow type (no unsupported decimal).
    pub(super) fn supported(&self) -> bool {
        self.children.iter().all(|c| !c.is_unsupported())
    }

    pub(super) fn len(&self) -> usize {
        self.nulls.len()
    }

    pub(super) fn append_null(&mut self) {
        for c in &mut self.children {
            c.append_null();
        }
        self.nulls.append_null();
    }

    /// Parses record_out's text (see the [module docs](self)). On error the row is a
    /// NULL (attributes read before the failing one stay in the children, hidden).
    pub(super) fn append_text(
        &mut self,
        text: &[u8],
        policy: &ValuePolicy,
    ) -> Result<(), ValueError> {
        let result = self.parse_text(text, policy);
        self.end_row(result)
    }

    /// Reads record_send with each attribute in its form (`forms`, one per attribute).
    /// On error the row is a NULL, as with [`append_text`](Self::append_text).
    pub(super) fn append_send(
        &mut self,
        forms: &[BinaryForm],
        v: &[u8],
        policy: &ValuePolicy,
    ) -> Result<(), ValueError> {
        let result = self.parse_send(forms, v, policy);
        self.end_row(result)
    }

    /// Closes the row with every child padded to it (attributes a shorter value lacks
    /// are NULL): valid, or NULL after an error.
    fn end_row(&mut self, result: Result<(), ValueError>) -> Result<(), ValueError> {
        let len = self.nulls.len() + 1;
        for c in &mut self.children {
            while c.len() < len {
                c.append_null();
            }
        }
        match result {
            Ok(()) => self.nulls.append_non_null(),
            Err(_) => self.nulls.append_null(),
        }
        result
    }

    fn parse_text(&mut self, text: &[u8], policy: &ValuePolicy) -> Result<(), ValueError> {
        let body = match (text.first(), text.last()) {
            (Some(b'('), Some(b')')) if text.len() >= 2 => &text[1..text.len() - 1],
            _ => return Err(ValueError::invalid(NAME, "expected '(' … ')'")),
        };
        let mut i = 0;
        let count = self.children.len();
        for (n, child) in self.children.iter_mut().enumerate() {
            match body.get(i) {
                // Nothing before the next comma (or the end): NULL.
                None | Some(b',') => child.append_null(),
                Some(_) => {
                    scan_quoted(body, &mut i, &mut self.scratch, NAME)?;
                    child.append_text(&self.scratch, policy)?;
                }
            }
            match body.get(i) {
                Some(b',') if n + 1 < count => i += 1,
                // A value written before ALTER TYPE … ADD ATTRIBUTE: the rest is NULL
                // (end_row pads the children), as PostgreSQL itself reads it.
                None => break,
                _ => return Err(ValueError::invalid(NAME, TOO_MANY)),
            }
        }
        if count == 0 && !body.is_empty() {
            return Err(ValueError::invalid(
                NAME,
                "attributes in a type without any",
            ));
        }
        Ok(())
    }

    fn parse_send(
        &mut self,
        forms: &[BinaryForm],
        v: &[u8],
        policy: &ValuePolicy,
    ) -> Result<(), ValueError> {
        let mut r = Reader {
            rest: v,
            name: NAME,
        };
        let count = r.count("negative attribute count")?;
        // Fewer attributes: a value from before ALTER TYPE … ADD ATTRIBUTE (the rest is
        // NULL, padded by end_row).
        if count > self.children.len() || forms.len() != self.children.len() {
            return Err(ValueError::invalid(NAME, TOO_MANY));
        }
        for (child, form) in self.children.iter_mut().zip(forms).take(count) {
            let _type_oid = r.i32()?;
            match r.field("negative attribute length")? {
                None => child.append_null(),
                Some(bytes) => child.append_send(form, bytes, policy)?,
            }
        }
        r.end()
    }

    pub(super) fn finish(&mut self) -> ArrayRef {
        let columns: Vec<ArrayRef> = self
            .children
            .iter_mut()
            .map(ColumnBuilder::finish)
            .collect();
        let len = self.nulls.len();
        let nulls = self.nulls.finish();
        if self.fields.is_empty() {
            return Arc::new(StructArray::new_empty_fields(len, nulls));
        }
        // One child per field of the field's type (unsupported kinds never get here),
        // each as long as the validity (every row, failed ones too, pads them).
        Arc::new(StructArray::new(self.fields.clone(), columns, nulls))
    }
}

/// Reads one field of record_out or range_out text, from `body[*i..]` up to the next `,`
/// outside quotes (or the end), unquoted into `out`: `"` starts and ends quoting, `""`
/// inside quotes is one `"`, and `\` takes the next byte as it is.
pub(super) fn scan_quoted(
    body: &[u8],
    i: &mut usize,
    out: &mut Vec<u8>,
    name: &'static str,
) -> Result<(), ValueError> {
    out.clear();
    let mut quoted = false;
    while let Some(&c) = body.get(*i) {
        match c {
            b'"' if quoted && body.get(*i + 1) == Some(&b'"') => {
                out.push(b'"');
                *i += 2;
            }
            b'"' => {
                quoted = !quoted;
                *i += 1;
            }
            b'\\' => {
                let next = body
                    .get(*i + 1)
                    .ok_or(ValueError::invalid(name, "an escape at the end"))?;
                out.push(*next);
                *i += 2;
            }
            b',' if !quoted => break,
            c => {
                out.push(c);
                *i += 1;
            }
        }
    }
    if quoted {
        return Err(ValueError::invalid(name, "an unterminated quote"));
    }
    Ok(())
}
