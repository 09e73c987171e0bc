//! The PostgreSQL → Arrow type mapping, and the policies for values Arrow cannot hold.
//!
//! A column's PostgreSQL type (OID and typmod, after resolving domains to their base
//! type) decides its [`ValueKind`]: how wire values are parsed and which Arrow type
//! stores them. The mapping is a pure function so it can be unit-tested and shared by
//! the stream and the snapshot. Types without a dedicated kind keep their exact
//! PostgreSQL text form ([`ValueKind::Text`]).

use std::collections::HashMap;

use arrow_schema::{DataType, Field, Fields, TimeUnit};
use serde::{Deserialize, Serialize};

/// Built-in type OIDs pgcdc maps specially (from `pg_type.dat`).
pub mod oid {
    #![allow(missing_docs)]
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const XID: u32 = 28;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const MONEY: u32 = 790;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const TIMETZ: u32 = 1266;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
    pub const INET: u32 = 869;
    pub const CIDR: u32 = 650;
    pub const MACADDR: u32 = 829;
    pub const MACADDR8: u32 = 774;
    pub const BIT: u32 = 1560;
    pub const VARBIT: u32 = 1562;
    /// OIDs below this are assigned by `initdb` (built-in types).
    pub const FIRST_NORMAL_OBJECT_ID: u32 = 16384;

    /// The subtype of a built-in range type, and whether the OID is its multirange
    /// (`pg_range.rngsubtype`, `rngmultitypid`), or None.
    pub fn range_subtype(t: u32) -> Option<(u32, bool)> {
        Some(match t {
            3904 => (INT4, false),
            3906 => (NUMERIC, false),
            3908 => (TIMESTAMP, false),
            3910 => (TIMESTAMPTZ, false),
            3912 => (DATE, false),
            3926 => (INT8, false),
            4451 => (INT4, true),
            4532 => (NUMERIC, true),
            4533 => (TIMESTAMP, true),
            4534 => (TIMESTAMPTZ, true),
            4535 => (DATE, true),
            4536 => (INT8, true),
            _ => return None,
        })
    }

    /// The element type of a built-in array type (`pg_type.typelem` for the `_name`
    /// types), or None. Arrays of types whose array delimiter is not `,` (box) are left
    /// out: they stay text.
    pub fn array_element(array: u32) -> Option<u32> {
        Some(match array {
            1000 => BOOL,
            1001 => BYTEA,
            1002 => CHAR,
            1003 => NAME,
            1016 => INT8,
            1005 => INT2,
            1007 => INT4,
            1009 => TEXT,
            1028 => OID,
            1011 => XID,
            199 => JSON,
            143 => XML,
            1021 => FLOAT4,
            1022 => FLOAT8,
            791 => MONEY,
            1014 => BPCHAR,
            1015 => VARCHAR,
            1182 => DATE,
            1183 => TIME,
            1115 => TIMESTAMP,
            1185 => TIMESTAMPTZ,
            1187 => INTERVAL,
            1270 => TIMETZ,
            1231 => NUMERIC,
            2951 => UUID,
            3807 => JSONB,
            1041 => 869,  // inet
            651 => 650,   // cidr
            1040 => 829,  // macaddr
            775 => 774,   // macaddr8
            1561 => 1560, // bit
            1563 => 1562, // varbit
            3905 => 3904, // int4range
            3907 => 3906, // numrange
            3909 => 3908, // tsrange
            3911 => 3910, // tstzrange
            3913 => 3912, // daterange
            3927 => 3926, // int8range
            6150 => 4451, // int4multirange
            6151 => 4532, // nummultirange
            6152 => 4533, // tsmultirange
            6153 => 4534, // tstzmultirange
            6155 => 4535, // datemultirange
            6157 => 4536, // int8multirange
            _ => return None,
        })
    }
}

/// What to store for `infinity` / `-infinity` dates and timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InfinityPolicy {
    /// The largest / smallest representable value (DuckDB's own encoding of infinity:
    /// `i64::MAX` / `-i64::MAX` microseconds, `i32::MAX` / `-i32::MAX` days).
    #[default]
    Clamp,
    /// NULL.
    Null,
    /// Stop with an error naming the column.
    Error,
}

/// What to store for numeric `NaN` / `±Infinity` in a decimal column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NumericNanPolicy {
    /// NULL.
    #[default]
    Null,
    /// Stop with an error naming the column.
    Error,
}

