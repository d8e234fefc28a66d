//! The embedded broker's memory storage (`reco up --broker-storage memory`) as a Kafka log,
//! through rdkafka as a user's producers and consumer see it: offsets without holes while
//! several producers write one partition, watermarks as Kafka defines them, and a consumer that
//! resumes inside a batch reads the rest of that batch.
//!
//! Why this matters: tansu 0.6's memory storage assigned a batch's offsets and wrote it later,
//! with produces to one partition running concurrently. A consumer fetching between two writes
//! got a later batch without the earlier one and never read the earlier one (silver counted
//! the missing offsets as deleted by retention: events lost under load). It also served a
//! fetch from the first batch *at or after* the offset, and reported the log's end inside its
//! newest batch. reco carries a patched storage (third_party/README.md); this test pins it.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use rdkafka::{
    Message, Offset, TopicPartitionList,
    admin::{NewTopic, TopicReplication},
    consumer::{BaseConsumer, Consumer},
    producer::{FutureProducer, FutureRecord},
};
use reco_kafka::{BrokerStorage, EmbeddedBroker};
use reco_testkit::{create_topic, free_addr, xorshift};

async fn memory_broker_with_topic(topic: &str, partitions: i32) -> EmbeddedBroker {
    let broker = EmbeddedBroker::start(free_addr(), BrokerStorage::Memory).await.expect("broker starts");
    create_topic(&broker.bootstrap(), &NewTopic::new(topic, partitions, TopicReplication::Fixed(1))).await;
    broker
}

fn consumer(bootstrap: &str) -> BaseConsumer {
    reco_kafka::client_config(bootstrap)
        .set("group.id", "memory-log-probe")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer")
}

