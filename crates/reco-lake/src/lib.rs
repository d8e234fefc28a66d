//! reco's lakehouse tables: schemas (CONTRACTS §4), writers that store Kafka offsets atomically
//! with the rows, and readers.
//!
//! Two formats behind one type, [`TopicTables`]: Delta Lake (the default; offsets are Delta
//! `txn` actions in the same commit as the rows, one app id per topic-partition, as
//! kafka-delta-ingest does) and plain Parquet with a batch log (one JSON entry per batch
//! listing the files of the silver and dead-letter tables and the offsets; a file not in the
//! log is invisible to readers).
//!
//! Every commit is a compare-and-set on the stored offsets: it names the offsets it expects
//! to be stored and fails with [`CommitOutcome::Conflict`] when another writer moved them, so
//! two workers that both believe they own a partition can never both write its records.

mod compact;
mod delta;
mod error;
pub mod fault;
mod feed;
pub mod gold;
mod parquet_log;
pub mod read;
pub mod schema;
pub mod store;

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    sync::Arc,
};

use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

pub use bytes;
pub use compact::{COMPACT_APP_ID, CompactPolicy, CompactStats, Compactor};
pub use deltalake;
pub use error::{Error, Result};
pub use feed::SilverFeed;
pub use gold::{GoldTable, TrendingRow, WindowRows};
pub use read::StoredIds;
pub use schema::{DeadLetterRow, SilverRow};

/// Table format (`STORAGE_FORMAT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Delta,
    Parquet,
}

/// A lakehouse location (a local folder or an object store URL) and its table format.
#[derive(Clone)]
pub struct Lake {
    /// The lake's URL, ending in `/` (`file:///srv/lake/`, `s3://bucket/lake/`).
    url: Url,
    /// The folder of a local lake.
    local: Option<PathBuf>,
    pub format: Format,
    /// The store rooted at the lake: keys are relative to the lake location.
    store: Arc<dyn ObjectStore>,
    /// Storage options given besides the environment (tests; see [`Lake::open_with`]).
    options: HashMap<String, String>,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake").field("location", &self.display()).field("format", &self.format).finish()
    }
}

/// Lake-relative keys of the tables.
pub fn silver_key(topic: &str) -> String {
    format!("silver/{topic}")
}

pub fn deadletter_key(topic: &str) -> String {
    format!("silver/_deadletter/{topic}")
}

impl Lake {
    /// A lake in a local folder, created if missing.
    pub fn new(root: impl Into<PathBuf>, format: Format) -> Result<Lake> {
        let root = root.into();
        check_local(&root)?;
        std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
        let root = root.canonicalize().map_err(|e| Error::io(&root, e))?;
        let url = Url::from_directory_path(&root).map_err(|()| Error::Io {
            path: root.display().to_string(),
            source: std::io::Error::other("not an absolute path"),
        })?;
        let store = store::lake_store(&url, Some(&root), &HashMap::new())?;
        Ok(Lake { url, local: Some(root), format, store, options: HashMap::new() })
    }

    /// A lake at `location`: a folder (`./data`, `file:///srv/lake`) or an object store URL
    /// (`s3://bucket/prefix`, `gs://…`, `az://…`). Any other URL is refused, as is the Parquet
    /// format on object storage (its batch log commits by hard link; see
    /// docs/ARCHITECTURE.md, "The lake on object storage").
    pub fn open(location: &str, format: Format) -> Result<Lake> {
        Lake::open_with(location, format, HashMap::new())
    }

    /// [`Lake::open`] with object store options on top of the environment's (the keys of
    /// object_store and delta-rs storage options: `aws_endpoint`, `aws_access_key_id`, …).
    pub fn open_with(location: &str, format: Format, options: HashMap<String, String>) -> Result<Lake> {
        match store::local_folder(location)? {
            Some(folder) => Lake::new(folder, format),
            None => {
                if format == Format::Parquet {
                    return Err(Error::ParquetOnObjectStore { location: location.to_owned() });
                }
                store::register();
                let text = if location.ends_with('/') { location.to_owned() } else { format!("{location}/") };
                let url = Url::parse(&text).map_err(|e| Error::Store {
                    location: location.to_owned(),
                    source: Box::new(object_store::Error::Generic { store: "url", source: Box::new(e) }),
                })?;
                let store = store::lake_store(&url, None, &options)?;
                Ok(Lake { url, local: None, format, store, options })
            }
        }
    }

