//! AWS named profiles (`~/.aws/credentials` and `~/.aws/config`), as the AWS CLI reads
//! them, for `s3://` destinations: `destination.credentials.profile_name` (dlt's name) or
//! `aws_profile`, else the `AWS_PROFILE` variable when no access key is given otherwise.
//!
//! Read per profile: `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`
//! (the credentials file first, then the config file's `[profile NAME]`, or `[default]`),
//! `region` and `endpoint_url`. The files are `AWS_SHARED_CREDENTIALS_FILE` and
//! `AWS_CONFIG_FILE` when set. Profiles that get credentials another way (`role_arn`,
//! `credential_process`, `sso_*`, `web_identity_token_file`) are refused with a message
//! that says so, rather than run without credentials. No value is ever part of a message.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{Error, ErrorKind, Result};

/// Profile keys pgcdc reads, and the object_store option each becomes.
const READ: [(&str, &str); 5] = [
    ("aws_access_key_id", "aws_access_key_id"),
    ("aws_secret_access_key", "aws_secret_access_key"),
    ("aws_session_token", "aws_session_token"),
    ("region", "aws_region"),
    ("endpoint_url", "aws_endpoint"),
];

/// Profile keys that mean credentials pgcdc cannot obtain itself.
const UNSUPPORTED: [&str; 6] = [
    "role_arn",
    "source_profile",
    "credential_process",
    "sso_session",
    "sso_start_url",
    "web_identity_token_file",
];

/// The object_store options of profile `name`, from the user's AWS files.
pub fn options(name: &str) -> Result<BTreeMap<String, String>> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let file = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
    };
    let credentials = file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
    let config = file("AWS_CONFIG_FILE", "config");
    from_files(name, credentials.as_deref(), config.as_deref())
}

fn from_files(
    name: &str,
    credentials: Option<&Path>,
    config: Option<&Path>,
) -> Result<BTreeMap<String, String>> {
    let mut found = false;
    let mut values = BTreeMap::new();
    // The credentials file's `[name]` wins over the config file's `[profile name]`.
    let config_section = if name == "default" {
        "default".to_string()
    } else {
        format!("profile {name}")
    };
    for (path, section) in [(config, config_section.as_str()), (credentials, name)] {
        let Some(path) = path else { continue };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    format!("cannot read the AWS file {}: {e}", path.display()),
                ))
            }
        };
        if let Some(pairs) = section_of(&text, section) {
            found = true;
            values.extend(pairs);
        }
    }
    if !found {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            format!(
                "AWS profile {name:?} is in neither {} nor {}; check destination.credentials.profile_name (or AWS_PROFILE)",
                shown(credentials),
                shown(config)
            ),
        ));
    }
    if let Some(key) = UNSUPPORTED.iter().find(|k| values.contains_key(**k)) {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            format!("AWS profile {name:?} gets its credentials through {key}, which pgcdc does not do; use a profile with aws_access_key_id and aws_secret_access_key, or the AWS_* environment variables"),
        ));
    }
    Ok(READ
        .iter()
        .filter_map(|(from, to)| values.get(*from).map(|v| (to.to_string(), v.clone())))
        .collect())
}

fn shown(path: Option<&Path>) -> String {
    path.map_or_else(|| "(no home directory)".into(), |p| p.display().to_string())
}

/// The `key = value` pairs of `[section]` in INI text, or None without such a section.
/// Indented lines (sub-settings such as `s3 =` blocks) and comments are skipped.
fn section_of(text: &str, section: &str) -> Option<BTreeMap<String, String>> {
    let mut current: Option<String> = None;
    let mut out: Option<BTreeMap<String, String>> = None;
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            if name == section {
                out.get_or_insert_with(BTreeMap::new);
            }
            current = Some(name);
            continue;
        }
        if current.as_deref() != Some(section) {
            continue;
        }
        if let (Some((k, v)), Some(map)) = (line.split_once('='), out.as_mut()) {
            let v = v.trim();
            if !v.is_empty() {
                map.insert(k.trim().to_ascii_lowercase(), v.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn credentials_win_over_config_and_sub_blocks_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let creds = write(
            dir.path(),
            "credentials",
            "[default]\naws_access_key_id = D\n\n[minio]\naws_access_key_id = AK\naws_secret_access_key = S=K\n# comment\n",
        );
        let config = write(
            dir.path(),
            "config",
            "[profile minio]\nregion = eu-1\naws_access_key_id = IGNORED\ns3 =\n  addressing_style = path\nendpoint_url = http://127.0.0.1:9000\n[profile  other]\nregion = x\n",
        );
        let o = from_files("minio", Some(&creds), Some(&config)).unwrap();
        assert_eq!(o["aws_access_key_id"], "AK");
        assert_eq!(o["aws_secret_access_key"], "S=K");
        assert_eq!(o["aws_region"], "eu-1");
        assert_eq!(o["aws_endpoint"], "http://127.0.0.1:9000");
        assert!(!o.contains_key("addressing_style"));
        let d = from_files("default", Some(&creds), Some(&config)).unwrap();
        assert_eq!(d["aws_access_key_id"], "D");
        assert_eq!(
            from_files("other", None, Some(&config)).unwrap()["aws_region"],
            "x"
        );
    }

    #[test]
    fn missing_and_unsupported_profiles_are_clear_errors_without_values() {
        let dir = tempfile::tempdir().unwrap();
        let creds = write(
            dir.path(),
            "credentials",
            "[sso]\nsso_session = corp\naws_secret_access_key = TOPSECRET\n",
        );
        let e = from_files("nope", Some(&creds), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"nope\" is in neither"), "{e}");
        let e = from_files("sso", Some(&creds), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sso_session"), "{e}");
        assert!(!e.contains("TOPSECRET"), "{e}");
    }
}
