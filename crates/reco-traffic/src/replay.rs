//! Replaying a real interaction log (CSV, JSON Lines or Parquet) as events in event-time
//! order: a column mapping turns each row into an event; rows that cannot be read are
//! reported with their line (or row) number and skipped, never fatal.
//!
//! Event ids are derived from the file name, the line and the event kind
//! (`ratings.csv:1234:rating`), so replaying a file twice sends the same ids and the silver
//! job's de-duplication keeps one copy.

use std::{collections::HashMap, path::Path};

use reco_lake::deltalake::arrow::{
    array::{Array, AsArray},
    compute::cast,
    datatypes::{DataType, TimeUnit},
    util::display::array_value_to_string,
};
use serde_json::{Value, json};

use crate::{
    send::Source,
    synthetic::{Generated, rfc3339},
};

/// How the time column is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeUnitArg {
    Seconds,
    Millis,
    Micros,
    /// RFC 3339 text (or a timestamp column in Parquet).
    Rfc3339,
}

#[derive(Clone, Debug)]
pub struct Mapping {
    pub user_col: String,
    pub item_col: String,
    pub time_col: String,
    pub time_unit: TimeUnitArg,
    pub rating_col: Option<String>,
    /// Every row is of this type (`view`, `click`, `rating`), unless `type_col` is given.
    pub event_type: String,
    pub type_col: Option<String>,
    /// Also emit each rating as a view at the same time (ratings imply the item was seen).
    pub rating_as_view: bool,
}

/// One row of the log: column name → value as text.
type Row = HashMap<String, String>;

/// A row that was skipped, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct BadRow {
    /// 1-based line in the file (header = line 1 for CSV), or row number for Parquet.
    pub line: u64,
    pub reason: String,
}

#[derive(Debug)]
pub struct Loaded {
    /// In event-time order.
    pub events: Vec<Value>,
    pub bad: Vec<BadRow>,
    pub rows: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

/// One source row: its line (or row number) and its columns, or why it could not be read.
type SourceRow = (u64, Result<Row, String>);

/// Reads `path` (format from its extension: `.csv`, `.jsonl`/`.ndjson`, `.parquet`).
pub fn load(path: &Path, mapping: &Mapping) -> Result<Loaded, ReplayError> {
    let err = |message: String| ReplayError::File { path: path.display().to_string(), message };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default();
    let rows = match ext.as_str() {
        "csv" => csv_rows(path),
        "jsonl" | "ndjson" | "json" => json_rows(path),
        "parquet" => parquet_rows(path),
        other => Err(format!("unknown format {other:?}: use .csv, .jsonl or .parquet")),
    }
    .map_err(err)?;

    let is_parquet_ts = ext == "parquet";
    let mut timed = Vec::new();
    let mut bad = Vec::new();
    let total = rows.len() as u64;
    for (line, row) in rows {
        match row.and_then(|r| to_events(&r, mapping, is_parquet_ts, &name, line)) {
            Ok(events) => timed.extend(events),
            Err(reason) => bad.push(BadRow { line, reason }),
        }
    }
    timed.sort_by_key(|(t, _)| *t);
    Ok(Loaded { events: timed.into_iter().map(|(_, e)| e).collect(), bad, rows: total })
}

fn csv_rows(path: &Path) -> Result<Vec<SourceRow>, String> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_path(path).map_err(|e| e.to_string())?;
    let headers = reader.headers().map_err(|e| e.to_string())?.clone();
    let mut rows = Vec::new();
    for record in reader.records() {
        match record {
            Ok(r) => {
                let line = r.position().map_or(0, |p| p.line());
                let map = headers.iter().zip(r.iter()).map(|(h, v)| (h.to_owned(), v.to_owned())).collect();
                rows.push((line, Ok(map)));
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                rows.push((line, Err(e.to_string())));
            }
        }
    }
    Ok(rows)
}

