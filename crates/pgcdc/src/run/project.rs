//! Relations as they land: the catalog projection every PostgreSQL source applies to a
//! Relation message (type policies, column hints, `include_columns`), and which tables
//! are not replicated at all (dlt's `_dlt_…` persisted snapshot tables, as dlt does).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;

use pgcdc_core::TableName;
use pgcdc_source::catalog::{Catalog, Projection, RelColumn};
use pgcdc_source::pgoutput::Relation;

use crate::config::Config;

/// Tables whose name starts so are dlt's persisted snapshots: never replicated.
const DLT_SNAPSHOT_PREFIX: &str = "_dlt_";

/// Resolves Relation messages through the catalog, over the run's SQL connection.
pub struct Projector {
    catalog: Catalog,
    sql: Arc<tokio_postgres::Client>,
    include_columns: BTreeMap<String, Vec<String>>,
}

impl Projector {
    /// A fresh catalog (types are read again each session) with `cfg`'s rules.
    pub fn new(cfg: &Config, sql: Arc<tokio_postgres::Client>) -> Self {
        Projector {
            catalog: cfg.catalog(),
            sql,
            include_columns: cfg.source.include_columns.clone(),
        }
    }

    /// The relation's shape as it lands, or None when it is not replicated.
    pub async fn project(&mut self, rel: &Relation<'_>) -> Result<Option<Projection>> {
        if rel.name.starts_with(DLT_SNAPSHOT_PREFIX) {
            return Ok(None);
        }
        let table = TableName::new(
            if rel.namespace.is_empty() {
                "pg_catalog"
            } else {
                rel.namespace
            },
            rel.name,
        );
        let cols: Vec<RelColumn<'_>> = rel
            .columns()
            .map(|c| RelColumn {
                name: c.name,
                flags: c.flags,
                type_oid: c.type_oid,
                typmod: c.type_modifier,
            })
            .collect();
        let include = self.include_columns.get(rel.name).map(Vec::as_slice);
        let projection = self
            .catalog
            .project(
                &self.sql,
                rel.rel_id,
                table,
                rel.replica_identity,
                &cols,
                include,
            )
            .await?;
        Ok(Some(projection))
    }
}
