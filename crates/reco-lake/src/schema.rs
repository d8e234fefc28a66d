//! Table schemas (CONTRACTS §4) and the rows that fill them.

use std::sync::Arc;

use deltalake::arrow::{
    array::{
        ArrayRef, BinaryBuilder, Date32Builder, Float64Builder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
        TimestampMicrosecondBuilder,
    },
    datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit},
    error::ArrowError,
};

/// The partition column of silver tables.
pub const EVENT_DATE: &str = "event_date";

const UTC: &str = "UTC";

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
}

/// Schema of a silver events table; `with_rating` for `events_ratings` only.
pub fn silver_schema(with_rating: bool) -> SchemaRef {
    let mut fields = vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("user_id", DataType::Utf8, false),
        Field::new("item_id", DataType::Utf8, false),
        Field::new("event_time", timestamp(), false),
        Field::new(EVENT_DATE, DataType::Date32, false),
        Field::new("session_id", DataType::Utf8, true),
    ];
    if with_rating {
        fields.push(Field::new("rating", DataType::Float64, false));
    }
    fields.extend([
        Field::new("kafka_partition", DataType::Int32, false),
        Field::new("kafka_offset", DataType::Int64, false),
        Field::new("ingested_at", timestamp(), false),
    ]);
    Arc::new(Schema::new(fields))
}

/// Schema of a dead-letter table.
pub fn deadletter_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("kafka_topic", DataType::Utf8, false),
        Field::new("kafka_partition", DataType::Int32, false),
        Field::new("kafka_offset", DataType::Int64, false),
        Field::new("kafka_timestamp", timestamp(), true),
        Field::new("key", DataType::Binary, true),
        Field::new("payload", DataType::Binary, true),
        Field::new("error_kind", DataType::Utf8, false),
        Field::new("error_message", DataType::Utf8, false),
        Field::new("dead_lettered_at", timestamp(), false),
    ]))
}

/// One valid event as a silver row.
#[derive(Clone, Debug, PartialEq)]
pub struct SilverRow {
    pub event_id: String,
    pub user_id: String,
    pub item_id: String,
    pub event_time_us: i64,
    pub session_id: Option<String>,
    pub rating: Option<f64>,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
    pub ingested_at_us: i64,
}

/// One rejected record as a dead-letter row.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetterRow {
    pub kafka_topic: String,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
    pub kafka_timestamp_us: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub error_kind: String,
    pub error_message: String,
    pub dead_lettered_at_us: i64,
}

const US_PER_DAY: i64 = 86_400_000_000;

/// Days since the epoch of a UTC microsecond timestamp (the `event_date` value).
pub fn date_of(us: i64) -> i32 {
    us.div_euclid(US_PER_DAY) as i32
}

/// Builds a silver record batch; `with_rating` must match the table's schema.
pub fn silver_batch(rows: &[SilverRow], with_rating: bool) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut event_id = StringBuilder::with_capacity(n, n * 36);
    let mut user_id = StringBuilder::with_capacity(n, n * 8);
    let mut item_id = StringBuilder::with_capacity(n, n * 8);
    let mut event_time = TimestampMicrosecondBuilder::with_capacity(n).with_timezone(UTC);
    let mut event_date = Date32Builder::with_capacity(n);
    let mut session_id = StringBuilder::with_capacity(n, n * 8);
    let mut rating = Float64Builder::with_capacity(n);
    let mut partition = Int32Builder::with_capacity(n);
    let mut offset = Int64Builder::with_capacity(n);
    let mut ingested_at = TimestampMicrosecondBuilder::with_capacity(n).with_timezone(UTC);
    for r in rows {
        event_id.append_value(&r.event_id);
        user_id.append_value(&r.user_id);
        item_id.append_value(&r.item_id);
        event_time.append_value(r.event_time_us);
        event_date.append_value(date_of(r.event_time_us));
        session_id.append_option(r.session_id.as_deref());
        rating.append_value(r.rating.unwrap_or(f64::NAN));
        partition.append_value(r.kafka_partition);
        offset.append_value(r.kafka_offset);
        ingested_at.append_value(r.ingested_at_us);
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(event_id.finish()),
        Arc::new(user_id.finish()),
        Arc::new(item_id.finish()),
        Arc::new(event_time.finish()),
        Arc::new(event_date.finish()),
        Arc::new(session_id.finish()),
    ];
    if with_rating {
        columns.push(Arc::new(rating.finish()));
    }
    columns.extend([
        Arc::new(partition.finish()) as ArrayRef,
        Arc::new(offset.finish()),
        Arc::new(ingested_at.finish()),
    ]);
    RecordBatch::try_new(silver_schema(with_rating), columns)
}

/// Builds a dead-letter record batch.
pub fn deadletter_batch(rows: &[DeadLetterRow]) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut topic = StringBuilder::with_capacity(n, n * 14);
    let mut partition = Int32Builder::with_capacity(n);
    let mut offset = Int64Builder::with_capacity(n);
    let mut kafka_ts = TimestampMicrosecondBuilder::with_capacity(n).with_timezone(UTC);
    let mut key = BinaryBuilder::with_capacity(n, n * 8);
    let mut payload = BinaryBuilder::with_capacity(n, n * 128);
    let mut kind = StringBuilder::with_capacity(n, n * 12);
    let mut message = StringBuilder::with_capacity(n, n * 64);
    let mut at = TimestampMicrosecondBuilder::with_capacity(n).with_timezone(UTC);
    for r in rows {
        topic.append_value(&r.kafka_topic);
        partition.append_value(r.kafka_partition);
        offset.append_value(r.kafka_offset);
        kafka_ts.append_option(r.kafka_timestamp_us);
        key.append_option(r.key.as_deref());
        payload.append_option(r.payload.as_deref());
        kind.append_value(&r.error_kind);
        message.append_value(&r.error_message);
        at.append_value(r.dead_lettered_at_us);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(topic.finish()),
        Arc::new(partition.finish()),
        Arc::new(offset.finish()),
        Arc::new(kafka_ts.finish()),
        Arc::new(key.finish()),
        Arc::new(payload.finish()),
        Arc::new(kind.finish()),
        Arc::new(message.finish()),
        Arc::new(at.finish()),
    ];
    RecordBatch::try_new(deadletter_schema(), columns)
}