/// What the reader saw: payloads by partition in offset order, and every place where an
/// offset was not the previous one plus one.
#[derive(Default)]
struct Read {
    payloads: BTreeMap<i32, Vec<String>>,
    jumps: Vec<(i32, i64, i64)>,
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_producers_leave_no_hole_a_consumer_can_see() {
    const TOPIC: &str = "memory_log_probe";
    const PRODUCERS: usize = 4;
    const PER_PRODUCER: usize = 3_000;
    let broker = memory_broker_with_topic(TOPIC, 3).await;
    let bootstrap = broker.bootstrap();
    let total = PRODUCERS * PER_PRODUCER;

    // A reader from offset 0 of every partition while the producers write, as silver reads.
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (bootstrap, done) = (bootstrap.clone(), done.clone());
        tokio::task::spawn_blocking(move || {
            let consumer = consumer(&bootstrap);
            let mut assignment = TopicPartitionList::new();
            for p in 0..3 {
                assignment.add_partition_offset(TOPIC, p, Offset::Offset(0)).unwrap();
            }
            consumer.assign(&assignment).unwrap();
            let mut read = Read::default();
            let mut next: HashMap<i32, i64> = HashMap::new();
            let mut last = Instant::now();
            while read.payloads.values().map(Vec::len).sum::<usize>() < total {
                let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
                    // Done writing and nothing new for a while: what is missing will not come.
                    if done.load(Ordering::Relaxed) && last.elapsed() > Duration::from_secs(10) {
                        break;
                    }
                    continue;
                };
                last = Instant::now();
                let expected = next.entry(m.partition()).or_insert(0);
                if m.offset() != *expected {
                    read.jumps.push((m.partition(), *expected, m.offset()));
                }
                *expected = m.offset() + 1;
                let payload = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
                read.payloads.entry(m.partition()).or_default().push(payload);
            }
            read
        })
    };

    // The log start, asked over and over while the producers write: always 0.
    let starts = {
        let (bootstrap, done) = (bootstrap.clone(), done.clone());
        tokio::task::spawn_blocking(move || {
            let consumer = consumer(&bootstrap);
            let mut wrong = Vec::new();
            while !done.load(Ordering::Relaxed) {
                for p in 0..3 {
                    if let Ok((low, _)) = consumer.fetch_watermarks(TOPIC, p, Duration::from_secs(5))
                        && low != 0
                    {
                        wrong.push((p, low));
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            wrong
        })
    };

    // Four producers (four connections), bursts of uneven size to uneven partitions
    // (6 : 3 : 1), pauses between bursts: what the API's producer lanes do under real traffic.
    let mut writers = Vec::new();
    for w in 0..PRODUCERS {
        let producer: FutureProducer = reco_kafka::client_config(&bootstrap)
            .set("linger.ms", "1")
            .set("enable.idempotence", "true")
            .create()
            .unwrap();
        writers.push(tokio::spawn(async move {
            let mut rand = xorshift(w as u64 + 7);
            let mut produced: Vec<(i32, String)> = Vec::new();
            while produced.len() < PER_PRODUCER {
                let burst = (1 + rand() % 300) as usize;
                let mut pending = Vec::new();
                for _ in 0..burst.min(PER_PRODUCER - produced.len()) {
                    let partition = match rand() % 10 {
                        0..6 => 0,
                        6..9 => 1,
                        _ => 2,
                    };
                    let payload = format!("w{w}-{}", produced.len());
                    let record = FutureRecord::<(), _>::to(TOPIC).partition(partition).payload(&payload);
                    pending.push(producer.send_result(record).expect("queued"));
                    produced.push((partition, payload));
                }
                for delivery in pending {
                    delivery.await.unwrap().map_err(|(e, _)| e).expect("acknowledged");
                }
                tokio::time::sleep(Duration::from_millis(rand() % 20)).await;
            }
            produced
        }));
    }
    let mut produced: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for writer in writers {
        for (partition, payload) in writer.await.unwrap() {
            produced.entry(partition).or_default().push(payload);
        }
    }
    done.store(true, Ordering::Relaxed);
    let read = reader.await.unwrap();
    let wrong_starts = starts.await.unwrap();

    assert!(read.jumps.is_empty(), "offsets skipped or repeated (partition, expected, got): {:?}", read.jumps);
    assert!(wrong_starts.is_empty(), "log start reported past 0 (partition, start): {wrong_starts:?}");
    let probe = consumer(&bootstrap);
    for (partition, payloads) in &produced {
        let marks = probe.fetch_watermarks(TOPIC, *partition, Duration::from_secs(5)).unwrap();
        assert_eq!(marks, (0, payloads.len() as i64), "partition {partition}: (log start, end)");
        let mut want = payloads.clone();
        let mut got = read.payloads.get(partition).cloned().unwrap_or_default();
        want.sort();
        got.sort();
        assert_eq!(got.len(), want.len(), "partition {partition}: records read");
        assert!(got == want, "partition {partition}: the records read are the records produced");
    }
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_resuming_inside_a_batch_reads_the_rest_of_it() {
    const TOPIC: &str = "memory_batch_probe";
    let broker = memory_broker_with_topic(TOPIC, 1).await;
    let bootstrap = broker.bootstrap();

    // Ten records sent at once with a long linger: one batch, offsets 0-9.
    let producer: FutureProducer = reco_kafka::client_config(&bootstrap).set("linger.ms", "200").create().unwrap();
    let pending: Vec<_> = (0..10)
        .map(|i| {
            let payload = format!("r{i}");
            producer.send_result(FutureRecord::<(), _>::to(TOPIC).partition(0).payload(&payload)).expect("queued")
        })
        .collect();
    for delivery in pending {
        delivery.await.unwrap().map_err(|(e, _)| e).expect("acknowledged");
    }

    // A consumer whose committed offset is 5 (a job that stopped after five records).
    let read = tokio::task::spawn_blocking(move || {
        let consumer = consumer(&bootstrap);
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(TOPIC, 0, Offset::Offset(5)).unwrap();
        consumer.assign(&assignment).unwrap();
        let (low, high) = consumer.fetch_watermarks(TOPIC, 0, Duration::from_secs(5)).unwrap();
        let mut read = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(15);
        while read.len() < 5 && Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                read.push((m.offset(), String::from_utf8(m.payload().unwrap().to_vec()).unwrap()));
            }
        }
        ((low, high), read)
    })
    .await
    .unwrap();

    let want: Vec<(i64, String)> = (5..10).map(|i| (i, format!("r{i}"))).collect();
    assert_eq!(read.1, want, "records from offset 5");
    assert_eq!(read.0, (0, 10), "(log start, end) of a log holding one 10-record batch");
    broker.stop().await;
}
