//! Gold tables: rows grouped into **row sets**, each one data file, replaced as a whole.
//!
//! A row set is what an aggregate publishes at once: a trending window (keyed by
//! `window_start`), a bucket of items' neighbour lists (keyed by `bucket`). Replacing a row set
//! never rewrites another, and readers of any version see exactly one row set per key.
//! What a table holds is its [`Shape`] (schema and key column); every shape is written by the
//! same code, per format (the shapes: `trending.rs`, `neighbors.rs`):
//! - Delta (`delta.rs`): one commit per [`GoldTable::replace`] removes the old files of the
//!   replaced keys and adds the new ones. The key of a file is read from the statistics
//!   delta-rs writes into the `add` action (or from the file when a writer left none).
//! - Parquet (`parquet.rs`): `<table>/<key>.parquet`, replaced by writing a hidden temporary
//!   file and renaming it over the old one, which is atomic; tools that read a folder of
//!   Parquet files (pyarrow, Spark, DuckDB) skip names starting with `.`.

mod delta;
pub mod neighbors;
mod parquet;
pub mod trending;

use std::{collections::BTreeMap, convert::Infallible};

use chrono::{DateTime, Utc};
use deltalake::arrow::{
    array::{AsArray, RecordBatch},
    datatypes::{DataType, Int32Type, Int64Type, SchemaRef, TimeUnit, TimestampMicrosecondType},
};

pub use trending::{TrendingRow, WindowRows, read_gold, table_name};

use crate::{DataFile, Error, Format, Lake, Result, read::read_batches};

/// The Delta app id of the gold writer's lease number on gold commits.
pub const FENCE_APP_ID: &str = "reco-gold-lease";

pub(crate) fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// What a gold table holds: its schema, and the column whose value names a row set (every row
/// of a row set has the same value there).
#[derive(Debug)]
pub struct Shape {
    pub schema: SchemaRef,
    /// A timestamp or integer column.
    pub key: &'static str,
    /// The key is a time (file names of the Parquet format show it as one).
    pub time_key: bool,
}

/// The shape of the gold table `name`: the lake's layout knows every gold table reco writes.
pub fn shape(name: &str) -> Option<&'static Shape> {
    if name == neighbors::TABLE {
        return Some(&neighbors::SHAPE);
    }
    name.starts_with("trending_now_").then(|| &*trending::SHAPE)
}

/// The rows of one key, replacing whatever the table held for it; no rows removes it.
#[derive(Clone, Debug)]
pub struct RowSet {
    pub key: i64,
    pub batch: RecordBatch,
}

impl From<Infallible> for Error {
    fn from(never: Infallible) -> Error {
        match never {}
    }
}

/// A gold table: which file holds each row set, and replacement of row sets.
#[derive(Debug)]
pub struct GoldTable {
    lake: Lake,
    /// Lake-relative key of the table (`gold/trending_now_1h`).
    key: String,
    shape: &'static Shape,
    inner: Inner,
    /// Row-set key → the data file holding its rows.
    sets: BTreeMap<i64, DataFile>,
    /// The writer's lease number, stamped on every commit (see [`GoldTable::fence`]).
    fence: Option<i64>,
}

#[derive(Debug)]
enum Inner {
    Delta(delta::DeltaGold),
    Parquet(parquet::ParquetGold),
}

