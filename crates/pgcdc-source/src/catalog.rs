//! Turns a relation as pgoutput describes it into a [`TableSchema`]: resolves domains to
//! their base types, marks enums and finds array element types (one catalog query per
//! new type, cached), turns composite types into Structs of their attributes, reads the
//! declared dimensions of array columns (one query per relation that has any), picks the
//! key columns, and applies `include_columns` and the column hints
//! (`[columns.<table>.<column>]`).
//!
//! The catalog is read at the time the Relation message arrives, not at the WAL position
//! it describes; a type dropped since falls back to text, which is always exact.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;

use pgcdc_core::types::oid;
use pgcdc_core::{
    quote_ident, Column, ColumnHint, CompositeRepr, ReplicaIdentity, StructField, TableName,
    TableSchema, ValueKind, ValuePolicy,
};
use tokio_postgres::Client;

use crate::error::{Error, ErrorKind, Result};
use crate::values::BinaryForm;

/// A column's value kind, and how its binary values are read (None: they cannot be).
type KindAndForm = (ValueKind, Option<BinaryForm>);

/// How deep composite types nest inside each other before the rest is kept as text.
const MAX_NESTING: usize = 8;

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
    /// For an array type (or a domain over one): the element type, unresolved.
    element: Option<u32>,
    /// For a composite type (or a domain over one): its `typrelid`.
    composite: Option<u32>,
    /// An extension type with a dedicated kind (found by its input function).
    ext: Option<Ext>,
    /// For a range type: its subtype, unresolved, and whether it is the multirange.
    range: Option<(u32, bool)>,
}

/// Extension types mapped to their own kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ext {
    Hstore,
    Vector,
    /// citext: text compared case-insensitively; its send format is its text.
    Citext,
}

impl ResolvedType {
    fn scalar(base: u32, typmod: Option<i32>, is_enum: bool) -> Self {
        ResolvedType {
            base,
            typmod,
            is_enum,
            element: None,
            composite: None,
            ext: None,
            range: None,
        }
    }

    /// A built-in type (below `FIRST_NORMAL_OBJECT_ID`), array or not.
    fn builtin(base: u32, typmod: Option<i32>) -> Self {
        ResolvedType {
            element: oid::array_element(base),
            range: oid::range_subtype(base),
            ..Self::scalar(base, typmod, false)
        }
    }
}

/// A table schema plus where each relation column goes.
#[derive(Debug, Clone)]
pub struct Projection {
    /// The schema (only included columns).
    pub schema: TableSchema,
    /// For each relation column: its index in `schema.columns`, or None when excluded.
    pub map: Vec<Option<usize>>,
    /// For each relation column: how its binary (send) values are read, or None when
    /// they cannot be (or the column is excluded).
    pub binary: Vec<Option<BinaryForm>>,
}

impl Projection {
    /// The first included column whose binary values cannot be read, if any: a session
    /// with `binary 'true'` cannot replicate this relation.
    pub fn binary_unreadable(&self) -> Option<&str> {
        self.map
            .iter()
            .zip(&self.binary)
            .find(|(m, b)| m.is_some() && b.is_none())
            .and_then(|(m, _)| m.and_then(|i| self.schema.columns.get(i)))
            .map(|c| c.name.as_str())
    }
}

/// Column hints: table name → column name → hint.
pub type Hints = BTreeMap<String, BTreeMap<String, ColumnHint>>;

/// Cached type facts; one per pipeline.
#[derive(Debug, Default)]
pub struct Catalog {
    types: HashMap<u32, ResolvedType>,
    policy: ValuePolicy,
    hints: Hints,
    require_keys: bool,
    reserved: Vec<String>,
    /// money's fraction digits on this server, once read.
    money_scale: Option<i8>,
}

impl Catalog {
    /// A catalog applying `policy` to choose value kinds.
    pub fn new(policy: ValuePolicy) -> Self {
        Catalog {
            types: HashMap::new(),
            policy,
            hints: Hints::new(),
            require_keys: false,
            reserved: Vec::new(),
            money_scale: None,
        }
    }

