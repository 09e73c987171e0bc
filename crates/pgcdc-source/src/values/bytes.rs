//! Text, json, bytea and uuid: values whose Arrow arrays hold their bytes.
//!
//! Text must be UTF-8 and is stored unchanged; bytea arrives as `\x` + hex pairs
//! (`bytea_output=hex`) and is decoded straight into the builder's buffer; a uuid is
//! its canonical 8-4-4-4-12 hex form, stored as 16 bytes. Utf8 and Binary arrays use
//! i32 offsets: a value that would take a batch's bytes past 2 GiB ([`MAX_OFFSET`]) is
//! an error instead of a panic.

use std::io::Write as _;

use arrow_array::builder::{BinaryBuilder, FixedSizeBinaryBuilder, StringBuilder};

use super::ValueError;

/// The largest byte offset of Utf8/Binary arrays (i32 offsets).
pub(super) const MAX_OFFSET: usize = i32::MAX as usize;

/// Whether `more` bytes still fit after `used` in one array's value buffer.
pub(super) fn fits(used: usize, more: usize) -> bool {
    used.saturating_add(more) <= MAX_OFFSET
}

/// UTF-8 text, unchanged.
pub(super) fn append_utf8(
    b: &mut StringBuilder,
    text: &[u8],
    kind: &'static str,
) -> Result<(), ValueError> {
    let s = std::str::from_utf8(text).map_err(|_| ValueError::invalid(kind, "not valid UTF-8"))?;
    if !fits(b.values_slice().len(), s.len()) {
        return Err(ValueError::range(
            kind,
            "more than 2 GiB of text in one batch",
        ));
    }
    b.append_value(s);
    Ok(())
}

/// bytea's binary form: the bytes themselves.
pub(super) fn append_bytes(
    b: &mut BinaryBuilder,
    v: &[u8],
    kind: &'static str,
) -> Result<(), ValueError> {
    if !fits(b.values_slice().len(), v.len()) {
        return Err(ValueError::range(
            kind,
            "more than 2 GiB of values in one batch",
        ));
    }
    b.append_value(v);
    Ok(())
}

/// A uuid's text, `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, as its 16 bytes.
pub(super) fn append_uuid(
    b: &mut FixedSizeBinaryBuilder,
    text: &[u8],
    kind: &'static str,
) -> Result<(), ValueError> {
    let bytes = parse_uuid(text).ok_or(ValueError::invalid(
        kind,
        "expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
    ))?;
    b.append_value(bytes)
        .map_err(|_| ValueError::invalid(kind, "not 16 bytes"))
}

/// Hex digit values; 0xFF for non-hex bytes.
const HEX: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

fn hex(c: u8) -> u8 {
    HEX[usize::from(c)]
}

/// `\x` + hex pairs, decoded straight into the builder's value buffer.
pub(super) fn append_bytea(b: &mut BinaryBuilder, text: &[u8]) -> Result<(), ValueError> {
    const K: &str = "bytea";
    let digits = text
        .strip_prefix(b"\\x")
        .ok_or(ValueError::invalid(K, "expected hex format (\\x...)"))?;
    if digits.len() % 2 != 0 {
        return Err(ValueError::invalid(K, "odd number of hex digits"));
    }
    // Validate first: bytes written to the builder cannot be taken back.
    if digits.iter().fold(0u8, |acc, &c| acc | hex(c)) > 0x0F {
        return Err(ValueError::invalid(K, "invalid hex digit"));
    }
    if !fits(b.values_slice().len(), digits.len() / 2) {
        return Err(ValueError::range(
            K,
            "more than 2 GiB of bytea in one batch",
        ));
    }
    let mut buf = [0u8; 256];
    for chunk in digits.chunks(2 * buf.len()) {
        let mut n = 0;
        for (dst, pair) in buf.iter_mut().zip(chunk.chunks_exact(2)) {
            if let [h, l] = *pair {
                *dst = hex(h) << 4 | hex(l);
                n += 1;
            }
        }
        b.write_all(buf.get(..n).unwrap_or_default())
            .map_err(|_| ValueError::range(K, "cannot grow the value buffer"))?;
    }
    b.append_value(b"");
    Ok(())
}

/// The canonical 8-4-4-4-12 form, hex digits in either case.
fn parse_uuid(text: &[u8]) -> Option<[u8; 16]> {
    let text: &[u8; 36] = text.try_into().ok()?;
    let mut out = [0u8; 16];
    let mut o = 0;
    let mut i = 0;
    while i < 36 {
        if matches!(i, 8 | 13 | 18 | 23) {
            if text.get(i) != Some(&b'-') {
                return None;
            }
            i += 1;
            continue;
        }
        let h = hex(*text.get(i)?);
        let l = hex(*text.get(i + 1)?);
        if (h | l) > 0x0F {
            return None;
        }
        *out.get_mut(o)? = h << 4 | l;
        o += 1;
        i += 2;
    }
    Some(out)
}
