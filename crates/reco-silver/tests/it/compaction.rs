//! The job compacts its tables while it runs: fewer files than batches, every record once,
//! and the gold feed still sees each record exactly once.

use std::{collections::HashMap, sync::Arc, time::Duration};

use rdkafka::producer::{FutureProducer, FutureRecord};
use reco_lake::{CompactPolicy, Format, Lake, SilverFeed, TopicTables, read};
use reco_silver::SilverConfig;
use reco_telemetry::Telemetry;
use reco_testkit::Samples;
use tokio_util::sync::CancellationToken;

const WAVES: usize = 16;
const PER_WAVE: usize = 10;

#[tokio::test(flavor = "multi_thread")]
async fn the_job_compacts_while_it_runs_and_loses_nothing() {
    let broker = reco_testkit::broker_with_topics().await;
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path(), Format::Delta).unwrap();

    let mut config = SilverConfig::new(&bootstrap, lake.clone());
    config.max_batch_age = Duration::from_millis(100);
    config.group_id = "compaction-test".into();
    config.topics = vec!["events_views".into()];
    config.compact = Some(CompactPolicy { min_files: 4, target_bytes: 64 * 1024 * 1024 });
    let telemetry = Arc::new(Telemetry::new());
    let shutdown = CancellationToken::new();
    let job = tokio::spawn(reco_silver::run(config, telemetry.clone(), shutdown.clone()));

    // Waves apart in time, so each becomes its own batch and file; one record in each wave is
    // malformed, so the dead-letter table fills too.
    let producer: FutureProducer = reco_kafka::client_config(&bootstrap).create().unwrap();
    for wave in 0..WAVES {
        for j in 0..PER_WAVE {
            let i = wave * PER_WAVE + j;
            let payload = if j == 0 {
                format!("not json {i}")
            } else {
                format!(
                    r#"{{"type":"view","event_id":"v{i}","user_id":"u{}","item_id":"m{}","timestamp":{}}}"#,
                    i % 7,
                    i % 5,
                    1_551_434_400_000_i64 + i as i64
                )
            };
            let record = FutureRecord::to("events_views").key("k").payload(&payload);
            producer.send(record, Duration::from_secs(10)).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let total = (WAVES * PER_WAVE) as f64;
    let done = reco_testkit::wait_until(Duration::from_secs(60), || {
        let samples = Samples::parse(&telemetry.render());
        let written: f64 = samples.matching("reco_silver_rows_written_total", &[]).map(|s| s.value).sum();
        let compacted: f64 =
            samples.matching("reco_silver_compactions_total", &[("result", "ok")]).map(|s| s.value).sum();
        async move { written >= total && compacted >= 2.0 }
    })
    .await;
    shutdown.cancel();
    job.await.unwrap().unwrap();
    let metrics = telemetry.render();
    assert!(done, "not all rows written or fewer than two compactions:\n{metrics}");

    let mut tables = TopicTables::open(&lake, "events_views", false).await.unwrap();
    let files = tables.silver_files().await.unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for row in read::read_silver(&files).unwrap() {
        *seen.entry(row.event_id).or_default() += 1;
    }
    let expected = WAVES * (PER_WAVE - 1);
    assert_eq!(seen.len(), expected, "every valid record in silver");
    assert!(seen.values().all(|n| *n == 1), "each exactly once: {seen:?}");
    assert!(files.len() < WAVES / 2, "{} silver files for {WAVES} batches", files.len());
    let dead = read::read_deadletter(&tables.deadletter_files().await.unwrap()).unwrap();
    assert_eq!(dead.len(), WAVES, "every malformed record in dead-letter once");

    // The gold job's incremental reader, from the first version on: each row once.
    let mut feed = SilverFeed::new(&lake, "events_views");
    let latest = feed.latest().await.unwrap().unwrap();
    let fed = read::read_silver(&feed.files_between(None, latest).await.unwrap()).unwrap();
    assert_eq!(fed.len(), expected, "the feed skips compaction rewrites");
    broker.stop().await;
}
