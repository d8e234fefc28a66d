//! The trending tables `trending_now_<window>` (docs/CONTRACTS.md §5): one row set per window,
//! keyed by `window_start`, ranked items with their counts.

use std::sync::{Arc, LazyLock};

use deltalake::arrow::{
    array::{
        ArrayRef, AsArray, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
        TimestampMicrosecondBuilder,
    },
    datatypes::{DataType, Field, Float64Type, Int32Type, Int64Type, Schema, SchemaRef, TimestampMicrosecondType},
    error::ArrowError,
};

use super::{RowSet, Shape, timestamp};
use crate::{DataFile, Error, Result, read::read_batches};

/// The gold table of a window length, e.g. `trending_now_1h` for `1h`.
pub fn table_name(window: &str) -> String {
    format!("trending_now_{window}")
}

/// Rows grouped by window: a window's rows are replaced together.
pub static SHAPE: LazyLock<Shape> = LazyLock::new(|| Shape { schema: schema(), key: "window_start", time_key: true });

pub fn schema() -> SchemaRef {
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
pub struct TrendingRow {
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
pub struct WindowRows {
    pub start_us: i64,
    pub rows: Vec<TrendingRow>,
}

impl TryFrom<WindowRows> for RowSet {
    type Error = Error;

    fn try_from(w: WindowRows) -> Result<RowSet> {
        Ok(RowSet { key: w.start_us, batch: batch(&w.rows)? })
    }
}

pub fn batch(rows: &[TrendingRow]) -> Result<RecordBatch, ArrowError> {
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
    RecordBatch::try_new(schema(), columns)
}

/// Every row of a trending data file, in rank order.
pub fn read_gold(file: &DataFile) -> Result<Vec<TrendingRow>> {
    type Ts = TimestampMicrosecondType;
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
            rows.push(TrendingRow {
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
