//! PostgreSQL binary (send) formats of whole columns → the same Arrow values as text.
//!
//! Binary pgoutput (`binary 'true'`, PostgreSQL 14+) sends every column whose type has
//! a send function in that form, not only the kinds [`ColumnBuilder::append_binary`]
//! reads. [`BinaryForm`] says, per column, how its send format becomes the value the
//! text path would have stored:
//!
//! | form | types | read as |
//! |------|-------|---------|
//! | `Native` | bool, int2/4/8, oid, xid, float4/8, money, bytea, date, time, timetz, timestamp(tz), uuid, interval | [`ColumnBuilder::append_binary`] |
//! | `Text` | text, varchar, char(n), name, json, enums | the bytes are the output text: [`ColumnBuilder::append_text`] |
//! | `Jsonb` | jsonb | a version byte `1`, then the output text |
//! | `Numeric` | numeric | base-10000 digits, rendered exactly as `numeric_out` writes them, then parsed as text |
//! | `Array` | arrays of the above, as many dimensions as the column declares | `array_send`: header, then each element in its own form |
//! | `Range`, `Multirange` | range and multirange types of the above | `range_send`, `multirange_send` (see `range`) |
//! | `Record` | composite types whose attributes all have a form | `record_send`: count, then each attribute in its own form |
//! | `Hstore`, `Vector` | hstore, pgvector's vector | their send formats (see `ext`) |
//! | `Inet`, `MacAddr`, `Bits` | inet, cidr; macaddr, macaddr8; bit, varbit | their send formats, written out exactly as `inet_out`/`cidr_out`, `macaddr_out`/`macaddr8_out`, `bit_out` write them (text columns) |
//!
//! A column of any other type (tsvector, geometric types, xml, …), a hinted column
//! whose type is read natively, and a `uuid` kept as text have no form: a session that
//! meets one reads the text protocol instead. The same errors as the text path come
//! out for the same values (a 2-D value in a 1-D column, explicit lower bounds, a
//! numeric beyond the column's precision).

use pgcdc_core::types::oid;
use pgcdc_core::{ValueKind, ValuePolicy};

use super::{ColumnBuilder, Inner, ValueError};

/// How one column's binary (send-format) values are read; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinaryForm {
    /// The kind's own binary reader ([`ColumnBuilder::append_binary`]).
    Native,
    /// The send format is the output text itself.
    Text,
    /// jsonb: version byte 1, then the JSON text.
    Jsonb,
    /// numeric_send's digits, rendered as numeric_out's text.
    Numeric,
    /// array_send of an array (of the column's dimensions) whose elements have this form.
    Array(Box<BinaryForm>),
    /// range_send of a range whose bounds have this form.
    Range(Box<BinaryForm>),
    /// multirange_send of ranges whose bounds have this form.
    Multirange(Box<BinaryForm>),
    /// record_send of a composite type, its attributes in these forms.
    Record(Vec<BinaryForm>),
    /// hstore_send: the pairs, each key and value length-prefixed.
    Hstore,
    /// pgvector's vector_send: dimension, then the float4s.
    Vector,
    /// inet_send / cidr_send: family, bits, is_cidr, length, address bytes.
    Inet,
    /// macaddr_send / macaddr8_send: the 6 or 8 bytes.
    MacAddr,
    /// bit_send / varbit_send: the bit length, then the bits, most significant first.
    Bits,
}

/// The form for the snapshot's binary COPY of [`ColumnBuilder::binary_kind`] kinds.
pub const NATIVE: &BinaryForm = &BinaryForm::Native;

