//! Stage one of loading: the raw TOML document, in layers. Defaults (in [`super::raw`])
//! < the file layer (`pgcdc.toml`, or when there is none dlt's `.dlt/config.toml` +
//! `.dlt/secrets.toml`, translated by `crate::dlt`) < the environment
//! (`PGCDC__SECTION__KEY`, dlt's `SOURCES__PG_REPLICATION__CREDENTIALS` and
//! `DESTINATION__FILESYSTEM__*`) < `--set section.key=value`. Values from the environment
//! and `--set` are TOML when they parse as TOML, else strings. libpq's `PG*` variables
//! are not a layer: they fill what the source URL leaves out (`pgcdc_source::connect`).

use anyhow::{anyhow, bail, Context, Result};
use toml::{Table, Value};

use super::LoadOptions;

/// The file layer: `pgcdc.toml`, or dlt's files translated.
pub(super) fn base_document(opts: &LoadOptions) -> Result<(Table, String)> {
    let explicit = opts.path.clone();
    let default = opts.dir.join("pgcdc.toml");
    let path = match explicit {
        Some(p) => Some(p),
        None if default.exists() => Some(default),
        None => None,
    };
    if let Some(path) = path {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        let doc: Table =
            toml::from_str(&text).map_err(|e| anyhow!("{}: {}", path.display(), e.message()))?;
        return Ok((doc, path.display().to_string()));
    }
    let dlt = opts.dir.join(".dlt");
    if dlt.join("config.toml").exists() || dlt.join("secrets.toml").exists() {
        return Ok((
            crate::dlt::translate(&dlt)?,
            format!("{} (dlt layout)", dlt.display()),
        ));
    }
    Ok((Table::new(), "defaults and environment".into()))
}

/// A TOML value from an environment string: TOML syntax if it parses, else a string.
pub(super) fn parse_value(s: &str) -> Value {
    let wrapped = format!("v = {s}");
    match toml::from_str::<Table>(&wrapped) {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| Value::String(s.into())),
        Err(_) => Value::String(s.into()),
    }
}

/// Sets `path` (e.g. `["source","url"]`) in `doc`, creating tables on the way.
pub(crate) fn set_path(doc: &mut Table, path: &[String], value: Value) -> Result<()> {
    let Some((last, parents)) = path.split_last() else {
        bail!("empty key")
    };
    let mut cur = doc;
    for p in parents {
        let entry = cur
            .entry(p.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        cur = entry
            .as_table_mut()
            .ok_or_else(|| anyhow!("'{p}' is a value, not a section"))?;
    }
    cur.insert(last.clone(), value);
    Ok(())
}

/// `PGCDC__SECTION__KEY` and dlt's credential variables.
pub(super) fn apply_env(doc: &mut Table, env: &[(String, String)]) -> Result<()> {
    for (k, v) in env {
        if let Some(rest) = k.strip_prefix("PGCDC__") {
            let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
            set_path(doc, &path, parse_value(v))
                .with_context(|| format!("environment variable {k}"))?;
        }
    }
    let dlt_url = env
        .iter()
        .find(|(k, _)| k == "SOURCES__PG_REPLICATION__CREDENTIALS")
        .map(|(_, v)| v.clone());
    let has_pgcdc_url = env.iter().any(|(k, _)| k == "PGCDC__SOURCE__URL");
    if let (Some(url), false) = (dlt_url, has_pgcdc_url) {
        set_path(doc, &["source".into(), "url".into()], Value::String(url))?;
    }
    // dlt's filesystem destination variables, below pgcdc's own.
    for (k, v) in env {
        let path: Vec<String> = if k == "DESTINATION__FILESYSTEM__BUCKET_URL" {
            vec!["destination".into(), "url".into()]
        } else if let Some(key) = k.strip_prefix("DESTINATION__FILESYSTEM__CREDENTIALS__") {
            vec![
                "destination".into(),
                "credentials".into(),
                key.to_ascii_lowercase(),
            ]
        } else {
            continue;
        };
        let ours = format!("PGCDC__{}", path.join("__").to_ascii_uppercase());
        if !env.iter().any(|(k2, _)| k2.eq_ignore_ascii_case(&ours)) {
            set_path(doc, &path, Value::String(v.clone()))
                .with_context(|| format!("environment variable {k}"))?;
        }
    }
    Ok(())
}

/// Applies `--set section.key=value` overrides, in order.
pub(super) fn apply_sets(doc: &mut Table, sets: &[String]) -> Result<()> {
    for set in sets {
        let (key, value) = set
            .split_once('=')
            .ok_or_else(|| anyhow!("--set '{set}': expected section.key=value"))?;
        let path: Vec<String> = key.trim().split('.').map(str::to_string).collect();
        set_path(doc, &path, parse_value(value)).with_context(|| format!("--set {key}"))?;
    }
    Ok(())
}
