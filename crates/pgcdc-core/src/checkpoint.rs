//! The checkpoint a destination commits atomically with its data.

use serde::{Deserialize, Serialize};

use crate::Lsn;

/// Which source a destination's data came from, to refuse mixing two sources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceIdentity {
    /// `IDENTIFY_SYSTEM`'s system identifier of the PostgreSQL cluster.
    pub system_identifier: String,
    /// Database name.
    pub database: String,
    /// Replication slot name.
    pub slot: String,
}

/// Where replication stands, committed with the data it covers.
///
/// Every change of a transaction whose commit ends at or before [`Checkpoint::lsn`] is in
/// the destination; none after it is. Streaming resumes here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// End LSN of the last transaction fully in the destination (or the slot's consistent point).
    pub lsn: Lsn,
    /// The source this data came from.
    pub source: SourceIdentity,
    /// When the checkpoint was committed, RFC 3339 UTC.
    pub committed_at: String,
    /// Extension state (e.g. snapshot progress), kept verbatim by destinations.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}
