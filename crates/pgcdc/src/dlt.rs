//! Reads dlt's `pg_replication` configuration layout unchanged and translates it into
//! pgcdc's document shape (see `config`), so users can switch without rewriting files.
//!
//! `.dlt/secrets.toml` is layered over `.dlt/config.toml`, as dlt does. Recognised keys:
//! `[sources.pg_replication.credentials]` (drivername, database, password, username,
//! host, port — or a connection string), `[sources.pg_replication]` slot_name, pub_name,
//! schema_name, table_names, publish, include_columns, columns (type hints),
//! target_batch_size, persist_snapshots;
//! `[destination.filesystem] bucket_url` and `[destination.filesystem.credentials]`
//! (aws_access_key_id, aws_secret_access_key, endpoint_url, region_name, ...);
//! `[normalize] loader_file_format`;
//! `[normalize.data_writer] disable_compression`. Other dlt settings (runtime, telemetry…)
//! do not concern pgcdc and are ignored; unknown keys under `[sources.pg_replication]` are
//! an error that names them.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use toml::{Table, Value};

use crate::config::set_path;

const SOURCE_KEYS: &[&str] = &[
    "credentials",
    "slot_name",
    "pub_name",
    "schema_name",
    "table_names",
    "publish",
    "include_columns",
    "target_batch_size",
    "persist_snapshots",
    "columns",
    // Accepted for compatibility; pgcdc's behaviour covers them.
    "flush_slot",
    "reset",
];

/// Reads `dir/config.toml` and `dir/secrets.toml` and returns a pgcdc-shaped document.
pub fn translate(dir: &Path) -> Result<Table> {
    let mut merged = Table::new();
    for name in ["config.toml", "secrets.toml"] {
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let doc: Table =
            toml::from_str(&text).map_err(|e| anyhow!("{}: {}", path.display(), e.message()))?;
        merge(&mut merged, doc);
    }
    from_dlt(&merged)
}

fn merge(into: &mut Table, from: Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Table(a)), Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

fn get<'a>(doc: &'a Table, path: &[&str]) -> Option<&'a Value> {
    let (last, parents) = path.split_last()?;
    let mut cur = doc;
    for p in parents {
        cur = cur.get(*p)?.as_table()?;
    }
    cur.get(*last)
}

fn put(out: &mut Table, path: &[&str], v: Value) -> Result<()> {
    let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
    set_path(out, &path, v)
}

/// Translates a merged dlt document.
pub fn from_dlt(doc: &Table) -> Result<Table> {
    let mut out = Table::new();
    if let Some(src) = get(doc, &["sources", "pg_replication"]).and_then(Value::as_table) {
        for key in src.keys() {
            if !SOURCE_KEYS.contains(&key.as_str()) {
                bail!("unknown key 'sources.pg_replication.{key}' in the dlt configuration");
            }
        }
        if let Some(c) = src.get("credentials") {
            put(&mut out, &["source", "url"], Value::String(credentials(c)?))?;
        }
        for (dlt_key, ours) in [
            ("slot_name", "slot"),
            ("pub_name", "publication"),
            ("schema_name", "schema"),
            ("publish", "publish"),
        ] {
            if let Some(v) = src.get(dlt_key) {
                put(&mut out, &["source", ours], v.clone())?;
            }
        }
        match src.get("table_names") {
            Some(Value::String(t)) => put(
                &mut out,
                &["source", "tables"],
                Value::Array(vec![Value::String(t.clone())]),
            )?,
            Some(v @ Value::Array(_)) => put(&mut out, &["source", "tables"], v.clone())?,
            Some(_) => {
                bail!("sources.pg_replication.table_names must be a string or a list of strings")
            }
            None => {}
        }
        if let Some(v) = src.get("include_columns") {
            put(&mut out, &["source", "include_columns"], v.clone())?;
        }
        if let Some(v) = src.get("target_batch_size") {
            put(&mut out, &["batch", "max_rows"], v.clone())?;
        }
        if let Some(v) = src.get("columns") {
            put(&mut out, &["columns"], v.clone())?;
        }
        if let Some(v) = src.get("persist_snapshots") {
            put(&mut out, &["snapshot", "persist_tables"], v.clone())?;
        }
    }
    if let Some(v) = get(doc, &["destination", "filesystem", "bucket_url"]) {
        put(&mut out, &["destination", "url"], v.clone())?;
    }
    match get(doc, &["destination", "filesystem", "credentials"]) {
        Some(v @ Value::Table(_)) => put(&mut out, &["destination", "credentials"], v.clone())?,
        Some(_) => bail!("destination.filesystem.credentials must be a table of keys (aws_access_key_id, aws_secret_access_key, endpoint_url, ...)"),
        None => {}
    }
    if let Some(v) = get(doc, &["normalize", "loader_file_format"]) {
        match v.as_str() {
            Some("parquet") | Some("jsonl") => put(&mut out, &["destination", "format"], v.clone())?,
            other => bail!(
                "normalize.loader_file_format {:?} is not supported by pgcdc; use \"parquet\" or \"jsonl\"",
                other.unwrap_or("?")
            ),
        }
    }
    if let Some(v) = get(doc, &["normalize", "data_writer", "disable_compression"]) {
        let disable = v.as_bool().ok_or_else(|| {
            anyhow!("normalize.data_writer.disable_compression must be true or false")
        })?;
        put(
            &mut out,
            &["destination", "compression"],
            Value::Boolean(!disable),
        )?;
    }
    Ok(out)
}