/// How `numeric` without precision and scale is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "as")]
pub enum UnconstrainedNumeric {
    /// The exact decimal text (`"1.50"`, `"NaN"`), lossless.
    #[default]
    String,
    /// Float64 (lossy beyond 15–17 significant digits).
    Float64,
    /// Decimal with the given precision and scale; values that do not fit are an error.
    Decimal {
        /// Total digits (1–76).
        precision: u8,
        /// Digits after the point.
        scale: i8,
    },
}

/// How `uuid` is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UuidRepr {
    /// FixedSizeBinary(16) with the `arrow.uuid` extension type.
    #[default]
    Binary,
    /// The canonical 36-character string.
    String,
}

/// How array columns are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArrayRepr {
    /// One-dimensional arrays as Arrow `List<element>` (NULL elements kept); columns
    /// declared with more dimensions keep their exact text.
    #[default]
    List,
    /// PostgreSQL's exact array text (`{1,2,NULL}`), Utf8.
    Text,
}

/// How composite-type columns are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompositeRepr {
    /// Arrow `Struct` with one field per attribute, each of its own kind.
    #[default]
    Struct,
    /// PostgreSQL's exact record text (`(1,"a b",)`), Utf8.
    Text,
}

/// The policies for values Arrow cannot hold directly. Every field has a documented default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValuePolicy {
    /// `±infinity` dates and timestamps (default: clamp).
    pub infinity: InfinityPolicy,
    /// numeric `NaN`/`±Infinity` in a decimal column (default: null).
    pub numeric_nan: NumericNanPolicy,
    /// numeric without typmod (default: string).
    pub unconstrained_numeric: UnconstrainedNumeric,
    /// uuid representation (default: binary with the `arrow.uuid` extension).
    pub uuid: UuidRepr,
    /// array representation (default: List).
    pub arrays: ArrayRepr,
    /// composite-type representation (default: Struct).
    pub composites: CompositeRepr,
}

/// A destination type named by a column hint: dlt's `data_type` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HintType {
    /// PostgreSQL's exact text output (Utf8); works for every type.
    Text,
    /// Float64.
    Double,
    /// Int64.
    Bigint,
    /// Boolean.
    Bool,
    /// Decimal with `precision` (default 38) and `scale` (default 9).
    Decimal,
    /// Decimal256(76, 0) (dlt's `wei`).
    Wei,
    /// Timestamp(µs, UTC).
    Timestamp,
    /// Date32.
    Date,
    /// Time64(µs).
    Time,
    /// Utf8 with the `arrow.json` extension.
    Json,
    /// Binary.
    Binary,
}

/// A per-column hint (`[columns.<table>.<column>]`, or dlt's `columns` argument): the
/// destination type and precision, overriding the mapping. Values are parsed from the
/// column's text form into the hinted type; one that does not parse stops the run with
/// an error naming the column (nothing is coerced silently).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnHint {
    /// The destination type.
    pub data_type: Option<HintType>,
    /// Total digits, for `decimal` (or alone on a numeric column).
    pub precision: Option<u8>,
    /// Digits after the point, for `decimal`.
    pub scale: Option<i8>,
    /// dlt hints that do not change a changelog's values; accepted and ignored.
    #[serde(default, skip_serializing)]
    pub nullable: Option<bool>,
    /// Ignored (dlt).
    #[serde(default, skip_serializing)]
    pub primary_key: Option<bool>,
    /// Ignored (dlt).
    #[serde(default, skip_serializing)]
    pub merge_key: Option<bool>,
    /// Ignored (dlt).
    #[serde(default, skip_serializing)]
    pub unique: Option<bool>,
    /// Ignored (dlt).
    #[serde(default, skip_serializing)]
    pub dedup_sort: Option<String>,
    /// Ignored (dlt).
    #[serde(default, skip_serializing)]
    pub timezone: Option<bool>,
}

