//! Turns a relation as pgoutput describes it into a [`TableSchema`]: resolves domains to
//! their base types and marks enums (one catalog query per new type, cached), picks the
//! key columns, and applies `include_columns`.
//!
//! The catalog is read at the time the Relation message arrives, not at the WAL position
//! it describes; a type dropped since falls back to text, which is always exact.

use std::collections::HashMap;

use pgcdc_core::types::oid;
use pgcdc_core::{
    quote_ident, Column, ReplicaIdentity, TableName, TableSchema, ValueKind, ValuePolicy,
};
use tokio_postgres::Client;

use crate::error::{Error, ErrorKind, Result};

/// One column of a Relation message.
#[derive(Debug, Clone, Copy)]
pub struct RelColumn<'a> {
    /// Column name.
    pub name: &'a str,
    /// Flags; bit 1 = part of the replica identity.
    pub flags: u8,
    /// Type OID.
    pub type_oid: u32,
    /// typmod.
    pub typmod: i32,
}

#[derive(Debug, Clone, Copy)]
struct ResolvedType {
    base: u32,
    typmod: Option<i32>,
    is_enum: bool,
}

/// A table schema plus where each relation column goes.
#[derive(Debug, Clone)]
pub struct Projection {
    /// The schema (only included columns).
    pub schema: TableSchema,
    /// For each relation column: its index in `schema.columns`, or None when excluded.
    pub map: Vec<Option<usize>>,
}

/// Cached type facts; one per pipeline.
#[derive(Debug, Default)]
pub struct Catalog {
    types: HashMap<u32, ResolvedType>,
    policy: ValuePolicy,
}

impl Catalog {
    /// A catalog applying `policy` to choose value kinds.
    pub fn new(policy: ValuePolicy) -> Self {
        Catalog {
            types: HashMap::new(),
            policy,
        }
    }

    async fn resolve(&mut self, client: &Client, type_oid: u32) -> Result<ResolvedType> {
        if type_oid < oid::FIRST_NORMAL_OBJECT_ID {
            return Ok(ResolvedType {
                base: type_oid,
                typmod: None,
                is_enum: false,
            });
        }
        if let Some(t) = self.types.get(&type_oid) {
            return Ok(*t);
        }
        let mut current = type_oid;
        let mut typmod = None;
        let mut resolved = ResolvedType {
            base: oid::TEXT,
            typmod: None,
            is_enum: false,
        };
        // Domains may stack; follow typbasetype (bounded, in case of a corrupt catalog).
        for _ in 0..32 {
            let row = client
                .query_opt(
                    "SELECT typtype::text, typbasetype, typtypmod FROM pg_type WHERE oid = $1",
                    &[&current],
                )
                .await
                .map_err(|e| Error::from_pg("reading pg_type", e))?;
            let Some(row) = row else { break };
            let (typtype, basetype, tm): (String, u32, i32) = (row.get(0), row.get(1), row.get(2));
            match typtype.as_str() {
                "d" => {
                    if typmod.is_none() && tm >= 0 {
                        typmod = Some(tm);
                    }
                    current = basetype;
                    if current < oid::FIRST_NORMAL_OBJECT_ID {
                        resolved = ResolvedType {
                            base: current,
                            typmod,
                            is_enum: false,
                        };
                        break;
                    }
                }
                "e" => {
                    resolved = ResolvedType {
                        base: current,
                        typmod: None,
                        is_enum: true,
                    };
                    break;
                }
                _ => {
                    resolved = ResolvedType {
                        base: current,
                        typmod,
                        is_enum: false,
                    };
                    break;
                }
            }
        }
        self.types.insert(type_oid, resolved);
        Ok(resolved)
    }

    /// The primary-key column names of relation `rel_id` (empty if none).
    async fn primary_key(client: &Client, rel_id: u32) -> Result<Vec<String>> {
        let rows = client
            .query(
                "SELECT a.attname::text FROM pg_index i
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                  WHERE i.indrelid = $1 AND i.indisprimary",
                &[&rel_id],
            )
            .await
            .map_err(|e| Error::from_pg("reading the primary key", e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Builds the schema of a relation.
    ///
    /// Key columns: the replica identity's columns; under REPLICA IDENTITY FULL (which
    /// flags every column), the primary key when there is one.
    pub async fn project(
        &mut self,
        client: &Client,
        rel_id: u32,
        table: TableName,
        replident: u8,
        columns: &[RelColumn<'_>],
        include: Option<&[String]>,
    ) -> Result<Projection> {
        let identity = ReplicaIdentity::from_code(replident).unwrap_or(ReplicaIdentity::Default);
        let pk = if identity == ReplicaIdentity::Full {
            Self::primary_key(client, rel_id).await?
        } else {
            Vec::new()
        };
        if let Some(include) = include {
            for name in include {
                if !columns.iter().any(|c| c.name == name) {
                    return Err(Error::new(
                        ErrorKind::Setup,
                        format!("source.include_columns names column {} which table {table} does not have", quote_ident(name)),
                    ));
                }
            }
        }
        let mut out = Vec::new();
        let mut map = Vec::with_capacity(columns.len());
        for c in columns {
            if include.is_some_and(|inc| !inc.iter().any(|i| i == c.name)) {
                map.push(None);
                continue;
            }
            let t = self.resolve(client, c.type_oid).await?;
            let typmod = if c.typmod >= 0 {
                c.typmod
            } else {
                t.typmod.unwrap_or(-1)
            };
            let kind = ValueKind::for_type(t.base, typmod, t.is_enum, &self.policy);
            let key = if pk.is_empty() {
                c.flags & 1 == 1
            } else {
                pk.iter().any(|k| k == c.name)
            };
            map.push(Some(out.len()));
            out.push(Column {
                name: c.name.to_string(),
                type_oid: c.type_oid,
                type_modifier: c.typmod,
                kind,
                key,
            });
        }
        Ok(Projection {
            schema: TableSchema {
                table,
                columns: out,
                replica_identity: identity,
            },
            map,
        })
    }
}