/// dlt credentials (a connection string, or a table of parts) as a libpq key=value string.
fn credentials(v: &Value) -> Result<String> {
    let t = match v {
        Value::String(s) => return Ok(s.clone()),
        Value::Table(t) => t,
        _ => bail!("sources.pg_replication.credentials must be a connection string or a table"),
    };
    let mut parts = Vec::new();
    for (dlt_key, libpq) in [
        ("host", "host"),
        ("port", "port"),
        ("username", "user"),
        ("password", "password"),
        ("database", "dbname"),
    ] {
        let Some(val) = t.get(dlt_key) else { continue };
        let text = match val {
            Value::String(s) => s.clone(),
            Value::Integer(i) => i.to_string(),
            _ => bail!("sources.pg_replication.credentials.{dlt_key} must be a string or number"),
        };
        parts.push(format!(
            "{libpq}='{}'",
            text.replace('\\', "\\\\").replace('\'', "\\'")
        ));
    }
    for key in t.keys() {
        if ![
            "drivername",
            "host",
            "port",
            "username",
            "password",
            "database",
            "query",
        ]
        .contains(&key.as_str())
        {
            bail!(
                "unknown key 'sources.pg_replication.credentials.{key}' in the dlt configuration"
            );
        }
    }
    if let Some(d) = t.get("drivername").and_then(Value::as_str) {
        if !d.starts_with("postgres") {
            bail!("sources.pg_replication.credentials.drivername '{d}' is not PostgreSQL");
        }
    }
    Ok(parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dlt project's `.dlt/secrets.toml` and `.dlt/config.toml`, verbatim (trailing spaces included).
    const SECRETS: &str = r#"
[sources.pg_replication.credentials]
drivername = "postgresql"
database = "postgres" 
password = "postgres" 
username = "postgres" 
host = "localhost" 
port = 5432

[destination.filesystem]
bucket_url = "s3://demo/"

[destination.filesystem.credentials]
aws_access_key_id = "minio" 
aws_secret_access_key = "minio123"
endpoint_url="http://localhost:9000/"
"#;
    const CONFIG: &str = r#"
[runtime]
log_level="WARNING"  # the system log level of dlt
dlthub_telemetry = true

[normalize]
loader_file_format="parquet"

[normalize.data_writer]
disable_compression=true
"#;

    #[test]
    fn seed_layout_translates() {
        let mut merged: Table = toml::from_str(CONFIG).unwrap();
        merge(&mut merged, toml::from_str(SECRETS).unwrap());
        let out = from_dlt(&merged).unwrap();
        assert_eq!(
            get(&out, &["source", "url"]).and_then(Value::as_str),
            Some("host='localhost' port='5432' user='postgres' password='postgres' dbname='postgres'")
        );
        assert_eq!(
            get(&out, &["destination", "url"]).and_then(Value::as_str),
            Some("s3://demo/")
        );
        assert_eq!(
            get(&out, &["destination", "compression"]).and_then(Value::as_bool),
            Some(false)
        );
        assert_eq!(
            get(&out, &["destination", "credentials", "endpoint_url"]).and_then(Value::as_str),
            Some("http://localhost:9000/")
        );
        assert_eq!(
            get(
                &out,
                &["destination", "credentials", "aws_secret_access_key"]
            )
            .and_then(Value::as_str),
            Some("minio123")
        );
        assert_eq!(
            get(&out, &["destination", "format"]).and_then(Value::as_str),
            Some("parquet")
        );
    }

    #[test]
    fn unknown_source_keys_are_named() {
        let doc: Table = toml::from_str("[sources.pg_replication]\nslot_nam = 'x'\n").unwrap();
        let e = from_dlt(&doc).unwrap_err().to_string();
        assert!(e.contains("slot_nam"), "{e}");
    }
}
