//! The item neighbours table `item_neighbors`: per item its ranked similar items. Rows are
//! grouped by `bucket` (a stable hash of `item_id`), one data file per bucket: publishing the
//! items whose lists changed rewrites their buckets only, and a reader finds an item's list in
//! one small file.

use std::sync::{Arc, LazyLock};

use deltalake::arrow::{
    array::{
        ArrayRef, AsArray, Float64Builder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
        TimestampMicrosecondBuilder,
    },
    datatypes::{DataType, Field, Float64Type, Int32Type, Int64Type, Schema, SchemaRef, TimestampMicrosecondType},
    error::ArrowError,
};

use super::{Shape, timestamp};
use crate::{DataFile, Error, Result, read::read_batches};

pub const TABLE: &str = "item_neighbors";

pub static SHAPE: LazyLock<Shape> = LazyLock::new(|| Shape { schema: schema(), key: "bucket", time_key: false });

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("item_id", DataType::Utf8, false),
        Field::new("neighbor_id", DataType::Utf8, false),
        Field::new("score", DataType::Float64, false),
        // Co-visits counted into the score.
        Field::new("support", DataType::Int64, false),
        // 1 = most similar.
        Field::new("rank", DataType::Int32, false),
        Field::new("computed_at", timestamp(), false),
        // The unit of replacement: `bucket_of(item_id, buckets)`.
        Field::new("bucket", DataType::Int32, false),
    ]))
}

/// The bucket of `item_id` among `buckets`: FNV-1a of its UTF-8 bytes, stable across
/// processes and versions (readers compute it to find an item's file).
pub fn bucket_of(item_id: &str, buckets: u32) -> i32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in item_id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % u64::from(buckets.max(1))) as i32
}

#[derive(Clone, Debug, PartialEq)]
pub struct NeighborRow {
    pub item_id: String,
    pub neighbor_id: String,
    pub score: f64,
    pub support: i64,
    pub rank: i32,
    pub computed_at_us: i64,
    pub bucket: i32,
}

pub fn batch(rows: &[NeighborRow]) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let (mut item, mut neighbor) = (StringBuilder::with_capacity(n, n * 8), StringBuilder::with_capacity(n, n * 8));
    let mut score = Float64Builder::with_capacity(n);
    let mut support = Int64Builder::with_capacity(n);
    let (mut rank, mut bucket) = (Int32Builder::with_capacity(n), Int32Builder::with_capacity(n));
    let mut computed = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    for r in rows {
        item.append_value(&r.item_id);
        neighbor.append_value(&r.neighbor_id);
        score.append_value(r.score);
        support.append_value(r.support);
        rank.append_value(r.rank);
        computed.append_value(r.computed_at_us);
        bucket.append_value(r.bucket);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(item.finish()),
        Arc::new(neighbor.finish()),
        Arc::new(score.finish()),
        Arc::new(support.finish()),
        Arc::new(rank.finish()),
        Arc::new(computed.finish()),
        Arc::new(bucket.finish()),
    ];
    RecordBatch::try_new(schema(), columns)
}

/// Every row of a neighbours data file.
pub fn read_neighbors(file: &DataFile) -> Result<Vec<NeighborRow>> {
    let mut rows = Vec::new();
    for b in read_batches(file, &[])? {
        let col = |name: &str| b.column_by_name(name).ok_or_else(|| Error::Arrow(format!("column {name} missing")));
        let (item, neighbor) = (col("item_id")?.as_string::<i32>(), col("neighbor_id")?.as_string::<i32>());
        let score = col("score")?.as_primitive::<Float64Type>();
        let support = col("support")?.as_primitive::<Int64Type>();
        let (rank, bucket) = (col("rank")?.as_primitive::<Int32Type>(), col("bucket")?.as_primitive::<Int32Type>());
        let computed = col("computed_at")?.as_primitive::<TimestampMicrosecondType>();
        for i in 0..b.num_rows() {
            rows.push(NeighborRow {
                item_id: item.value(i).to_owned(),
                neighbor_id: neighbor.value(i).to_owned(),
                score: score.value(i),
                support: support.value(i),
                rank: rank.value(i),
                computed_at_us: computed.value(i),
                bucket: bucket.value(i),
            });
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_stable_and_spread() {
        // Fixed values: readers in other processes and versions must find the same file.
        assert_eq!(bucket_of("", 64), (0xcbf2_9ce4_8422_2325_u64 % 64) as i32);
        assert_eq!(bucket_of("m1", 64), bucket_of("m1", 64));
        let used: std::collections::BTreeSet<i32> = (0..1000).map(|i| bucket_of(&format!("m{i}"), 64)).collect();
        assert_eq!(used.len(), 64, "a thousand items reach every bucket");
        assert!((0..1000).all(|i| (0..64).contains(&bucket_of(&format!("m{i}"), 64))));
    }
}
