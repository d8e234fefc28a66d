//! The table's offsets are the truth, not the consumer group's: when the fetch starts past the
//! records the table holds (here a lake restored to an older, empty state while the group's
//! offsets sit at the end of the topics), the job goes back for the records in between rather
//! than skipping them. The reliability kill loop lost records through the same gap after
//! rebalances; this reproduces it without timing.

use std::{collections::HashSet, sync::Arc, time::Duration};

use rdkafka::producer::{FutureProducer, FutureRecord};
use reco_lake::{Format, Lake, TopicTables, read};
use reco_silver::SilverConfig;
use reco_telemetry::Telemetry;
use reco_testkit::Samples;
use tokio_util::sync::CancellationToken;

async fn produce(bootstrap: &str, ids: std::ops::Range<usize>) {
    let producer: FutureProducer = reco_kafka::client_config(bootstrap).create().unwrap();
    for i in ids {
        let payload = format!(
            r#"{{"type":"view","event_id":"v{i}","user_id":"u{}","item_id":"m{}","timestamp":{}}}"#,
            i % 7,
            i % 5,
            1_551_434_400_000_i64 + i as i64
        );
        let key = format!("u{}", i % 7);
        producer
            .send(FutureRecord::to("events_views").key(&key).payload(&payload), Duration::from_secs(10))
            .await
            .unwrap();
    }
}

/// Runs the job on `lake` until it has written `rows` rows (or 60 s), then stops it.
async fn drain(bootstrap: &str, lake: &Lake, rows: f64) -> bool {
    let mut config = SilverConfig::new(bootstrap, lake.clone());
    config.max_batch_age = Duration::from_millis(200);
    config.group_id = "offsets-test".into();
    config.topics = vec!["events_views".into()];
    let telemetry = Arc::new(Telemetry::new());
    let shutdown = CancellationToken::new();
    let job = tokio::spawn(reco_silver::run(config, telemetry.clone(), shutdown.clone()));
    let drained = reco_testkit::wait_until(Duration::from_secs(60), || {
        let samples = Samples::parse(&telemetry.render());
        let written: f64 = samples.matching("reco_silver_rows_written_total", &[]).map(|s| s.value).sum();
        async move { written >= rows }
    })
    .await;
    shutdown.cancel();
    job.await.unwrap().unwrap();
    drained
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_past_the_table_offsets_goes_back_for_the_records() {
    let broker = reco_testkit::broker_with_topics().await;
    let bootstrap = broker.bootstrap();
    produce(&bootstrap, 0..60).await;
    // A first lake takes everything: the group's offsets now sit at the end of the topic.
    let first = tempfile::tempdir().unwrap();
    assert!(drain(&bootstrap, &Lake::new(first.path(), Format::Delta).unwrap(), 60.0).await);

    // A second, empty lake (as if restored from an old backup) with the same group; a few new
    // records arrive. The fetch starts at the group's offsets, past the 60 the table lacks.
    let second = tempfile::tempdir().unwrap();
    let lake = Lake::new(second.path(), Format::Delta).unwrap();
    let producing = tokio::spawn({
        let bootstrap = bootstrap.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            produce(&bootstrap, 60..90).await;
        }
    });
    let drained = drain(&bootstrap, &lake, 90.0).await;
    producing.await.unwrap();
    let mut tables = TopicTables::open(&lake, "events_views", false).await.unwrap();
    let ids: HashSet<String> =
        read::read_silver(&tables.silver_files().await.unwrap()).unwrap().into_iter().map(|r| r.event_id).collect();
    let missing: Vec<usize> = (0..90).filter(|i| !ids.contains(&format!("v{i}"))).collect();
    assert!(drained && missing.is_empty(), "silver lacks {} records: {missing:?}", missing.len());
    broker.stop().await;
}