fn json_rows(path: &Path) -> Result<Vec<SourceRow>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let parsed = serde_json::from_str::<serde_json::Map<String, Value>>(line)
            .map(|obj| {
                obj.into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                    .collect()
            })
            .map_err(|e| format!("not a JSON object: {e}"));
        rows.push((i as u64 + 1, parsed));
    }
    Ok(rows)
}

fn parquet_rows(path: &Path) -> Result<Vec<SourceRow>, String> {
    let batches = reco_lake::read::read_parquet(path, &[]).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for b in batches {
        let schema = b.schema();
        for i in 0..b.num_rows() {
            let mut map = HashMap::new();
            for (field, column) in schema.fields().iter().zip(b.columns()) {
                if column.is_null(i) {
                    continue;
                }
                let value = match column.data_type() {
                    // Timestamps as microseconds, whatever their unit.
                    DataType::Timestamp(..) => cast(column, &DataType::Timestamp(TimeUnit::Microsecond, None))
                        .map(|c| {
                            c.as_primitive::<reco_lake::deltalake::arrow::datatypes::TimestampMicrosecondType>()
                                .value(i)
                                .to_string()
                        })
                        .map_err(|e| e.to_string()),
                    _ => array_value_to_string(column, i).map_err(|e| e.to_string()),
                };
                if let Ok(v) = value {
                    map.insert(field.name().clone(), v);
                }
            }
            rows.push((rows.len() as u64 + 1, Ok(map)));
        }
    }
    Ok(rows)
}

fn field<'a>(row: &'a HashMap<String, String>, col: &str) -> Result<&'a str, String> {
    match row.get(col).map(|s| s.trim()) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(format!("column {col:?} is missing or empty")),
    }
}