impl BinaryForm {
    /// The form of a non-array column of base type `base` (domains resolved), stored
    /// as `kind`; `hinted` when a column hint chose the kind. None: not readable.
    pub fn scalar(base: u32, is_enum: bool, kind: &ValueKind, hinted: bool) -> Option<Self> {
        if is_enum {
            return Some(BinaryForm::Text);
        }
        match base {
            oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::JSON => {
                Some(BinaryForm::Text)
            }
            oid::JSONB => Some(BinaryForm::Jsonb),
            oid::MONEY if !hinted && matches!(kind, ValueKind::Money { .. }) => {
                Some(BinaryForm::Native)
            }
            oid::INET | oid::CIDR if *kind == ValueKind::Text => Some(BinaryForm::Inet),
            oid::MACADDR | oid::MACADDR8 if *kind == ValueKind::Text => Some(BinaryForm::MacAddr),
            oid::BIT | oid::VARBIT if *kind == ValueKind::Text => Some(BinaryForm::Bits),
            oid::NUMERIC => Some(BinaryForm::Numeric),
            oid::BOOL
            | oid::INT2
            | oid::INT4
            | oid::INT8
            | oid::OID
            | oid::XID
            | oid::FLOAT4
            | oid::FLOAT8
            | oid::BYTEA
            | oid::DATE
            | oid::TIME
            | oid::TIMETZ
            | oid::TIMESTAMP
            | oid::TIMESTAMPTZ
            | oid::UUID
            | oid::INTERVAL
                if !hinted && ColumnBuilder::binary_kind(kind) =>
            {
                Some(BinaryForm::Native)
            }
            _ => None,
        }
    }
}