    /// The folder of a local lake; `None` on object storage.
    pub fn local_root(&self) -> Option<&Path> {
        self.local.as_deref()
    }

    /// The lake's URL, ending in `/`.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The lake as users wrote it: a folder path, or the URL.
    pub fn display(&self) -> String {
        match &self.local {
            Some(root) => root.display().to_string(),
            None => self.url.as_str().trim_end_matches('/').to_owned(),
        }
    }

    /// Opens the Delta table at `url` with the lake's storage options.
    pub async fn open_delta(&self, url: Url) -> std::result::Result<deltalake::DeltaTable, deltalake::DeltaTableError> {
        deltalake::open_table_with_storage_options(url, self.options.clone()).await
    }

    pub(crate) fn options(&self) -> &HashMap<String, String> {
        &self.options
    }

    /// The store rooted at the lake (keys relative to the lake location).
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The URL of the table (or folder) at lake-relative `key`, ending in `/`.
    pub fn table_url(&self, key: &str) -> Url {
        self.url.join(&format!("{}/", key.trim_matches('/'))).unwrap_or_else(|_| self.url.clone())
    }

    /// A data file at lake-relative `key`; its `event_date` is read from the key.
    pub fn data_file(&self, key: &str) -> DataFile {
        let event_date = read::partition_date(Path::new(key));
        match &self.local {
            Some(root) => DataFile::local(root.join(key), event_date),
            None => DataFile { key: key.to_owned(), event_date, source: Source::Store(self.store.clone()) },
        }
    }

    /// Fails unless the lake can be listed and, with `write`, written: a missing bucket or
    /// credentials that do not work stop a service at start, naming the variables to check.
    pub async fn check(&self, write: bool) -> Result<()> {
        if self.local.is_some() {
            return Ok(());
        }
        let store = self.store.clone();
        let probe = object_store::path::Path::from(format!("_reco/write-check-{}", uuid::Uuid::now_v7()));
        let result = store::io(async move {
            use futures::TryStreamExt;
            store.list(Some(&object_store::path::Path::from("_reco"))).try_next().await?;
            if write {
                store.put(&probe, bytes::Bytes::from_static(b"reco").into()).await?;
                store.delete(&probe).await?;
            }
            Ok::<_, object_store::Error>(())
        })
        .await;
        result.map_err(|source| Error::StoreCheck {
            location: self.display(),
            variables: store::credential_variables(self.url.scheme()),
            source: Box::new(source),
        })
    }

    pub fn silver_path(&self, topic: &str) -> PathBuf {
        self.local_path(&silver_key(topic))
    }

    pub fn deadletter_path(&self, topic: &str) -> PathBuf {
        self.local_path(&deadletter_key(topic))
    }

    pub fn batch_log_path(&self, topic: &str) -> PathBuf {
        self.local_path(&format!("_checkpoints/stream_kafka_to_silver/{topic}"))
    }

    /// The local path of `key` (Parquet tables, which exist only in local lakes).
    fn local_path(&self, key: &str) -> PathBuf {
        match &self.local {
            Some(root) => root.join(key),
            None => PathBuf::from(key),
        }
    }
}

/// Whether anything exists under the lake-relative folder `key` (a table's `_delta_log`).
pub async fn exists(lake: &Lake, key: &str) -> Result<bool> {
    if let Some(root) = lake.local_root() {
        return Ok(root.join(key).is_dir());
    }
    let (store, prefix) = (lake.store.clone(), object_store::path::Path::from(key));
    let found = store::io(async move {
        use futures::TryStreamExt;
        store.list(Some(&prefix)).try_next().await.map(|first| first.is_some())
    })
    .await;
    found.map_err(|source| Error::Store { location: format!("{}/{key}", lake.display()), source: Box::new(source) })
}

