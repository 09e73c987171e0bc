//! Opening the object store behind a destination URL: a local path or `file://`, `s3://`
//! (and `s3a://`), `gs://` (`gcs://`), `az://` (`abfs://`, `abfss://`, `azure://`).
//!
//! Credentials and settings come from [`StoreOptions`] (the `[destination.credentials]`
//! table, which also takes dlt's `[destination.filesystem.credentials]` names unchanged)
//! over the provider's usual environment variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`, read
//! by `object_store`'s `from_env`). An `http://` endpoint (MinIO and other S3-compatible
//! servers) turns plain HTTP on; requests are path-style unless
//! `aws_virtual_hosted_style_request = "true"`. A path after the bucket
//! (`s3://bucket/some/prefix`) becomes a prefix for every object.
//!
//! Transient failures (connection refused, timeouts, 5xx, throttling) are retried by
//! `object_store` with exponential backoff for up to [`RETRY_TIMEOUT`], so a short outage
//! of the store pauses the run instead of failing it.
//!
//! Option values are secrets: [`StoreOptions`]' `Debug` shows the keys only, and no
//! message built here contains a value.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ObjectStore, RetryConfig};

use crate::{Error, ErrorKind, Result};

/// How long one request to the store is retried before the error surfaces.
pub const RETRY_TIMEOUT: Duration = Duration::from_secs(120);

/// [`RETRY_TIMEOUT`], or with the `failpoints` feature (tests only) the milliseconds in
/// `PGCDC_RETRY_TIMEOUT_MS`, so a test can outlast the retries without waiting minutes.
pub fn retry_timeout() -> Duration {
    #[cfg(feature = "failpoints")]
    if let Some(ms) = std::env::var("PGCDC_RETRY_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        return Duration::from_millis(ms);
    }
    RETRY_TIMEOUT
}

/// Settings and credentials for the store, by key (object_store's names, e.g.
/// `aws_access_key_id`, `aws_endpoint`, `aws_region`, `google_service_account_key`,
/// `azure_storage_account_name`, or dlt's: `endpoint_url`, `region_name`, and for GCS
/// `project_id` + `private_key` + `client_email`). Values never appear in `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StoreOptions(BTreeMap<String, String>);

impl StoreOptions {
    /// Options from key/value pairs.
    pub fn new(options: BTreeMap<String, String>) -> Self {
        StoreOptions(options)
    }

    /// True when no option is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The values that are secrets (keys naming a secret, key, token, password or
    /// signature), for redacting messages that might echo them.
    pub fn secret_values(&self) -> Vec<String> {
        const SECRET: [&str; 6] = ["secret", "key", "token", "password", "private", "sig"];
        // An AWS profile's secrets too (an unreadable profile fails elsewhere, clearly).
        let profile = aws_profile(self)
            .and_then(|name| crate::aws_profile::options(&name).ok())
            .unwrap_or_default();
        self.0
            .iter()
            .chain(profile.iter())
            .filter(|(k, _)| SECRET.iter().any(|s| k.contains(s)))
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "<redacted>")))
            .finish()
    }
}

/// An opened store: the store itself (with the URL's path as prefix), and the local
/// directory behind it when it is a local disk (for fsync).
pub(crate) struct OpenedStore {
    pub store: Arc<dyn ObjectStore>,
    pub local_root: Option<PathBuf>,
}

