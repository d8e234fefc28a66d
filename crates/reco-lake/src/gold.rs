//! Gold trending tables (DESIGN §5): one row set per window, replaced as a whole.
//!
//! Each window's rows are one data file, so replacing a window never rewrites another.
//! Delta: one commit per [`GoldTable::replace`] removes the old files of the replaced windows
//! and adds the new ones; readers of any version see exactly one row set per window. The
//! window a file holds is read from the `window_start` statistics delta-rs writes into the
//! `add` action (or from the file itself when a writer left no statistics).
//! Parquet: `<table>/<window start>.parquet`, replaced by writing a hidden temporary file and
//! renaming it over the old one, which is atomic; tools that read a folder of Parquet files
//! (pyarrow, Spark, DuckDB) skip names starting with `.`.

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::Arc,
};

use chrono::{DateTime, Utc};
use deltalake::{
    DeltaTable,
    arrow::{
        array::{
            ArrayRef, AsArray, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
            TimestampMicrosecondBuilder,
        },
        datatypes::{DataType, Field, Float64Type, Int32Type, Int64Type, Schema, SchemaRef, TimeUnit},
        error::ArrowError,
    },
    kernel::{
        Action, Remove, Transaction,
        transaction::{CommitBuilder, CommitProperties},
    },
    protocol::{DeltaOperation, SaveMode},
    writer::{DeltaWriter, RecordBatchWriter},
};

use crate::{DataFile, Error, Format, Lake, Result, delta::open_or_create, read::read_batches};

/// The Delta app id of the gold writer's lease number on gold commits.
pub const FENCE_APP_ID: &str = "reco-gold-lease";

/// The gold table of a window length, e.g. `trending_now_1h` for `1h`.
pub fn table_name(window: &str) -> String {
    format!("trending_now_{window}")
}

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

pub fn gold_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("window_start", timestamp(), false),
        Field::new("window_end", timestamp(), false),
        Field::new("item_id", DataType::Utf8, false),
        Field::new("views", DataType::Int64, false),
        Field::new("clicks", DataType::Int64, false),
        Field::new("score", DataType::Float64, false),
        Field::new("rank", DataType::Int32, false),
        // False for a provisional publication (before the watermark passed the window's end).
        Field::new("complete", DataType::Boolean, false),
        Field::new("computed_at", timestamp(), false),
    ]))
}

#[derive(Clone, Debug, PartialEq)]
pub struct GoldRow {
    pub window_start_us: i64,
    pub window_end_us: i64,
    pub item_id: String,
    pub views: i64,
    pub clicks: i64,
    pub score: f64,
    pub rank: i32,
    pub complete: bool,
    pub computed_at_us: i64,
}

/// The complete row set of one window, replacing whatever the table held for it.
#[derive(Clone, Debug, PartialEq)]
pub struct GoldWindow {
    pub start_us: i64,
    pub rows: Vec<GoldRow>,
}

pub fn gold_batch(rows: &[GoldRow]) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut start = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut end = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut item = StringBuilder::with_capacity(n, n * 8);
    let (mut views, mut clicks) = (Int64Builder::with_capacity(n), Int64Builder::with_capacity(n));
    let mut score = Float64Builder::with_capacity(n);
    let mut rank = Int32Builder::with_capacity(n);
    let mut complete = BooleanBuilder::with_capacity(n);
    let mut computed = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    for r in rows {
        start.append_value(r.window_start_us);
        end.append_value(r.window_end_us);
        item.append_value(&r.item_id);
        views.append_value(r.views);
        clicks.append_value(r.clicks);
        score.append_value(r.score);
        rank.append_value(r.rank);
        complete.append_value(r.complete);
        computed.append_value(r.computed_at_us);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(start.finish()),
        Arc::new(end.finish()),
        Arc::new(item.finish()),
        Arc::new(views.finish()),
        Arc::new(clicks.finish()),
        Arc::new(score.finish()),
        Arc::new(rank.finish()),
        Arc::new(complete.finish()),
        Arc::new(computed.finish()),
    ];
    RecordBatch::try_new(gold_schema(), columns)
}

