//! The files destination: a changelog per table as Parquet or JSONL files on object storage.
//!
//! Layout (dlt's): `<url>/<dataset>/<table>/<load_id>.<n>.<ext>`, plus the checkpoint
//! manifest `<url>/<dataset>/_pgcdc_state/checkpoint.json`. A *load* is what one commit
//! makes durable; its id is a strictly increasing number (microseconds since the epoch,
//! bumped past the previous one), so every data file says which commit it belongs to.
//!
//! Exactly once: data files are written first; the manifest naming the load is written
//! last, atomically (temporary object + rename on local disk, one PUT on object storage,
//! conditional on the version read at open where the store supports it, so a second
//! writer cannot silently overwrite the first one's commit). Large files go up in
//! multipart uploads (`object_store`'s `BufWriter`), completed before the manifest. [`FilesDestination::open`]
//! deletes data files whose load id is newer than the manifest's: they belong to a run
//! that died before its commit, and those changes will be streamed again.
//!
//! On local disk each finished file and the manifest are fsynced, so a commit survives a
//! power loss too.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use async_trait::async_trait;
use futures_util::TryStreamExt;
use object_store::buffered::BufWriter;
use object_store::path::{Path, PathPart};
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload, UpdateVersion};
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use pgcdc_core::{Checkpoint, TableSchema};

use crate::store::StoreOptions;
use crate::{Committed, Destination, Error, ErrorKind, Result};

/// File format of the changelog files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// Apache Parquet (default).
    #[default]
    Parquet,
    /// JSON lines, one object per row.
    Jsonl,
}

impl FileFormat {
    fn extension(self) -> &'static str {
        match self {
            FileFormat::Parquet => "parquet",
            FileFormat::Jsonl => "jsonl",
        }
    }
}

/// Settings of a [`FilesDestination`].
#[derive(Debug, Clone)]
pub struct FilesConfig {
    /// A local path, `file://`, `s3://`, `gs://` or `az://` URL (see [`crate::store`]).
    pub url: String,
    /// Credentials and settings of the object store (secret; redacted in `Debug`).
    pub options: StoreOptions,
    /// Folder under `url` holding this pipeline's tables (dlt's dataset name).
    pub dataset: String,
    /// File format.
    pub format: FileFormat,
    /// zstd compression for Parquet (default true; dlt's `disable_compression` turns it off).
    pub compress: bool,
    /// A file is closed and a new one started past this many bytes (default 256 MiB).
    pub max_file_bytes: usize,
}

impl FilesConfig {
    /// Defaults for a destination at `url` with `dataset`.
    pub fn new(url: impl Into<String>, dataset: impl Into<String>) -> Self {
        FilesConfig {
            url: url.into(),
            options: StoreOptions::default(),
            dataset: dataset.into(),
            format: FileFormat::Parquet,
            compress: true,
            max_file_bytes: 256 << 20,
        }
    }
}

/// The manifest: the committed checkpoint and which load it covers.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    format_version: u32,
    checkpoint: Checkpoint,
    /// Data files with a load id above this are uncommitted.
    load_id: u64,
    #[serde(default)]
    tables: BTreeMap<String, TableSchema>,
}

const MANIFEST_VERSION: u32 = 1;

enum Writer {
    Parquet(Box<AsyncArrowWriter<BufWriter>>),
    Jsonl(Box<BufWriter>),
}

struct OpenFile {
    path: Path,
    schema: SchemaRef,
    writer: Writer,
    bytes: usize,
}

/// Changelog files on object storage. See the [module docs](self).
pub struct FilesDestination {
    config: FilesConfig,
    store: Arc<dyn ObjectStore>,
    /// The local directory behind `store`, for fsync; None for remote stores.
    local_root: Option<PathBuf>,
    manifest: Option<Manifest>,
    /// Version of the manifest object as last read or written, for the conditional put.
    manifest_version: Option<UpdateVersion>,
    /// False once the store said it cannot do conditional puts.
    conditional: bool,
    /// The load being written (assigned at the first write after a commit).
    load_id: Option<u64>,
    next_file: u32,
    open: BTreeMap<String, OpenFile>,
    /// Files finished since the last commit.
    finished: Vec<Path>,
    tables: BTreeMap<String, TableSchema>,
}