/// Opens the store for `url` with `options`.
pub(crate) fn open(url: &str, options: &StoreOptions) -> Result<OpenedStore> {
    let Some((scheme, _)) = url.split_once("://") else {
        return open_local(PathBuf::from(url), options);
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme == "file" {
        let parsed = url::Url::parse(url).map_err(|e| bad_url(url, e.to_string()))?;
        let path = parsed
            .to_file_path()
            .map_err(|_| bad_url(url, "a file:// URL needs an absolute path".into()))?;
        return open_local(path, options);
    }
    let parsed = url::Url::parse(url).map_err(|e| bad_url(url, e.to_string()))?;
    let bucket = parsed.host_str().unwrap_or_default();
    if bucket.is_empty() {
        return Err(bad_url(url, "it names no bucket or container".into()));
    }
    let prefix = parsed.path().trim_matches('/').to_string();
    let store: Arc<dyn ObjectStore> = match scheme.as_str() {
        "s3" | "s3a" => Arc::new(s3(bucket, options)?.build().map_err(build_error)?),
        "gs" | "gcs" => Arc::new(gcs(bucket, options)?.build().map_err(build_error)?),
        "az" | "abfs" | "abfss" | "azure" | "adl" => {
            Arc::new(azure(bucket, options)?.build().map_err(build_error)?)
        }
        other => {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "destination URL scheme '{other}://' is not supported; use a local path, file://, s3://, gs:// or az://"
                ),
            ))
        }
    };
    let store = if prefix.is_empty() {
        store
    } else {
        let prefix = Path::parse(&prefix).map_err(|e| bad_url(url, e.to_string()))?;
        Arc::new(PrefixStore::new(store, prefix))
    };
    Ok(OpenedStore {
        store,
        local_root: None,
    })
}

/// A store opened at its root (the bucket, or the local file system), with the URL of the
/// destination's base directory in it: what a Delta log store takes (it resolves the
/// tables' paths from their URLs against the root).
#[cfg_attr(not(feature = "delta"), allow(dead_code))]
pub(crate) struct RootStore {
    pub store: Arc<dyn ObjectStore>,
    /// The base directory, ending in `/` (`file:///abs/dir/` or `s3://bucket/prefix/`).
    pub url: url::Url,
}

/// Opens the store of `url` (a local path, `file://` or `s3://`) at its root. A local
/// base directory is created if its parent exists (a missing parent is an error: most
/// likely a typo).
#[cfg_attr(not(feature = "delta"), allow(dead_code))]
pub(crate) fn open_root(url: &str, options: &StoreOptions) -> Result<RootStore> {
    let parsed = match url.split_once("://") {
        None => None,
        Some(_) => Some(url::Url::parse(url).map_err(|e| bad_url(url, e.to_string()))?),
    };
    let local = match &parsed {
        None => Some(PathBuf::from(url)),
        Some(u) if u.scheme() == "file" => Some(
            u.to_file_path()
                .map_err(|_| bad_url(url, "a file:// URL needs an absolute path".into()))?,
        ),
        Some(_) => None,
    };
    if let Some(path) = local {
        if !options.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "destination.credentials is set ({options:?}) but the destination is a local path; remove it or use an s3:// URL"
                ),
            ));
        }
        let abs = std::path::absolute(&path)?;
        if let Some(parent) = abs.parent().filter(|p| !p.is_dir()) {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "destination.url: the directory {} does not exist",
                    parent.display()
                ),
            ));
        }
        std::fs::create_dir_all(&abs)?;
        let abs = std::fs::canonicalize(&abs)?;
        let url = url::Url::from_directory_path(&abs)
            .map_err(|_| bad_url(&abs.display().to_string(), "not an absolute path".into()))?;
        return Ok(RootStore {
            store: Arc::new(LocalFileSystem::new()),
            url,
        });
    }
    let mut parsed = parsed.ok_or_else(|| bad_url(url, "no scheme".into()))?;
    let scheme = parsed.scheme().to_ascii_lowercase();
    if scheme != "s3" && scheme != "s3a" {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            format!(
                "destination URL scheme '{scheme}://' is not supported for Delta tables; use a local path or s3://"
            ),
        ));
    }
    let bucket = parsed.host_str().unwrap_or_default().to_string();
    if bucket.is_empty() {
        return Err(bad_url(url, "it names no bucket".into()));
    }
    if parsed.password().is_some() || !parsed.username().is_empty() {
        return Err(bad_url(
            url,
            "credentials do not go in the URL; use destination.credentials".into(),
        ));
    }
    let store = s3(&bucket, options)?.build().map_err(build_error)?;
    if !parsed.path().ends_with('/') {
        let p = format!("{}/", parsed.path());
        parsed.set_path(&p);
    }
    Ok(RootStore {
        store: Arc::new(store),
        url: parsed,
    })
}

