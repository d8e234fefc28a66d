//! The chaos driver: traffic shaped like a real log replay (bursts of 1 to 1,000 events per
//! request, a few users and items far more active than the rest, historic event times first,
//! then live ones, lulls longer than gold's idle timeout), posted to two API instances as a
//! client would post it: a 503, a refused connection or no answer is retried with the same
//! event ids on the other instance until it is acknowledged. Its history (every acknowledged
//! event, every refused one, every bad record written straight into Kafka) is all the checker
//! trusts.
//!
//! Event times never go backwards by more than [`SPREAD_US`] across everything in flight, so
//! no event is late by the contract (lateness 5 min) whatever the faults delay: a new batch
//! waits while it would be that far ahead of the oldest unacknowledged one.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use rdkafka::producer::{FutureProducer, FutureRecord};
use reco_testkit::neighbors::Kind;
use serde_json::{Value, json};
use tokio::time::Instant;

/// How far (event time) a new batch may run ahead of the oldest one still unacknowledged.
pub const SPREAD_US: i64 = 120_000_000;

/// One acknowledged event, as the driver sent it.
#[derive(Clone, Debug)]
pub struct Sent {
    pub id: String,
    pub user: String,
    pub item: String,
    pub kind: Kind,
    pub time_us: i64,
}

/// What the driver did, in the order it happened.
#[derive(Debug, Default)]
pub struct History {
    pub acked: Vec<Sent>,
    /// Ids of events in requests the API refused (422): none may reach silver.
    pub refused: Vec<String>,
    /// Bad records written straight into Kafka (the producer acknowledged them): payloads.
    pub bad_records: Vec<Vec<u8>>,
    /// Answers other than 202, 422 for a bad batch, 503: each a finding.
    pub unexpected: Vec<String>,
}

/// Counters printed in the verdict.
#[derive(Debug, Default)]
pub struct Counts {
    pub requests: AtomicU64,
    pub retried_503: AtomicU64,
    pub retried_io: AtomicU64,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub seed: u64,
    /// Wall time of the run; historic event times for the first `historic` share of it.
    pub duration: Duration,
    pub historic: f64,
    /// Event time covered by the historic phase; it ends an hour before now.
    pub historic_span_us: i64,
    /// Target events per second (over all senders), outside lulls.
    pub rate: f64,
    /// `(start, length)` of the lulls, from the start of the run.
    pub lulls: Vec<(Duration, Duration)>,
    pub senders: usize,
}

struct Shared {
    plan: Plan,
    apis: Vec<String>,
    bootstrap: String,
    started: Instant,
    historic_start_us: i64,
    /// Batch number → event time, for batches not yet acknowledged.
    in_flight: Mutex<BTreeMap<u64, i64>>,
    next_batch: AtomicU64,
    history: Mutex<History>,
    counts: Counts,
}

fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64
}

/// Runs the plan against the API instances at `apis` (bad records through `bootstrap`);
/// returns the history and the counters.
pub async fn drive(plan: Plan, apis: Vec<String>, bootstrap: String) -> (History, Counts) {
    let historic_start_us = now_us() - 3_600_000_000 - plan.historic_span_us;
    let shared = Arc::new(Shared {
        apis,
        bootstrap,
        started: Instant::now(),
        historic_start_us,
        in_flight: Mutex::new(BTreeMap::new()),
        next_batch: AtomicU64::new(0),
        history: Mutex::new(History::default()),
        counts: Counts::default(),
        plan,
    });
    let senders: Vec<_> = (0..shared.plan.senders).map(|s| tokio::spawn(sender(shared.clone(), s as u64))).collect();
    for s in senders {
        s.await.expect("sender");
    }
    let shared = Arc::into_inner(shared).expect("senders done");
    (shared.history.into_inner().unwrap(), shared.counts)
}

impl Shared {
    /// The event time of a batch starting now: the historic clock (a fast replay ending an
    /// hour ago), then the wall clock.
    fn event_time(&self) -> i64 {
        let elapsed = self.started.elapsed().as_secs_f64();
        let historic = self.plan.duration.as_secs_f64() * self.plan.historic;
        let t = if elapsed < historic {
            self.historic_start_us + (self.plan.historic_span_us as f64 * elapsed / historic) as i64
        } else {
            now_us()
        };
        // Whole milliseconds, as the JSON carries them: the history must hold the event time
        // silver stores, or the recount orders same-millisecond events of a user differently
        // and decays by a slightly other age (seen as neighbour scores off by 1e-7).
        t - t.rem_euclid(1000)
    }

    /// The end of the lull the run is in, if it is in one.
    fn lull_end(&self) -> Option<Instant> {
        let elapsed = self.started.elapsed();
        self.plan
            .lulls
            .iter()
            .find(|(at, len)| elapsed >= *at && elapsed < *at + *len)
            .map(|(at, len)| self.started + *at + *len)
    }

