//! The one rule every mirror uses to decide whether a column type change widens: when a
//! source column's type changes, the mirror keeps its column if that already holds every
//! value of the new type, widens it in place if the new type holds every value of the old
//! one, and otherwise stops with an error naming the column.
//!
//! Each mirror spells its column types its own way (PostgreSQL's `format_type` names,
//! DuckDB's type names, Delta's Arrow types); each maps them to a [`Shape`], the little a
//! type says about its range, and asks [`holds`]. This module knows no dialect.

/// What the widening rule sees of a column type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A signed integer of this many bytes.
    Int(u8),
    /// A binary floating-point number of this many bytes.
    Float(u8),
    /// A decimal of at most `precision` digits, `scale` of them after the point.
    Decimal {
        /// Total digits.
        precision: i32,
        /// Digits after the point.
        scale: i32,
    },
    /// A decimal of any precision and scale (PostgreSQL's unconstrained `numeric`).
    AnyDecimal,
    /// Text of at most this many characters (`None`: of any length, still a varchar).
    Varchar(Option<u32>),
    /// Unbounded text. `decimals`: the mirror stores decimals too wide for its decimal
    /// type as their text in such a column (Delta), so a decimal column may become one.
    Text {
        /// Whether decimals fit this text column.
        decimals: bool,
    },
    /// Any other type: it holds only itself, and the caller compares those by name.
    Other,
}

/// Whether a column of shape `wide` holds every value of shape `narrow`: the integer and
/// float ladders, decimals with at least as many integer and fraction digits, any decimal
/// in an unconstrained one, shorter varchars in longer or unbounded ones and in text, and
/// decimals in a text column that stores them (see [`Shape::Text`]).
pub fn holds(wide: Shape, narrow: Shape) -> bool {
    use Shape::*;
    match (wide, narrow) {
        (Int(w), Int(n)) | (Float(w), Float(n)) => w >= n,
        (
            Decimal {
                precision: wp,
                scale: ws,
            },
            Decimal {
                precision: np,
                scale: ns,
            },
        ) => ws >= ns && wp - ws >= np - ns,
        (AnyDecimal, Decimal { .. } | AnyDecimal) => true,
        (Varchar(None), Varchar(_)) => true,
        (Varchar(Some(w)), Varchar(Some(n))) => w >= n,
        (Text { .. }, Varchar(_) | Text { .. }) => true,
        (Text { decimals }, Decimal { .. } | AnyDecimal) => decimals,
        _ => false,
    }
}

/// `NAME(a,b)` as `(a, b)`, for `numeric(12,2)` and `DECIMAL(12,2)`.
pub(crate) fn two_args(t: &str, name: &str) -> Option<(i32, i32)> {
    let inner = t.strip_prefix(name)?.strip_prefix('(')?.strip_suffix(')')?;
    let (a, b) = inner.split_once(',')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::Shape::*;
    use super::*;

    #[test]
    fn ladders_and_digits() {
        assert!(holds(Int(8), Int(4)));
        assert!(!holds(Int(4), Int(8)));
        assert!(holds(Float(8), Float(4)));
        assert!(!holds(Float(8), Int(4)));
        let d = |precision, scale| Decimal { precision, scale };
        assert!(holds(d(14, 4), d(10, 2)));
        assert!(!holds(d(11, 4), d(10, 2)));
        assert!(holds(AnyDecimal, d(10, 2)));
        assert!(!holds(d(38, 2), AnyDecimal));
        assert!(holds(Text { decimals: true }, d(38, 2)));
        assert!(!holds(Text { decimals: false }, d(38, 2)));
        assert!(!holds(Text { decimals: true }, Int(4)));
        assert!(!holds(Other, Other));
        assert_eq!(two_args("numeric(12, 2)", "numeric"), Some((12, 2)));
        assert_eq!(two_args("numeric", "numeric"), None);
    }
}

/// The rule read through each SQL dialect's type names: one table of cases per dialect.
#[cfg(test)]
mod dialect_names {
    use crate::sql_mirror::Dialect;

    fn check<D: Dialect>(cases: &[(&str, &str, bool)]) {
        for (wide, narrow, holds) in cases {
            let got = super::holds(D::shape(wide), D::shape(narrow));
            assert_eq!(got, *holds, "{} {wide} holds {narrow}", D::NAME);
        }
    }

    #[test]
    fn postgres_type_names_widen_by_one_rule() {
        check::<crate::postgres::Postgres>(&[
            ("bigint", "integer", true),
            ("integer", "bigint", false),
            ("double precision", "real", true),
            ("numeric(16,3)", "numeric(12,2)", true),
            ("numeric", "numeric(12,2)", true),
            ("numeric(12,2)", "numeric", false),
            ("text", "character varying(5)", true),
            ("character varying(9)", "character varying(5)", true),
            ("character varying(4)", "character varying(5)", false),
            ("text", "integer", false),
            ("text", "numeric(12,2)", false),
        ]);
    }

    #[cfg(feature = "duckdb")]
    #[test]
    fn duckdb_type_names_widen_by_one_rule() {
        check::<crate::duckdb::DuckDb>(&[
            ("BIGINT", "INTEGER", true),
            ("INTEGER", "BIGINT", false),
            ("DOUBLE", "FLOAT", true),
            ("DECIMAL(12,2)", "DECIMAL(10,2)", true),
            ("DECIMAL(14,4)", "DECIMAL(10,2)", true),
            ("DECIMAL(11,4)", "DECIMAL(10,2)", false),
            ("VARCHAR", "INTEGER", false),
            ("INTEGER", "VARCHAR", false),
        ]);
    }
}