impl FilesDestination {
    /// A destination for `config`; nothing is read or written until [`Destination::open`].
    pub fn new(config: FilesConfig) -> Result<Self> {
        let opened = crate::store::open(&config.url, &config.options)?;
        Ok(FilesDestination {
            config,
            store: opened.store,
            conditional: opened.local_root.is_none(),
            local_root: opened.local_root,
            manifest: None,
            manifest_version: None,
            load_id: None,
            next_file: 0,
            open: BTreeMap::new(),
            finished: Vec::new(),
            tables: BTreeMap::new(),
        })
    }

    fn dataset(&self) -> Path {
        Path::from_iter([PathPart::from(self.config.dataset.as_str())])
    }

    fn manifest_path(&self) -> Path {
        self.dataset().join("_pgcdc_state").join("checkpoint.json")
    }

    /// Directory name of a table (object_store percent-encodes unsafe characters).
    fn table_dir(&self, table: &TableSchema) -> Path {
        self.dataset()
            .join(PathPart::from(table.table.name.as_str()))
    }

    async fn read_manifest(&mut self) -> Result<Option<Manifest>> {
        let bytes = match self.store.get(&self.manifest_path()).await {
            Ok(r) => {
                self.manifest_version = Some(UpdateVersion {
                    e_tag: r.meta.e_tag.clone(),
                    version: r.meta.version.clone(),
                });
                r.bytes().await?
            }
            Err(object_store::Error::NotFound { .. }) => {
                self.manifest_version = None;
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
            Error::new(
                ErrorKind::Corrupt,
                format!(
                    "the checkpoint manifest {} cannot be read",
                    self.manifest_path()
                ),
            )
            .with_source(e)
        })?;
        if m.format_version != MANIFEST_VERSION {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "checkpoint manifest format {} is not supported by this pgcdc (expects {MANIFEST_VERSION})",
                    m.format_version
                ),
            ));
        }
        Ok(Some(m))
    }

    async fn write_manifest(&mut self, m: Manifest) -> Result<()> {
        let body = serde_json::to_vec_pretty(&m).map_err(|e| {
            Error::new(ErrorKind::Encode, "serialising the manifest").with_source(e)
        })?;
        let path = self.manifest_path();
        // LocalFileSystem writes a temporary file and renames it into place: atomic.
        // Object stores replace an object in one PUT: atomic too; there the put is
        // conditional on the version this process last saw.
        let payload = PutPayload::from(body);
        let result = if self.conditional {
            let mode = match &self.manifest_version {
                Some(v) => PutMode::Update(v.clone()),
                None => PutMode::Create,
            };
            match self.store.put_opts(&path, payload.clone(), mode.into()).await {
                Err(
                    object_store::Error::NotImplemented { .. }
                    | object_store::Error::NotSupported { .. },
                ) => {
                    tracing::debug!("the object store has no conditional put; overwriting the manifest");
                    self.conditional = false;
                    self.store.put(&path, payload).await?
                }
                Err(
                    e @ (object_store::Error::Precondition { .. }
                    | object_store::Error::AlreadyExists { .. }),
                ) => {
                    return Err(Error::new(
                        ErrorKind::Corrupt,
                        format!(
                            "the checkpoint manifest {path} was changed by another writer since this run read it; is a second pgcdc writing to the same destination and dataset? Stop it and rerun"
                        ),
                    )
                    .with_source(e))
                }
                other => other?,
            }
        } else {
            self.store.put(&path, payload).await?
        };
        self.manifest_version = Some(UpdateVersion {
            e_tag: result.e_tag,
            version: result.version,
        });
        self.sync_local(&path, true).await?;
        self.manifest = Some(m);
        Ok(())
    }

    /// Deletes data files newer than the committed load (left by an interrupted run).
    async fn remove_uncommitted(&mut self, committed_load: u64) -> Result<usize> {
        let objects: Vec<_> = self.store.list(Some(&self.dataset())).try_collect().await?;
        let mut removed = 0;
        for meta in objects {
            let Some(name) = meta.location.filename() else {
                continue;
            };
            if parse_load_id(name).is_some_and(|id| id > committed_load) {
                tracing::info!(file = %meta.location, "removing uncommitted file of an interrupted run");
                self.store.delete(&meta.location).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn now_micros() -> u64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        u64::try_from(now.as_micros()).unwrap_or(u64::MAX)
    }

    fn current_load(&mut self) -> u64 {
        if let Some(id) = self.load_id {
            return id;
        }
        let floor = self.manifest.as_ref().map_or(0, |m| m.load_id + 1);
        let id = Self::now_micros().max(floor);
        self.load_id = Some(id);
        self.next_file = 0;
        id
    }

    async fn start_file(&mut self, table: &TableSchema, schema: SchemaRef) -> Result<OpenFile> {
        let load = self.current_load();
        let n = self.next_file;
        self.next_file += 1;
        let name = format!("{load}.{n}.{}", self.config.format.extension());
        let path = self.table_dir(table).join(name);
        let upload = BufWriter::new(Arc::clone(&self.store), path.clone());
        let writer = match self.config.format {
            FileFormat::Parquet => {
                let compression = if self.config.compress {
                    Compression::ZSTD(ZstdLevel::default())
                } else {
                    Compression::UNCOMPRESSED
                };
                let props = writer_properties(compression);
                let writer = AsyncArrowWriter::try_new(upload, Arc::clone(&schema), Some(props))?;
                Writer::Parquet(Box::new(writer))
            }
            FileFormat::Jsonl => Writer::Jsonl(Box::new(upload)),
        };
        Ok(OpenFile {
            path,
            schema,
            writer,
            bytes: 0,
        })
    }

    async fn finish_file(&mut self, file: OpenFile) -> Result<()> {
        match file.writer {
            Writer::Parquet(w) => {
                w.close().await?;
            }
            Writer::Jsonl(mut w) => w.shutdown().await?,
        }
        self.sync_local(&file.path, false).await?;
        self.finished.push(file.path);
        Ok(())
    }

    async fn finish_all(&mut self) -> Result<()> {
        let open = std::mem::take(&mut self.open);
        for (_, file) in open {
            self.finish_file(file).await?;
        }
        Ok(())
    }

    /// fsyncs a file (and with `dir`, its directory) when the store is a local disk.
    async fn sync_local(&mut self, path: &Path, dir: bool) -> Result<()> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        let mut full = root.clone();
        for part in path.parts() {
            full.push(part.as_ref());
        }
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::File::open(&full)?.sync_all()?;
            if dir {
                if let Some(parent) = full.parent() {
                    std::fs::File::open(parent)?.sync_all()?;
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Unavailable, "fsync task failed").with_source(e))??;
        Ok(())
    }
}