fn to_events(
    row: &HashMap<String, String>,
    m: &Mapping,
    parquet: bool,
    file: &str,
    line: u64,
) -> Result<Vec<(i64, Value)>, String> {
    let user = field(row, &m.user_col)?;
    let item = field(row, &m.item_col)?;
    let raw_time = field(row, &m.time_col)?;
    let bad_time = || bad_time(&m.time_col, raw_time, m.time_unit);
    let time_us = match m.time_unit {
        TimeUnitArg::Rfc3339 if parquet && raw_time.parse::<i64>().is_ok() => {
            raw_time.parse().map_err(|_| bad_time())?
        }
        TimeUnitArg::Rfc3339 => {
            chrono::DateTime::parse_from_rfc3339(raw_time).map_err(|_| bad_time())?.timestamp_micros()
        }
        unit => {
            let n: f64 = raw_time.parse().map_err(|_| bad_time())?;
            let scale = match unit {
                TimeUnitArg::Seconds => 1e6,
                TimeUnitArg::Millis => 1e3,
                _ => 1.0,
            };
            (n * scale) as i64
        }
    };
    let kind = match &m.type_col {
        Some(col) => field(row, col)?.to_lowercase(),
        None => m.event_type.clone(),
    };
    let mut event = json!({
        "type": kind,
        "user_id": user,
        "item_id": item,
        "timestamp": rfc3339(time_us),
        "event_id": format!("{}:{line}:{kind}", truncate(file, 64)),
    });
    if kind == "rating" {
        let col = m.rating_col.as_deref().ok_or("a rating row needs --rating-col")?;
        let raw = field(row, col)?;
        let rating: f64 = raw.parse().map_err(|_| format!("column {col:?}: {raw:?} is not a number"))?;
        event["rating"] = json!(rating);
    }
    let mut out = vec![(time_us, event)];
    if kind == "rating" && m.rating_as_view {
        let view = json!({
            "type": "view", "user_id": user, "item_id": item, "timestamp": rfc3339(time_us),
            "event_id": format!("{}:{line}:view", truncate(file, 64)),
        });
        out.push((time_us, view));
    }
    Ok(out)
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A loaded log as a [`Source`]: its events once, in order.
#[derive(Debug)]
pub struct Replay(std::vec::IntoIter<Value>);

impl Replay {
    pub fn new(events: Vec<Value>) -> Replay {
        Replay(events.into_iter())
    }
}

impl Source for Replay {
    fn next_body(&mut self, _now_us: i64) -> Option<Generated> {
        self.0.next().map(Generated::Valid)
    }
}

/// Why `raw` is not a time of `unit`, with the `--time-unit` that would read it when that
/// is plain to see (RFC 3339 text read as seconds is the usual mistake).
fn bad_time(column: &str, raw: &str, unit: TimeUnitArg) -> String {
    let expected = match unit {
        TimeUnitArg::Seconds => "unix seconds (--time-unit s)",
        TimeUnitArg::Millis => "unix milliseconds (--time-unit ms)",
        TimeUnitArg::Micros => "unix microseconds (--time-unit us)",
        TimeUnitArg::Rfc3339 => "RFC 3339 text (--time-unit rfc3339)",
    };
    let hint = match unit {
        TimeUnitArg::Rfc3339 if raw.parse::<f64>().is_ok() => "; it is a number: pass --time-unit s, ms or us",
        TimeUnitArg::Rfc3339 => "",
        _ if chrono::DateTime::parse_from_rfc3339(raw).is_ok() => "; it is RFC 3339 text: pass --time-unit rfc3339",
        _ => "",
    };
    format!("column {column:?}: {raw:?} is not {expected}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping() -> Mapping {
        Mapping {
            user_col: "userId".into(),
            item_col: "movieId".into(),
            time_col: "timestamp".into(),
            time_unit: TimeUnitArg::Seconds,
            rating_col: Some("rating".into()),
            event_type: "rating".into(),
            type_col: None,
            rating_as_view: true,
        }
    }

    #[test]
    fn csv_rows_become_ordered_events_and_bad_rows_are_reported_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ratings.csv");
        std::fs::write(
            &path,
            "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n1,1029,3.0,1260759100\n2,,4,1260759200\n3,7,x,1260759300\n",
        )
        .unwrap();
        let loaded = load(&path, &mapping()).unwrap();
        assert_eq!(loaded.rows, 4);
        assert_eq!(loaded.bad.iter().map(|b| b.line).collect::<Vec<_>>(), vec![4, 5]);
        assert!(loaded.bad[0].reason.contains("movieId"), "{:?}", loaded.bad);
        // Two good ratings, each also a view, in event-time order.
        let kinds: Vec<(&str, &str)> =
            loaded.events.iter().map(|e| (e["type"].as_str().unwrap(), e["item_id"].as_str().unwrap())).collect();
        assert_eq!(kinds, vec![("rating", "1029"), ("view", "1029"), ("rating", "31"), ("view", "31")]);
        assert_eq!(loaded.events[0]["timestamp"], "2009-12-14T02:51:40.000000Z");
        assert_eq!(loaded.events[0]["event_id"], "ratings.csv:3:rating");
    }

    #[test]
    fn a_time_in_another_unit_names_the_flag_that_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(
            &path,
            "{\"userId\":\"1\",\"movieId\":\"31\",\"rating\":4,\"timestamp\":\"2019-03-01T10:00:00Z\"}\n",
        )
        .unwrap();
        let loaded = load(&path, &mapping()).unwrap();
        let reason = &loaded.bad[0].reason;
        assert!(reason.contains("not unix seconds") && reason.contains("--time-unit rfc3339"), "{reason}");

        std::fs::write(&path, "{\"userId\":\"1\",\"movieId\":\"31\",\"rating\":4,\"timestamp\":1260759144}\n").unwrap();
        let rfc = Mapping { time_unit: TimeUnitArg::Rfc3339, ..mapping() };
        let reason = &load(&path, &rfc).unwrap().bad[0].reason;
        assert!(reason.contains("--time-unit s, ms or us"), "{reason}");
    }
}
