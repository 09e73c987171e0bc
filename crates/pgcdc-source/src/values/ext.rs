//! Extension types with an exact Arrow form: hstore → Map<Utf8, Utf8>, and pgvector's
//! `vector` → FixedSizeList<Float32> (List<Float32> without a declared dimension).
//!
//! | type | text (output function) | binary (send) |
//! |------|------------------------|---------------|
//! | hstore | `"k"=>"v", "n"=>NULL`; `\"` and `\\` escaped inside quotes; empty for none | count, then per pair: key length and bytes, value length (-1: NULL) and bytes |
//! | vector | `[1,2.5,-3e-05]` (each float4's shortest text) | dimension (u16), unused (u16), then each float4 |
//!
//! A vector whose dimension differs from the column's is an error, as are NaN and
//! infinities (pgvector rejects them itself).

use std::sync::Arc;

use arrow_array::builder::{ArrayBuilder, Float32Builder, StringBuilder};
use arrow_array::{Array, ArrayRef, FixedSizeListArray, ListArray, MapArray, StructArray};
use arrow_buffer::{NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field};
use pgcdc_core::types::hstore_fields;

use super::bytes::fits;
use super::number::parse_float;
use super::send::Reader;
use super::ValueError;

/// The parts of an hstore column: keys and values, offsets per row, a validity bit.
pub(super) struct HstoreBuilder {
    keys: StringBuilder,
    values: StringBuilder,
    offsets: Vec<i32>,
    nulls: NullBufferBuilder,
    /// The pairs of the value being read.
    pairs: Vec<(String, Option<String>)>,
}

fn utf8(v: Vec<u8>) -> Result<String, ValueError> {
    String::from_utf8(v).map_err(|_| ValueError::invalid(HSTORE, "not valid UTF-8"))
}

const HSTORE: &str = "hstore";
const VECTOR: &str = "vector";

impl HstoreBuilder {
    pub(super) fn new(capacity: usize) -> Self {
        HstoreBuilder {
            keys: StringBuilder::new(),
            values: StringBuilder::new(),
            offsets: vec![0],
            nulls: NullBufferBuilder::new(capacity),
            pairs: Vec::new(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.nulls.len()
    }

    pub(super) fn append_null(&mut self) {
        self.offsets.push(self.offsets.last().copied().unwrap_or(0));
        self.nulls.append_null();
    }

    /// Reads one quoted string (`"…"` with backslash escapes) at `text[*i]`.
    fn quoted(text: &[u8], i: &mut usize) -> Result<String, ValueError> {
        if text.get(*i) != Some(&b'"') {
            return Err(ValueError::invalid(HSTORE, "expected '\"'"));
        }
        *i += 1;
        let mut out = Vec::new();
        loop {
            match text.get(*i) {
                Some(b'"') => {
                    *i += 1;
                    return utf8(out);
                }
                Some(b'\\') => {
                    let c = text
                        .get(*i + 1)
                        .ok_or(ValueError::invalid(HSTORE, "an escape at the end"))?;
                    out.push(*c);
                    *i += 2;
                }
                Some(c) => {
                    out.push(*c);
                    *i += 1;
                }
                None => return Err(ValueError::invalid(HSTORE, "an unterminated quote")),
            }
        }
    }

    /// Parses hstore_out's text. On error nothing is appended.
    pub(super) fn append_text(&mut self, text: &[u8]) -> Result<(), ValueError> {
        self.pairs.clear();
        let mut i = 0;
        while i < text.len() {
            if i > 0 {
                match text.get(i..i + 2) {
                    Some(b", ") => i += 2,
                    _ => return Err(ValueError::invalid(HSTORE, "expected ', ' between pairs")),
                }
            }
            let key = Self::quoted(text, &mut i)?;
            if text.get(i..i + 2) != Some(b"=>") {
                return Err(ValueError::invalid(HSTORE, "expected '=>'"));
            }
            i += 2;
            let value = if text.get(i..i + 4) == Some(b"NULL") {
                i += 4;
                None
            } else {
                Some(Self::quoted(text, &mut i)?)
            };
            self.pairs.push((key, value));
        }
        self.close()
    }

    /// Reads hstore_send's pairs. On error nothing is appended.
    pub(super) fn append_send(&mut self, v: &[u8]) -> Result<(), ValueError> {
        self.pairs.clear();
        let mut r = Reader {
            rest: v,
            name: HSTORE,
        };
        let count = r.i32()?;
        for _ in 0..count.max(0) {
            let len = r.count("a NULL key")?;
            let key = utf8(r.take(len)?.to_vec())?;
            let value = r
                .field("negative value length")?
                .map(|v| utf8(v.to_vec()))
                .transpose()?;
            self.pairs.push((key, value));
        }
        r.end()?;
        self.close()
    }

    /// Appends the pairs read (all checked first: nothing is appended on error).
    fn close(&mut self) -> Result<(), ValueError> {
        let end = i32::try_from(self.keys.len() + self.pairs.len())
            .map_err(|_| ValueError::range(HSTORE, "more than 2^31 pairs in one batch"))?;
        let bytes: usize = self
            .pairs
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, String::len))
            .sum();
        let used = self.keys.values_slice().len() + self.values.values_slice().len();
        if !fits(used, bytes) {
            return Err(ValueError::range(
                HSTORE,
                "more than 2 GiB of text in one batch",
            ));
        }
        for (k, v) in self.pairs.drain(..) {
            self.keys.append_value(k);
            self.values.append_option(v);
        }
        self.offsets.push(end);
        self.nulls.append_non_null();
        Ok(())
    }

