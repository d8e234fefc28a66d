//! Produce requests served together, through rdkafka as a user's producers see them. The
//! embedded broker serves the Produce requests a connection sent back to back together, and its
//! SQLite storage stores the batches waiting on its lane in one transaction (a group commit,
//! third_party/README.md). What every producer must still get, with either storage: each of
//! its records stored exactly once, at the offset its acknowledgment named, in the order it
//! sent them to that partition, and every partition a log without holes.

use std::{collections::BTreeMap, time::Duration};

use rdkafka::{
    Message, Offset, TopicPartitionList,
    admin::{NewTopic, TopicReplication},
    consumer::{BaseConsumer, Consumer},
    producer::{FutureProducer, FutureRecord},
};
use reco_kafka::{BrokerStorage, EmbeddedBroker};
use reco_testkit::{create_topic, free_addr, xorshift};

const TOPIC: &str = "produce_groups_probe";
const PARTITIONS: i32 = 3;
const PRODUCERS: u64 = 4;
const PER_PRODUCER: usize = 4_000;

/// One acknowledged record: where the broker said it put it.
struct Acked {
    partition: i32,
    offset: i64,
    payload: String,
}

/// One producer (one connection), idempotent with up to five requests in flight, sending
/// bursts of uneven size to uneven partitions (6 : 3 : 1) with pauses, as the API's lanes do.
async fn produce(bootstrap: String, w: u64) -> Vec<Acked> {
    let producer: FutureProducer = reco_kafka::client_config(&bootstrap)
        .set("linger.ms", "1")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .expect("producer");
    let mut rand = xorshift(w + 11);
    let mut acked = Vec::with_capacity(PER_PRODUCER);
    while acked.len() < PER_PRODUCER {
        let burst = (1 + rand() % 400) as usize;
        let start = acked.len();
        let mut pending = Vec::new();
        for i in start..(start + burst).min(PER_PRODUCER) {
            let partition = match rand() % 10 {
                0..6 => 0,
                6..9 => 1,
                _ => 2,
            };
            let payload = format!("w{w}-{i}");
            let record = FutureRecord::<(), _>::to(TOPIC).partition(partition).payload(&payload);
            let delivery = producer.send_result(record).expect("queued");
            pending.push((payload, delivery));
        }
        for (payload, delivery) in pending {
            let d = delivery.await.expect("delivery report").map_err(|(e, _)| e).expect("acknowledged");
            acked.push(Acked { partition: d.partition, offset: d.offset, payload });
        }
        tokio::time::sleep(Duration::from_millis(rand() % 15)).await;
    }
    acked
}

/// Every record of the topic by partition, in offset order, with the offsets seen.
fn read_all(bootstrap: &str, expected: usize) -> BTreeMap<i32, Vec<(i64, String)>> {
    let consumer: BaseConsumer = reco_kafka::client_config(bootstrap)
        .set("group.id", "produce-groups-probe")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment.add_partition_offset(TOPIC, p, Offset::Offset(0)).unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut read: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while read.values().map(Vec::len).sum::<usize>() < expected && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let payload = String::from_utf8(m.payload().expect("a value").to_vec()).unwrap();
            read.entry(m.partition()).or_default().push((m.offset(), payload));
        }
    }
    read
}

async fn every_record_once_in_order_where_acknowledged(storage: BrokerStorage) {
    let broker = EmbeddedBroker::start(free_addr(), storage).await.expect("broker starts");
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, &NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(1))).await;

    let writers: Vec<_> = (0..PRODUCERS).map(|w| tokio::spawn(produce(bootstrap.clone(), w))).collect();
    let mut acked = Vec::new();
    for writer in writers {
        acked.push(writer.await.expect("producer task"));
    }
    let total = acked.iter().map(Vec::len).sum::<usize>();
    let read = {
        let bootstrap = bootstrap.clone();
        tokio::task::spawn_blocking(move || read_all(&bootstrap, total)).await.unwrap()
    };

    // Each partition a log without holes, holding exactly what was acknowledged there.
    let mut at: BTreeMap<(i32, i64), &str> = BTreeMap::new();
    for (partition, records) in &read {
        for (i, (offset, payload)) in records.iter().enumerate() {
            assert_eq!(*offset, i as i64, "partition {partition}: offsets skipped or repeated");
            at.insert((*partition, *offset), payload);
        }
    }
    assert_eq!(at.len(), total, "records read vs records acknowledged");
    for (w, records) in acked.iter().enumerate() {
        let mut last: BTreeMap<i32, i64> = BTreeMap::new();
        for a in records {
            let stored = at.get(&(a.partition, a.offset)).copied();
            assert_eq!(
                stored,
                Some(a.payload.as_str()),
                "producer {w}: what is stored where its record was acknowledged"
            );
            let previous = last.insert(a.partition, a.offset).unwrap_or(-1);
            assert!(
                a.offset > previous,
                "producer {w}, partition {}: {} stored at {} before a record sent earlier (at {previous})",
                a.partition,
                a.payload,
                a.offset
            );
        }
    }
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_stores_every_acknowledged_record_once_in_send_order() {
    let dir = tempfile::tempdir().unwrap();
    every_record_once_in_order_where_acknowledged(BrokerStorage::Sqlite(dir.path().join("broker.db"))).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_stores_every_acknowledged_record_once_in_send_order() {
    every_record_once_in_order_where_acknowledged(BrokerStorage::Memory).await;
}
