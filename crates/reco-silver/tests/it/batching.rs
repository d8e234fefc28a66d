//! When silver commits: a lone record as soon as the job has read what the broker held once
//! the batch is `min_batch_age` old, not at `max_batch_age`; a backlog in a few large commits,
//! not one per `min_batch_age`. Both read back from the table.

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use rdkafka::producer::{FutureProducer, FutureRecord};
use reco_lake::{Format, Lake, TopicTables, read};
use reco_silver::SilverConfig;
use reco_telemetry::Telemetry;
use reco_testkit::Samples;
use tokio_util::sync::CancellationToken;

/// Produces records `ids` to `events_views` all at once (keys spread over the partitions) and
/// waits for every acknowledgment.
async fn produce(producer: &FutureProducer, ids: std::ops::Range<usize>) {
    let records: Vec<(String, String)> = ids
        .map(|i| {
            let payload = format!(
                r#"{{"type":"view","event_id":"v{i}","user_id":"u{}","item_id":"m{}","timestamp":{}}}"#,
                i % 13,
                i % 5,
                1_551_434_400_000_i64 + i as i64
            );
            (format!("u{}", i % 13), payload)
        })
        .collect();
    let sends = records.iter().map(|(key, payload)| {
        producer.send(FutureRecord::to("events_views").key(key).payload(payload), Duration::from_secs(30))
    });
    for result in futures::future::join_all(sends).await {
        result.unwrap();
    }
}

struct Running {
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
    job: tokio::task::JoinHandle<reco_silver::Result<()>>,
}

impl Running {
    fn start(bootstrap: &str, lake: &Lake, min_age: Duration, max_age: Duration) -> Running {
        let mut config = SilverConfig::new(bootstrap, lake.clone());
        config.min_batch_age = min_age;
        config.max_batch_age = max_age;
        config.group_id = "batching-test".into();
        config.topics = vec!["events_views".into()];
        config.compact = None;
        let telemetry = Arc::new(Telemetry::new());
        let shutdown = CancellationToken::new();
        let job = tokio::spawn(reco_silver::run(config, telemetry.clone(), shutdown.clone()));
        Running { telemetry, shutdown, job }
    }

    fn metric(&self, name: &str) -> f64 {
        Samples::parse(&self.telemetry.render()).matching(name, &[]).map(|s| s.value).sum()
    }

    fn rows(&self) -> f64 {
        self.metric("reco_silver_rows_written_total")
    }

    /// Silver commits so far (one flush of one topic is one commit).
    fn commits(&self) -> f64 {
        self.metric("reco_silver_batch_flush_duration_seconds_count")
    }

    async fn wait_for_rows(&self, rows: f64, timeout: Duration) -> bool {
        reco_testkit::wait_until(timeout, || {
            let written = self.rows();
            async move { written >= rows }
        })
        .await
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.job.await.unwrap().unwrap();
    }
}

async fn ids_in(lake: &Lake) -> HashSet<String> {
    let mut tables = TopicTables::open(lake, "events_views", false).await.unwrap();
    read::read_silver(&tables.silver_files().await.unwrap()).unwrap().into_iter().map(|r| r.event_id).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lone_record_is_committed_once_read_not_at_the_batch_age() {
    let broker = reco_testkit::broker_with_topics().await;
    let bootstrap = broker.bootstrap();
    let producer: FutureProducer = reco_kafka::client_config(&bootstrap).create().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path(), Format::Delta).unwrap();
    // A batch age far beyond the waits below: a commit within them is an early one.
    let max_age = Duration::from_secs(60);
    let job = Running::start(&bootstrap, &lake, Duration::from_millis(100), max_age);
    produce(&producer, 0..1).await;
    assert!(job.wait_for_rows(1.0, Duration::from_secs(30)).await, "the first record was not committed in 30 s");
    // The group is formed now; after a lull, one more record, and a few together.
    for (round, ids) in [(1, 1..2), (2, 2..7)] {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let sent = Instant::now();
        produce(&producer, ids.clone()).await;
        // Waits up to half the batch age, so the time check below can fail on its own.
        let committed = job.wait_for_rows(ids.end as f64, max_age / 2).await;
        assert!(committed, "round {round}: not committed in {:?} (batch age {max_age:?})", max_age / 2);
        assert!(sent.elapsed() < max_age / 4, "round {round}: committed after {:?}", sent.elapsed());
    }
    let commits = job.commits();
    job.stop().await;
    let ids = ids_in(&lake).await;
    assert_eq!(ids, (0..7).map(|i| format!("v{i}")).collect::<HashSet<_>>());
    assert!((3.0..=7.0).contains(&commits), "{commits} commits for three separate arrivals");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backlog_is_committed_in_a_few_large_batches() {
    let broker = reco_testkit::broker_with_topics().await;
    let bootstrap = broker.bootstrap();
    let producer: FutureProducer = reco_kafka::client_config(&bootstrap).create().unwrap();
    let total = 60_000;
    produce(&producer, 0..total).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path(), Format::Delta).unwrap();
    let (min_age, max_age) = (Duration::from_millis(50), Duration::from_secs(2));
    let started = Instant::now();
    let job = Running::start(&bootstrap, &lake, min_age, max_age);
    assert!(job.wait_for_rows(total as f64, Duration::from_secs(120)).await, "backlog not read in 120 s");
    let took = started.elapsed();
    let commits = job.commits();
    job.stop().await;
    let ids = ids_in(&lake).await;
    let missing = (0..total).filter(|i| !ids.contains(&format!("v{i}"))).count();
    assert_eq!((ids.len(), missing), (total, 0), "every record once");
    // Asked once, the broker names offsets far ahead: the job reads up to them (or flushes at
    // the batch age), rather than committing every `min_age`.
    let by_age = (took.as_secs_f64() / max_age.as_secs_f64()).ceil() + 2.0;
    let by_min_age = took.as_secs_f64() / min_age.as_secs_f64();
    assert!(commits <= by_age, "{commits} commits in {took:?}: more than the batch age allows ({by_age})");
    eprintln!("backlog of {total}: {commits} commits in {took:?} (one per min age would be {by_min_age:.0})");
    broker.stop().await;
}
