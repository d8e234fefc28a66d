//! Reading committed files back as typed rows (tests, de-duplication state, the gold job).

use std::{fs::File, path::Path};

use chrono::NaiveDate;
use deltalake::{
    arrow::{
        array::{Array, AsArray, Float64Array, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray},
        datatypes::{Float64Type, Int32Type, Int64Type, TimestampMicrosecondType},
    },
    parquet::arrow::{ProjectionMask, arrow_reader::ParquetRecordBatchReaderBuilder},
};

use crate::{DataFile, DeadLetterRow, Error, Result, SilverRow};

const EPOCH: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(d) => d,
    None => unreachable!(),
};

/// `YYYY-MM-DD` of days since the epoch.
pub fn format_date(days: i32) -> String {
    EPOCH.checked_add_signed(chrono::Duration::days(days.into())).map(|d| d.to_string()).unwrap_or_default()
}

/// The `event_date=YYYY-MM-DD` directory a file sits in, as days since the epoch.
pub fn partition_date(path: &Path) -> Option<i32> {
    path.components().find_map(|c| {
        let s = c.as_os_str().to_str()?.strip_prefix("event_date=")?;
        let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
        Some((date - EPOCH).num_days() as i32)
    })
}

/// Reads the named columns of a data file (all of them when `columns` is empty): in place
/// for a local file, fetched whole from an object store.
pub fn read_batches(file: &DataFile, columns: &[&str]) -> Result<Vec<RecordBatch>> {
    match file.local_path() {
        Some(path) => read_parquet(path, columns),
        None => read_parquet_bytes(file.fetch()?, columns),
    }
}

/// Reads the named columns of a local Parquet file (all of them when `columns` is empty).
pub fn read_parquet(path: &Path, columns: &[&str]) -> Result<Vec<RecordBatch>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    decode(ParquetRecordBatchReaderBuilder::try_new(file)?, columns)
}

/// Reads the named columns of a Parquet file held in memory.
pub fn read_parquet_bytes(bytes: bytes::Bytes, columns: &[&str]) -> Result<Vec<RecordBatch>> {
    decode(ParquetRecordBatchReaderBuilder::try_new(bytes)?, columns)
}

fn decode<T: deltalake::parquet::file::reader::ChunkReader + 'static>(
    builder: ParquetRecordBatchReaderBuilder<T>,
    columns: &[&str],
) -> Result<Vec<RecordBatch>> {
    let builder = if columns.is_empty() {
        builder
    } else {
        let schema = builder.parquet_schema();
        let indices: Vec<usize> =
            (0..schema.num_columns()).filter(|i| columns.contains(&schema.column(*i).name())).collect();
        let mask = ProjectionMask::leaves(schema, indices);
        builder.with_projection(mask)
    };
    let reader = builder.with_batch_size(64 * 1024).build()?;
    reader.collect::<Result<Vec<_>, _>>().map_err(Into::into)
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a dyn Array> {
    batch.column_by_name(name).map(|c| c.as_ref()).ok_or_else(|| Error::Arrow(format!("column {name} missing")))
}

fn opt_str(a: &dyn Array, i: usize) -> Option<String> {
    (!a.is_null(i)).then(|| a.as_string::<i32>().value(i).to_owned())
}

/// Every silver row in `files`.
pub fn read_silver(files: &[DataFile]) -> Result<Vec<SilverRow>> {
    let mut rows = Vec::new();
    for f in files {
        for b in read_batches(f, &[])? {
            let (id, user, item) = (column(&b, "event_id")?, column(&b, "user_id")?, column(&b, "item_id")?);
            let time = column(&b, "event_time")?.as_primitive::<TimestampMicrosecondType>();
            let session = column(&b, "session_id")?;
            let rating = b.column_by_name("rating").map(|c| c.as_primitive::<Float64Type>().clone());
            let partition = column(&b, "kafka_partition")?.as_primitive::<Int32Type>();
            let offset = column(&b, "kafka_offset")?.as_primitive::<Int64Type>();
            let ingested = column(&b, "ingested_at")?.as_primitive::<TimestampMicrosecondType>();
            for i in 0..b.num_rows() {
                rows.push(SilverRow {
                    event_id: id.as_string::<i32>().value(i).to_owned(),
                    user_id: user.as_string::<i32>().value(i).to_owned(),
                    item_id: item.as_string::<i32>().value(i).to_owned(),
                    event_time_us: time.value(i),
                    session_id: opt_str(session, i),
                    rating: rating.as_ref().map(|r| r.value(i)),
                    kafka_partition: partition.value(i),
                    kafka_offset: offset.value(i),
                    ingested_at_us: ingested.value(i),
                });
            }
        }
    }
    Ok(rows)
}

/// Every dead-letter row in `files`.
pub fn read_deadletter(files: &[DataFile]) -> Result<Vec<DeadLetterRow>> {
    let mut rows = Vec::new();
    for f in files {
        for b in read_batches(f, &[])? {
            let topic = column(&b, "kafka_topic")?;
            let partition = column(&b, "kafka_partition")?.as_primitive::<Int32Type>();
            let offset = column(&b, "kafka_offset")?.as_primitive::<Int64Type>();
            let ts = column(&b, "kafka_timestamp")?.as_primitive::<TimestampMicrosecondType>();
            let key = column(&b, "key")?.as_binary::<i32>();
            let payload = column(&b, "payload")?.as_binary::<i32>();
            let (kind, message) = (column(&b, "error_kind")?, column(&b, "error_message")?);
            let at = column(&b, "dead_lettered_at")?.as_primitive::<TimestampMicrosecondType>();
            for i in 0..b.num_rows() {
                rows.push(DeadLetterRow {
                    kafka_topic: topic.as_string::<i32>().value(i).to_owned(),
                    kafka_partition: partition.value(i),
                    kafka_offset: offset.value(i),
                    kafka_timestamp_us: (!ts.is_null(i)).then(|| ts.value(i)),
                    key: (!key.is_null(i)).then(|| key.value(i).to_vec()),
                    payload: (!payload.is_null(i)).then(|| payload.value(i).to_vec()),
                    error_kind: kind.as_string::<i32>().value(i).to_owned(),
                    error_message: message.as_string::<i32>().value(i).to_owned(),
                    dead_lettered_at_us: at.value(i),
                });
            }
        }
    }
    Ok(rows)
}

/// The silver rows of `partition` in `files`: de-duplication state and the last row committed.
pub fn read_ids(files: &[DataFile], partition: i32) -> Result<StoredIds> {
    let mut out = StoredIds::default();
    // The last row committed: the newest `ingested_at`, then the highest offset.
    let mut last: Option<(i64, i64, usize)> = None;
    for f in files {
        for b in read_batches(f, &["event_id", "event_time", "kafka_partition", "kafka_offset", "ingested_at"])? {
            let id = column(&b, "event_id")?.as_string::<i32>();
            let time = column(&b, "event_time")?.as_primitive::<TimestampMicrosecondType>();
            let p = column(&b, "kafka_partition")?.as_primitive::<Int32Type>();
            let offset = column(&b, "kafka_offset")?.as_primitive::<Int64Type>();
            let ingested = column(&b, "ingested_at")?.as_primitive::<TimestampMicrosecondType>();
            for i in 0..b.num_rows() {
                if p.value(i) == partition {
                    let key = (ingested.value(i), offset.value(i), out.ids.len());
                    if last.is_none_or(|l| (key.0, key.1) > (l.0, l.1)) {
                        last = Some(key);
                    }
                    out.ids.push((id.value(i).to_owned(), time.value(i)));
                }
            }
        }
    }
    out.last = last.map(|(_, offset, i)| (offset, out.ids[i].0.clone()));
    Ok(out)
}

/// The silver rows of one Kafka partition, as the silver job needs them on start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredIds {
    /// `(event_id, event_time_us)` of every row.
    pub ids: Vec<(String, i64)>,
    /// `(kafka_offset, event_id)` of the row committed last: the record Kafka must still hold
    /// at that offset if its log is the one silver read (see the silver job's reset check).
    pub last: Option<(i64, String)>,
}