impl ColumnHint {
    /// The kind a column of natural kind `natural` gets under this hint, or why the hint
    /// cannot apply.
    pub fn apply(&self, natural: ValueKind) -> Result<ValueKind, String> {
        let decimal = |p: u8, s: i8| -> Result<ValueKind, String> {
            if s < 0 || s as u8 > p {
                return Err(format!("scale {s} must be between 0 and the precision {p}"));
            }
            match p {
                1..=38 => Ok(ValueKind::Decimal128 {
                    precision: p,
                    scale: s,
                }),
                39..=76 => Ok(ValueKind::Decimal256 {
                    precision: p,
                    scale: s,
                }),
                _ => Err(format!("precision {p} must be between 1 and 76")),
            }
        };
        let Some(t) = self.data_type else {
            return match (self.precision, self.scale, &natural) {
                (None, None, _) => Ok(natural),
                (
                    p,
                    s,
                    ValueKind::Decimal128 { .. }
                    | ValueKind::Decimal256 { .. }
                    | ValueKind::NumericString
                    | ValueKind::NumericFloat,
                ) => decimal(p.unwrap_or(38), s.unwrap_or(0)),
                _ => Err("precision/scale without data_type apply to numeric columns only".into()),
            };
        };
        if matches!(natural, ValueKind::List { .. }) && t != HintType::Text {
            return Err("an array column can only be hinted as text".into());
        }
        if matches!(
            natural,
            ValueKind::Range { .. } | ValueKind::Multirange { .. }
        ) && t != HintType::Text
        {
            return Err("a range or multirange column can only be hinted as text".into());
        }
        if matches!(
            natural,
            ValueKind::Struct { .. }
                | ValueKind::Hstore
                | ValueKind::Vector { .. }
                | ValueKind::TimeTz
        ) && t != HintType::Text
        {
            return Err(
                "a composite, hstore, vector or timetz column can only be hinted as text".into(),
            );
        }
        Ok(match t {
            HintType::Text => ValueKind::Text,
            HintType::Double => ValueKind::Float64,
            HintType::Bigint => ValueKind::Int64,
            HintType::Bool => ValueKind::Bool,
            HintType::Decimal => decimal(self.precision.unwrap_or(38), self.scale.unwrap_or(9))?,
            HintType::Wei => ValueKind::Decimal256 {
                precision: 76,
                scale: 0,
            },
            HintType::Timestamp => ValueKind::TimestampTz,
            HintType::Date => ValueKind::Date,
            HintType::Time => ValueKind::Time,
            HintType::Json => ValueKind::Json,
            HintType::Binary => ValueKind::Bytea,
        })
    }
}

/// How a column's values are parsed and stored. Chosen once per column by [`ValueKind::for_type`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ValueKind {
    /// bool → Boolean.
    Bool,
    /// int2 → Int16.
    Int16,
    /// int4 → Int32.
    Int32,
    /// int8 → Int64.
    Int64,
    /// oid, xid → UInt32.
    UInt32,
    /// float4 → Float32 (NaN, ±Infinity, -0 kept).
    Float32,
    /// float8 → Float64 (NaN, ±Infinity, -0 kept).
    Float64,
    /// numeric(p,s) with p ≤ 38 → Decimal128(p,s).
    Decimal128 {
        /// precision
        precision: u8,
        /// scale (≥ 0; negative PostgreSQL scales are folded into the precision)
        scale: i8,
    },
    /// numeric(p,s) with 38 < p ≤ 76 → Decimal256(p,s).
    Decimal256 {
        /// precision
        precision: u8,
        /// scale (≥ 0)
        scale: i8,
    },
    /// money → Decimal128(19, scale): its int8 count of the smallest unit, `scale` the
    /// server's `lc_monetary` fraction digits (read from `'0'::money::numeric`).
    Money {
        /// Fraction digits.
        scale: i8,
    },
    /// numeric without typmod, stored as its exact text (Utf8).
    NumericString,
    /// numeric without typmod, stored as Float64 (by policy).
    NumericFloat,
    /// Text and every type without a dedicated kind: PostgreSQL's text output, Utf8.
    Text,
    /// json/jsonb: the JSON text, Utf8 with the `arrow.json` extension.
    Json,
    /// bytea → Binary.
    Bytea,
    /// date → Date32 (days since 1970-01-01).
    Date,
    /// time → Time64(µs).
    Time,
    /// timetz → Struct<time: Time64(µs), utc_offset: Int32> ([`timetz_fields`]): the
    /// local time and its offset in seconds east of UTC, both as written (Arrow has no
    /// time-with-zone type).
    TimeTz,
    /// timestamp → Timestamp(µs, no zone).
    Timestamp,
    /// timestamptz → Timestamp(µs, "UTC").
    TimestampTz,
    /// uuid → FixedSizeBinary(16) with the `arrow.uuid` extension.
    Uuid,
    /// interval → Struct<months: Int32, days: Int32, microseconds: Int64>: the three
    /// fields PostgreSQL keeps apart (a month is not 30 days). Not Arrow's
    /// Interval(MonthDayNano): Parquet cannot store that type, and its INTERVAL type
    /// is unsigned milliseconds (no negative intervals, no microseconds).
    Interval,
    /// An array → List of the element's kind (NULL elements kept); a column declared
    /// with n dimensions (`int[][]`) is n nested Lists.
    List {
        /// The elements' kind: a List again for each further dimension.
        element: Box<ValueKind>,
    },
    /// A range type → Struct<lower, upper, lower_inclusive, upper_inclusive, empty>
    /// ([`range_fields`]): the bounds of the subtype's kind, NULL when unbounded (as
    /// PostgreSQL's `lower()`/`upper()`), and the flags of `lower_inc()`, `upper_inc()`,
    /// `isempty()`.
    Range {
        /// The subtype's kind.
        element: Box<ValueKind>,
    },
    /// A multirange type → List of its ranges' Struct (the item field named `range`).
    Multirange {
        /// The subtype's kind.
        element: Box<ValueKind>,
    },
    /// hstore (extension) → Map<Utf8, Utf8>: keys never null, values nullable, entries
    /// in hstore's own order.
    Hstore,
    /// pgvector's `vector(n)` → FixedSizeList<Float32>(n); `vector` without a dimension →
    /// List<Float32> (field metadata `pgcdc.vector` tells it from a real[]).
    Vector {
        /// The declared dimension, when there is one.
        dim: Option<i32>,
    },
    /// A composite type → Struct with one nullable field per attribute.
    Struct {
        /// The attributes in order (dropped ones left out).
        fields: Vec<StructField>,
    },
}

