//! pgcdc's vocabulary, shared by the source (PostgreSQL) and every destination.
//!
//! This crate owns the words both sides speak and nothing that does I/O:
//! [`Lsn`] positions in the write-ahead log, [`TableName`] and [`TableSchema`]
//! (a source table's columns with their PostgreSQL and Arrow types), the
//! PostgreSQL → Arrow [type mapping](types), the value [policies](ValuePolicy)
//! for values Arrow cannot hold, the [`Checkpoint`] a destination commits with its
//! data, the change-row metadata [column names](MetaColumns), and the offset of
//! PostgreSQL's 2000-01-01 epoch ([`PG_EPOCH_OFFSET_MICROS`]).
#![deny(missing_docs)]

mod checkpoint;
mod epoch;
mod error;
mod lsn;
mod meta;
mod schema;
pub mod types;

pub use checkpoint::{Checkpoint, SourceIdentity};
pub use epoch::{PG_EPOCH_OFFSET_DAYS, PG_EPOCH_OFFSET_MICROS};
pub use error::{Error, ErrorKind};
pub use lsn::Lsn;
pub use meta::{MetaColumns, MetaPreset, Op};
pub use schema::{quote_ident, quote_literal, Column, ReplicaIdentity, TableName, TableSchema};
pub use types::{
    ArrayRepr, ColumnHint, CompositeRepr, HintType, InfinityPolicy, NumericNanPolicy, StructField,
    UnconstrainedNumeric, UuidRepr, ValueKind, ValuePolicy,
};
