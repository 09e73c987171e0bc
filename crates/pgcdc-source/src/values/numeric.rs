//! numeric and money: exact decimals, from their output text.
//!
//! A numeric in a `Decimal128`/`Decimal256` column is checked against the column's
//! precision and scale and stored as the value × 10^scale, never rounded: nonzero digits
//! beyond the scale ([`ValueError::Scale`]) or more digits than the precision
//! ([`ValueError::Precision`]) are errors, fewer fraction digits are zero-padded, and
//! `NaN` / `±Infinity` follow the [`NumericNanPolicy`]. The digits are accumulated in
//! 18-digit u64 chunks, with no allocation. money is the count of its smallest unit, read
//! from whatever `lc_monetary` made of it. numeric's binary form is rendered to this text
//! first ([`numeric_text`](super::numeric_text)); money's is an int8.

use arrow_array::builder::PrimitiveBuilder;
use arrow_array::ArrowPrimitiveType;
use arrow_buffer::i256;
use pgcdc_core::{NumericNanPolicy, ValuePolicy};

use super::number::split_sign;
use super::ValueError;

/// Appends a numeric's text to a decimal(`precision`, `scale`) column: the exact scaled
/// integer, or for `NaN` / `±Infinity` what `policy.numeric_nan` says.
pub(super) fn append_decimal<D>(
    b: &mut PrimitiveBuilder<D>,
    text: &[u8],
    precision: u8,
    scale: i8,
    policy: &ValuePolicy,
) -> Result<(), ValueError>
where
    D: ArrowPrimitiveType,
    D::Native: DecimalInt,
{
    match scan_decimal(text, precision, scale)? {
        Some(d) => b.append_value(
            d.accumulate::<D::Native>()
                .ok_or(ValueError::Precision { precision, scale })?,
        ),
        None => match policy.numeric_nan {
            NumericNanPolicy::Null => b.append_null(),
            NumericNanPolicy::Error => return Err(ValueError::NumericNan { precision, scale }),
        },
    }
    Ok(())
}

/// A finite numeric text checked against a decimal column: its significant digits (two
/// runs of ASCII digits, the integer and fraction parts) and the zeros to append.
struct ScaledDigits<'a> {
    neg: bool,
    head: &'a [u8],
    tail: &'a [u8],
    pad: u32,
}

/// Integer types a decimal is accumulated into.
pub(super) trait DecimalInt: Copy {
    const ZERO: Self;
    /// `self * 10^digits + chunk`, `digits` ≤ 18.
    fn shift_add(self, digits: usize, chunk: u64) -> Option<Self>;
    fn neg(self) -> Option<Self>;
}

/// Powers of ten that fit u64 (10^0 ..= 10^19).
const POW10: [u64; 20] = {
    let mut t = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// Digits accumulated per u64 chunk.
const CHUNK: usize = 18;

impl DecimalInt for i128 {
    const ZERO: Self = 0;
    fn shift_add(self, digits: usize, chunk: u64) -> Option<Self> {
        let p = i128::from(*POW10.get(digits)?);
        self.checked_mul(p)?.checked_add(i128::from(chunk))
    }
    fn neg(self) -> Option<Self> {
        self.checked_neg()
    }
}

impl DecimalInt for i256 {
    const ZERO: Self = i256::ZERO;
    fn shift_add(self, digits: usize, chunk: u64) -> Option<Self> {
        let p = i256::from_i128(i128::from(*POW10.get(digits)?));
        self.checked_mul(p)?
            .checked_add(i256::from_i128(i128::from(chunk)))
    }
    fn neg(self) -> Option<Self> {
        self.checked_neg()
    }
}

impl ScaledDigits<'_> {
    /// The unscaled integer; None only if it overflows `T` (precision is checked before).
    fn accumulate<T: DecimalInt>(&self) -> Option<T> {
        let mut v = T::ZERO;
        for run in [self.head, self.tail] {
            for chunk in run.chunks(CHUNK) {
                let mut c: u64 = 0;
                for &d in chunk {
                    // ≤ 18 digits: cannot overflow u64.
                    c = c * 10 + u64::from(d.wrapping_sub(b'0'));
                }
                v = v.shift_add(chunk.len(), c)?;
            }
        }
        let mut pad = self.pad as usize;
        while pad > 0 {
            let n = pad.min(CHUNK);
            v = v.shift_add(n, 0)?;
            pad -= n;
        }
        if self.neg {
            v.neg()
        } else {
            Some(v)
        }
    }
}

/// The leading run of ASCII digits of `s` and the rest.
fn split_digits(s: &[u8]) -> (&[u8], &[u8]) {
    let n = s.iter().take_while(|c| c.is_ascii_digit()).count();
    (
        s.get(..n).unwrap_or_default(),
        s.get(n..).unwrap_or_default(),
    )
}

const NUMERIC: &str = "numeric";

fn not_decimal() -> ValueError {
    ValueError::invalid(NUMERIC, "expected a decimal number")
}