impl GoldTable {
    /// Opens the table `name` under `<lake>/gold`, creating it on first use.
    pub async fn open(lake: &Lake, name: &str) -> Result<GoldTable> {
        let key = format!("gold/{name}");
        let shape = shape(name).ok_or_else(|| Error::Arrow(format!("{name} is not a gold table reco writes")))?;
        let inner = match lake.format {
            Format::Delta => Inner::Delta(delta::DeltaGold::open(lake, &key, shape).await?),
            Format::Parquet => Inner::Parquet(parquet::ParquetGold::open(lake, &key)?),
        };
        let mut t = GoldTable { lake: lake.clone(), key, shape, inner, sets: BTreeMap::new(), fence: None };
        t.refresh().await?;
        if let (Inner::Parquet(p), Some(file)) = (&t.inner, t.sets.values().next())
            && p.lacks_columns(file, shape)
        {
            return Err(t.old_table());
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

    /// A table written by an earlier reco with fewer columns (gold tables are derived data:
    /// recomputed from silver rather than migrated).
    fn old_table(&self) -> Error {
        Error::OldGoldTable {
            table: self.lake.table_url(&self.key).to_string(),
            gold_dir: self.lake.table_url("gold").to_string(),
            checkpoints: self.lake.table_url("_checkpoints/gold").to_string(),
        }
    }

    /// Stamps every later commit with the writer's lease number `seq` (a Delta `txn` action of
    /// app id [`FENCE_APP_ID`]). Delta refuses a commit whose app id a concurrent or newer
    /// commit also carries, so a writer that lost its lease while paused cannot write after
    /// its successor did: the successor's commits carry the same app id.
    pub fn fence(&mut self, seq: i64) {
        self.fence = Some(seq);
    }

    /// Row-set key → data file, as of the last refresh or replace.
    pub fn row_sets(&self) -> &BTreeMap<i64, DataFile> {
        &self.sets
    }

    /// Picks up commits made by other processes; true when anything changed.
    pub async fn refresh(&mut self) -> Result<bool> {
        match &mut self.inner {
            Inner::Delta(d) => d.refresh(&self.lake, &self.key, self.shape, &mut self.sets).await,
            Inner::Parquet(p) => p.refresh(&mut self.sets),
        }
    }

    /// Replaces the row sets of `sets`, and removes every other row set whose key is in
    /// `clear` (a backfill's range, the windows retention drops), atomically for readers.
    pub async fn replace<S>(&mut self, sets: Vec<S>, clear: Option<(i64, i64)>) -> Result<()>
    where
        S: TryInto<RowSet>,
        Error: From<S::Error>,
    {
        let sets: Vec<RowSet> = sets.into_iter().map(|s| s.try_into().map_err(Error::from)).collect::<Result<_>>()?;
        let mut gone: Vec<i64> = match clear {
            Some((from, to)) => self.sets.range(from..to).map(|(s, _)| *s).collect(),
            None => Vec::new(),
        };
        gone.retain(|s| !sets.iter().any(|w| w.key == *s));
        let (written, gone): (Vec<RowSet>, Vec<i64>) = {
            let (full, empty): (Vec<RowSet>, Vec<RowSet>) = sets.into_iter().partition(|s| s.batch.num_rows() > 0);
            (full, gone.into_iter().chain(empty.into_iter().map(|s| s.key)).collect())
        };
        match &mut self.inner {
            Inner::Delta(d) => {
                d.replace(&self.lake, &self.key, self.shape, &mut self.sets, written, gone, self.fence).await
            }
            Inner::Parquet(p) => p.replace(self.shape, &mut self.sets, written, gone),
        }
    }
}

/// A row set's key from a data file's Delta statistics (`minValues`: an RFC 3339 string for a
/// timestamp, a number for an integer).
pub fn stats_key(stats: &str, column: &str) -> Option<i64> {
    let v: serde_json::Value = serde_json::from_str(stats).ok()?;
    let min = v.get("minValues")?.get(column)?;
    match min.as_str() {
        Some(s) => Some(DateTime::parse_from_rfc3339(s).ok()?.timestamp_micros()),
        None => min.as_i64(),
    }
}

/// `window_start` of a trending file from its Delta statistics.
pub fn stats_window_start(stats: &str) -> Option<i64> {
    stats_key(stats, "window_start")
}

/// A row set's key read from its file (the first row's key column), for files without stats.
fn read_key(file: &DataFile, column: &str) -> Result<Option<i64>> {
    for b in read_batches(file, &[column])? {
        let Some(c) = b.column_by_name(column) else { continue };
        if b.num_rows() == 0 {
            continue;
        }
        return Ok(Some(match c.data_type() {
            DataType::Timestamp(..) => c.as_primitive::<TimestampMicrosecondType>().value(0),
            DataType::Int32 => c.as_primitive::<Int32Type>().value(0).into(),
            _ => c.as_primitive::<Int64Type>().value(0),
        }));
    }
    Ok(None)
}

fn format_ts(us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(us).map(|t| t.to_rfc3339()).unwrap_or_else(|| us.to_string())
}

/// `20190101T000500Z.parquet` for a time key, `00042.parquet` for a number: sortable, no
/// characters object stores or shells mind.
fn file_name(shape: &Shape, key: i64) -> String {
    match DateTime::<Utc>::from_timestamp_micros(key) {
        Some(t) if shape.time_key && key % 1_000_000 == 0 => format!("{}.parquet", t.format("%Y%m%dT%H%M%SZ")),
        _ if !shape.time_key && key >= 0 => format!("{key:05}.parquet"),
        _ => format!("{key}.parquet"),
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
            assert_eq!(parse_file_name(&file_name(&trending::SHAPE, us)), Some(us));
        }
        let numbered = Shape { schema: trending::schema(), key: "bucket", time_key: false };
        for key in [0, 42, 99_999, 123_456, -3] {
            assert_eq!(parse_file_name(&file_name(&numbered, key)), Some(key));
        }
    }

    #[test]
    fn keys_from_delta_stats() {
        let stats =
            r#"{"numRecords":2,"minValues":{"window_start":"2019-01-01T00:05:00.000Z","bucket":7},"maxValues":{}}"#;
        assert_eq!(stats_window_start(stats), Some(1_546_301_100_000_000));
        assert_eq!(stats_key(stats, "bucket"), Some(7));
        assert_eq!(stats_window_start("{}"), None);
    }
}