/// One attribute of a composite type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StructField {
    /// The attribute's name.
    pub name: String,
    /// How its values are parsed and stored.
    pub kind: ValueKind,
}

/// Arrow field metadata key naming an extension type.
pub const EXTENSION_NAME_KEY: &str = "ARROW:extension:name";
/// Arrow field metadata key for an extension type's parameters.
pub const EXTENSION_METADATA_KEY: &str = "ARROW:extension:metadata";

impl ValueKind {
    /// The kind for a column of base type `oid` (domains already resolved) with `typmod`.
    ///
    /// `is_enum` marks user enum types (stored as their label, Utf8).
    pub fn for_type(oid: u32, typmod: i32, is_enum: bool, policy: &ValuePolicy) -> ValueKind {
        if is_enum {
            return ValueKind::Text;
        }
        match oid {
            oid::BOOL => ValueKind::Bool,
            oid::INT2 => ValueKind::Int16,
            oid::INT4 => ValueKind::Int32,
            oid::INT8 => ValueKind::Int64,
            oid::OID | oid::XID => ValueKind::UInt32,
            oid::FLOAT4 => ValueKind::Float32,
            oid::FLOAT8 => ValueKind::Float64,
            oid::NUMERIC => numeric_kind(typmod, policy),
            oid::JSON | oid::JSONB => ValueKind::Json,
            oid::BYTEA => ValueKind::Bytea,
            oid::DATE => ValueKind::Date,
            oid::TIME => ValueKind::Time,
            oid::TIMETZ => ValueKind::TimeTz,
            oid::TIMESTAMP => ValueKind::Timestamp,
            oid::TIMESTAMPTZ => ValueKind::TimestampTz,
            oid::INTERVAL => ValueKind::Interval,
            oid::UUID => match policy.uuid {
                UuidRepr::Binary => ValueKind::Uuid,
                UuidRepr::String => ValueKind::Text,
            },
            _ => ValueKind::Text,
        }
    }

    /// The kind for an array column whose elements have `element` kind, under `policy`:
    /// `ndims` (the declared dimensions, at least 1) nested Lists, or the exact text when
    /// arrays are configured as text, there are more than [`MAX_ARRAY_DIMS`], or the
    /// element is itself a list.
    pub fn array_of(element: ValueKind, ndims: i32, policy: &ValuePolicy) -> ValueKind {
        if policy.arrays == ArrayRepr::Text
            || ndims > MAX_ARRAY_DIMS
            || matches!(element, ValueKind::List { .. })
        {
            return ValueKind::Text;
        }
        let mut kind = element;
        for _ in 0..ndims.max(1) {
            kind = ValueKind::List {
                element: Box::new(kind),
            };
        }
        kind
    }