    /// Rules every projection must follow: with `require_keys` (updates or deletes are
    /// published), `include_columns` must keep the replica-identity key; no column may
    /// be named like one of `reserved` (the metadata columns).
    pub fn with_rules(mut self, require_keys: bool, reserved: Vec<String>) -> Self {
        self.require_keys = require_keys;
        self.reserved = reserved;
        self
    }

    /// Applies column hints on top of the type mapping.
    pub fn with_hints(mut self, hints: Hints) -> Self {
        self.hints = hints;
        self
    }

    async fn resolve(&mut self, client: &Client, type_oid: u32) -> Result<ResolvedType> {
        if type_oid < oid::FIRST_NORMAL_OBJECT_ID {
            return Ok(ResolvedType::builtin(type_oid, None));
        }
        if let Some(t) = self.types.get(&type_oid) {
            return Ok(*t);
        }
        let mut current = type_oid;
        let mut typmod = None;
        let mut resolved = ResolvedType::scalar(oid::TEXT, None, false);
        // Domains may stack; follow typbasetype (bounded, in case of a corrupt catalog).
        for _ in 0..32 {
            let row = client
                .query_opt(
                    "SELECT typtype::text, typbasetype, typtypmod, typcategory::text, typelem, typdelim::text, typrelid,
                            (SELECT proname::text FROM pg_proc p WHERE p.oid = t.typinput)
                       FROM pg_type t WHERE oid = $1",
                    &[&current],
                )
                .await
                .map_err(|e| Error::from_pg("reading pg_type", e))?;
            let Some(row) = row else { break };
            let (typtype, basetype, tm): (String, u32, i32) = (row.get(0), row.get(1), row.get(2));
            let (category, elem, delim): (String, u32, String) =
                (row.get(3), row.get(4), row.get(5));
            match typtype.as_str() {
                "d" => {
                    if typmod.is_none() && tm >= 0 {
                        typmod = Some(tm);
                    }
                    current = basetype;
                    if current < oid::FIRST_NORMAL_OBJECT_ID {
                        resolved = ResolvedType::builtin(current, typmod);
                        break;
                    }
                }
                "e" => {
                    resolved = ResolvedType::scalar(current, None, true);
                    break;
                }
                "c" => {
                    resolved = ResolvedType {
                        composite: Some(row.get(6)),
                        ..ResolvedType::scalar(current, None, false)
                    };
                    break;
                }
                "r" | "m" => {
                    resolved = ResolvedType {
                        range: Self::range_subtype(client, current, typtype == "m").await?,
                        ..ResolvedType::scalar(current, None, false)
                    };
                    break;
                }
                // An array of a user type (enum, domain, composite…) with the usual
                // delimiter; others keep their text.
                "b" if category == "A" && elem != 0 && delim == "," => {
                    resolved = ResolvedType {
                        element: Some(elem),
                        ..ResolvedType::scalar(current, typmod, false)
                    };
                    break;
                }
                _ => {
                    let input: Option<String> = row.get(7);
                    resolved = ResolvedType {
                        ext: match input.as_deref() {
                            Some("hstore_in") => Some(Ext::Hstore),
                            Some("vector_in") => Some(Ext::Vector),
                            Some("citextin") => Some(Ext::Citext),
                            _ => None,
                        },
                        ..ResolvedType::scalar(current, typmod, false)
                    };
                    break;
                }
            }
        }
        self.types.insert(type_oid, resolved);
        Ok(resolved)
    }

    /// money's fraction digits (`lc_monetary`'s, as `cash_numeric` reads them).
    async fn money_scale(&mut self, client: &Client) -> Result<i8> {
        if let Some(s) = self.money_scale {
            return Ok(s);
        }
        let row = client
            .query_one("SELECT scale('0'::money::numeric)::int4", &[])
            .await
            .map_err(|e| Error::from_pg("reading money's fraction digits", e))?;
        let scale = i8::try_from(row.get::<_, i32>(0)).unwrap_or(2);
        self.money_scale = Some(scale);
        Ok(scale)
    }