fn open_local(path: PathBuf, options: &StoreOptions) -> Result<OpenedStore> {
    if !options.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            format!(
                "destination.credentials is set ({:?}) but the destination is a local path; remove it or use an s3://, gs:// or az:// URL",
                options
            ),
        ));
    }
    std::fs::create_dir_all(&path).map_err(|e| {
        Error::new(
            ErrorKind::InvalidConfig,
            format!(
                "cannot create the destination directory {}: {e}",
                path.display()
            ),
        )
        .with_source(e)
    })?;
    let abs = std::fs::canonicalize(&path)?;
    let store = LocalFileSystem::new_with_prefix(&abs)?;
    Ok(OpenedStore {
        store: Arc::new(store),
        local_root: Some(abs),
    })
}

fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            base: 2.0,
        },
        max_retries: 60,
        retry_timeout: retry_timeout(),
    }
}

/// dlt's credential names that object_store spells differently.
fn alias(key: &str) -> &str {
    match key {
        "region_name" => "aws_region",
        "aws_profile" | "profile_name" => "aws_profile",
        other => other,
    }
}

/// The AWS profile to read: named in the options, else `AWS_PROFILE` when no access key
/// is given otherwise.
fn aws_profile(options: &StoreOptions) -> Option<String> {
    let named = options
        .0
        .iter()
        .find(|(k, _)| alias(k) == "aws_profile")
        .map(|(_, v)| v.clone());
    let has_key = options.get("aws_access_key_id").is_some()
        || std::env::var_os("AWS_ACCESS_KEY_ID").is_some();
    named.or_else(|| {
        std::env::var("AWS_PROFILE")
            .ok()
            .filter(|p| !p.is_empty() && !has_key)
    })
}

fn s3(bucket: &str, options: &StoreOptions) -> Result<AmazonS3Builder> {
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry());
    // A profile's settings beat the environment's; explicit options beat both.
    let profile = match aws_profile(options) {
        Some(name) => crate::aws_profile::options(&name)?,
        None => Default::default(),
    };
    for (key, value) in &profile {
        let k: AmazonS3ConfigKey = key.parse().map_err(|_| unknown_key(key, "s3"))?;
        b = b.with_config(k, value);
    }
    for (key, value) in &options.0 {
        let key = alias(key);
        if key == "aws_profile" {
            continue;
        }
        let k: AmazonS3ConfigKey = key.parse().map_err(|_| unknown_key(key, "s3"))?;
        b = b.with_config(k, value);
    }
    let endpoint = options
        .get("endpoint_url")
        .or_else(|| options.get("aws_endpoint"))
        .or_else(|| options.get("aws_endpoint_url"))
        .or_else(|| profile.get("aws_endpoint").map(String::as_str))
        .map(str::to_string)
        .or_else(|| b.get_config_value(&AmazonS3ConfigKey::Endpoint));
    if endpoint.is_some_and(|e| e.to_ascii_lowercase().starts_with("http://")) {
        b = b.with_allow_http(true);
    }
    if b.get_config_value(&AmazonS3ConfigKey::Region).is_none() {
        // S3-compatible servers accept any region; AWS redirects from the default one.
        b = b.with_region("us-east-1");
    }
    Ok(b)
}

