//! The event producer: idempotent, `acks=all`, and bounded in time. A caller learns within
//! [`ProducerSettings::ack_timeout`] whether each record was acknowledged; it never waits
//! forever and never mistakes an unacknowledged record for a delivered one.

use std::{
    sync::{Arc, PoisonError, RwLock},
    time::{Duration, Instant},
};

use futures_util::future::join_all;
use rdkafka::{
    error::KafkaError,
    producer::{FutureProducer, FutureRecord, Producer},
    util::Timeout,
};

use tracing::warn;

use crate::{Error, Result, client_config, topics::run_blocking};

#[derive(Clone, Debug)]
pub struct ProducerSettings {
    pub bootstrap_servers: String,
    /// Upper bound from handing a record to the producer to its acknowledgment. librdkafka
    /// retries within it (`message.timeout.ms`) and reports failure when it runs out.
    pub ack_timeout: Duration,
    /// How long the producer waits to fill a batch. Small: the API holds a request open until
    /// its events are acknowledged, so linger adds directly to request latency.
    pub linger: Duration,
}

impl Default for ProducerSettings {
    fn default() -> Self {
        ProducerSettings {
            bootstrap_servers: "127.0.0.1:9092".into(),
            ack_timeout: Duration::from_secs(5),
            linger: Duration::from_millis(2),
        }
    }
}

/// One record to send.
#[derive(Clone, Copy, Debug)]
pub struct Outgoing<'a> {
    pub topic: &'a str,
    pub key: &'a [u8],
    pub payload: &'a [u8],
}

/// Where an acknowledged record landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub partition: i32,
    pub offset: i64,
}

/// The producer in use and how many times it was replaced.
struct Slot {
    producer: FutureProducer,
    generation: u64,
    created: Instant,
}

/// Cheap to clone; clones share one librdkafka producer.
#[derive(Clone)]
pub struct EventProducer {
    slot: Arc<RwLock<Slot>>,
    settings: ProducerSettings,
}

impl std::fmt::Debug for EventProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventProducer").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl EventProducer {
    pub fn new(settings: ProducerSettings) -> Result<Self> {
        let producer = create(&settings)?;
        let slot = Slot { producer, generation: 0, created: Instant::now() };
        Ok(EventProducer { slot: Arc::new(RwLock::new(slot)), settings })
    }

    fn current(&self) -> (FutureProducer, u64) {
        let slot = self.slot.read().unwrap_or_else(PoisonError::into_inner);
        (slot.producer.clone(), slot.generation)
    }

    /// Replaces the producer after a failed delivery, at most once per `ack_timeout`.
    ///
    /// After a delivery timeout librdkafka's idempotent producer asks the broker to bump its
    /// epoch (InitProducerId with its current id, KIP-360). tansu 0.6 does not implement that
    /// request (it panics the connection), so the producer would never recover from a broker
    /// outage. A fresh producer gets a fresh producer id instead, which every broker supports;
    /// on Kafka it costs one extra round trip after a failure. Idempotence still holds for
    /// every record the new producer sends.
    fn replace_after_failure(&self, failed_generation: u64) {
        let mut slot = self.slot.write().unwrap_or_else(PoisonError::into_inner);
        if slot.generation != failed_generation || slot.created.elapsed() < self.settings.ack_timeout {
            return;
        }
        match create(&self.settings) {
            Ok(fresh) => {
                let old = std::mem::replace(&mut slot.producer, fresh);
                slot.generation += 1;
                slot.created = Instant::now();
                warn!(generation = slot.generation, "replaced the Kafka producer after a failed delivery");
                // Dropping a producer purges and briefly flushes it: keep that off async workers.
                tokio::task::spawn_blocking(move || drop(old));
            }
            Err(e) => warn!(error = %e, "could not create a replacement Kafka producer"),
        }
    }
}

fn create(settings: &ProducerSettings) -> Result<FutureProducer> {
    Ok(client_config(&settings.bootstrap_servers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", settings.ack_timeout.as_millis().to_string())
        .set("request.timeout.ms", settings.ack_timeout.as_millis().min(30_000).to_string())
        .set("linger.ms", settings.linger.as_millis().to_string())
        .set("compression.type", "lz4")
        .create()?)
}

impl EventProducer {
    pub fn settings(&self) -> &ProducerSettings {
        &self.settings
    }

    /// Sends every record and waits for all acknowledgments, returning one result per record
    /// in order. Records are enqueued together so librdkafka batches them per partition.
    pub async fn send_all(&self, records: &[Outgoing<'_>]) -> Vec<Result<Delivery, KafkaError>> {
        let (producer, generation) = self.current();
        let results = self.send_with(&producer, records).await;
        if results.iter().any(Result::is_err) {
            self.replace_after_failure(generation);
        }
        results
    }

    async fn send_with(
        &self,
        producer: &FutureProducer,
        records: &[Outgoing<'_>],
    ) -> Vec<Result<Delivery, KafkaError>> {
        let mut pending = Vec::with_capacity(records.len());
        for r in records {
            let record = FutureRecord::to(r.topic).key(r.key).payload(r.payload);
            // `send_result` only enqueues; a full local queue fails here instead of blocking.
            pending.push(producer.send_result(record).map_err(|(e, _)| e));
        }
        let waits = pending.into_iter().map(|p| async move {
            match p {
                Err(e) => Err(e),
                Ok(future) => match future.await {
                    Ok(Ok(d)) => Ok(Delivery { partition: d.partition, offset: d.offset }),
                    Ok(Err((e, _))) => Err(e),
                    Err(_cancelled) => Err(KafkaError::Canceled),
                },
            }
        });
        // librdkafka fails each record at `message.timeout.ms`; this backstop only guards
        // against a delivery report that never arrives.
        let backstop = self.settings.ack_timeout + Duration::from_secs(2);
        match tokio::time::timeout(backstop, join_all(waits)).await {
            Ok(results) => results,
            Err(_) => records.iter().map(|_| Err(KafkaError::Canceled)).collect(),
        }
    }

    /// Waits up to `timeout` for queued records to be delivered (graceful shutdown).
    pub async fn flush(&self, timeout: Duration) -> Result<()> {
        let (producer, _) = self.current();
        run_blocking(move || Ok(producer.flush(Timeout::After(timeout))?)).await
    }

    /// Checks that the cluster answers a metadata request within `timeout`.
    /// Uses the producer's own connections, so a probe costs one small request.
    pub async fn ping(&self, timeout: Duration) -> Result<()> {
        let (producer, _) = self.current();
        let bootstrap = self.settings.bootstrap_servers.clone();
        run_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some("events_views"), timeout)
                .map(|_| ())
                .map_err(|e| Error::Unreachable { bootstrap, message: e.to_string() })
        })
        .await
    }
}