/// Every row of a gold data file, in rank order.
pub fn read_gold(file: &DataFile) -> Result<Vec<GoldRow>> {
    use deltalake::arrow::datatypes::TimestampMicrosecondType as Ts;
    let mut rows = Vec::new();
    for b in read_batches(file, &[])? {
        let col = |name: &str| b.column_by_name(name).ok_or_else(|| Error::Arrow(format!("column {name} missing")));
        let (start, end) = (col("window_start")?.as_primitive::<Ts>(), col("window_end")?.as_primitive::<Ts>());
        let item = col("item_id")?.as_string::<i32>();
        let (views, clicks) = (col("views")?.as_primitive::<Int64Type>(), col("clicks")?.as_primitive::<Int64Type>());
        let score = col("score")?.as_primitive::<Float64Type>();
        let rank = col("rank")?.as_primitive::<Int32Type>();
        let complete = col("complete")?.as_boolean();
        let computed = col("computed_at")?.as_primitive::<Ts>();
        for i in 0..b.num_rows() {
            rows.push(GoldRow {
                window_start_us: start.value(i),
                window_end_us: end.value(i),
                item_id: item.value(i).to_owned(),
                views: views.value(i),
                clicks: clicks.value(i),
                score: score.value(i),
                rank: rank.value(i),
                complete: complete.value(i),
                computed_at_us: computed.value(i),
            });
        }
    }
    rows.sort_by_key(|r| r.rank);
    Ok(rows)
}

/// A gold table: which file holds each window, and replacement of windows.
#[derive(Debug)]
pub struct GoldTable {
    lake: Lake,
    /// Lake-relative key of the table (`gold/trending_now_1h`).
    key: String,
    inner: Inner,
    /// Window start → the data file holding its rows.
    windows: BTreeMap<i64, DataFile>,
    /// The writer's lease number, stamped on every commit (see [`GoldTable::fence`]).
    fence: Option<i64>,
}

#[derive(Debug)]
enum Inner {
    Delta { table: Box<DeltaTable>, version: i64, sizes: HashMap<String, i64> },
    Parquet { dir: PathBuf, listing: BTreeMap<String, (u64, Option<std::time::SystemTime>)> },
}

impl GoldTable {
    /// Opens the table `name` under `<lake>/gold`, creating it on first use.
    pub async fn open(lake: &Lake, name: &str) -> Result<GoldTable> {
        let key = format!("gold/{name}");
        let shown = lake.table_url(&key).to_string();
        let old_table = || Error::OldGoldTable {
            table: shown.clone(),
            gold_dir: lake.table_url("gold").to_string(),
            checkpoints: lake.table_url("_checkpoints/gold").to_string(),
        };
        let inner = match lake.format {
            Format::Delta => {
                let table = match open_or_create(lake, &key, gold_schema(), &[]).await {
                    Err(Error::SchemaMismatch { details, .. })
                        if details.rsplit_once("found ").is_some_and(|(_, found)| !found.contains("\"complete\"")) =>
                    {
                        return Err(old_table());
                    }
                    other => other?,
                };
                Inner::Delta { table: Box::new(table), version: -1, sizes: HashMap::new() }
            }
            Format::Parquet => {
                let root = lake.local_root().ok_or_else(|| Error::ParquetOnObjectStore { location: lake.display() })?;
                let dir = root.join(&key);
                std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                Inner::Parquet { dir, listing: BTreeMap::new() }
            }
        };
        let mut t = GoldTable { lake: lake.clone(), key, inner, windows: BTreeMap::new(), fence: None };
        t.refresh().await?;
        if let (Format::Parquet, Some(file)) = (lake.format, t.windows.values().next()) {
            let path = PathBuf::from(&file.key);
            let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
            let reader = deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?;
            if reader.schema().field_with_name("complete").is_err() {
                return Err(old_table());
            }
        }
        Ok(t)
    }

    /// Opens the table if a writer created it already; readers (the API) never create tables.
    pub async fn open_existing(lake: &Lake, name: &str) -> Result<Option<GoldTable>> {
        let key = format!("gold/{name}");
        let exists = match (lake.format, lake.local_root()) {
            (Format::Parquet, Some(root)) => root.join(&key).is_dir(),
            _ => crate::exists(lake, &format!("{key}/_delta_log")).await?,
        };
        if exists { GoldTable::open(lake, name).await.map(Some) } else { Ok(None) }
    }

    /// Stamps every later commit with the writer's lease number `seq` (a Delta `txn` action of
    /// app id [`FENCE_APP_ID`]). Delta refuses a commit whose app id a concurrent or newer
    /// commit also carries, so a writer that lost its lease while paused cannot write after
    /// its successor did: the successor's commits carry the same app id.
    pub fn fence(&mut self, seq: i64) {
        self.fence = Some(seq);
    }