/// Checks a numeric text against decimal(precision, scale) and splits out the digits of
/// the scaled integer. `Ok(None)` for `NaN` / `±Infinity`.
fn scan_decimal(
    text: &[u8],
    precision: u8,
    scale: i8,
) -> Result<Option<ScaledDigits<'_>>, ValueError> {
    if matches!(text, b"NaN" | b"Infinity" | b"-Infinity" | b"+Infinity") {
        return Ok(None);
    }
    let (neg, rest) = split_sign(text);
    let (int, rest) = split_digits(rest);
    let (frac, rest) = match rest.split_first() {
        Some((b'.', after)) => split_digits(after),
        _ => (&[][..], rest),
    };
    if int.is_empty() && frac.is_empty() {
        return Err(not_decimal());
    }
    let exp = parse_exponent(rest)?;
    let Some((head, tail)) = significant(int, frac) else {
        // Zero (any sign, any exponent).
        return Ok(Some(ScaledDigits {
            neg: false,
            head: &[],
            tail: &[],
            pad: 0,
        }));
    };
    // The scaled integer is digits(int ++ frac) × 10^shift.
    let frac_len = i64::try_from(frac.len()).map_err(|_| not_decimal())?;
    let shift = exp
        .checked_sub(frac_len)
        .and_then(|s| s.checked_add(i64::from(scale)))
        .ok_or_else(not_decimal)?;
    let (head, tail, pad) = if shift >= 0 {
        let pad = u32::try_from(shift).map_err(|_| ValueError::Precision { precision, scale })?;
        (head, tail, pad)
    } else {
        let (head, tail) = drop_zeros(head, tail, shift.unsigned_abs())
            .ok_or(ValueError::Scale { precision, scale })?;
        (head, tail, 0)
    };
    // head/tail start with a nonzero digit, so this is the scaled integer's digit count.
    let digits = (head.len() as u64)
        .saturating_add(tail.len() as u64)
        .saturating_add(u64::from(pad));
    if digits > u64::from(precision) {
        return Err(ValueError::Precision { precision, scale });
    }
    Ok(Some(ScaledDigits {
        neg,
        head,
        tail,
        pad,
    }))
}

/// The exponent after a numeric's digits: nothing (0), or `e`/`E`, an optional sign and
/// digits. Lenient: PostgreSQL's numeric output never writes one.
fn parse_exponent(rest: &[u8]) -> Result<i64, ValueError> {
    let after = match rest.split_first() {
        None => return Ok(0),
        Some((b'e' | b'E', after)) => after,
        Some(_) => return Err(not_decimal()),
    };
    let (neg, after) = split_sign(after);
    let (digits, after) = split_digits(after);
    if digits.is_empty() || !after.is_empty() {
        return Err(not_decimal());
    }
    let mut e: i64 = 0;
    for &d in digits {
        e = e
            .checked_mul(10)
            .and_then(|e| e.checked_add(i64::from(d.wrapping_sub(b'0'))))
            .filter(|e| *e <= 1_000_000_000)
            .ok_or(ValueError::range(NUMERIC, "exponent too large"))?;
    }
    Ok(if neg { -e } else { e })
}

/// The significant digits of `int ++ frac` (leading zeros stripped across both runs): a
/// run of `int` and a run of `frac`. None when every digit is zero.
fn significant<'a>(int: &'a [u8], frac: &'a [u8]) -> Option<(&'a [u8], &'a [u8])> {
    let lead_int = int.iter().take_while(|&&c| c == b'0').count();
    let (head, tail) = if lead_int < int.len() {
        (int.get(lead_int..).unwrap_or_default(), frac)
    } else {
        let lead_frac = frac.iter().take_while(|&&c| c == b'0').count();
        (&[][..], frac.get(lead_frac..).unwrap_or_default())
    };
    (!head.is_empty() || !tail.is_empty()).then_some((head, tail))
}

/// `head ++ tail` without its last `n` digits, which must all be zeros (a numeric is
/// never rounded). None if one of them is not, or there are fewer than `n` digits.
fn drop_zeros<'a>(head: &'a [u8], tail: &'a [u8], n: u64) -> Option<(&'a [u8], &'a [u8])> {
    let mut drop = usize::try_from(n).unwrap_or(usize::MAX);
    let from_tail = drop.min(tail.len());
    let (tail, dropped) = tail.split_at(tail.len() - from_tail);
    if dropped.iter().any(|&c| c != b'0') {
        return None;
    }
    drop -= from_tail;
    let mut head = head;
    if drop > 0 {
        let from_head = drop.min(head.len());
        let (keep, dropped) = head.split_at(head.len() - from_head);
        if dropped.iter().any(|&c| c != b'0') || drop > from_head {
            return None;
        }
        head = keep;
    }
    // Empty only when every dropped digit was zero, i.e. the value is zero: handled
    // before, by the caller.
    (!head.is_empty() || !tail.is_empty()).then_some((head, tail))
}

/// money's text (`cash_out`, in the server's `lc_monetary`: `$1,234.56`, `-$0.01`,
/// `(1.234,56 €)`…) → the count of its smallest unit: its digits in order, negative when
/// it holds `-` or `(`. With a nonzero `scale` the last run of digits must have `scale`
/// of them (a check that the fraction digits are the ones the catalog read).
pub(super) fn parse_money(text: &[u8], scale: i8) -> Result<i128, ValueError> {
    const NAME: &str = "money";
    let mut v: i128 = 0;
    let (mut digits, mut run, mut prev_digit) = (0usize, 0usize, false);
    // Any other byte is the currency symbol, a separator or the sign (locale-defined).
    for &c in text {
        let digit = c.is_ascii_digit();
        if digit {
            run = if prev_digit { run + 1 } else { 1 };
            v = v * 10 + i128::from(c - b'0');
            digits += 1;
            if digits > 19 {
                return Err(ValueError::range(NAME, "more than 19 digits"));
            }
        }
        prev_digit = digit;
    }
    let frac = usize::try_from(scale).unwrap_or(0);
    if digits == 0 || (frac > 0 && run != frac) {
        return Err(ValueError::invalid(
            NAME,
            "not the fraction digits of the server's lc_monetary (did lc_monetary change?)",
        ));
    }
    if text.iter().any(|c| *c == b'-' || *c == b'(') {
        v = -v;
    }
    if v > i128::from(i64::MAX) || v < i128::from(i64::MIN) {
        return Err(ValueError::range(NAME, "beyond int8"));
    }
    Ok(v)
}
