//! Types: the changelog's Arrow types as Delta Lake types, and values conformed to a Delta
//! table's schema.
//!
//! Delta has fewer types than the changelog's Arrow schema, so some columns change
//! representation, exactly (every value reads back as the same PostgreSQL value):
//!
//! | changelog (Arrow)          | Delta                  | note                                  |
//! |----------------------------|------------------------|---------------------------------------|
//! | Int16 / Int32 / Int64      | short / integer / long |                                       |
//! | UInt32 (oid, xid)          | long                   | no unsigned types in Delta            |
//! | Float32 / Float64          | float / double         | NaN, ±Infinity, -0 kept               |
//! | Decimal128(p,s)            | decimal(p,s)           |                                       |
//! | Decimal256(p,s) (p > 38)   | string                 | PostgreSQL's text (Delta stops at 38) |
//! | Utf8 (text, json, …)       | string                 |                                       |
//! | Binary                     | binary                 |                                       |
//! | Date32                     | date                   | ±infinity as `i32::MAX`/`-i32::MAX`   |
//! | Time64(µs)                 | string                 | PostgreSQL's text (Delta has no time) |
//! | Timestamp(µs)              | timestamp_ntz          | ±infinity as `i64::MAX`/`-i64::MAX`   |
//! | Timestamp(µs, UTC)         | timestamp              | same                                  |
//! | FixedSizeBinary(16) (uuid) | string                 | canonical text (Delta has no uuid)    |
//! | interval struct            | struct<months, days, microseconds> |                           |
//! | List(x)                    | array<x>               | element as above                      |
//! | FixedSizeList(x) (vector)  | array<x>               |                                       |
//! | Map(k, v) (hstore)         | map<k, v>              |                                       |
//! | Struct (composite)         | struct<…>              | fields as above                       |
//!
//! Every Delta column is nullable (a dropped source column keeps its place, NULL in new rows).

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal256Type, Time64MicrosecondType};
use arrow_array::{new_null_array, Array, ArrayRef, BooleanArray, ListArray, RecordBatch};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use deltalake::kernel::engine::arrow_conversion::{TryIntoArrow, TryIntoKernel};
use deltalake::kernel::{StructField, StructType};

use crate::widening::Shape;
use crate::{Error, ErrorKind, Result};

/// The Delta-side Arrow type of a changelog column type (see the [module docs](self)).
pub fn delta_type(t: &DataType) -> Result<DataType> {
    Ok(match t {
        DataType::Boolean
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::Float32
        | DataType::Float64
        | DataType::Utf8
        | DataType::Binary
        | DataType::Date32 => t.clone(),
        DataType::Int8 => DataType::Int16,
        DataType::UInt32 => DataType::Int64,
        DataType::Decimal128(p, s) if *s >= 0 => DataType::Decimal128(*p, *s),
        DataType::Decimal256(_, _) | DataType::Time64(TimeUnit::Microsecond) => DataType::Utf8,
        DataType::FixedSizeBinary(16) => DataType::Utf8,
        DataType::Timestamp(TimeUnit::Microsecond, None) => {
            DataType::Timestamp(TimeUnit::Microsecond, None)
        }
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        DataType::Struct(fields) => {
            let fields: Vec<Field> = fields
                .iter()
                .map(|f| Ok(Field::new(f.name(), delta_type(f.data_type())?, true)))
                .collect::<Result<_>>()?;
            DataType::Struct(Fields::from(fields))
        }
        DataType::List(f) | DataType::FixedSizeList(f, _) => DataType::List(Arc::new(Field::new(
            "element",
            delta_type(f.data_type())?,
            true,
        ))),
        DataType::Map(entries, _) => {
            let (Some(k), Some(v)) = (match entries.data_type() {
                DataType::Struct(kv) => (kv.first(), kv.get(1)),
                _ => (None, None),
            }) else {
                return Err(Error::new(
                    ErrorKind::Encode,
                    format!("the Delta mirror cannot store Arrow type {t}"),
                ));
            };
            let kv = Fields::from(vec![
                Field::new("key", delta_type(k.data_type())?, false),
                Field::new("value", delta_type(v.data_type())?, true),
            ]);
            DataType::Map(
                Arc::new(Field::new("key_value", DataType::Struct(kv), false)),
                false,
            )
        }
        other => {
            return Err(Error::new(
                ErrorKind::Encode,
                format!("the Delta mirror cannot store Arrow type {other}"),
            ))
        }
    })
}