fn gcs(bucket: &str, options: &StoreOptions) -> Result<GoogleCloudStorageBuilder> {
    let mut b = GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry());
    // dlt's GcpServiceAccountCredentials: the key file's fields, given one by one.
    const DLT_GCS: [&str; 3] = ["project_id", "private_key", "client_email"];
    if DLT_GCS.iter().any(|k| options.get(k).is_some()) {
        let mut key = serde_json::Map::new();
        key.insert("type".into(), "service_account".into());
        for k in DLT_GCS {
            let v = options.get(k).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidConfig,
                    format!("destination.credentials: GCS service-account credentials need project_id, private_key and client_email; {k} is missing"),
                )
            })?;
            key.insert(k.into(), v.into());
        }
        if let Some(id) = options.get("private_key_id") {
            key.insert("private_key_id".into(), id.into());
        }
        b = b.with_service_account_key(serde_json::Value::Object(key).to_string());
    }
    for (key, value) in &options.0 {
        if DLT_GCS.contains(&key.as_str()) || key == "private_key_id" {
            continue;
        }
        let k: GoogleConfigKey = key.parse().map_err(|_| unknown_key(key, "gs"))?;
        b = b.with_config(k, value);
    }
    Ok(b)
}

fn azure(container: &str, options: &StoreOptions) -> Result<MicrosoftAzureBuilder> {
    let mut b = MicrosoftAzureBuilder::from_env()
        .with_container_name(container)
        .with_retry(retry());
    for (key, value) in &options.0 {
        let k: AzureConfigKey = key.parse().map_err(|_| unknown_key(key, "az"))?;
        b = b.with_config(k, value);
    }
    Ok(b)
}

fn unknown_key(key: &str, scheme: &str) -> Error {
    Error::new(
        ErrorKind::InvalidConfig,
        format!("destination.credentials.{key} is not a setting of {scheme}:// object storage"),
    )
}

fn bad_url(url: &str, why: String) -> Error {
    Error::new(
        ErrorKind::InvalidConfig,
        format!("destination.url '{}' is not usable: {why}", redact_url(url)),
    )
}

fn build_error(e: object_store::Error) -> Error {
    Error::new(
        ErrorKind::InvalidConfig,
        format!("cannot set up the object store: {e}"),
    )
    .with_source(e)
}

/// `url` without a password (`s3://key:secret@bucket` is not a documented form, but a
/// user might write it).
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("REDACTED"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> StoreOptions {
        StoreOptions::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn debug_never_shows_values() {
        let o = opts(&[("aws_secret_access_key", "hunter2")]);
        let shown = format!("{o:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("aws_secret_access_key"), "{shown}");
    }

    #[test]
    fn dlt_credential_names_configure_s3() {
        let o = opts(&[
            ("aws_access_key_id", "minio"),
            ("aws_secret_access_key", "minio123"),
            ("endpoint_url", "http://localhost:9000/"),
            ("region_name", "eu-west-1"),
        ]);
        let b = s3("demo", &o).unwrap();
        assert_eq!(
            b.get_config_value(&AmazonS3ConfigKey::Endpoint).as_deref(),
            Some("http://localhost:9000/")
        );
        assert_eq!(
            b.get_config_value(&AmazonS3ConfigKey::Region).as_deref(),
            Some("eu-west-1")
        );
        assert!(b.build().is_ok());
    }

    #[test]
    fn unknown_keys_and_bad_urls_are_named_without_secrets() {
        let o = opts(&[("aws_acess_key_id", "secret-value")]);
        let e = open("s3://demo/", &o).err().unwrap().to_string();
        assert!(
            e.contains("aws_acess_key_id") && !e.contains("secret-value"),
            "{e}"
        );
        let e = open("ftp://x/", &StoreOptions::default())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("ftp://"), "{e}");
        let e = open("s3:///nobucket", &StoreOptions::default())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("bucket"), "{e}");
        let e = open("/tmp/x", &o).err().unwrap().to_string();
        assert!(
            e.contains("local path") && !e.contains("secret-value"),
            "{e}"
        );
        assert_eq!(
            redact_url("s3://k:topsecret@bucket/p"),
            "s3://k:REDACTED@bucket/p"
        );
    }
}
