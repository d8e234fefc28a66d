//! reco's lakehouse tables: schemas (DESIGN §4), writers that store Kafka offsets atomically
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
mod feed;
pub mod gold;
mod parquet_log;
pub mod read;
pub mod schema;

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
};

pub use compact::{COMPACT_APP_ID, CompactPolicy, CompactStats, Compactor};
pub use deltalake;
pub use error::{Error, Result};
pub use feed::SilverFeed;
pub use gold::{GoldRow, GoldTable, GoldWindow};
pub use read::StoredIds;
pub use schema::{DeadLetterRow, SilverRow};

/// Table format (`STORAGE_FORMAT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Delta,
    Parquet,
}

/// A lakehouse root folder and its table format.
#[derive(Clone, Debug)]
pub struct Lake {
    pub root: PathBuf,
    pub format: Format,
}

impl Lake {
    pub fn new(root: impl Into<PathBuf>, format: Format) -> Result<Lake> {
        let root = root.into();
        check_local(&root)?;
        std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
        let root = root.canonicalize().map_err(|e| Error::io(&root, e))?;
        Ok(Lake { root, format })
    }

    pub fn silver_path(&self, topic: &str) -> PathBuf {
        self.root.join("silver").join(topic)
    }

    pub fn deadletter_path(&self, topic: &str) -> PathBuf {
        self.root.join("silver").join("_deadletter").join(topic)
    }

    pub fn batch_log_path(&self, topic: &str) -> PathBuf {
        self.root.join("_checkpoints").join("stream_kafka_to_silver").join(topic)
    }
}

/// Refuses a lake location that is a URL (`s3://bucket/lake`, `file:///data`): taken as a path
/// it would become a local folder named `s3:` in the working directory, silently.
pub fn check_local(location: &Path) -> Result<()> {
    let text = location.to_string_lossy();
    if let Some((scheme, _)) = text.split_once("://")
        && !scheme.is_empty()
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return Err(Error::UnsupportedLocation { location: text.to_string(), scheme: scheme.to_owned() });
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataFile {
    pub path: PathBuf,
    pub event_date: Option<i32>,
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

/// Test-only fault injection: `RECO_FAULT=crash_before_commit` aborts the process after a
/// batch's data files are written and before the commit that would make them visible;
/// `RECO_FAULT=crash_between_commits` after a Delta batch's dead-letter commit and before its
/// silver commit.
fn crash_point(name: &str) {
    if std::env::var("RECO_FAULT").is_ok_and(|v| v == name) {
        eprintln!("RECO_FAULT={name}: aborting");
        std::process::abort();
    }
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).to_string_lossy().into_owned()
}
