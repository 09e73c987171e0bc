//! Everything pgcdc says to PostgreSQL.
//!
//! - [`connect`]: SQL connections with errors that say what to fix.
//! - [`setup`]: preflight checks, publication and slot lifecycle, slot facts.
//! - [`pgoutput`]: a pure, zero-copy decoder of the pgoutput logical replication
//!   protocol (v1–v4) and of the replication CopyData frames around it.
//! - [`wire`]: a small replication-protocol session (`replication=database`):
//!   startup, authentication, replication commands, the CopyBoth stream.
//! - [`peek`]: the SQL interface to a slot (peeked pages, slot advance, the slot lock).
//! - [`snapshot`]: exported-snapshot reads: chunk plans, COPY statements, COPY text parsing.
//! - [`catalog`]: resolves relation columns to value kinds (domains, enums, keys).
//! - [`values`]: PostgreSQL wire values (text form) into Arrow builders.
//! - [`tls`]: TLS (rustls) with libpq's sslmode semantics, for both kinds of connection.
pub mod catalog;
pub mod connect;
mod error;
pub mod peek;
pub mod pgoutput;
pub mod setup;
pub mod snapshot;
pub mod tls;
pub mod values;
pub mod wire;

pub use error::{Error, ErrorKind, Result};