/// One silver row as the gold job reads it, borrowed from its [`EventBatch`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SilverEvent<'a> {
    pub item_id: &'a str,
    pub event_time_us: i64,
    /// The Kafka partition it was read from: each partition of each table is an input with a
    /// watermark of its own.
    pub kafka_partition: i32,
    /// Empty when read without users.
    pub user_id: &'a str,
    pub session_id: Option<&'a str>,
    pub rating: Option<f64>,
}

/// Silver rows of one record batch, column by column (no allocation per row).
#[derive(Clone, Debug)]
pub struct EventBatch {
    item: StringArray,
    time: TimestampMicrosecondArray,
    partition: Int32Array,
    user: Option<StringArray>,
    session: Option<StringArray>,
    rating: Option<Float64Array>,
}

impl EventBatch {
    pub fn len(&self) -> usize {
        self.item.len()
    }

    pub fn is_empty(&self) -> bool {
        self.item.is_empty()
    }

    /// The `i`-th row.
    pub fn event(&self, i: usize) -> SilverEvent<'_> {
        SilverEvent {
            item_id: self.item.value(i),
            event_time_us: self.time.value(i),
            kafka_partition: self.partition.value(i),
            user_id: self.user.as_ref().map_or("", |u| u.value(i)),
            session_id: self.session.as_ref().and_then(|s| (!s.is_null(i)).then(|| s.value(i))),
            rating: self.rating.as_ref().and_then(|r| (!r.is_null(i)).then(|| r.value(i))),
        }
    }

    /// Every row, in order.
    pub fn events(&self) -> impl Iterator<Item = SilverEvent<'_>> {
        (0..self.len()).map(|i| self.event(i))
    }
}

/// The silver rows in `files` as the gold job reads them: item, event time and partition, and
/// with `users` the user, session and rating too (the columns cost reading only when asked).
pub fn read_events(files: &[DataFile], users: bool) -> Result<Vec<EventBatch>> {
    let mut columns = vec!["item_id", "event_time", "kafka_partition"];
    if users {
        columns.extend(["user_id", "session_id", "rating"]);
    }
    let mut out = Vec::new();
    for f in files {
        for b in read_batches(f, &columns)? {
            let optional = |name: &str| b.column_by_name(name).filter(|_| users);
            out.push(EventBatch {
                item: column(&b, "item_id")?.as_string::<i32>().clone(),
                time: column(&b, "event_time")?.as_primitive::<TimestampMicrosecondType>().clone(),
                partition: column(&b, "kafka_partition")?.as_primitive::<Int32Type>().clone(),
                user: optional("user_id").map(|c| c.as_string::<i32>().clone()),
                session: optional("session_id").map(|c| c.as_string::<i32>().clone()),
                rating: optional("rating").map(|c| c.as_primitive::<Float64Type>().clone()),
            });
        }
    }
    Ok(out)
}
