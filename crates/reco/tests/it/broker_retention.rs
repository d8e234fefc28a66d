//! The embedded broker's retention on SQLite (`reco up`'s default), through rdkafka as a user's
//! producer and consumer see it: records past the topic's `retention.ms` leave the front of
//! each partition's log, more of them than one retention pass deletes, and nothing else goes.
//!
//! Why this matters: tansu's own retention statement compared every record's timestamp while
//! holding the broker's only storage lane, so at ~10M records every produce waited ~20 s each
//! maintenance pass (the 30-minute soak failed on it). reco carries a patched statement
//! (third_party/README.md) that reads only the oldest records of partitions that have expired
//! ones; this test pins its semantics.

use std::{collections::HashMap, time::Duration};

use rdkafka::{
    admin::{NewTopic, TopicReplication},
    producer::{FutureProducer, FutureRecord},
};
use reco_kafka::{BrokerStorage, EmbeddedBroker};
use reco_testkit::{create_topic, free_addr, log_starts, read_topic, wait_until};

const TOPIC: &str = "retention_probe";
const RETENTION_MS: i64 = 60_000;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// What one partition is fed, in order: `(payload, Kafka timestamp)`.
fn partition_feed(partition: i32, expired_head: usize, now: i64) -> Vec<(String, i64)> {
    let old = now - 10 * RETENTION_MS;
    let mut feed: Vec<(String, i64)> = (0..expired_head).map(|i| (format!("p{partition}-old-{i}"), old)).collect();
    // After the first fresh record, an expired one must stay: a log only loses its front.
    feed.extend((0..5).map(|i| (format!("p{partition}-fresh-a{i}"), now)));
    feed.extend((0..5).map(|i| (format!("p{partition}-late-old-{i}"), old)));
    feed.extend((0..5).map(|i| (format!("p{partition}-fresh-b{i}"), now)));
    feed
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_records_leave_the_front_of_each_log_and_nothing_else_does() {
    let dir = tempfile::tempdir().unwrap();
    let storage = BrokerStorage::Sqlite(dir.path().join("broker.db"));
    let broker = EmbeddedBroker::start_with_retention_interval(free_addr(), storage, Duration::from_millis(300))
        .await
        .expect("broker starts");
    let bootstrap = broker.bootstrap();

    let topic = NewTopic::new(TOPIC, 3, TopicReplication::Fixed(1))
        .set("retention.ms", "60000")
        .set("cleanup.policy", "delete");
    create_topic(&bootstrap, &topic).await;

    // Uneven: partition 0 has more expired records than one pass deletes (10,000), partition 1
    // a few, partition 2 none. Everything is sent at once, as a backlog replay would be.
    let now = now_ms();
    let feeds: HashMap<i32, Vec<(String, i64)>> =
        [(0, 23_456), (1, 37), (2, 0)].into_iter().map(|(p, n)| (p, partition_feed(p, n, now))).collect();
    let producer: FutureProducer =
        reco_kafka::client_config(&bootstrap).set("linger.ms", "5").set("enable.idempotence", "true").create().unwrap();
    let mut pending = Vec::new();
    for (partition, feed) in &feeds {
        for (payload, ts) in feed {
            let record = FutureRecord::<(), _>::to(TOPIC).partition(*partition).payload(payload).timestamp(*ts);
            pending.push(producer.send_result(record).expect("queued"));
        }
    }
    for delivery in pending {
        delivery.await.unwrap().map_err(|(e, _)| e).expect("acknowledged");
    }

    // Each partition's log must come to start at its first fresh record.
    let expected_starts: Vec<i64> =
        (0..3).map(|p| feeds[&p].iter().position(|(_, ts)| *ts == now).unwrap() as i64).collect();
    let starts = || log_starts(&bootstrap, TOPIC, 3);
    let reached = wait_until(Duration::from_secs(60), || async { starts() == expected_starts }).await;
    assert!(reached, "log starts {:?}, expected {expected_starts:?}", starts());

    // And stay there: more passes delete nothing past the first fresh record.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(starts(), expected_starts, "later passes kept the log start");

    let mut left: HashMap<i32, Vec<String>> = HashMap::new();
    for record in read_topic(&bootstrap, TOPIC).await {
        left.entry(record.partition).or_default().push(String::from_utf8(record.payload.unwrap()).unwrap());
    }
    for (partition, feed) in &feeds {
        let start = expected_starts[*partition as usize] as usize;
        let kept: Vec<String> = feed[start..].iter().map(|(payload, _)| payload.clone()).collect();
        assert_eq!(left.get(partition).cloned().unwrap_or_default(), kept, "partition {partition} keeps its tail");
    }
    broker.stop().await;
}

/// The SQLite log returns what was produced: offsets in order without holes, keys, values,
/// timestamps and headers, read from the start and from inside the log. reco's patched engine
/// writes a batch's records with one statement and skips the header lookup of fetches that
/// have no headers (third_party/README.md, changes 6 and 7): records with headers between
/// records without must still carry them.
#[tokio::test(flavor = "multi_thread")]
async fn the_sqlite_log_returns_records_and_headers_as_produced() {
    use rdkafka::{
        Message,
        consumer::{BaseConsumer, Consumer},
        message::{Header, Headers, OwnedHeaders},
    };
    let dir = tempfile::tempdir().unwrap();
    let broker = EmbeddedBroker::start(free_addr(), BrokerStorage::Sqlite(dir.path().join("broker.db"))).await.unwrap();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, &NewTopic::new("log_probe", 1, TopicReplication::Fixed(1))).await;
    let producer: FutureProducer = reco_kafka::client_config(&bootstrap)
        .set("linger.ms", "20")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .create()
        .unwrap();
    // 2,000 records in bursts (batches over the 512 records of one insert); every 300th with
    // headers, every 7th without a key.
    let base_ts = now_ms() - 1_000;
    let mut pending = Vec::new();
    for i in 0..2_000i64 {
        let (key, value) = (format!("k{i}"), format!("v{i}"));
        let mut record = FutureRecord::to("log_probe").partition(0).payload(&value).timestamp(base_ts + i);
        if i % 7 != 0 {
            record = record.key(&key);
        }
        if i % 300 == 0 {
            let headers = OwnedHeaders::new()
                .insert(Header { key: "trace", value: Some(&format!("t{i}")) })
                .insert(Header { key: "empty", value: None::<&str> });
            record = record.headers(headers);
        }
        pending.push(producer.send_result(record).unwrap());
    }
    for p in pending {
        p.await.unwrap().unwrap();
    }

    for from in [0i64, 1_234] {
        let consumer: BaseConsumer = reco_kafka::client_config(&bootstrap)
            .set("group.id", "log-probe")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset("log_probe", 0, rdkafka::Offset::Offset(from)).unwrap();
        consumer.assign(&tpl).unwrap();
        let mut next = from;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while next < 2_000 {
            assert!(std::time::Instant::now() < deadline, "read to offset {next} of 2000 from {from}");
            let Some(m) = consumer.poll(Duration::from_millis(200)) else { continue };
            let m = m.unwrap();
            let i = m.offset();
            assert_eq!(i, next, "offsets in order without holes");
            assert_eq!(m.payload_view::<str>().unwrap().unwrap(), format!("v{i}"));
            let key = (i % 7 != 0).then(|| format!("k{i}"));
            assert_eq!(m.key().map(|k| String::from_utf8_lossy(k).into_owned()), key, "key of {i}");
            assert_eq!(m.timestamp().to_millis(), Some(base_ts + i), "timestamp of {i}");
            let headers: Vec<(String, Option<String>)> = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_owned(), h.value.map(|v| String::from_utf8_lossy(v).into_owned())))
                        .collect()
                })
                .unwrap_or_default();
            let expected = if i % 300 == 0 {
                vec![("trace".to_owned(), Some(format!("t{i}"))), ("empty".to_owned(), None)]
            } else {
                vec![]
            };
            assert_eq!(headers, expected, "headers of {i}");
            next += 1;
        }
    }
    broker.stop().await;
}