    /// How many nested Lists this kind is (an array's declared dimensions), 0 if none.
    pub fn list_depth(&self) -> usize {
        match self {
            ValueKind::List { element } => 1 + element.list_depth(),
            _ => 0,
        }
    }

    /// The Arrow type values of this kind are stored as.
    pub fn arrow_type(&self) -> DataType {
        match self {
            ValueKind::Bool => DataType::Boolean,
            ValueKind::Int16 => DataType::Int16,
            ValueKind::Int32 => DataType::Int32,
            ValueKind::Int64 => DataType::Int64,
            ValueKind::UInt32 => DataType::UInt32,
            ValueKind::Float32 => DataType::Float32,
            ValueKind::Float64 | ValueKind::NumericFloat => DataType::Float64,
            ValueKind::Decimal128 { precision, scale } => DataType::Decimal128(*precision, *scale),
            ValueKind::Money { scale } => DataType::Decimal128(MONEY_PRECISION, *scale),
            ValueKind::Decimal256 { precision, scale } => DataType::Decimal256(*precision, *scale),
            ValueKind::NumericString | ValueKind::Text | ValueKind::Json => DataType::Utf8,
            ValueKind::Bytea => DataType::Binary,
            ValueKind::Date => DataType::Date32,
            ValueKind::Time => DataType::Time64(TimeUnit::Microsecond),
            ValueKind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            ValueKind::TimestampTz => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
            ValueKind::Uuid => DataType::FixedSizeBinary(16),
            ValueKind::Interval => DataType::Struct(interval_fields()),
            ValueKind::TimeTz => DataType::Struct(timetz_fields()),
            ValueKind::List { element } => {
                DataType::List(std::sync::Arc::new(element.arrow_field("item")))
            }
            ValueKind::Range { element } => DataType::Struct(range_fields(element)),
            ValueKind::Multirange { element } => {
                DataType::List(std::sync::Arc::new(multirange_item(element)))
            }
            ValueKind::Hstore => DataType::Map(
                std::sync::Arc::new(Field::new(
                    "entries",
                    DataType::Struct(hstore_fields()),
                    false,
                )),
                false,
            ),
            ValueKind::Vector { dim } => {
                let item = std::sync::Arc::new(Field::new("item", DataType::Float32, true));
                match dim {
                    Some(n) => DataType::FixedSizeList(item, *n),
                    None => DataType::List(item),
                }
            }
            ValueKind::Struct { fields } => DataType::Struct(
                fields
                    .iter()
                    .map(|f| f.kind.arrow_field(&f.name))
                    .collect::<Fields>(),
            ),
        }
    }

    /// A nullable Arrow field of this kind, with extension metadata where one applies.
    pub fn arrow_field(&self, name: &str) -> Field {
        let field = Field::new(name, self.arrow_type(), true);
        let ext = match self {
            ValueKind::Json => Some("arrow.json"),
            ValueKind::Uuid => Some("arrow.uuid"),
            ValueKind::Vector { .. } => Some(VECTOR_EXTENSION),
            _ => None,
        };
        match ext {
            Some(ext) => field.with_metadata(HashMap::from([(
                EXTENSION_NAME_KEY.to_string(),
                ext.to_string(),
            )])),
            None => field,
        }
    }
}

/// The extension name on pgvector columns' Arrow fields.
pub const VECTOR_EXTENSION: &str = "pgcdc.vector";

/// The key and value fields of an hstore map's entries (keys are never null).
pub fn hstore_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, true),
    ])
}

/// The fields of a range of `element`: `lower` and `upper` (NULL: unbounded, or the
/// range is empty), then `lower_inclusive`, `upper_inclusive` and `empty` (never null
/// inside a non-null range).
pub fn range_fields(element: &ValueKind) -> Fields {
    Fields::from(vec![
        element.arrow_field("lower"),
        element.arrow_field("upper"),
        Field::new("lower_inclusive", DataType::Boolean, false),
        Field::new("upper_inclusive", DataType::Boolean, false),
        Field::new("empty", DataType::Boolean, false),
    ])
}

/// The item field of a multirange's List: `range`, a Struct of [`range_fields`] (the
/// name tells a multirange from an array of ranges, whose item is `item`).
pub fn multirange_item(element: &ValueKind) -> Field {
    Field::new(
        MULTIRANGE_ITEM,
        DataType::Struct(range_fields(element)),
        true,
    )
}