    /// Registers a batch once its event time is within [`SPREAD_US`] of the oldest one in
    /// flight; its number and time.
    async fn admit(&self) -> (u64, i64) {
        loop {
            let t = self.event_time();
            {
                let mut in_flight = self.in_flight.lock().unwrap();
                if in_flight.values().min().is_none_or(|oldest| t <= oldest + SPREAD_US) {
                    let n = self.next_batch.fetch_add(1, Ordering::Relaxed);
                    in_flight.insert(n, t);
                    return (n, t);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn sender(shared: Arc<Shared>, index: u64) {
    let mut next = reco_testkit::xorshift(shared.plan.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (index + 1));
    let mut unit = move || (next() >> 11) as f64 / (1u64 << 53) as f64;
    let producer: FutureProducer = reco_kafka::client_config(&shared.bootstrap)
        .set("enable.idempotence", "true")
        .create()
        .expect("producer for bad records");
    let per_sender = shared.plan.rate / shared.plan.senders as f64;
    while shared.started.elapsed() < shared.plan.duration {
        if let Some(end) = shared.lull_end() {
            tokio::time::sleep_until(end).await;
            continue;
        }
        let (batch, t) = shared.admit().await;
        // Bursts from 1 to 1,000 events, log-uniform: most requests small, a few large.
        let size = (1000f64.powf(unit())).floor().max(1.0) as usize;
        let events: Vec<Sent> = (0..size)
            .map(|k| {
                // Skewed users and items: a few very active, a long tail. More items than an
                // item keeps candidate pairs (200): the popular ones drop their weakest pairs.
                let user = (400.0 * unit().powi(3)) as u32;
                let item = (300.0 * unit().powf(2.5)) as u32;
                let kind = match unit() {
                    r if r < 0.7 => Kind::View,
                    r if r < 0.9 => Kind::Click,
                    _ => Kind::Rating(1.0 + (unit() * 9.0).floor() / 2.0),
                };
                Sent {
                    id: format!("c{}-{batch}-{k}", shared.plan.seed),
                    user: format!("u{user}"),
                    item: format!("m{item}"),
                    kind,
                    time_us: t + k as i64 * 10_000,
                }
            })
            .collect();
        if batch % 40 == 17 {
            refused_batch(&shared, &events).await;
        } else {
            post_until_acked(&shared, &events, batch).await;
        }
        shared.in_flight.lock().unwrap().remove(&batch);
        if batch % 60 == 29 {
            bad_record(&shared, &producer, batch).await;
        }
        tokio::time::sleep(Duration::from_secs_f64(size as f64 / per_sender)).await;
    }
}

fn body(events: &[Sent]) -> Value {
    Value::Array(
        events
            .iter()
            .map(|e| {
                let mut v =
                    json!({"event_id": e.id, "user_id": e.user, "item_id": e.item, "timestamp": e.time_us / 1000});
                match e.kind {
                    Kind::View => v["type"] = json!("view"),
                    Kind::Click => v["type"] = json!("click"),
                    Kind::Rating(r) => {
                        v["type"] = json!("rating");
                        v["rating"] = json!(r);
                    }
                }
                v
            })
            .collect(),
    )
}

/// Posts until a 202, alternating the API instances; every failure is retried with the same
/// ids, so an attempt whose answer was lost is not counted twice by silver's de-duplication.
async fn post_until_acked(shared: &Shared, events: &[Sent], batch: u64) {
    let body = body(events).to_string();
    for attempt in 0u64.. {
        let api = &shared.apis[((batch + attempt) % shared.apis.len() as u64) as usize];
        shared.counts.requests.fetch_add(1, Ordering::Relaxed);
        let answer = tokio::time::timeout(
            Duration::from_secs(20),
            reco_testkit::http::request(api, "POST", "/events", Some(body.clone())),
        )
        .await;
        match answer {
            Ok(Ok(r)) if r.status == 202 => {
                shared.history.lock().unwrap().acked.extend_from_slice(events);
                return;
            }
            Ok(Ok(r)) if r.status == 503 => shared.counts.retried_503.fetch_add(1, Ordering::Relaxed),
            Ok(Ok(r)) => {
                shared.history.lock().unwrap().unexpected.push(format!("{} from {api}: {}", r.status, r.text()));
                return;
            }
            // Refused, reset, or no answer in time: the event may or may not be in Kafka.
            _ => shared.counts.retried_io.fetch_add(1, Ordering::Relaxed),
        };
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A request with one event the API must refuse (an unknown field): the whole batch gets 422
/// and none of its events may reach silver.
async fn refused_batch(shared: &Shared, events: &[Sent]) {
    let mut body = body(events);
    body[0]["colour"] = json!("red");
    let body = body.to_string();
    for attempt in 0u64.. {
        let api = &shared.apis[(attempt % shared.apis.len() as u64) as usize];
        shared.counts.requests.fetch_add(1, Ordering::Relaxed);
        match reco_testkit::http::request(api, "POST", "/events", Some(body.clone())).await {
            Ok(r) if r.status == 422 => {
                shared.history.lock().unwrap().refused.extend(events.iter().map(|e| e.id.clone()));
                return;
            }
            Ok(r) => {
                shared.history.lock().unwrap().unexpected.push(format!("bad batch: {} {}", r.status, r.text()));
                return;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// A record that is not a valid event, written straight into Kafka (a misbehaving producer):
/// silver must dead-letter it with its bytes.
async fn bad_record(shared: &Shared, producer: &FutureProducer, batch: u64) {
    let payload = if batch % 120 == 29 {
        format!("not json, bad record {}-{batch}", shared.plan.seed)
    } else {
        json!({"type": "view", "event_id": format!("bad-{}-{batch}", shared.plan.seed), "user_id": "u", "item_id": "i",
               "colour": "red"})
        .to_string()
    };
    let record = FutureRecord::<str, str>::to("events_views").key("bad").payload(&payload);
    if producer.send(record, Duration::from_secs(120)).await.is_ok() {
        shared.history.lock().unwrap().bad_records.push(payload.into_bytes());
    } else {
        shared.history.lock().unwrap().unexpected.push(format!("bad record {batch} not delivered in 120 s"));
    }
}
