//! The table layer on its own: compare-and-set commits, stored offsets, schema checks.

use std::collections::BTreeMap;

use reco_lake::{CommitOutcome, Error, Format, Lake, SilverRow, StreamBatch, TopicTables, read};

fn row(id: &str, partition: i32, offset: i64) -> SilverRow {
    SilverRow {
        event_id: id.into(),
        user_id: "u".into(),
        item_id: "i".into(),
        event_time_us: 1_551_434_400_000_000 + offset,
        session_id: None,
        rating: None,
        kafka_partition: partition,
        kafka_offset: offset,
        ingested_at_us: 0,
    }
}

fn batch(rows: Vec<SilverRow>, offsets: &[(i32, Option<i64>, i64)]) -> StreamBatch {
    StreamBatch {
        silver: rows,
        deadletter: vec![],
        offsets: offsets.iter().map(|(p, from, to)| (*p, (*from, *to))).collect::<BTreeMap<_, _>>(),
        upstream: None,
    }
}

async fn compare_and_set(format: Format) {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path(), format).unwrap();
    let mut writer_a = TopicTables::open(&lake, "events_views", false).await.unwrap();
    let mut writer_b = TopicTables::open(&lake, "events_views", false).await.unwrap();

    let first = writer_a.commit(batch(vec![row("a0", 0, 0), row("a1", 0, 1)], &[(0, None, 2)])).await.unwrap();
    assert!(matches!(first, CommitOutcome::Committed(ref s) if s.silver_rows == 2), "{first:?}");
    // B still believes nothing is stored for partition 0: refused, nothing visible.
    let zombie = writer_b.commit(batch(vec![row("b0", 0, 0)], &[(0, None, 1)])).await.unwrap();
    assert_eq!(zombie, CommitOutcome::Conflict { partition: 0 });
    // With the right expectation it goes through.
    let next = writer_b.commit(batch(vec![row("b2", 0, 2)], &[(0, Some(2), 3)])).await.unwrap();
    assert!(matches!(next, CommitOutcome::Committed(_)));

    let stored = writer_a.stored_offsets(&[0, 1]).await.unwrap();
    assert_eq!(stored.silver.get(&0), Some(&3));
    assert_eq!(stored.silver.get(&1), None);
    let mut ids: Vec<String> =
        read::read_silver(&writer_a.silver_files().await.unwrap()).unwrap().into_iter().map(|r| r.event_id).collect();
    ids.sort();
    assert_eq!(ids, vec!["a0", "a1", "b2"]);
}

#[tokio::test]
async fn commits_are_compare_and_set_delta() {
    compare_and_set(Format::Delta).await;
}

#[tokio::test]
async fn commits_are_compare_and_set_parquet() {
    compare_and_set(Format::Parquet).await;
}

#[tokio::test]
async fn an_existing_table_with_another_schema_is_a_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path(), Format::Delta).unwrap();
    // events_views created without a rating column; opening it as a ratings table must fail.
    TopicTables::open(&lake, "events_views", false).await.unwrap();
    let err = TopicTables::open(&lake, "events_views", true).await.unwrap_err();
    assert!(matches!(err, Error::SchemaMismatch { .. }), "{err}");
    assert!(err.to_string().contains("silver/events_views"), "names the table: {err}");
}

/// A gold table written before the `complete` column (issue 15) is refused at open, with the
/// command that fixes it, in both formats: nobody reads windows of unknown completeness.
#[tokio::test]
async fn a_gold_table_without_the_complete_column_is_refused_with_the_fix() {
    use reco_lake::deltalake::arrow::{array::RecordBatch, datatypes::Schema};
    let old_schema = || {
        let fields: Vec<_> =
            reco_lake::gold::trending::schema().fields().iter().filter(|f| f.name() != "complete").cloned().collect();
        std::sync::Arc::new(Schema::new(fields))
    };
    for format in [Format::Delta, Format::Parquet] {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(dir.path(), format).unwrap();
        let table = dir.path().join("gold").join("trending_now_1h");
        std::fs::create_dir_all(&table).unwrap();
        match format {
            Format::Delta => {
                use reco_lake::deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
                let schema: reco_lake::deltalake::kernel::StructType = old_schema().as_ref().try_into_kernel().unwrap();
                reco_lake::deltalake::operations::create::CreateBuilder::new()
                    .with_location(url::Url::from_directory_path(&table).unwrap().as_str())
                    .with_columns(schema.fields().cloned())
                    .await
                    .unwrap();
            }
            Format::Parquet => {
                let file = std::fs::File::create(table.join("20190301T000000Z.parquet")).unwrap();
                let batch = RecordBatch::new_empty(old_schema());
                let mut w =
                    reco_lake::deltalake::parquet::arrow::ArrowWriter::try_new(file, old_schema(), None).unwrap();
                w.write(&batch).unwrap();
                w.close().unwrap();
            }
        }
        let err = reco_lake::GoldTable::open(&lake, "trending_now_1h").await.unwrap_err();
        assert!(matches!(err, Error::OldGoldTable { .. }), "{format:?}: {err}");
        let message = err.to_string();
        assert!(message.contains("trending_now_1h") && message.contains("_checkpoints/gold"), "{message}");
        assert!(message.contains("start `reco gold` again"), "says how to fix it: {message}");
    }
}

#[test]
fn a_url_is_refused_as_a_lake_location_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = std::env::current_dir().unwrap();
    for location in ["s3://reco/lake", "gs://bucket/prefix", "file:///data"] {
        let err = Lake::new(location, Format::Delta).expect_err(location).to_string();
        assert!(err.contains(location) && err.contains("LAKEHOUSE_PATH"), "{err}");
    }
    assert!(!cwd.join("s3:").exists() && !cwd.join("gs:").exists(), "no folder named after the scheme");
    // A path that merely contains a colon is still a path.
    assert!(Lake::new(dir.path().join("a:b"), Format::Delta).is_ok());
}
