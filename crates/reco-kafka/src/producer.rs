//! The event producer: idempotent, `acks=all`, and bounded in time. A caller learns within
//! [`ProducerSettings::ack_timeout`] whether each record was acknowledged; it never waits
//! forever and never mistakes an unacknowledged record for a delivered one.

use std::{
    sync::{
        Arc, PoisonError, RwLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::future::join_all;
use rdkafka::{
    error::KafkaError,
    producer::{FutureProducer, FutureRecord, Producer},
    util::Timeout,
};

use tracing::{debug, warn};

use crate::{Error, Result, client_config, topics::run_blocking};

#[derive(Clone, Debug)]
pub struct ProducerSettings {
    pub bootstrap_servers: String,
    pub ack_timeout: Duration,
    /// How long the batching lane waits to fill a batch (librdkafka `linger.ms`).
    pub linger: Duration,
    /// How long the short lane waits to fill a batch; it takes requests of at most
    /// [`SHORT_RECORDS`] records. See [`EventProducer`].
    pub short_linger: Duration,
    /// How long the bulk lane waits to fill a batch; it takes requests of at least
    /// [`BULK_RECORDS`] records. See [`EventProducer`].
    pub bulk_linger: Duration,
    /// Requests awaiting acknowledgment below which a new one takes the immediate lane
    /// (`linger.ms=0`); at or above it, the batching lane. See [`EventProducer`].
    pub immediate_below: usize,
    /// librdkafka `compression.type`, unless the operator set one (`--kafka-option`). LZ4 by
    /// default: a cluster stores and replicates fewer bytes. `none` to the embedded broker: over
    /// loopback it saves nothing, and tansu decompresses each produced batch and compresses it
    /// again for each fetch on its one storage lane.
    pub compression: &'static str,
}

impl Default for ProducerSettings {
    fn default() -> Self {
        ProducerSettings {
            bootstrap_servers: "127.0.0.1:9092".into(),
            ack_timeout: Duration::from_secs(5),
            linger: Duration::from_millis(1),
            short_linger: Duration::from_micros(300),
            bulk_linger: Duration::from_millis(5),
            immediate_below: 2,
            compression: "lz4",
        }
    }
}

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

/// Four librdkafka producers to the same cluster, differing only in `linger.ms`. One setting
/// cannot serve both kinds of load: with no linger a lone request goes out at once, but under
/// many concurrent requests every record wakes librdkafka's broker thread and travels in a
/// request of its own (about half the throughput at 32 connections); with a linger of a few
/// milliseconds records share requests, but even a lone request waits for the linger
/// (measurements in docs/BENCHMARKS.md).
/// So the producer picks per request: when no more than one other request is waiting for its
/// acknowledgment, the immediate lane; else the batching lane, whose 1 ms linger is shorter
/// than what those requests wait anyway, or, for a request of [`BULK_RECORDS`] records or more,
/// the bulk lane, whose linger is longer (5 ms): under load such a request waits for several
/// batches anyway, while every wakeup of librdkafka's broker
/// thread to send a partly filled batch costs CPU the HTTP side needs (a quarter of `reco up`'s
/// CPU under 100-event batches with the 1 ms linger, perf; docs/BENCHMARKS.md). A request of at
/// most [`SHORT_RECORDS`] records takes the short lane (0.3 ms) instead: few records wait
/// behind it, so its acknowledgment round trip, not the CPU, bounds a client sending one event
/// at a time, and the linger is most of that trip (one-event requests at 32 connections: about
/// +20 % with 0.3 ms; three-event requests gain nothing and ten-event requests lose 8 %,
/// docs/BENCHMARKS.md). Ordering is
/// unaffected for a client that waits for its 202 before sending again; concurrent requests
/// have no order to keep.
#[derive(Clone)]
struct Lanes {
    immediate: FutureProducer,
    short: FutureProducer,
    batching: FutureProducer,
    bulk: FutureProducer,
}

impl Lanes {
    fn all(&self) -> [&FutureProducer; 4] {
        [&self.immediate, &self.short, &self.batching, &self.bulk]
    }
}

/// The least records a request needs to take the bulk lane.
pub const BULK_RECORDS: usize = 32;

/// The most records a request may have to take the short lane.
pub const SHORT_RECORDS: usize = 2;

/// The producers in use and how many times they were replaced.
struct Producers {
    lanes: Lanes,
    generation: u64,
    created: Instant,
}

/// Cheap to clone; clones share one librdkafka producer.
#[derive(Clone)]
pub struct EventProducer {
    producers: Arc<RwLock<Producers>>,
    /// Shared, so a clone (one per HTTP request in the API's state) allocates nothing.
    settings: Arc<ProducerSettings>,
    /// `send_all` calls awaiting their acknowledgments: the load that picks the lane.
    waiting: Arc<AtomicUsize>,
    /// Until when (µs since `epoch`) the batching lane is used whatever the count: load seen
    /// once keeps the batching lane for [`BUSY_HOLD`], so the requests that arrive just after
    /// a batch is acknowledged (the count momentarily low) do not each go out alone.
    busy_until_us: Arc<std::sync::atomic::AtomicU64>,
    epoch: Instant,
}

/// How long one sign of concurrent load keeps the batching lane.
const BUSY_HOLD: Duration = Duration::from_millis(50);

impl std::fmt::Debug for EventProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventProducer").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl EventProducer {
    pub fn new(settings: ProducerSettings) -> Result<Self> {
        let lanes = create_lanes(&settings)?;
        let producers = Producers { lanes, generation: 0, created: Instant::now() };
        Ok(EventProducer {
            producers: Arc::new(RwLock::new(producers)),
            settings: Arc::new(settings),
            waiting: Arc::new(AtomicUsize::new(0)),
            busy_until_us: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            epoch: Instant::now(),
        })
    }

    fn current(&self) -> (Lanes, u64) {
        let producers = self.producers.read().unwrap_or_else(PoisonError::into_inner);
        (producers.lanes.clone(), producers.generation)
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
        let mut producers = self.producers.write().unwrap_or_else(PoisonError::into_inner);
        if producers.generation != failed_generation || producers.created.elapsed() < self.settings.ack_timeout {
            return;
        }
        match create_lanes(&self.settings) {
            Ok(fresh) => {
                let old = std::mem::replace(&mut producers.lanes, fresh);
                producers.generation += 1;
                producers.created = Instant::now();
                warn!(generation = producers.generation, "replaced the Kafka producer after a failed delivery");
                // Dropping a producer purges and briefly flushes it: keep that off async workers.
                tokio::task::spawn_blocking(move || drop(old));
            }
            Err(e) => warn!(error = %e, "could not create a replacement Kafka producer"),
        }
    }
}

fn create_lanes(settings: &ProducerSettings) -> Result<Lanes> {
    Ok(Lanes {
        immediate: create(settings, Duration::ZERO)?,
        short: create(settings, settings.short_linger)?,
        batching: create(settings, settings.linger)?,
        bulk: create(settings, settings.bulk_linger)?,
    })
}

fn create(settings: &ProducerSettings, linger: Duration) -> Result<FutureProducer> {
    let mut config = client_config(&settings.bootstrap_servers);
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", settings.ack_timeout.as_millis().to_string())
        .set("request.timeout.ms", settings.ack_timeout.as_millis().min(30_000).to_string())
        // librdkafka takes fractions of a millisecond.
        .set("linger.ms", format!("{}", linger.as_secs_f64() * 1000.0));
    if !crate::client_options().iter().any(|(key, _)| key == "compression.type" || key == "compression.codec") {
        config.set("compression.type", settings.compression);
    }
    Ok(config.create()?)
}

impl EventProducer {
    pub fn settings(&self) -> &ProducerSettings {
        &self.settings
    }

    /// Sends every record and waits for all acknowledgments, returning one result per record
    /// in order. Records are enqueued together so librdkafka batches them per partition.
    pub async fn send_all(&self, records: &[Outgoing<'_>]) -> Vec<Result<Delivery, KafkaError>> {
        let (lanes, generation) = self.current();
        let waiting = Waiting::enter(&self.waiting);
        let now_us = self.epoch.elapsed().as_micros() as u64;
        let busy = waiting.ahead >= self.settings.immediate_below;
        if busy {
            self.busy_until_us.store(now_us + BUSY_HOLD.as_micros() as u64, Ordering::Relaxed);
        }
        let immediate = !busy && now_us >= self.busy_until_us.load(Ordering::Relaxed);
        let producer = if immediate {
            &lanes.immediate
        } else if records.len() >= BULK_RECORDS {
            &lanes.bulk
        } else if records.len() <= SHORT_RECORDS {
            &lanes.short
        } else {
            &lanes.batching
        };
        let results = self.send_with(producer, records).await;
        drop(waiting);
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
        let (lanes, _) = self.current();
        run_blocking(move || {
            let deadline = Instant::now() + timeout;
            for lane in lanes.all() {
                lane.flush(Timeout::After(deadline.saturating_duration_since(Instant::now())))?;
            }
            Ok(())
        })
        .await
    }

    /// Looks up `topics` on every lane before the first event: the first produce otherwise
    /// waits for the topic's metadata and leader (about 0.85 s on a broker that just created
    /// the topics, measured under `reco up`). Best effort: a broker that does not answer yet
    /// is looked up on first use, as before.
    pub async fn warm_up(&self, topics: &[&'static str], timeout: Duration) {
        let (lanes, _) = self.current();
        let topics = topics.to_vec();
        let warmed = run_blocking(move || {
            for producer in lanes.all() {
                for topic in &topics {
                    producer.client().fetch_metadata(Some(topic), timeout)?;
                }
            }
            Ok(())
        })
        .await;
        if let Err(e) = warmed {
            debug!(error = %e, "producer warm-up: topics not looked up yet");
        }
    }

    /// Checks that the cluster answers a metadata request within `timeout`.
    /// Uses the producer's own connections, so a probe costs one small request.
    pub async fn ping(&self, timeout: Duration) -> Result<()> {
        let (lanes, _) = self.current();
        let bootstrap = self.settings.bootstrap_servers.clone();
        run_blocking(move || {
            lanes
                .immediate
                .client()
                .fetch_metadata(Some(reco_core::EventType::View.topic()), timeout)
                .map(|_| ())
                .map_err(|e| Error::Unreachable { bootstrap, message: e.to_string() })
        })
        .await
    }
}

/// One `send_all` call counted in `EventProducer::waiting` for as long as it waits; `ahead`
/// is how many were already waiting when it came.
struct Waiting<'a> {
    count: &'a AtomicUsize,
    ahead: usize,
}

impl<'a> Waiting<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        Waiting { ahead: count.fetch_add(1, Ordering::Relaxed), count }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}