/// The name of a multirange List's item field.
pub const MULTIRANGE_ITEM: &str = "range";

/// The names of [`range_fields`], in order (how writers recognise a range).
pub const RANGE_FIELD_NAMES: [&str; 5] = [
    "lower",
    "upper",
    "lower_inclusive",
    "upper_inclusive",
    "empty",
];

/// The precision of money's Decimal128: an int8 has up to 19 digits.
pub const MONEY_PRECISION: u8 = 19;

/// Arrays declared with more dimensions than this keep their text.
pub const MAX_ARRAY_DIMS: i32 = 6;

/// The fields of a timetz value: `time` (the local time of day, `24:00:00` kept) and
/// `utc_offset` (seconds east of UTC), never null inside a non-null value.
pub fn timetz_fields() -> Fields {
    Fields::from(vec![
        Field::new("time", DataType::Time64(TimeUnit::Microsecond), false),
        Field::new("utc_offset", DataType::Int32, false),
    ])
}

/// The fields of an interval value: `months`, `days`, `microseconds` (never null inside a
/// non-null interval).
pub fn interval_fields() -> Fields {
    Fields::from(vec![
        Field::new("months", DataType::Int32, false),
        Field::new("days", DataType::Int32, false),
        Field::new("microseconds", DataType::Int64, false),
    ])
}

/// Precision and scale of a numeric typmod, or `None` for unconstrained numeric.
///
/// PostgreSQL 15+ allows a scale from -1000 to 1000, stored as an 11-bit signed field.
pub fn numeric_precision_scale(typmod: i32) -> Option<(u32, i32)> {
    if typmod < 4 {
        return None;
    }
    let t = typmod - 4;
    let precision = ((t >> 16) & 0xFFFF) as u32;
    let raw = t & 0x7FF;
    let scale = if raw & 0x400 != 0 { raw - 0x800 } else { raw };
    Some((precision, scale))
}

fn numeric_kind(typmod: i32, policy: &ValuePolicy) -> ValueKind {
    match numeric_precision_scale(typmod) {
        Some((p, s)) => decimal_kind(p, s).unwrap_or(ValueKind::NumericString),
        None => match policy.unconstrained_numeric {
            UnconstrainedNumeric::String => ValueKind::NumericString,
            UnconstrainedNumeric::Float64 => ValueKind::NumericFloat,
            UnconstrainedNumeric::Decimal { precision, scale } => {
                decimal_kind(u32::from(precision), i32::from(scale))
                    .unwrap_or(ValueKind::NumericString)
            }
        },
    }
}

