//! Test helpers for reco (not published): an embedded broker on a free port, a consumer that
//! reads topics back, and a parser for the Prometheus text that `/metrics` serves.

pub mod bad;
pub mod bench;
pub mod browser;
pub mod gold;
pub mod http;
mod metrics;
pub mod neighbors;
pub mod proc;
pub mod proxy;
pub mod readme;
pub mod s3;
pub mod up;

use std::{net::SocketAddr, time::Duration};

use rdkafka::{
    Message, Offset, TopicPartitionList,
    admin::{AdminClient, AdminOptions, NewTopic},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
};
use reco_kafka::{BrokerStorage, EmbeddedBroker, client_config, topics};

pub use metrics::{Sample, Samples};

/// A port nobody listens on right now (the OS picks it; a race with another process is
/// possible but rare enough for tests).
/// A small deterministic generator (xorshift64) for test data: the same seed, the same events.
pub fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("no free port")
}

pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// Starts an in-memory embedded broker on a free port with the platform's topics created.
pub async fn broker_with_topics() -> EmbeddedBroker {
    broker_with_topics_on(BrokerStorage::Memory).await
}

/// The same on the given storage (SQLite for tests that need the broker's log on disk).
pub async fn broker_with_topics_on(storage: BrokerStorage) -> EmbeddedBroker {
    let broker = EmbeddedBroker::start(free_addr(), storage).await.expect("broker starts");
    let mut specs = topics::default_topics();
    specs.iter_mut().for_each(|s| s.replication_factor = Some(1));
    topics::ensure_topics(&broker.bootstrap(), &specs, false).await.expect("topics created");
    broker
}

/// Creates `topic` through the admin API, retrying for up to 30 s (a broker just started may
/// not answer yet); panics naming the topic when it cannot.
pub async fn create_topic(bootstrap: &str, topic: &NewTopic<'_>) {
    let admin: AdminClient<DefaultClientContext> = client_config(bootstrap).create().expect("admin client");
    let created = wait_until(Duration::from_secs(30), || async {
        admin.create_topics([topic], &AdminOptions::new()).await.is_ok_and(|r| r.iter().all(Result::is_ok))
    })
    .await;
    assert!(created, "topic {} not created", topic.name);
}

/// A record read back from Kafka.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
}

/// Number of records in `topic` (sum over partitions of high minus low watermark).
pub async fn topic_count(bootstrap: &str, topic: &str) -> i64 {
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = client_config(&bootstrap).create().expect("consumer");
        let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10)).expect("metadata");
        let partitions = metadata.topics()[0].partitions().len() as i32;
        (0..partitions)
            .map(|p| {
                let (low, high) = consumer.fetch_watermarks(&topic, p, Duration::from_secs(10)).expect("watermarks");
                high - low
            })
            .sum()
    })
    .await
    .expect("watermark task")
}

/// The first offset each of partitions `0..partitions` of `topic` holds (-1 when it cannot be
/// asked): where retention or compaction left each log's start.
pub fn log_starts(bootstrap: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = client_config(bootstrap).create().expect("consumer");
    (0..partitions)
        .map(|p| consumer.fetch_watermarks(topic, p, Duration::from_secs(5)).map_or(-1, |(low, _)| low))
        .collect()
}

/// Reads every record of `topic` from the beginning, without a consumer group, until the
/// topic's current end. Order is by partition, then offset.
pub async fn read_topic(bootstrap: &str, topic: &str) -> Vec<Record> {
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = client_config(&bootstrap)
            .set("group.id", "reco-testkit")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10)).expect("metadata");
        let mut total = 0;
        let mut assignment = TopicPartitionList::new();
        for p in metadata.topics()[0].partitions() {
            let (low, high) = consumer.fetch_watermarks(&topic, p.id(), Duration::from_secs(10)).expect("watermarks");
            if high > low {
                assignment.add_partition_offset(&topic, p.id(), Offset::Offset(low)).expect("assign");
                total += high - low;
            }
        }
        let mut records = Vec::new();
        if total == 0 {
            return records;
        }
        consumer.assign(&assignment).expect("assign");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while (records.len() as i64) < total && std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                records.push(Record {
                    topic: m.topic().to_owned(),
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().map(<[u8]>::to_vec),
                });
            }
        }
        assert_eq!(records.len() as i64, total, "could not read all of {topic} in time");
        records.sort_by_key(|r| (r.partition, r.offset));
        records
    })
    .await
    .expect("read task")
}

/// Polls `check` every 50 ms until it returns true or `timeout` passes; returns the last answer.
pub async fn wait_until<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    wait_for(timeout, || {
        let answer = check();
        async move { answer.await.then_some(()) }
    })
    .await
    .is_some()
}

/// Polls `check` every 50 ms until it gives `Some` or `timeout` passes.
pub async fn wait_for<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(t) = check().await {
            return Some(t);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