/// A cursor over a binary value; every read is checked.
pub(super) struct Reader<'a> {
    pub(super) rest: &'a [u8],
    pub(super) name: &'static str,
}

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], ValueError> {
        if self.rest.len() < n {
            return Err(ValueError::invalid(self.name, "binary value too short"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub(super) fn u16(&mut self) -> Result<u16, ValueError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(super) fn i32(&mut self) -> Result<i32, ValueError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An int32 count or length, which must not be negative (`negative`: the error).
    pub(super) fn count(&mut self, negative: &'static str) -> Result<usize, ValueError> {
        usize::try_from(self.i32()?).map_err(|_| ValueError::invalid(self.name, negative))
    }

    /// A length-prefixed field: length -1 is NULL (None), else that many bytes.
    pub(super) fn field(&mut self, negative: &'static str) -> Result<Option<&'a [u8]>, ValueError> {
        match self.i32()? {
            -1 => Ok(None),
            len => {
                let len =
                    usize::try_from(len).map_err(|_| ValueError::invalid(self.name, negative))?;
                self.take(len).map(Some)
            }
        }
    }

    pub(super) fn end(&self) -> Result<(), ValueError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(ValueError::invalid(
                self.name,
                "trailing bytes after the binary value",
            ))
        }
    }
}

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// Writes numeric_send's value `v` as numeric_out's text into `out` (cleared first):
/// the sign, the integer digits without leading zeros, and exactly `dscale` fraction
/// digits.
pub fn numeric_text(v: &[u8], out: &mut Vec<u8>) -> Result<(), ValueError> {
    const NAME: &str = "numeric";
    out.clear();
    let mut r = Reader {
        rest: v,
        name: NAME,
    };
    let ndigits = r.u16()?;
    let weight = r.u16()? as i16;
    let sign = r.u16()?;
    let dscale = r.u16()?;
    if ndigits > 0x7FFF || dscale > 0x3FFF {
        return Err(ValueError::invalid(
            NAME,
            "digit count or scale out of range",
        ));
    }
    let digits = r.take(usize::from(ndigits) * 2)?;
    r.end()?;
    let special: Option<&[u8]> = match sign {
        NUMERIC_POS | NUMERIC_NEG => None,
        NUMERIC_NAN => Some(b"NaN"),
        NUMERIC_PINF => Some(b"Infinity"),
        NUMERIC_NINF => Some(b"-Infinity"),
        _ => return Err(ValueError::invalid(NAME, "unknown sign")),
    };
    if let Some(text) = special {
        out.extend_from_slice(text);
        return Ok(());
    }
    let digit = |d: i32| -> Result<u16, ValueError> {
        let Ok(i) = usize::try_from(d) else {
            return Ok(0);
        };
        match digits.get(i * 2..i * 2 + 2) {
            Some(b) => match u16::from_be_bytes([b[0], b[1]]) {
                n @ 0..=9999 => Ok(n),
                _ => Err(ValueError::invalid(NAME, "a base-10000 digit above 9999")),
            },
            None => Ok(0),
        }
    };
    if sign == NUMERIC_NEG {
        out.push(b'-');
    }
    let weight = i32::from(weight);
    let mut d = 0;
    if weight < 0 {
        out.push(b'0');
        d = weight + 1;
    } else {
        while d <= weight {
            let n = digit(d)?;
            if d == 0 {
                // The first group without leading zeros (its last digit always).
                let buf = itoa_buf(n);
                let skip = buf.iter().take(3).take_while(|c| **c == b'0').count();
                out.extend_from_slice(buf.get(skip..).unwrap_or_default());
            } else {
                out.extend_from_slice(&itoa_buf(n));
            }
            d += 1;
        }
    }
    if dscale > 0 {
        out.push(b'.');
        let end = out.len() + usize::from(dscale);
        while out.len() < end {
            out.extend_from_slice(&itoa_buf(digit(d)?));
            d += 1;
        }
        out.truncate(end);
    }
    Ok(())
}

/// numeric_send of a decimal text such as `-12.50` (digits, at most one point, an
/// optional leading `-`), as PostgreSQL stores it: the inverse of [`numeric_text`], for
/// tests and benchmarks that need real binary numerics. None for any other text.
pub fn numeric_send(text: &str) -> Option<Vec<u8>> {
    let (neg, body) = match text.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, text),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() || !int.bytes().chain(frac.bytes()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let int_groups = int.len().div_ceil(4);
    let digits = format!(
        "{:0>iw$}{:0<fw$}",
        int,
        frac,
        iw = int_groups * 4,
        fw = frac.len().div_ceil(4) * 4
    );
    let mut groups: Vec<u16> = digits
        .as_bytes()
        .chunks(4)
        .map(|c| c.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')))
        .collect();
    let mut weight = i16::try_from(int_groups).ok()? - 1;
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= i16::try_from(leading).ok()?;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let sign = if neg && !groups.is_empty() {
        NUMERIC_NEG
    } else {
        NUMERIC_POS
    };
    let mut out = Vec::with_capacity(8 + groups.len() * 2);
    out.extend_from_slice(&u16::try_from(groups.len()).ok()?.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&u16::try_from(frac.len()).ok()?.to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Some(out)
}

/// A base-10000 digit as four decimal digits.
fn itoa_buf(n: u16) -> [u8; 4] {
    [
        b'0' + (n / 1000 % 10) as u8,
        b'0' + (n / 100 % 10) as u8,
        b'0' + (n / 10 % 10) as u8,
        b'0' + (n % 10) as u8,
    ]
}

impl ColumnBuilder {
    /// Appends one value in the binary form `form` (see the [module docs](self)).
    ///
    /// On error nothing is appended, except for arrays (as with
    /// [`append_text`](Self::append_text)).
    pub fn append_send(
        &mut self,
        form: &BinaryForm,
        v: &[u8],
        policy: &ValuePolicy,
    ) -> Result<(), ValueError> {
        match form {
            BinaryForm::Native => self.append_binary(v, policy),
            BinaryForm::Text => self.append_text(v, policy),
            BinaryForm::Jsonb => match v.split_first() {
                Some((1, text)) => self.append_text(text, policy),
                _ => Err(ValueError::invalid("jsonb", "unknown binary jsonb version")),
            },
            BinaryForm::Numeric => self.append_rendered(v, policy, numeric_text),
            BinaryForm::Inet => self.append_rendered(v, policy, super::net::inet_text),
            BinaryForm::MacAddr => self.append_rendered(v, policy, super::net::macaddr_text),
            BinaryForm::Bits => self.append_rendered(v, policy, super::net::bit_text),
            BinaryForm::Range(bound) => match &mut self.inner {
                Inner::Range(r) => r.append_send(bound, v, policy),
                _ => Err(ValueError::invalid(
                    "range",
                    "a range's binary form for a column that is not a range",
                )),
            },
            BinaryForm::Multirange(bound) => match &mut self.inner {
                Inner::List(l) if matches!(self.kind, ValueKind::Multirange { .. }) => {
                    l.append_multirange_send(bound, v, policy)
                }
                _ => Err(ValueError::invalid(
                    "multirange",
                    "a multirange's binary form for a column that is not a multirange",
                )),
            },
            BinaryForm::Array(element) => match &mut self.inner {
                Inner::List(l) if matches!(self.kind, ValueKind::List { .. }) => {
                    l.append_send(element, v, policy)
                }
                _ => Err(ValueError::invalid(
                    "array",
                    "an array's binary form for a column that is not a List",
                )),
            },
            BinaryForm::Hstore => match &mut self.inner {
                Inner::Hstore(h) => h.append_send(v),
                _ => Err(ValueError::invalid(
                    "hstore",
                    "an hstore's binary form for another column",
                )),
            },
            BinaryForm::Vector => match &mut self.inner {
                Inner::Vector(b) => b.append_send(v),
                _ => Err(ValueError::invalid(
                    "vector",
                    "a vector's binary form for another column",
                )),
            },
            BinaryForm::Record(forms) => match &mut self.inner {
                Inner::Struct(s) => s.append_send(forms, v, policy),
                _ => Err(ValueError::invalid(
                    "record",
                    "a composite's binary form for a column that is not a Struct",
                )),
            },
        }
    }
}

impl ColumnBuilder {
    /// Appends the text `render` writes for the binary value `v` (into the reused scratch
    /// buffer, cleared first), parsed as text.
    fn append_rendered(
        &mut self,
        v: &[u8],
        policy: &ValuePolicy,
        render: fn(&[u8], &mut Vec<u8>) -> Result<(), ValueError>,
    ) -> Result<(), ValueError> {
        let mut text = std::mem::take(&mut self.scratch);
        text.clear();
        let result = render(v, &mut text).and_then(|()| self.append_text(&text, policy));
        self.scratch = text;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn numeric_send(text: &str) -> Vec<u8> {
        super::numeric_send(text).unwrap()
    }

    fn text_of(v: &[u8]) -> Result<String, ValueError> {
        let mut out = Vec::new();
        numeric_text(v, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn numeric_send_renders_as_numeric_out() {
        for text in [
            "0",
            "0.00",
            "1",
            "-1",
            "10000",
            "12345.6789",
            "0.0001",
            "-0.000012300",
            "100000000.5",
            "9999",
            "99990000",
            "0.1",
        ] {
            assert_eq!(text_of(&numeric_send(text)).as_deref(), Ok(text), "{text}");
        }
        // Values captured from numeric_send on PostgreSQL 15.
        // 1e-20: ndigits 1, weight -5, dscale 20, digit 1.
        assert_eq!(
            text_of(&[0, 1, 0xff, 0xfb, 0, 0, 0, 20, 0, 1]).as_deref(),
            Ok("0.00000000000000000001")
        );
        for (sign, text) in [
            (0xC000u16, "NaN"),
            (0xD000, "Infinity"),
            (0xF000, "-Infinity"),
        ] {
            let mut v = vec![0, 0, 0, 0];
            v.extend_from_slice(&sign.to_be_bytes());
            v.extend_from_slice(&[0, 0]);
            assert_eq!(text_of(&v).as_deref(), Ok(text));
        }
        assert!(
            text_of(&[0, 1, 0, 0, 0, 0, 0, 0, 0x27, 0x10]).is_err(),
            "digit 10000"
        );
        assert!(text_of(&[0, 2, 0, 0, 0, 0, 0, 0, 0, 1]).is_err(), "short");
        assert!(text_of(&[0, 0, 0, 0, 0x12, 0x34, 0, 0]).is_err(), "sign");
        assert!(text_of(&[0, 0, 0]).is_err());
    }

    /// array_send of a 1-D array with lower bound `lbound` (elements None = NULL).
    fn array_send(ndim: i32, lbound: i32, elements: &[Option<Vec<u8>>]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&ndim.to_be_bytes());
        v.extend_from_slice(&i32::from(elements.iter().any(Option::is_none)).to_be_bytes());
        v.extend_from_slice(&23i32.to_be_bytes());
        for _ in 0..ndim {
            v.extend_from_slice(&(elements.len() as i32).to_be_bytes());
            v.extend_from_slice(&lbound.to_be_bytes());
        }
        for e in elements {
            match e {
                None => v.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(b) => {
                    v.extend_from_slice(&(b.len() as i32).to_be_bytes());
                    v.extend_from_slice(b);
                }
            }
        }
        v
    }

    fn list(element: ValueKind) -> ValueKind {
        ValueKind::List {
            element: Box::new(element),
        }
    }

    /// The same column built from text and from binary values.
    fn both(kind: ValueKind, form: &BinaryForm, pairs: &[(&[u8], Vec<u8>)]) {
        let policy = ValuePolicy::default();
        let mut text = ColumnBuilder::new(kind.clone(), 4);
        let mut binary = ColumnBuilder::new(kind, 4);
        for (t, b) in pairs {
            text.append_text(t, &policy).unwrap();
            binary.append_send(form, b, &policy).unwrap();
        }
        assert_eq!(text.finish().to_data(), binary.finish().to_data());
    }

    #[test]
    fn binary_forms_give_the_text_paths_values() {
        let int = |i: i32| Some(i.to_be_bytes().to_vec());
        let ints = BinaryForm::Array(Box::new(BinaryForm::Native));
        both(
            list(ValueKind::Int32),
            &ints,
            &[
                (b"{1,NULL,3}", array_send(1, 1, &[int(1), None, int(3)])),
                (b"{}", array_send(0, 1, &[])),
            ],
        );
        let texts = BinaryForm::Array(Box::new(BinaryForm::Text));
        both(
            list(ValueKind::Text),
            &texts,
            &[(
                br#"{"",NULL,"a,b","q\"uote"}"#,
                array_send(
                    1,
                    1,
                    &[
                        Some(vec![]),
                        None,
                        Some(b"a,b".to_vec()),
                        Some(b"q\"uote".to_vec()),
                    ],
                ),
            )],
        );
        both(
            ValueKind::Json,
            &BinaryForm::Jsonb,
            &[(b"{\"a\": 1}", b"\x01{\"a\": 1}".to_vec())],
        );
        let dec = ValueKind::Decimal128 {
            precision: 12,
            scale: 2,
        };
        both(
            dec.clone(),
            &BinaryForm::Numeric,
            &[
                (b"-12.50", numeric_send("-12.50")),
                (b"0.00", numeric_send("0.00")),
            ],
        );
        both(
            list(dec),
            &BinaryForm::Array(Box::new(BinaryForm::Numeric)),
            &[(
                b"{1.50,NULL}",
                array_send(1, 1, &[Some(numeric_send("1.50")), None]),
            )],
        );
    }

    #[test]
    fn hstore_vector_and_record_binary_forms_give_the_text_paths_values() {
        let mut hs = 3i32.to_be_bytes().to_vec();
        for (k, v) in [
            (&b"a"[..], Some(&b"1"[..])),
            (b"k y", Some(b"v \"q\" \\")),
            (b"n", None),
        ] {
            hs.extend_from_slice(&(k.len() as i32).to_be_bytes());
            hs.extend_from_slice(k);
            match v {
                Some(v) => {
                    hs.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    hs.extend_from_slice(v);
                }
                None => hs.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        both(
            ValueKind::Hstore,
            &BinaryForm::Hstore,
            &[
                (br#""a"=>"1", "k y"=>"v \"q\" \\", "n"=>NULL"#, hs),
                (b"", 0i32.to_be_bytes().to_vec()),
            ],
        );
        let vector = |fs: &[f32]| {
            let mut v = (fs.len() as u16).to_be_bytes().to_vec();
            v.extend_from_slice(&[0, 0]);
            for f in fs {
                v.extend_from_slice(&f.to_be_bytes());
            }
            v
        };
        both(
            ValueKind::Vector { dim: Some(3) },
            &BinaryForm::Vector,
            &[(b"[1.5,-0,1e-45]", vector(&[1.5, -0.0, 1e-45]))],
        );
        both(
            ValueKind::Vector { dim: None },
            &BinaryForm::Vector,
            &[
                (b"[1]", vector(&[1.0])),
                (b"[0.1,0.2]", vector(&[0.1, 0.2])),
            ],
        );
        let fields = vec![
            pgcdc_core::StructField {
                name: "x".into(),
                kind: ValueKind::Int32,
            },
            pgcdc_core::StructField {
                name: "t".into(),
                kind: ValueKind::Text,
            },
        ];
        let mut rec = 2i32.to_be_bytes().to_vec();
        for (oid, v) in [
            (23i32, 7i32.to_be_bytes().to_vec()),
            (25, b"a \"b\"".to_vec()),
        ] {
            rec.extend_from_slice(&oid.to_be_bytes());
            rec.extend_from_slice(&(v.len() as i32).to_be_bytes());
            rec.extend_from_slice(&v);
        }
        let mut nulls = 2i32.to_be_bytes().to_vec();
        for oid in [23i32, 25] {
            nulls.extend_from_slice(&oid.to_be_bytes());
            nulls.extend_from_slice(&(-1i32).to_be_bytes());
        }
        both(
            ValueKind::Struct { fields },
            &BinaryForm::Record(vec![BinaryForm::Native, BinaryForm::Text]),
            &[(br#"(7,"a ""b""")"#, rec), (b"(,)", nulls)],
        );
        // A vector of the wrong dimension and a NaN are errors in both forms.
        let policy = ValuePolicy::default();
        let mut b = ColumnBuilder::new(ValueKind::Vector { dim: Some(2) }, 1);
        assert!(b.append_text(b"[1]", &policy).is_err());
        assert!(b
            .append_send(&BinaryForm::Vector, &vector(&[1.0]), &policy)
            .is_err());
        assert!(b
            .append_send(&BinaryForm::Vector, &vector(&[f32::NAN, 1.0]), &policy)
            .is_err());
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn binary_arrays_that_do_not_fit_a_list_give_the_text_paths_errors() {
        let policy = ValuePolicy::default();
        let form = BinaryForm::Array(Box::new(BinaryForm::Native));
        let one = Some(1i32.to_be_bytes().to_vec());
        for (text, binary) in [
            (
                &b"[0:0]={1}"[..],
                array_send(1, 0, std::slice::from_ref(&one)),
            ),
            (b"{{1}}", array_send(2, 1, std::slice::from_ref(&one))),
        ] {
            let mut t = ColumnBuilder::new(list(ValueKind::Int32), 1);
            let mut b = ColumnBuilder::new(list(ValueKind::Int32), 1);
            let (te, be) = (
                t.append_text(text, &policy),
                b.append_send(&form, &binary, &policy),
            );
            assert!(te.is_err());
            assert_eq!(te, be);
        }
        let mut b = ColumnBuilder::new(list(ValueKind::Int32), 1);
        let mut short = array_send(1, 1, &[one]);
        short.pop();
        assert!(b.append_send(&form, &short, &policy).is_err());
        assert!(b
            .append_send(&BinaryForm::Jsonb, b"\x02{}", &policy)
            .is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

        /// Canonical numeric text → numeric_send → numeric_out text is the identity.
        #[test]
        fn numeric_binary_round_trips_to_its_text(
            neg: bool,
            int in "(0|[1-9][0-9]{0,40})",
            frac in "[0-9]{0,30}",
        ) {
            let text = match (neg && (int != "0" || frac.bytes().any(|c| c != b'0')), frac.is_empty()) {
                (n, true) => format!("{}{int}", if n { "-" } else { "" }),
                (n, false) => format!("{}{int}.{frac}", if n { "-" } else { "" }),
            };
            prop_assert_eq!(text_of(&numeric_send(&text)), Ok(text.clone()));
        }

        /// Any bytes: an error or a text the numeric parser reads; never a panic.
        #[test]
        fn numeric_text_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = text_of(&bytes);
        }
    }
}