    /// Window start → data file, as of the last refresh or replace.
    pub fn windows(&self) -> &BTreeMap<i64, DataFile> {
        &self.windows
    }

    /// The rows of the window starting at `start_us`, if published.
    pub fn read_window(&self, start_us: i64) -> Result<Option<Vec<GoldRow>>> {
        self.windows.get(&start_us).map(read_gold).transpose()
    }

    /// Every row of every window (tests, audits).
    pub fn read_all(&self) -> Result<BTreeMap<i64, Vec<GoldRow>>> {
        self.windows.iter().map(|(s, p)| Ok((*s, read_gold(p)?))).collect()
    }

    /// Picks up commits made by other processes; true when anything changed.
    pub async fn refresh(&mut self) -> Result<bool> {
        match &mut self.inner {
            Inner::Delta { table, version, sizes } => {
                let name = table.table_url().to_string();
                let err = |source| Error::Delta { table: name.clone(), source: Box::new(source) };
                table.update_state().await.map_err(err)?;
                let latest = table.version().map_or(-1, |v| v as i64);
                if latest == *version {
                    return Ok(false);
                }
                // Rebuild from the snapshot: simple, and a few thousand files parse in milliseconds.
                self.windows.clear();
                sizes.clear();
                let snapshot = table.snapshot().map_err(err)?;
                for file in snapshot.log_data().iter() {
                    let rel = file.path().to_string();
                    let path = self.lake.data_file(&format!("{}/{rel}", self.key));
                    let start = match file.stats().as_deref().and_then(stats_window_start) {
                        Some(s) => s,
                        None => match read_gold(&path)?.first() {
                            Some(r) => r.window_start_us,
                            None => continue,
                        },
                    };
                    sizes.insert(rel, file.size());
                    self.windows.insert(start, path);
                }
                *version = latest;
                Ok(true)
            }
            Inner::Parquet { dir, listing } => {
                let mut now = BTreeMap::new();
                let entries = std::fs::read_dir(&*dir).map_err(|e| Error::io(dir, e))?;
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.starts_with('.') || !name.ends_with(".parquet") {
                        continue;
                    }
                    let meta = entry.metadata().ok();
                    now.insert(name, (meta.as_ref().map_or(0, |m| m.len()), meta.and_then(|m| m.modified().ok())));
                }
                if &now == listing {
                    return Ok(false);
                }
                self.windows = now
                    .keys()
                    .filter_map(|name| Some((parse_file_name(name)?, DataFile::local(dir.join(name), None))))
                    .collect();
                *listing = now;
                Ok(true)
            }
        }
    }

    /// Replaces the row sets of `windows`, and removes every other window starting in `clear`
    /// (a backfill's range), atomically for readers of the table.
    pub async fn replace(&mut self, windows: Vec<GoldWindow>, clear: Option<(i64, i64)>) -> Result<()> {
        let mut gone: Vec<i64> = match clear {
            Some((from, to)) => self.windows.range(from..to).map(|(s, _)| *s).collect(),
            None => Vec::new(),
        };
        gone.retain(|s| !windows.iter().any(|w| w.start_us == *s));
        match &mut self.inner {
            Inner::Delta { table, version, sizes } => {
                let name = table.table_url().to_string();
                let err = |source| Error::Delta { table: name.clone(), source: Box::new(source) };
                let mut actions = Vec::new();
                let mut added = Vec::new();
                for w in &windows {
                    if w.rows.is_empty() {
                        gone.push(w.start_us);
                        continue;
                    }
                    let mut writer = RecordBatchWriter::for_table(table).map_err(err)?;
                    writer.write(gold_batch(&w.rows)?).await.map_err(err)?;
                    for add in writer.flush().await.map_err(err)? {
                        added.push((w.start_us, add.path.clone(), add.size));
                        actions.push(Action::Add(add));
                    }
                }
                let replaced = windows.iter().map(|w| w.start_us).chain(gone.iter().copied());
                let deletion_timestamp = Some(Utc::now().timestamp_millis());
                for start in replaced {
                    let Some(file) = self.windows.get(&start) else { continue };
                    let rel = relative(&self.key, file);
                    actions.push(Action::Remove(Remove {
                        size: sizes.get(&rel).copied(),
                        path: rel,
                        data_change: true,
                        deletion_timestamp,
                        extended_file_metadata: Some(true),
                        partition_values: Some(HashMap::new()),
                        tags: None,
                        deletion_vector: None,
                        base_row_id: None,
                        default_row_commit_version: None,
                    }));
                }
                if actions.is_empty() {
                    return Ok(());
                }
                let starts: Vec<String> = windows.iter().map(|w| format_ts(w.start_us)).collect();
                let operation = DeltaOperation::Write {
                    mode: SaveMode::Overwrite,
                    partition_by: None,
                    predicate: Some(format!("window_start IN ({})", starts.join(", "))),
                };
                let snapshot = table.snapshot().map_err(err)?;
                let txns = self.fence.map(|seq| Transaction::new(FENCE_APP_ID, seq)).into_iter().collect();
                let done = CommitBuilder::from(CommitProperties::default().with_application_transactions(txns))
                    .with_actions(actions)
                    .build(Some(snapshot), table.log_store(), operation)
                    .await
                    .map_err(err)?;
                let committed = done.version() as i64;
                table.update_state().await.map_err(err)?;
                for start in &gone {
                    if let Some(f) = self.windows.remove(start) {
                        sizes.remove(&relative(&self.key, &f));
                    }
                }
                for (start, rel, size) in added {
                    let file = self.lake.data_file(&format!("{}/{rel}", self.key));
                    if let Some(old) = self.windows.insert(start, file) {
                        sizes.remove(&relative(&self.key, &old));
                    }
                    sizes.insert(rel, size);
                }
                *version = table.version().map_or(committed, |v| v as i64);
                Ok(())
            }
            Inner::Parquet { dir, .. } => {
                for w in &windows {
                    if w.rows.is_empty() {
                        gone.push(w.start_us);
                        continue;
                    }
                    let path = dir.join(file_name(w.start_us));
                    let tmp = dir.join(format!(".tmp-{}.parquet", uuid::Uuid::now_v7()));
                    let mut written = Vec::new();
                    crate::parquet_log::write_parquet_to(&tmp, &gold_batch(&w.rows)?, &mut written)?;
                    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
                    self.windows.insert(w.start_us, DataFile::local(path, None));
                }
                for start in gone {
                    if let Some(file) = self.windows.remove(&start) {
                        let path = PathBuf::from(&file.key);
                        std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
                    }
                }
                crate::parquet_log::sync_dir(dir);
                Ok(())
            }
        }
    }
}

