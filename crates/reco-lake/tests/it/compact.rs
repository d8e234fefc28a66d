//! Compaction of real Delta tables: the rows, the stored offsets and the gold feed are what
//! they were, with fewer files.

use std::collections::BTreeMap;

use reco_lake::{
    CommitOutcome, CompactPolicy, Compactor, DeadLetterRow, Format, Lake, SilverFeed, SilverRow, StreamBatch,
    TopicTables, read,
};

const DAY_US: i64 = 86_400_000_000;
/// 2019-03-01T10:00Z; half the rows fall a day later, so two `event_date` partitions fill.
const T0: i64 = 1_551_434_400_000_000;

fn row(partition: i32, offset: i64) -> SilverRow {
    SilverRow {
        event_id: format!("e-{partition}-{offset}"),
        user_id: format!("u{}", offset % 7),
        item_id: format!("i{}", offset % 11),
        event_time_us: T0 + (offset % 2) * DAY_US + offset,
        session_id: (offset % 3 == 0).then(|| "s".to_owned()),
        rating: Some(offset as f64 % 5.0),
        kafka_partition: partition,
        kafka_offset: offset,
        ingested_at_us: T0,
    }
}

fn bad(partition: i32, offset: i64) -> DeadLetterRow {
    DeadLetterRow {
        kafka_topic: "events_ratings".into(),
        kafka_partition: partition,
        kafka_offset: offset,
        kafka_timestamp_us: None,
        key: None,
        payload: Some(vec![0xff, offset as u8]),
        error_kind: "malformed_json".into(),
        error_message: "not JSON".into(),
        dead_lettered_at_us: T0,
    }
}

/// Commits batches `batches` of 10 records each on partition 0, the last of each batch bad.
async fn fill(tables: &mut TopicTables, batches: std::ops::Range<i64>) {
    for b in batches {
        let (from, to) = (b * 10, b * 10 + 10);
        let batch = StreamBatch {
            silver: (from..to - 1).map(|o| row(0, o)).collect(),
            deadletter: vec![bad(0, to - 1)],
            offsets: BTreeMap::from([(0, ((b > 0).then_some(from), to))]),
            upstream: None,
        };
        assert!(matches!(tables.commit(batch).await.unwrap(), CommitOutcome::Committed(_)));
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

async fn silver_ids(tables: &mut TopicTables) -> Vec<(String, i64, Option<String>, i64)> {
    let files = tables.silver_files().await.unwrap();
    sorted(
        read::read_silver(&files)
            .unwrap()
            .into_iter()
            .map(|r| (r.event_id, r.event_time_us, r.session_id, r.rating.unwrap() as i64))
            .collect(),
    )
}

#[tokio::test]
async fn compaction_keeps_rows_offsets_and_the_feed_and_cuts_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path(), Format::Delta).unwrap();
    let mut tables = TopicTables::open(&lake, "events_ratings", true).await.unwrap();
    fill(&mut tables, 0..12).await;

    let rows_before = silver_ids(&mut tables).await;
    let dead_before = read::read_deadletter(&tables.deadletter_files().await.unwrap()).unwrap();
    let files_before = tables.silver_files().await.unwrap();
    assert_eq!(files_before.len(), 24, "a file per batch and date");
    let mut feed = SilverFeed::new(&lake, "events_ratings");
    let version_before = feed.latest().await.unwrap().unwrap();

    let policy = CompactPolicy { min_files: 4, target_bytes: 64 * 1024 * 1024 };
    let mut compactor = Compactor::open(&lake, "events_ratings", true, policy).await.unwrap();
    let stats = compactor.run().await.unwrap();
    assert_eq!((stats.files_removed, stats.files_added), (24 + 12, 3), "{stats:?}");

    let files = tables.silver_files().await.unwrap();
    assert_eq!(sorted(files.iter().map(|f| f.event_date).collect()), vec![Some(17956), Some(17957)]);
    assert_eq!(silver_ids(&mut tables).await, rows_before, "the same rows, each once");
    let dead_after = read::read_deadletter(&tables.deadletter_files().await.unwrap()).unwrap();
    assert_eq!(tables.deadletter_files().await.unwrap().len(), 1);
    assert_eq!(
        sorted(dead_after.iter().map(|r| (r.kafka_offset, r.payload.clone())).collect()),
        sorted(dead_before.iter().map(|r| (r.kafka_offset, r.payload.clone())).collect())
    );
    let stored = tables.stored_offsets(&[0]).await.unwrap();
    assert_eq!((stored.silver.get(&0), stored.deadletter.get(&0)), (Some(&120), Some(&120)));

    // The gold feed sees no new data in the compaction commit...
    let latest = feed.latest().await.unwrap().unwrap();
    assert_eq!(latest, version_before + 1);
    assert!(feed.files_between(Some(version_before), latest).await.unwrap().is_empty());
    // ...and new commits after it as usual; the next compaction has nothing to do.
    fill(&mut tables, 12..13).await;
    let latest_after = feed.latest().await.unwrap().unwrap();
    assert_eq!(feed.files_between(Some(latest), latest_after).await.unwrap().len(), 2);
    assert_eq!(compactor.run().await.unwrap().files_removed, 0, "3 small files per partition < 4");
}

#[tokio::test]
async fn racing_compactions_never_duplicate_rows() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path(), Format::Delta).unwrap();
    let mut tables = TopicTables::open(&lake, "events_ratings", true).await.unwrap();
    fill(&mut tables, 0..8).await;
    let rows_before = silver_ids(&mut tables).await;

    // Two workers that both believe they should compact, from the same snapshot. (Without the
    // compaction `txn` both commits land and every row is doubled: checked by removing it.)
    let policy = CompactPolicy { min_files: 2, target_bytes: 64 * 1024 * 1024 };
    let mut a = Compactor::open(&lake, "events_ratings", true, policy).await.unwrap();
    let mut b = Compactor::open(&lake, "events_ratings", true, policy).await.unwrap();
    let (sa, sb) = tokio::join!(a.run(), b.run());
    let (sa, sb) = (sa.unwrap(), sb.unwrap());
    assert!(sa.files_removed + sb.files_removed > 0, "one of them compacted: {sa:?} {sb:?}");

    assert_eq!(silver_ids(&mut tables).await, rows_before, "no row lost or doubled");
    assert!(tables.silver_files().await.unwrap().len() <= 4);
}
