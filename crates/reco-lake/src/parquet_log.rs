//! Plain Parquet tables plus a batch log (CONTRACTS §4).
//!
//! `<lake>/_checkpoints/stream_kafka_to_silver/<topic>/<version>.json`, one entry per batch:
//! the files it added to the silver and dead-letter tables and the offsets after it (all
//! partitions, so the newest entry alone gives the resume point). An entry is created by
//! hard-linking a fully written, synced temporary file to its final name, which fails if the
//! name exists: that is the atomic commit and the compare-and-set between writers. Silver and
//! dead-letter files of one batch are in one entry, so they are visible together or not at
//! all. A data file no entry names (a crash before the commit) is never read and is removed
//! at the next start once it is old enough not to belong to a commit in progress.

use std::{
    collections::{BTreeMap, HashSet},
    fs::File,
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use deltalake::{
    arrow::array::RecordBatch,
    parquet::{arrow::ArrowWriter, basic::Compression, file::properties::WriterProperties},
};
use serde::{Deserialize, Serialize};

use crate::{
    CommitOutcome, CommitStats, DataFile, Error, Lake, Result, StoredOffsets, StreamBatch,
    fault::crash_point,
    relative,
    schema::{SilverRow, date_of, deadletter_batch, silver_batch},
};

/// Orphaned files younger than this may belong to another worker's commit in progress.
const ORPHAN_MIN_AGE: Duration = Duration::from_secs(15 * 60);

#[derive(Clone, Debug, Serialize, Deserialize)]
struct FileEntry {
    /// Relative to the lake root.
    path: String,
    rows: usize,
    bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event_date: Option<i32>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct LogEntry {
    version: i64,
    committed_at: String,
    silver: Vec<FileEntry>,
    deadletter: Vec<FileEntry>,
    /// Next offset per partition after this batch, for every partition ever committed.
    offsets: BTreeMap<i32, i64>,
    /// What the writer knew of Kafka (see `StreamBatch::upstream`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upstream: Option<crate::Upstream>,
}

#[derive(Debug)]
pub struct ParquetTopic {
    root: PathBuf,
    log_dir: PathBuf,
    silver_dir: PathBuf,
    deadletter_dir: PathBuf,
    with_rating: bool,
    entries: Vec<LogEntry>,
}

impl ParquetTopic {
    pub fn open(lake: &Lake, topic: &str, with_rating: bool) -> Result<ParquetTopic> {
        let root = lake.local_root().ok_or_else(|| Error::ParquetOnObjectStore { location: lake.display() })?;
        let mut t = ParquetTopic {
            root: root.to_path_buf(),
            log_dir: lake.batch_log_path(topic),
            silver_dir: lake.silver_path(topic),
            deadletter_dir: lake.deadletter_path(topic),
            with_rating,
            entries: Vec::new(),
        };
        for dir in [&t.log_dir, &t.silver_dir, &t.deadletter_dir] {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        t.refresh()?;
        t.remove_orphans();
        Ok(t)
    }

    fn entry_path(&self, version: i64) -> PathBuf {
        self.log_dir.join(format!("{version:020}.json"))
    }

    /// Reads entries committed since the last refresh.
    fn refresh(&mut self) -> Result<()> {
        loop {
            let next = self.entries.last().map_or(0, |e| e.version + 1);
            let path = self.entry_path(next);
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(Error::io(&path, e)),
            };
            let entry: LogEntry = serde_json::from_str(&text)
                .map_err(|e| Error::BatchLog { path: path.display().to_string(), message: e.to_string() })?;
            self.entries.push(entry);
        }
    }

    fn current_offsets(&self) -> BTreeMap<i32, i64> {
        self.entries.last().map(|e| e.offsets.clone()).unwrap_or_default()
    }

    pub fn stored_offsets(&mut self, partitions: &[i32]) -> Result<StoredOffsets> {
        self.refresh()?;
        let offsets = self.current_offsets();
        let silver: std::collections::HashMap<i32, i64> =
            partitions.iter().filter_map(|p| offsets.get(p).map(|o| (*p, *o))).collect();
        // One log covers both tables, so they never disagree.
        Ok(StoredOffsets { deadletter: silver.clone(), silver })
    }

    pub fn commit(&mut self, batch: StreamBatch) -> Result<CommitOutcome> {
        self.refresh()?;
        let current = self.current_offsets();
        for (p, (expected, _)) in &batch.offsets {
            if current.get(p) != expected.as_ref() {
                return Ok(CommitOutcome::Conflict { partition: *p });
            }
        }
        let mut written = Vec::new();
        let result = self.write_and_commit(batch, current, &mut written);
        if !matches!(result, Ok(CommitOutcome::Committed(_))) {
            for f in &written {
                let _ = std::fs::remove_file(f);
            }
        }
        result
    }

    fn write_and_commit(
        &mut self,
        batch: StreamBatch,
        mut offsets: BTreeMap<i32, i64>,
        written: &mut Vec<PathBuf>,
    ) -> Result<CommitOutcome> {
        let mut by_date: BTreeMap<i32, Vec<SilverRow>> = BTreeMap::new();
        for row in batch.silver {
            by_date.entry(date_of(row.event_time_us)).or_default().push(row);
        }
        let mut silver = Vec::new();
        for (date, rows) in by_date {
            let dir = self.silver_dir.join(format!("event_date={}", crate::read::format_date(date)));
            let file = write_parquet(&dir, &silver_batch(&rows, self.with_rating)?, written)?;
            silver.push(FileEntry {
                path: relative(&self.root, &file.0),
                rows: rows.len(),
                bytes: file.1,
                event_date: Some(date),
            });
        }
        let mut deadletter = Vec::new();
        if !batch.deadletter.is_empty() {
            let file = write_parquet(&self.deadletter_dir, &deadletter_batch(&batch.deadletter)?, written)?;
            deadletter.push(FileEntry {
                path: relative(&self.root, &file.0),
                rows: batch.deadletter.len(),
                bytes: file.1,
                event_date: None,
            });
        }
        for (p, (_, end)) in &batch.offsets {
            offsets.insert(*p, *end);
        }
        crash_point("crash_before_commit");

        let version = self.entries.last().map_or(0, |e| e.version + 1);
        let committed_at = chrono::Utc::now().to_rfc3339();
        let upstream = batch.upstream.clone();
        let entry = LogEntry { version, committed_at, silver, deadletter, offsets, upstream };
        let stats = CommitStats {
            version,
            silver_rows: entry.silver.iter().map(|f| f.rows).sum(),
            deadletter_rows: entry.deadletter.iter().map(|f| f.rows).sum(),
            bytes: entry.silver.iter().chain(&entry.deadletter).map(|f| f.bytes).sum(),
        };
        let tmp = self.log_dir.join(format!(".tmp-{}.json", uuid::Uuid::now_v7()));
        let json = serde_json::to_vec_pretty(&entry)
            .map_err(|e| Error::BatchLog { path: tmp.display().to_string(), message: e.to_string() })?;
        write_synced(&tmp, &json)?;
        let final_path = self.entry_path(version);
        let linked = std::fs::hard_link(&tmp, &final_path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                sync_dir(&self.log_dir);
                self.entries.push(entry);
                Ok(CommitOutcome::Committed(stats))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                self.refresh()?;
                Ok(CommitOutcome::Conflict { partition: batch.offsets.keys().next().copied().unwrap_or_default() })
            }
            Err(e) => Err(Error::io(&final_path, e)),
        }
    }

    pub fn files(&mut self, deadletter: bool) -> Result<Vec<DataFile>> {
        self.refresh()?;
        Ok(self
            .entries
            .iter()
            .flat_map(|e| if deadletter { &e.deadletter } else { &e.silver })
            .map(|f| DataFile::local(self.root.join(&f.path), f.event_date))
            .collect())
    }

    /// Removes data files no log entry names, when old enough (see [`ORPHAN_MIN_AGE`]).
    fn remove_orphans(&self) {
        let named: HashSet<PathBuf> = self
            .entries
            .iter()
            .flat_map(|e| e.silver.iter().chain(&e.deadletter))
            .map(|f| self.root.join(&f.path))
            .collect();
        for dir in [&self.silver_dir, &self.deadletter_dir] {
            for file in parquet_files(dir) {
                let old = std::fs::metadata(&file)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .is_some_and(|age| age > ORPHAN_MIN_AGE);
                if old && !named.contains(&file) {
                    tracing::info!(file = %file.display(), "removing a data file of an uncommitted batch");
                    let _ = std::fs::remove_file(&file);
                }
            }
        }
    }
}

/// What gold reads of one batch-log entry or Delta commit of a silver table.
#[derive(Debug, Default)]
pub(crate) struct EntryInfo {
    pub files: Vec<DataFile>,
    pub upstream: Option<crate::Upstream>,
}

/// The silver files of batch-log entry `version` of `topic` and what its writer knew of Kafka;
/// `None` when not committed (yet).
pub(crate) fn entry_silver_files(lake: &Lake, topic: &str, version: i64) -> Result<Option<EntryInfo>> {
    let path = lake.batch_log_path(topic).join(format!("{version:020}.json"));
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let entry: LogEntry = serde_json::from_str(&text)
        .map_err(|e| Error::BatchLog { path: path.display().to_string(), message: e.to_string() })?;
    let root = lake.local_root().ok_or_else(|| Error::ParquetOnObjectStore { location: lake.display() })?;
    let files = entry.silver.iter().map(|f| DataFile::local(root.join(&f.path), f.event_date)).collect();
    Ok(Some(EntryInfo { files, upstream: entry.upstream }))
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(parquet_files(&path));
        } else if path.extension().is_some_and(|e| e == "parquet") {
            out.push(path);
        }
    }
    out
}

/// Writes one Parquet file (zstd) and syncs it; returns its path and size.
fn write_parquet(dir: &Path, batch: &RecordBatch, written: &mut Vec<PathBuf>) -> Result<(PathBuf, u64)> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join(format!("part-{}.parquet", uuid::Uuid::now_v7()));
    let bytes = write_parquet_to(&path, batch, written)?;
    Ok((path, bytes))
}

/// Writes `batch` to `path` (zstd) and syncs it; returns its size.
pub(crate) fn write_parquet_to(path: &Path, batch: &RecordBatch, written: &mut Vec<PathBuf>) -> Result<u64> {
    let path = path.to_path_buf();
    let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
    written.push(path.clone());
    let props = WriterProperties::builder().set_compression(Compression::ZSTD(Default::default())).build();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props))?;
    writer.write(batch)?;
    let file = writer.into_inner()?;
    file.sync_all().map_err(|e| Error::io(&path, e))?;
    Ok(file.metadata().map(|m| m.len()).unwrap_or(0))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| Error::io(path, e))
}

pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