    /// The subtype of range type `t` (or of the multirange `t`, when `multi`).
    async fn range_subtype(client: &Client, t: u32, multi: bool) -> Result<Option<(u32, bool)>> {
        let sql = if multi {
            "SELECT rngsubtype FROM pg_range WHERE rngmultitypid = $1"
        } else {
            "SELECT rngsubtype FROM pg_range WHERE rngtypid = $1"
        };
        let row = client
            .query_opt(sql, &[&t])
            .await
            .map_err(|e| Error::from_pg("reading pg_range", e))?;
        Ok(row.map(|r| (r.get(0), multi)))
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

    /// Declared dimensions (`attndims`) of the relation's columns, by name.
    async fn dimensions(client: &Client, rel_id: u32) -> Result<HashMap<String, i32>> {
        let rows = client
            .query(
                "SELECT attname::text, attndims::int4 FROM pg_attribute
                  WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped",
                &[&rel_id],
            )
            .await
            .map_err(|e| Error::from_pg("reading pg_attribute", e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// The value kind of a column of type `t` (already resolved) with `typmod` and
    /// `ndims` declared dimensions, and how its binary values are read (None: they
    /// cannot be). Composite types nest up to [`MAX_NESTING`] levels; deeper ones, and
    /// composites under `types.composites = "text"`, keep their text.
    fn column_kind<'a>(
        &'a mut self,
        client: &'a Client,
        t: ResolvedType,
        typmod: i32,
        ndims: i32,
        depth: usize,
    ) -> Pin<Box<dyn Future<Output = Result<KindAndForm>> + Send + 'a>> {
        Box::pin(async move {
            if let Some(relid) = t.composite {
                return self.composite_kind(client, relid, depth).await;
            }
            if let Some((subtype, multi)) = t.range {
                return self.range_kind(client, subtype, multi, depth).await;
            }
            match t.ext {
                Some(Ext::Hstore) => return Ok((ValueKind::Hstore, Some(BinaryForm::Hstore))),
                // vector's typmod is its dimension.
                Some(Ext::Vector) => {
                    let dim = (typmod > 0).then_some(typmod);
                    return Ok((ValueKind::Vector { dim }, Some(BinaryForm::Vector)));
                }
                Some(Ext::Citext) => return Ok((ValueKind::Text, Some(BinaryForm::Text))),
                None => {}
            }
            let Some(element) = t.element else {
                let kind = if t.base == oid::MONEY {
                    ValueKind::Money {
                        scale: self.money_scale(client).await?,
                    }
                } else {
                    ValueKind::for_type(t.base, typmod, t.is_enum, &self.policy)
                };
                let form = BinaryForm::scalar(t.base, t.is_enum, &kind, false);
                return Ok((kind, form));
            };
            let e = self.resolve(client, element).await?;
            // An array's typmod is its element's (numeric(12,2)[] carries (12,2)).
            let typmod = if typmod >= 0 {
                typmod
            } else {
                e.typmod.unwrap_or(-1)
            };
            let (element_kind, element_form) = if e.element.is_some() {
                (ValueKind::Text, None)
            } else {
                self.column_kind(client, e, typmod, 0, depth).await?
            };
            let kind = ValueKind::array_of(element_kind, ndims, &self.policy);
            let form = match (&kind, element_form) {
                (ValueKind::List { .. }, Some(f)) => Some(BinaryForm::Array(Box::new(f))),
                _ => None,
            };
            Ok((kind, form))
        })
    }

    /// A range (or multirange) kind of `subtype`'s kind and its binary form; nested
    /// deeper than [`MAX_NESTING`], the text.
    async fn range_kind(
        &mut self,
        client: &Client,
        subtype: u32,
        multi: bool,
        depth: usize,
    ) -> Result<KindAndForm> {
        if depth >= MAX_NESTING {
            return Ok((ValueKind::Text, None));
        }
        let s = self.resolve(client, subtype).await?;
        let ndims = i32::from(s.element.is_some());
        let (kind, form) = self
            .column_kind(client, s, s.typmod.unwrap_or(-1), ndims, depth + 1)
            .await?;
        let element = Box::new(kind);
        Ok(if multi {
            (
                ValueKind::Multirange { element },
                form.map(|f| BinaryForm::Multirange(Box::new(f))),
            )
        } else {
            (
                ValueKind::Range { element },
                form.map(|f| BinaryForm::Range(Box::new(f))),
            )
        })
    }

    /// A composite type's Struct kind (its attributes in order) and binary form.
    async fn composite_kind(
        &mut self,
        client: &Client,
        relid: u32,
        depth: usize,
    ) -> Result<KindAndForm> {
        if depth >= MAX_NESTING || self.policy.composites == CompositeRepr::Text {
            return Ok((ValueKind::Text, None));
        }
        let rows = client
            .query(
                "SELECT attname::text, atttypid, atttypmod, attndims::int4 FROM pg_attribute
                  WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                &[&relid],
            )
            .await
            .map_err(|e| Error::from_pg("reading a composite type's attributes", e))?;
        if rows.is_empty() {
            return Ok((ValueKind::Text, None));
        }
        let mut fields = Vec::with_capacity(rows.len());
        let mut forms = Some(Vec::with_capacity(rows.len()));
        for row in &rows {
            let (name, type_oid, typmod, ndims): (String, u32, i32, i32) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            let t = self.resolve(client, type_oid).await?;
            let typmod = if typmod >= 0 {
                typmod
            } else {
                t.typmod.unwrap_or(-1)
            };
            let ndims = if t.element.is_some() { ndims.max(1) } else { 0 };
            let (kind, form) = self
                .column_kind(client, t, typmod, ndims, depth + 1)
                .await?;
            fields.push(StructField { name, kind });
            forms = forms.zip(form).map(|(mut v, f)| {
                v.push(f);
                v
            });
        }
        Ok((ValueKind::Struct { fields }, forms.map(BinaryForm::Record)))
    }

    /// Whether every column of `publication`'s tables has a binary form pgcdc reads, so
    /// that a session may ask for `binary 'true'` (the projection applies
    /// `include_columns`, table name → kept columns). A table pgcdc cannot project
    /// counts as no (its error is reported when the stream reaches it).
    pub async fn publication_reads_binary(
        &mut self,
        client: &Client,
        publication: &str,
        include_columns: &BTreeMap<String, Vec<String>>,
    ) -> Result<bool> {
        let rows = client
            .query(
                "SELECT c.oid, n.nspname::text, c.relname::text, c.relreplident::text,
                        a.attname::text, a.atttypid, a.atttypmod
                   FROM pg_publication_tables p
                   JOIN pg_namespace n ON n.nspname = p.schemaname
                   JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename
                   JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                  WHERE p.pubname = $1
                  ORDER BY c.oid, a.attnum",
                &[&publication],
            )
            .await
            .map_err(|e| Error::from_pg("reading the publication's columns", e))?;
        for group in rows.chunk_by(|a, b| a.get::<_, u32>(0) == b.get::<_, u32>(0)) {
            let Some(first) = group.first() else { continue };
            let (rel_id, schema, name, ident): (u32, String, String, String) =
                (first.get(0), first.get(1), first.get(2), first.get(3));
            let columns: Vec<RelColumn<'_>> = group
                .iter()
                .map(|r| RelColumn {
                    name: r.get(4),
                    flags: 0,
                    type_oid: r.get(5),
                    typmod: r.get(6),
                })
                .collect();
            let include = include_columns.get(&name).map(Vec::as_slice);
            let table = TableName::new(schema, name.clone());
            let replident = ident.bytes().next().unwrap_or(b'd');
            match self
                .project(client, rel_id, table, replident, &columns, include)
                .await
            {
                Ok(p) => {
                    if let Some(column) = p.binary_unreadable() {
                        tracing::debug!(table = %p.schema.table, column, "reading text: a column without a binary reader");
                        return Ok(false);
                    }
                }
                Err(_) => return Ok(false),
            }
        }
        Ok(true)
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
        let hints = self.hints.get(&table.name).cloned().unwrap_or_default();
        for name in hints.keys() {
            let known = columns.iter().any(|c| c.name == name);
            let included = include.is_none_or(|inc| inc.iter().any(|i| i == name));
            if !known || !included {
                return Err(Error::new(
                    ErrorKind::Setup,
                    format!(
                        "columns.{}.{}: table {table} has no {}column {}",
                        table.name,
                        name,
                        if known { "included " } else { "" },
                        quote_ident(name)
                    ),
                ));
            }
        }
        let is_key = |c: &RelColumn<'_>| {
            if pk.is_empty() {
                c.flags & 1 == 1
            } else {
                pk.iter().any(|k| k == c.name)
            }
        };
        // Under REPLICA IDENTITY FULL without a primary key the "key" is the whole row:
        // leaving columns out is the user's choice there.
        let whole_row = identity == ReplicaIdentity::Full && pk.is_empty();
        if let (true, false, Some(inc)) = (self.require_keys, whole_row, include) {
            if let Some(k) = columns
                .iter()
                .find(|c| is_key(c) && !inc.iter().any(|i| i == c.name))
            {
                return Err(Error::new(
                    ErrorKind::Setup,
                    format!(
                        "source.include_columns.{} leaves out key column {} of {table}; updates and deletes identify rows by it: include it (or publish inserts only)",
                        table.name,
                        quote_ident(k.name)
                    ),
                ));
            }
        }
        let mut out = Vec::new();
        let mut map = Vec::with_capacity(columns.len());
        let mut binary = Vec::with_capacity(columns.len());
        let mut dims: Option<HashMap<String, i32>> = None;
        for c in columns {
            if include.is_some_and(|inc| !inc.iter().any(|i| i == c.name)) {
                map.push(None);
                binary.push(None);
                continue;
            }
            if self.reserved.iter().any(|r| r == c.name) {
                return Err(Error::new(
                    ErrorKind::Setup,
                    format!(
                        "column {} of {table} has the name of one of pgcdc's metadata columns; exclude it with source.include_columns or choose the other destination.naming",
                        quote_ident(c.name)
                    ),
                ));
            }
            let t = self.resolve(client, c.type_oid).await?;
            let typmod = if c.typmod >= 0 {
                c.typmod
            } else {
                t.typmod.unwrap_or(-1)
            };
            let ndims = if t.element.is_some() {
                if dims.is_none() {
                    dims = Some(Self::dimensions(client, rel_id).await?);
                }
                dims.as_ref()
                    .and_then(|d| d.get(c.name))
                    .copied()
                    .unwrap_or(1)
            } else {
                0
            };
            let (natural, natural_form) = self.column_kind(client, t, typmod, ndims, 0).await?;
            let (kind, hinted) = match hints.get(c.name) {
                Some(h) => {
                    let kind = h.apply(natural.clone()).map_err(|why| {
                        Error::new(
                            ErrorKind::Setup,
                            format!("columns.{}.{}: {why}", table.name, c.name),
                        )
                    })?;
                    let hinted = kind != natural;
                    (kind, hinted)
                }
                None => (natural, false),
            };
            let key = is_key(c);
            binary.push(match (hinted, t.element, t.composite) {
                (false, ..) => natural_form,
                // A hinted scalar is readable when its send format is its text.
                (true, None, None) => BinaryForm::scalar(t.base, t.is_enum, &kind, true),
                (true, ..) => None,
            });
            map.push(Some(out.len()));
            out.push(Column {
                name: c.name.to_string(),
                type_oid: c.type_oid,
                type_modifier: c.typmod,
                kind,
                key,
                hinted,
            });
        }
        Ok(Projection {
            schema: TableSchema {
                table,
                columns: out,
                replica_identity: identity,
            },
            map,
            binary,
        })
    }
}