/// Decimal kind for numeric(p, s); `None` when Arrow/Parquet cannot hold it exactly.
fn decimal_kind(p: u32, s: i32) -> Option<ValueKind> {
    // Parquet has no negative scale: numeric(3,-2) holds up to 99900, i.e. Decimal(5,0).
    let (p, s) = if s < 0 {
        (p + s.unsigned_abs(), 0)
    } else {
        // PostgreSQL allows scale > precision (numeric(3,5) holds 0.00999); Arrow needs p ≥ s.
        (p.max(s as u32), s)
    };
    let (p, s) = (u8::try_from(p).ok()?, i8::try_from(s).ok()?);
    match p {
        0 => None,
        1..=38 => Some(ValueKind::Decimal128 {
            precision: p,
            scale: s,
        }),
        39..=76 => Some(ValueKind::Decimal256 {
            precision: p,
            scale: s,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typmod(p: i32, s: i32) -> i32 {
        ((p << 16) | (s & 0x7ff)) + 4
    }

    #[test]
    fn numeric_typmods_map_to_decimals() {
        let pol = ValuePolicy::default();
        assert_eq!(
            ValueKind::for_type(oid::NUMERIC, typmod(12, 2), false, &pol),
            ValueKind::Decimal128 {
                precision: 12,
                scale: 2
            }
        );
        assert_eq!(
            ValueKind::for_type(oid::NUMERIC, typmod(60, 10), false, &pol),
            ValueKind::Decimal256 {
                precision: 60,
                scale: 10
            }
        );
        assert_eq!(
            ValueKind::for_type(oid::NUMERIC, typmod(3, -2), false, &pol),
            ValueKind::Decimal128 {
                precision: 5,
                scale: 0
            }
        );
        assert_eq!(
            ValueKind::for_type(oid::NUMERIC, typmod(3, 5), false, &pol),
            ValueKind::Decimal128 {
                precision: 5,
                scale: 5
            }
        );
        assert_eq!(
            ValueKind::for_type(oid::NUMERIC, typmod(1000, 0), false, &pol),
            ValueKind::NumericString
        );
        assert_eq!(
            ValueKind::for_type(oid::NUMERIC, -1, false, &pol),
            ValueKind::NumericString
        );
    }

    #[test]
    fn enums_and_unknown_types_are_text() {
        let pol = ValuePolicy::default();
        assert_eq!(ValueKind::for_type(99999, -1, true, &pol), ValueKind::Text);
        assert_eq!(
            ValueKind::for_type(oid::TIMETZ, -1, false, &pol),
            ValueKind::TimeTz
        );
        assert_eq!(
            ValueKind::for_type(oid::XML, -1, false, &pol),
            ValueKind::Text
        );
        assert_eq!(
            ValueKind::for_type(oid::INTERVAL, -1, false, &pol),
            ValueKind::Interval
        );
    }

    #[test]
    fn arrays_are_nested_lists_unless_configured_as_text() {
        let pol = ValuePolicy::default();
        let int4 = oid::array_element(1007).unwrap();
        let k = ValueKind::array_of(ValueKind::for_type(int4, -1, false, &pol), 1, &pol);
        assert_eq!(
            k.arrow_type(),
            DataType::List(std::sync::Arc::new(Field::new(
                "item",
                DataType::Int32,
                true
            )))
        );
        let two = ValueKind::array_of(ValueKind::Int32, 2, &pol);
        assert_eq!(two.list_depth(), 2);
        assert_eq!(
            two,
            ValueKind::List {
                element: Box::new(k.clone())
            }
        );
        assert_eq!(ValueKind::array_of(ValueKind::Int32, 0, &pol), k);
        assert_eq!(
            ValueKind::array_of(ValueKind::Int32, MAX_ARRAY_DIMS + 1, &pol),
            ValueKind::Text
        );
        let text = ValuePolicy {
            arrays: ArrayRepr::Text,
            ..pol
        };
        assert_eq!(
            ValueKind::array_of(ValueKind::Int32, 1, &text),
            ValueKind::Text
        );
        // The kind survives the manifest's JSON.
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(serde_json::from_str::<ValueKind>(&json).unwrap(), k);
        assert_eq!(oid::array_element(oid::INT4), None);
    }

    #[test]
    fn column_hints_override_the_kind_or_say_why_not() {
        let h = |t: Option<HintType>, p: Option<u8>, s: Option<i8>| ColumnHint {
            data_type: t,
            precision: p,
            scale: s,
            ..ColumnHint::default()
        };
        assert_eq!(
            h(Some(HintType::Double), None, None).apply(ValueKind::Int32),
            Ok(ValueKind::Float64)
        );
        assert_eq!(
            h(Some(HintType::Decimal), Some(10), Some(2)).apply(ValueKind::NumericString),
            Ok(ValueKind::Decimal128 {
                precision: 10,
                scale: 2
            })
        );
        assert_eq!(
            h(None, Some(50), Some(4)).apply(ValueKind::NumericString),
            Ok(ValueKind::Decimal256 {
                precision: 50,
                scale: 4
            })
        );
        assert!(h(None, Some(5), None).apply(ValueKind::Text).is_err());
        assert!(h(Some(HintType::Decimal), Some(80), None)
            .apply(ValueKind::Int32)
            .is_err());
        assert!(h(Some(HintType::Decimal), Some(5), Some(6))
            .apply(ValueKind::Int32)
            .is_err());
        assert_eq!(
            h(None, None, None).apply(ValueKind::Int32),
            Ok(ValueKind::Int32)
        );
        let list = ValueKind::List {
            element: Box::new(ValueKind::Int32),
        };
        assert!(h(Some(HintType::Bigint), None, None)
            .apply(list.clone())
            .is_err());
        assert_eq!(
            h(Some(HintType::Text), None, None).apply(list),
            Ok(ValueKind::Text)
        );
    }

    #[test]
    fn extension_metadata_marks_json_and_uuid() {
        let f = ValueKind::Uuid.arrow_field("u");
        assert_eq!(
            f.metadata().get(EXTENSION_NAME_KEY).map(String::as_str),
            Some("arrow.uuid")
        );
        assert!(ValueKind::Int64.arrow_field("i").metadata().is_empty());
    }
}