/// The load id of a data file name `<load_id>.<n>.<ext>`; None for other names.
/// The Parquet writer settings of every Parquet file the sink writes (changelog files,
/// Delta data files, DuckDB staging files): `compression`, and row groups of 128 Ki rows
/// (readers skip and parallelise by row group; the writer buffers one in memory).
pub(crate) fn writer_properties(compression: Compression) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(128 * 1024))
        .build()
}

fn parse_load_id(name: &str) -> Option<u64> {
    let mut parts = name.split('.');
    let load = parts.next()?.parse().ok()?;
    parts.next()?.parse::<u32>().ok()?;
    match parts.next()? {
        "parquet" | "jsonl" => Some(load),
        _ => None,
    }
}

#[async_trait]
impl Destination for FilesDestination {
    fn describe(&self) -> String {
        format!(
            "{} (dataset {})",
            crate::store::redact_url(&self.config.url),
            self.config.dataset
        )
    }

    async fn open(&mut self) -> Result<Option<Committed>> {
        self.open.clear();
        self.finished.clear();
        self.load_id = None;
        let Some(m) = self.read_manifest().await? else {
            self.manifest = None;
            return Ok(None);
        };
        let removed = self.remove_uncommitted(m.load_id).await?;
        if removed > 0 {
            tracing::warn!(
                removed,
                "removed files of an interrupted run; their changes will be replayed"
            );
        }
        self.tables = m.tables.clone();
        let committed = Committed {
            checkpoint: m.checkpoint.clone(),
            tables: m.tables.values().cloned().collect(),
        };
        self.manifest = Some(m);
        Ok(Some(committed))
    }