    pub(super) fn finish(&mut self) -> ArrayRef {
        let keys = Arc::new(self.keys.finish()) as ArrayRef;
        let values = Arc::new(self.values.finish()) as ArrayRef;
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        let nulls = self.nulls.finish();
        // Keys are never null (both readers refuse a NULL key); keys and values grow
        // together (close() appends both) and the offsets end at their length.
        let entries = StructArray::new(hstore_fields(), vec![keys, values], None);
        let field = Arc::new(Field::new("entries", entries.data_type().clone(), false));
        Arc::new(MapArray::new(
            field,
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            entries,
            nulls,
            false,
        ))
    }
}

/// The parts of a vector column: the floats, offsets (without a fixed dimension) and a
/// validity bit per row.
pub(super) struct VectorBuilder {
    dim: Option<i32>,
    values: Float32Builder,
    offsets: Vec<i32>,
    nulls: NullBufferBuilder,
}

impl VectorBuilder {
    pub(super) fn new(dim: Option<i32>, capacity: usize) -> Self {
        VectorBuilder {
            dim,
            values: Float32Builder::new(),
            offsets: vec![0],
            nulls: NullBufferBuilder::new(capacity),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.nulls.len()
    }

    pub(super) fn append_null(&mut self) {
        if let Some(n) = self.dim {
            // A fixed-size list keeps `n` (null) slots for a null row.
            self.values.append_nulls(usize::try_from(n).unwrap_or(0));
        }
        self.offsets.push(self.offsets.last().copied().unwrap_or(0));
        self.nulls.append_null();
    }

    /// Checks a whole vector before anything is appended, then appends it.
    fn append(&mut self, floats: &[f32]) -> Result<(), ValueError> {
        if let Some(n) = self.dim {
            if usize::try_from(n).ok() != Some(floats.len()) {
                return Err(ValueError::invalid(
                    VECTOR,
                    "a dimension other than the column's",
                ));
            }
        }
        if floats.iter().any(|f| !f.is_finite()) {
            return Err(ValueError::invalid(VECTOR, "NaN or infinity in a vector"));
        }
        let end = i32::try_from(self.values.len() + floats.len())
            .map_err(|_| ValueError::range(VECTOR, "more than 2^31 floats in one batch"))?;
        self.values.append_slice(floats);
        self.offsets.push(end);
        self.nulls.append_non_null();
        Ok(())
    }

    /// Parses vector_out's `[f,f,…]`. On error nothing is appended.
    pub(super) fn append_text(&mut self, text: &[u8]) -> Result<(), ValueError> {
        let body = match (text.first(), text.last()) {
            (Some(b'['), Some(b']')) if text.len() >= 2 => &text[1..text.len() - 1],
            _ => return Err(ValueError::invalid(VECTOR, "expected '[' … ']'")),
        };
        let floats = if body.is_empty() {
            Vec::new()
        } else {
            body.split(|c| *c == b',')
                .map(|f| parse_float::<f32>(f, VECTOR))
                .collect::<Result<Vec<f32>, ValueError>>()?
        };
        self.append(&floats)
    }

    /// Reads vector_send's dimension and floats. On error nothing is appended.
    pub(super) fn append_send(&mut self, v: &[u8]) -> Result<(), ValueError> {
        let mut r = Reader {
            rest: v,
            name: VECTOR,
        };
        let dim = usize::from(r.u16()?);
        let _unused = r.u16()?;
        let floats: Vec<f32> = r
            .take(dim * 4)?
            .chunks_exact(4)
            .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        r.end()?;
        self.append(&floats)
    }

    pub(super) fn finish(&mut self) -> ArrayRef {
        let values = Arc::new(self.values.finish()) as ArrayRef;
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        let nulls = self.nulls.finish();
        let item = Arc::new(Field::new("item", DataType::Float32, true));
        match self.dim {
            // Every row holds exactly `n` values: by construction.
            Some(n) => Arc::new(FixedSizeListArray::new(item, n, values, nulls)),
            None => Arc::new(ListArray::new(
                item,
                OffsetBuffer::new(ScalarBuffer::from(offsets)),
                values,
                nulls,
            )),
        }
    }
}