/// A data file's path relative to its table, as Delta actions name it.
fn relative(table_key: &str, file: &DataFile) -> String {
    let path = match file.local_path() {
        Some(local) => local.to_string_lossy().into_owned(),
        None => file.key.clone(),
    };
    match path.split_once(&format!("{table_key}/")) {
        Some((_, rel)) => rel.to_owned(),
        None => path,
    }
}

/// `window_start` of a file from its Delta statistics (`minValues`, an RFC 3339 string).
pub fn stats_window_start(stats: &str) -> Option<i64> {
    let v: serde_json::Value = serde_json::from_str(stats).ok()?;
    let s = v.get("minValues")?.get("window_start")?.as_str()?;
    Some(DateTime::parse_from_rfc3339(s).ok()?.timestamp_micros())
}

fn format_ts(us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(us).map(|t| t.to_rfc3339()).unwrap_or_else(|| us.to_string())
}

/// `20190101T000500Z.parquet`: sortable, no characters object stores or shells mind.
fn file_name(start_us: i64) -> String {
    match DateTime::<Utc>::from_timestamp_micros(start_us) {
        Some(t) if start_us % 1_000_000 == 0 => format!("{}.parquet", t.format("%Y%m%dT%H%M%SZ")),
        _ => format!("{start_us}.parquet"),
    }
}

fn parse_file_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".parquet")?;
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(stem, "%Y%m%dT%H%M%SZ") {
        return Some(t.and_utc().timestamp_micros());
    }
    stem.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip() {
        for us in [0, 1_546_300_800_000_000, 1_546_301_100_000_000, 123] {
            assert_eq!(parse_file_name(&file_name(us)), Some(us));
        }
    }

    #[test]
    fn window_start_from_delta_stats() {
        let stats = r#"{"numRecords":2,"minValues":{"window_start":"2019-01-01T00:05:00.000Z"},"maxValues":{}}"#;
        assert_eq!(stats_window_start(stats), Some(1_546_301_100_000_000));
        assert_eq!(stats_window_start("{}"), None);
    }
}