/// Refuses a lake location that is a URL (`s3://bucket/lake`, `file:///data`) where a folder
/// is needed (the embedded broker's data): taken as a path it would become a local folder named
/// `s3:` in the working directory, silently.
pub fn check_local(location: &Path) -> Result<()> {
    let text = location.to_string_lossy();
    if let Some(scheme) = store::url_scheme(&text) {
        return Err(Error::UnsupportedLocation { location: text.to_string(), scheme: scheme.to_owned() });
    }
    let bad = |reason: String| Err(Error::BadFolder { location: text.to_string(), reason });
    // `s3//bucket` or `s3:/bucket` would quietly become a folder `./s3/bucket`.
    for scheme in store::SCHEMES {
        if [format!("{scheme}//"), format!("{scheme}:/"), format!("{scheme}:")].iter().any(|p| text.starts_with(p)) {
            return bad(format!("looks like an object store URL written wrong; write {scheme}://bucket/prefix"));
        }
    }
    if location.exists() && !location.is_dir() {
        return bad("is a file, not a folder".into());
    }
    Ok(())
}

/// One batch to commit for one topic.
#[derive(Clone, Debug, Default)]
pub struct StreamBatch {
    pub silver: Vec<SilverRow>,
    pub deadletter: Vec<DeadLetterRow>,
    /// Per partition: the next offset stored before this batch (`None`: nothing stored yet),
    /// and the next offset after it.
    pub offsets: BTreeMap<i32, (Option<i64>, i64)>,
    /// What the writer knew of Kafka, recorded with the commit for the gold job.
    pub upstream: Option<Upstream>,
}

/// What a silver writer knew of Kafka when it committed, for every topic it consumes (not only
/// the one committed): the gold job's watermark waits for inputs that exist or have data it has
/// not seen yet, instead of judging them by its own clock alone (docs/ARCHITECTURE.md, "Gold:
/// the window core").
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Upstream {
    /// Per topic: its partition count (Kafka metadata). Every partition is an input from the
    /// first commit that names it, so one whose first rows arrive late holds the watermark.
    pub partitions: BTreeMap<String, i32>,
    /// Per topic: the writer's partitions Kafka holds more records of than it has read (high
    /// watermark past its position). Not idle, whatever gold's clock says: "no rows yet" means
    /// "not read yet" there.
    pub behind: BTreeMap<String, Vec<i32>>,
    /// Per topic: the writer's partitions whose Kafka log held no record when it asked (log
    /// start = end) and none of whose records are in its batch. Gold holds no watermark for
    /// such a partition until its first rows come: there is nothing of it to wait for, and a
    /// partition no client ever wrote to would otherwise hold every window open until it idled.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub empty: BTreeMap<String, Vec<i32>>,
    /// Per topic: the end offset (high watermark) of every partition whose Kafka log holds
    /// records, the writer's or not. Beside [`Upstream::read`] of the partition's own writer,
    /// it tells gold of records no writer has read yet: a dead or stopped writer's partitions,
    /// which another writer's commits still describe until the group hands them over.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub log_ends: BTreeMap<String, BTreeMap<i32, i64>>,
    /// Per partition of the committed topic assigned to the writer: the next offset it reads,
    /// past what the commit holds (and past transaction markers it read).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub read: BTreeMap<i32, i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CommitOutcome {
    Committed(CommitStats),
    /// The stored offsets of `partition` are not what the batch expected: another writer
    /// committed it. Nothing of this batch is visible.
    Conflict {
        partition: i32,
    },
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct CommitStats {
    /// Version of the silver table (Delta) or of the batch log (Parquet) after the commit.
    pub version: i64,
    pub silver_rows: usize,
    pub deadletter_rows: usize,
    /// Bytes of the data files written.
    pub bytes: u64,
}

/// The stored "next offset" of each partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredOffsets {
    /// Offsets committed with the silver rows: where consumption resumes.
    pub silver: HashMap<i32, i64>,
    /// Offsets committed with dead-letter rows. Ahead of `silver` only after a crash between
    /// the two Delta commits; records below it are already dead-lettered and must be skipped.
    pub deadletter: HashMap<i32, i64>,
}

/// A data file of a table and its `event_date` partition, when partitioned.
#[derive(Clone, Debug)]
pub struct DataFile {
    /// The local path, or the key in the lake's object store.
    pub key: String,
    pub event_date: Option<i32>,
    source: Source,
}

#[derive(Clone)]
enum Source {
    Local(PathBuf),
    Store(Arc<dyn ObjectStore>),
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Local(_) => f.write_str("Local"),
            Source::Store(store) => write!(f, "Store({store})"),
        }
    }
}