/// A Delta schema field for a column of the changelog's Arrow type `t`.
pub fn kernel_field(name: &str, t: &DataType) -> Result<StructField> {
    let f = Field::new(name, delta_type(t)?, true);
    (&f).try_into_kernel().map_err(|e| {
        Error::new(
            ErrorKind::Encode,
            format!("column {name}: no Delta type for Arrow type {t}"),
        )
        .with_source(e)
    })
}

/// The Arrow schema data files of a Delta table with schema `schema` have.
pub fn arrow_schema(schema: &StructType) -> Result<SchemaRef> {
    let s: Schema = schema.try_into_arrow().map_err(|e| {
        Error::new(
            ErrorKind::Corrupt,
            "a Delta table's schema has no Arrow form",
        )
        .with_source(e)
    })?;
    Ok(Arc::new(s))
}

/// Whether a Delta column of type `wide` holds every value of type `narrow` (both
/// Delta-side Arrow types), by the mirrors' one rule ([`crate::widening`]).
pub fn holds(wide: &DataType, narrow: &DataType) -> bool {
    crate::widening::holds(shape(wide), shape(narrow))
}

/// What the widening rule sees of a Delta-side Arrow type. A string column also stores
/// decimals past Delta's 38 digits (as their text), so a decimal may become one.
fn shape(t: &DataType) -> Shape {
    match t {
        DataType::Int8 => Shape::Int(1),
        DataType::Int16 => Shape::Int(2),
        DataType::Int32 => Shape::Int(4),
        DataType::Int64 => Shape::Int(8),
        DataType::Float32 => Shape::Float(4),
        DataType::Float64 => Shape::Float(8),
        DataType::Decimal128(p, s) => Shape::Decimal {
            precision: i32::from(*p),
            scale: i32::from(*s),
        },
        DataType::Utf8 => Shape::Text { decimals: true },
        _ => Shape::Other,
    }
}

/// `array` as a Delta column of type `to` (see the [module docs](self)); also casts
/// values of an older, narrower column type to a widened one.
pub fn to_delta(array: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    if array.data_type() == to {
        return Ok(Arc::clone(array));
    }
    match (array.data_type(), to) {
        (DataType::FixedSizeBinary(16), DataType::Utf8)
        | (DataType::Time64(TimeUnit::Microsecond), DataType::Utf8)
        | (DataType::Decimal256(_, _), DataType::Utf8)
        | (DataType::Decimal128(_, _), DataType::Utf8) => text(array),
        (DataType::List(_), DataType::List(to_item)) => {
            let l = array.as_list::<i32>();
            let values = to_delta(l.values(), to_item.data_type())?;
            Ok(Arc::new(ListArray::try_new(
                Arc::clone(to_item),
                l.offsets().clone(),
                values,
                l.nulls().cloned(),
            )?))
        }
        (DataType::FixedSizeList(_, n), DataType::List(to_item)) => {
            let l = array.as_fixed_size_list();
            let values = to_delta(l.values(), to_item.data_type())?;
            let n = usize::try_from(*n).unwrap_or(0);
            Ok(Arc::new(ListArray::try_new(
                Arc::clone(to_item),
                arrow_buffer::OffsetBuffer::from_lengths(std::iter::repeat_n(n, l.len())),
                values,
                l.nulls().cloned(),
            )?))
        }
        (DataType::Struct(_), DataType::Struct(to_fields)) => {
            let s = array.as_struct();
            let columns = s
                .columns()
                .iter()
                .zip(to_fields.iter())
                .map(|(c, f)| to_delta(c, f.data_type()))
                .collect::<Result<Vec<_>>>()?;
            Ok(Arc::new(arrow_array::StructArray::try_new(
                to_fields.clone(),
                columns,
                s.nulls().cloned(),
            )?))
        }
        (DataType::Map(_, _), DataType::Map(to_entries, sorted)) => {
            let m = array.as_map();
            let DataType::Struct(kv) = to_entries.data_type() else {
                return Err(Error::new(
                    ErrorKind::Encode,
                    "a Delta map without key and value",
                ));
            };
            let entries = to_delta(
                &(Arc::new(m.entries().clone()) as ArrayRef),
                &DataType::Struct(kv.clone()),
            )?;
            Ok(Arc::new(arrow_array::MapArray::try_new(
                Arc::clone(to_entries),
                m.offsets().clone(),
                entries.as_struct().clone(),
                m.nulls().cloned(),
                *sorted,
            )?))
        }
        _ => Ok(arrow_cast::cast(array, to)?),
    }
}

