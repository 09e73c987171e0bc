//! [`ValueError`], the one error of every value parser, and the type names it uses.
//!
//! Owns what an error says: the PostgreSQL type family ([`kind_name`]) and a reason,
//! never the value itself (row contents must not reach logs). It does not decide which
//! values are errors: each parser does, and the [`ValuePolicy`](pgcdc_core::ValuePolicy)
//! for values Arrow cannot hold.

use pgcdc_core::ValueKind;

/// Why a wire value could not be stored.
///
/// Says which kind failed and why; never contains the value itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// The text is not what PostgreSQL's output function writes for the type.
    #[error("invalid text for {kind}: {reason}")]
    Invalid {
        /// The PostgreSQL type family (`int4`, `timestamptz`, …).
        kind: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Well-formed, but outside what the column's Arrow type holds.
    #[error("{kind} value out of range: {reason}")]
    OutOfRange {
        /// The PostgreSQL type family.
        kind: &'static str,
        /// Which range.
        reason: &'static str,
    },
    /// A numeric with more digits than the decimal column's precision.
    #[error("numeric value exceeds decimal({precision},{scale})")]
    Precision {
        /// The column's precision.
        precision: u8,
        /// The column's scale.
        scale: i8,
    },
    /// A numeric with nonzero digits beyond the decimal column's scale (never rounded).
    #[error("numeric value has more fraction digits than decimal({precision},{scale}) holds and is never rounded")]
    Scale {
        /// The column's precision.
        precision: u8,
        /// The column's scale.
        scale: i8,
    },
    /// numeric `NaN`/`±Infinity` in a decimal column under
    /// [`NumericNanPolicy::Error`](pgcdc_core::NumericNanPolicy::Error).
    #[error("numeric NaN or infinity in a decimal({precision},{scale}) column and numeric_nan policy is 'error'")]
    NumericNan {
        /// The column's precision.
        precision: u8,
        /// The column's scale.
        scale: i8,
    },
    /// `±infinity` date or timestamp under [`InfinityPolicy::Error`](pgcdc_core::InfinityPolicy::Error).
    #[error("infinite {kind} and infinity policy is 'error'")]
    Infinite {
        /// `date`, `timestamp` or `timestamptz`.
        kind: &'static str,
    },
    /// The column's kind has no Arrow type (a decimal precision/scale Arrow rejects).
    #[error("decimal({precision},{scale}) cannot be stored in Arrow")]
    UnsupportedDecimal {
        /// The kind's precision.
        precision: u8,
        /// The kind's scale.
        scale: i8,
    },
}

impl ValueError {
    pub(super) fn invalid(kind: &'static str, reason: &'static str) -> Self {
        ValueError::Invalid { kind, reason }
    }

    pub(super) fn range(kind: &'static str, reason: &'static str) -> Self {
        ValueError::OutOfRange { kind, reason }
    }

    /// The error for any value of a kind that has no Arrow type: the decimal inside it
    /// (itself, or the element of a List, Range or Multirange of it).
    pub(super) fn unsupported(kind: &ValueKind) -> Self {
        let mut decimal = kind;
        while let ValueKind::List { element }
        | ValueKind::Range { element }
        | ValueKind::Multirange { element } = decimal
        {
            decimal = element.as_ref();
        }
        let (precision, scale) = match *decimal {
            ValueKind::Decimal128 { precision, scale }
            | ValueKind::Decimal256 { precision, scale } => (precision, scale),
            _ => (0, 0),
        };
        ValueError::UnsupportedDecimal { precision, scale }
    }
}

/// The PostgreSQL type family a kind parses, as named in errors.
pub(super) fn kind_name(kind: &ValueKind) -> &'static str {
    match kind {
        ValueKind::Bool => "bool",
        ValueKind::Int16 => "int2",
        ValueKind::Int32 => "int4",
        ValueKind::Int64 => "int8",
        ValueKind::UInt32 => "oid",
        ValueKind::Float32 => "float4",
        ValueKind::Float64 => "float8",
        ValueKind::Decimal128 { .. }
        | ValueKind::Decimal256 { .. }
        | ValueKind::NumericString
        | ValueKind::NumericFloat => "numeric",
        ValueKind::Money { .. } => "money",
        ValueKind::Text => "text",
        ValueKind::Json => "json",
        ValueKind::Bytea => "bytea",
        ValueKind::Date => "date",
        ValueKind::Time => "time",
        ValueKind::TimeTz => "timetz",
        ValueKind::Timestamp => "timestamp",
        ValueKind::TimestampTz => "timestamptz",
        ValueKind::Uuid => "uuid",
        ValueKind::Interval => "interval",
        ValueKind::List { .. } => "array",
        ValueKind::Range { .. } => "range",
        ValueKind::Multirange { .. } => "multirange",
        ValueKind::Struct { .. } => "record",
        ValueKind::Hstore => "hstore",
        ValueKind::Vector { .. } => "vector",
    }
}
