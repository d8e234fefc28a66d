//! Resident memory of a process that keeps committing small batches to one silver table,
//! as the silver job does (a commit per batch), sampled every 100 commits.
//!
//! `cargo run --release -p reco-lake --example table_memory -- [COMMITS] [ROWS] [delta|parquet] [MIN_FILES]`
//!
//! With `MIN_FILES` (Delta), the table is compacted whenever that many commits have passed, as
//! the silver job does.

use std::collections::BTreeMap;

use reco_lake::{CompactPolicy, Compactor, Format, Lake, SilverRow, StreamBatch, TopicTables};

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let commits: i64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let rows: i64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let format = if args.get(3).is_some_and(|f| f == "parquet") { Format::Parquet } else { Format::Delta };
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path(), format).unwrap();
    let min_files: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(0);
    let mut tables = TopicTables::open(&lake, "events_views", false).await.unwrap();
    let policy = CompactPolicy { min_files, ..CompactPolicy::default() };
    let mut compactor = match (format, min_files) {
        (Format::Delta, 1..) => Some(Compactor::open(&lake, "events_views", false, policy).await.unwrap()),
        _ => None,
    };
    let started = std::time::Instant::now();
    println!("commits  rss_mib  seconds  files");
    let mut offset = 0i64;
    for c in 0..commits {
        let silver = (0..rows)
            .map(|i| SilverRow {
                event_id: format!("{c:08}-{i:06}"),
                user_id: format!("u{}", i % 1000),
                item_id: format!("i{}", (i * 7) % 2000),
                event_time_us: 1_551_398_400_000_000 + (c * rows + i) * 1_000,
                session_id: Some(format!("s{}", i % 100)),
                rating: None,
                kafka_partition: 0,
                kafka_offset: offset + i,
                ingested_at_us: 0,
            })
            .collect();
        let expected = (offset > 0).then_some(offset);
        let batch = StreamBatch {
            silver,
            deadletter: vec![],
            offsets: BTreeMap::from([(0, (expected, offset + rows))]),
            upstream: None,
        };
        tables.commit(batch).await.unwrap();
        offset += rows;
        if let Some(compactor) = compactor.as_mut()
            && (c + 1) % min_files as i64 == 0
        {
            compactor.run().await.unwrap();
        }
        if (c + 1) % 100 == 0 {
            let files = tables.silver_files().await.unwrap().len();
            println!("{:>7}  {:>7.1}  {:>7.1}  {files:>5}", c + 1, rss_mib(), started.elapsed().as_secs_f64());
        }
    }
}