impl PartialEq for DataFile {
    fn eq(&self, other: &DataFile) -> bool {
        self.key == other.key && self.event_date == other.event_date
    }
}

impl Eq for DataFile {}

impl DataFile {
    /// A data file on the local file system.
    pub fn local(path: PathBuf, event_date: Option<i32>) -> DataFile {
        DataFile { key: path.to_string_lossy().into_owned(), event_date, source: Source::Local(path) }
    }

    /// The local path, for a file in a local lake.
    pub fn local_path(&self) -> Option<&Path> {
        match &self.source {
            Source::Local(path) => Some(path),
            Source::Store(_) => None,
        }
    }

    /// The whole file from its object store (files of local lakes are read in place).
    pub(crate) fn fetch(&self) -> Result<bytes::Bytes> {
        let Source::Store(store) = &self.source else {
            let path = PathBuf::from(&self.key);
            return std::fs::read(&path).map(Into::into).map_err(|e| Error::io(&path, e));
        };
        let (store, key) = (store.clone(), object_store::path::Path::from(self.key.as_str()));
        store::io_blocking(async move { store.get(&key).await?.bytes().await })
            .map_err(|source| Error::Store { location: self.key.clone(), source: Box::new(source) })
    }
}

/// The silver and dead-letter tables of one topic.
#[derive(Debug)]
pub enum TopicTables {
    Delta(Box<delta::DeltaTopic>),
    Parquet(parquet_log::ParquetTopic),
}

impl TopicTables {
    /// Opens the tables of `topic`, creating them on first use. An existing table whose
    /// schema differs from ours is an error, never silently written to.
    pub async fn open(lake: &Lake, topic: &str, with_rating: bool) -> Result<TopicTables> {
        Ok(match lake.format {
            Format::Delta => TopicTables::Delta(Box::new(delta::DeltaTopic::open(lake, topic, with_rating).await?)),
            Format::Parquet => TopicTables::Parquet(parquet_log::ParquetTopic::open(lake, topic, with_rating)?),
        })
    }

    /// Refreshes and returns the stored offsets of `partitions`.
    pub async fn stored_offsets(&mut self, partitions: &[i32]) -> Result<StoredOffsets> {
        match self {
            TopicTables::Delta(t) => t.stored_offsets(partitions).await,
            TopicTables::Parquet(t) => t.stored_offsets(partitions),
        }
    }

    /// Commits a batch atomically with its offsets (compare-and-set, see the crate docs).
    pub async fn commit(&mut self, batch: StreamBatch) -> Result<CommitOutcome> {
        match self {
            TopicTables::Delta(t) => t.commit(batch).await,
            TopicTables::Parquet(t) => t.commit(batch),
        }
    }

    /// The committed data files of the silver table (refreshed first).
    pub async fn silver_files(&mut self) -> Result<Vec<DataFile>> {
        match self {
            TopicTables::Delta(t) => t.silver_files().await,
            TopicTables::Parquet(t) => t.files(false),
        }
    }

    /// The committed data files of the dead-letter table (refreshed first).
    pub async fn deadletter_files(&mut self) -> Result<Vec<DataFile>> {
        match self {
            TopicTables::Delta(t) => t.deadletter_files().await,
            TopicTables::Parquet(t) => t.files(true),
        }
    }
}

/// The Delta `txn` app id that stores a partition's offset.
pub fn app_id(topic: &str, partition: i32) -> String {
    format!("reco-silver:{topic}:{partition}")
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn a_lake_folder_that_cannot_be_meant_is_refused_by_name() {
        let typo = check_local(Path::new("s3//bucket/prefix")).unwrap_err().to_string();
        assert!(typo.contains("LAKEHOUSE_PATH=s3//bucket/prefix") && typo.contains("s3://bucket/prefix"), "{typo}");
        assert!(check_local(Path::new("gs:/bucket")).is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lake");
        std::fs::write(&file, b"x").unwrap();
        let not_dir = Lake::new(&file, Format::Delta).unwrap_err().to_string();
        assert!(not_dir.contains("is a file, not a folder"), "{not_dir}");
        check_local(&dir.path().join("s3/bucket")).expect("a folder named s3 inside another is fine");
        check_local(Path::new("./data")).unwrap();
    }
}