    async fn read_committed(&mut self) -> Result<Option<Committed>> {
        let m = self.read_manifest().await?;
        // Remembered, so that a commit without an `open` still knows the committed load
        // (a manifest naming load 0 would disown every data file).
        self.manifest.clone_from(&m);
        Ok(m.map(|m| Committed {
            checkpoint: m.checkpoint,
            tables: m.tables.into_values().collect(),
        }))
    }

    async fn initialize(&mut self, checkpoint: &Checkpoint, replace: bool) -> Result<bool> {
        if self.read_manifest().await?.is_some() && !replace {
            return Ok(false);
        }
        let load_id = Self::now_micros().max(self.manifest.as_ref().map_or(0, |m| m.load_id + 1));
        self.write_manifest(Manifest {
            format_version: MANIFEST_VERSION,
            checkpoint: checkpoint.clone(),
            load_id,
            tables: BTreeMap::new(),
        })
        .await?;
        self.tables.clear();
        Ok(true)
    }

    async fn write(&mut self, table: &TableSchema, rows: RecordBatch) -> Result<()> {
        if rows.num_rows() == 0 {
            return Ok(());
        }
        let key = table.table.name.clone();
        self.tables.insert(key.clone(), table.clone());
        // A new schema (or a full file) closes the table's current file.
        let reuse = self
            .open
            .get(&key)
            .is_some_and(|f| f.schema == rows.schema() && f.bytes < self.config.max_file_bytes);
        if !reuse {
            if let Some(old) = self.open.remove(&key) {
                self.finish_file(old).await?;
            }
            let file = self.start_file(table, rows.schema()).await?;
            self.open.insert(key.clone(), file);
        }
        let Some(file) = self.open.get_mut(&key) else {
            return Err(Error::new(ErrorKind::Encode, "internal: no open file"));
        };
        file.bytes += rows.get_array_memory_size();
        match &mut file.writer {
            Writer::Parquet(w) => w.write(&rows).await?,
            Writer::Jsonl(w) => {
                let mut buf = Vec::with_capacity(rows.get_array_memory_size());
                {
                    let mut jw = arrow_json::LineDelimitedWriter::new(&mut buf);
                    jw.write(&rows)?;
                    jw.finish()?;
                }
                w.write_all(&buf).await?;
            }
        }
        Ok(())
    }

    async fn commit(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        if self.manifest.is_none() {
            self.manifest = self.read_manifest().await?;
        }
        // Table schemas of earlier commits stay in the manifest, whatever this process wrote.
        if let Some(m) = &self.manifest {
            for (name, t) in &m.tables {
                self.tables.entry(name.clone()).or_insert_with(|| t.clone());
            }
        }
        self.finish_all().await?;
        crate::failpoint("files.after_data_files");
        let previous = self.manifest.as_ref().map_or(0, |m| m.load_id);
        let load_id = self.load_id.unwrap_or(previous);
        self.write_manifest(Manifest {
            format_version: MANIFEST_VERSION,
            checkpoint: checkpoint.clone(),
            load_id,
            tables: self.tables.clone(),
        })
        .await?;
        crate::failpoint("files.after_manifest");
        self.finished.clear();
        self.load_id = None;
        Ok(())
    }

    async fn rollback(&mut self) -> Result<()> {
        self.finish_all().await?;
        for path in std::mem::take(&mut self.finished) {
            self.store.delete(&path).await?;
        }
        self.load_id = None;
        if let Some(m) = &self.manifest {
            self.tables = m.tables.clone();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_ids_are_read_from_data_file_names_only() {
        assert_eq!(
            parse_load_id("1732512345123456.0.parquet"),
            Some(1732512345123456)
        );
        assert_eq!(parse_load_id("17.3.jsonl"), Some(17));
        assert_eq!(parse_load_id("checkpoint.json"), None);
        assert_eq!(parse_load_id("17.x.parquet"), None);
        assert_eq!(parse_load_id("17.1.csv"), None);
    }
}