/// Values as PostgreSQL prints them: uuid, time (no trailing zeros) and decimals.
fn text(array: &ArrayRef) -> Result<ArrayRef> {
    let mut b = arrow_array::builder::StringBuilder::with_capacity(array.len(), array.len() * 16);
    let mut s = String::new();
    for i in 0..array.len() {
        if array.is_null(i) {
            b.append_null();
            continue;
        }
        s.clear();
        match array.data_type() {
            DataType::Time64(_) => time(
                &mut s,
                array.as_primitive::<Time64MicrosecondType>().value(i),
            ),
            DataType::Decimal256(_, _) => {
                s.push_str(&array.as_primitive::<Decimal256Type>().value_as_string(i))
            }
            _ => crate::pgtext::literal(array, i, &mut s)?,
        }
        b.append_value(&s);
    }
    Ok(Arc::new(b.finish()))
}

/// time_out: `HH:MM:SS`, then the fraction without trailing zeros.
fn time(out: &mut String, us: i64) {
    use std::fmt::Write;
    let (secs, frac) = (us.div_euclid(1_000_000), us.rem_euclid(1_000_000));
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if frac != 0 {
        let f = format!("{frac:06}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
}

/// `batch` with the columns of `schema`, by name: converted with [`to_delta`], NULL where
/// the batch has no such column, except `flag` (the soft-delete column): false there.
pub fn conform(batch: &RecordBatch, schema: &SchemaRef, flag: Option<&str>) -> Result<RecordBatch> {
    let n = batch.num_rows();
    let mut columns = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        let a = match batch.column_by_name(f.name()) {
            Some(a) => to_delta(a, f.data_type())?,
            None if Some(f.name().as_str()) == flag => {
                Arc::new(BooleanArray::from(vec![false; n])) as ArrayRef
            }
            None => new_null_array(f.data_type(), n),
        };
        columns.push(a);
    }
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(n));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &options,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{FixedSizeBinaryArray, Time64MicrosecondArray};

    #[test]
    fn widening_rules() {
        assert!(holds(&DataType::Int64, &DataType::Int32));
        assert!(!holds(&DataType::Int32, &DataType::Int64));
        assert!(holds(&DataType::Float64, &DataType::Float32));
        assert!(holds(
            &DataType::Decimal128(16, 3),
            &DataType::Decimal128(12, 2)
        ));
        assert!(!holds(
            &DataType::Decimal128(11, 4),
            &DataType::Decimal128(10, 2)
        ));
        assert!(holds(&DataType::Utf8, &DataType::Decimal128(38, 2)));
        assert!(!holds(&DataType::Utf8, &DataType::Int32));
        assert!(!holds(&DataType::Int32, &DataType::Utf8));
    }

    #[test]
    fn uuid_and_time_become_postgres_text() {
        let u: ArrayRef =
            Arc::new(FixedSizeBinaryArray::try_from_iter([[0xa0u8; 16]].into_iter()).unwrap());
        let t = to_delta(&u, &DataType::Utf8).unwrap();
        assert_eq!(
            t.as_string::<i32>().value(0),
            "a0a0a0a0-a0a0-a0a0-a0a0-a0a0a0a0a0a0"
        );
        let tm: ArrayRef = Arc::new(Time64MicrosecondArray::from(vec![
            86_399_999_999,
            0,
            1_500_000,
        ]));
        let t = to_delta(&tm, &DataType::Utf8).unwrap();
        let s = t.as_string::<i32>();
        assert_eq!(
            (s.value(0), s.value(1), s.value(2)),
            ("23:59:59.999999", "00:00:00", "00:00:01.5")
        );
    }
}
