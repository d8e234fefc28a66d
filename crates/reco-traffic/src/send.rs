//! Delivering generated traffic: to the HTTP API (`POST /events`, valid events in batches on
//! keep-alive connections, malformed ones one per request so they cannot sink a batch, since
//! the API validates a batch all-or-nothing) or straight to Kafka (valid events as the API would
//! write them; malformed payloads raw, for silver's dead-letter tables).

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, client::conn::http1};
use hyper_util::rt::TokioIo;
use reco_kafka::{EventProducer, Outgoing};
use serde_json::Value;
use tokio::net::TcpStream;

use crate::synthetic::{Generated, Generator};

/// Something that yields request bodies: the synthetic generator (endless) or a replayed log.
pub trait Source: Send + 'static {
    /// The next body at wall-clock `now_us`; `None` when the source is exhausted.
    fn next_body(&mut self, now_us: i64) -> Option<Generated>;
}

impl Source for Generator {
    fn next_body(&mut self, now_us: i64) -> Option<Generated> {
        Some(self.next(now_us))
    }
}

/// Where traffic goes.
#[derive(Clone, Debug)]
pub enum Target {
    /// The API at `host:port`.
    Http { addr: String },
    /// The topics, through this producer.
    Kafka(EventProducer),
}

/// Counts of one run, updated as it goes (shared with a progress display).
#[derive(Debug, Default)]
pub struct Tally {
    /// Valid events generated and sent.
    pub sent: AtomicU64,
    /// Valid events acknowledged (202 / broker ack).
    pub accepted: AtomicU64,
    /// Malformed events sent (expected to be refused by the API or dead-lettered by silver).
    pub malformed: AtomicU64,
    /// Malformed events the API refused with a 4xx, as it should.
    pub refused: AtomicU64,
    /// Events not delivered: 5xx, timeouts, connection errors, or a valid event refused.
    pub failed: AtomicU64,
    /// When present, the `event_id` of every acknowledged valid event, so a checker can ask the
    /// lakehouse for exactly these (and learn nothing from events that were refused).
    pub acked_ids: Option<Mutex<Vec<String>>>,
    /// Why events failed: failed events by reason (the status and error code, the field the
    /// API named), and the first few messages as the API wrote them.
    pub failures: Mutex<Failures>,
}

/// Failed events by reason, with examples.
#[derive(Debug, Default)]
pub struct Failures {
    pub by_reason: std::collections::BTreeMap<String, u64>,
    pub examples: Vec<String>,
}

/// Messages kept as examples of failures.
const EXAMPLES: usize = 5;

impl Failures {
    /// `events` events failed with this answer (`Ok`: the status and body) or this error.
    fn record(&mut self, events: u64, answer: Result<(u16, &[u8]), &str>) {
        let (status, body) = match answer {
            Ok(answer) => answer,
            Err(e) => {
                *self.by_reason.entry("no answer".into()).or_default() += events;
                self.example(format!("no answer: {e}"));
                return;
            }
        };
        let error: Value = serde_json::from_slice(body).unwrap_or_default();
        let error = &error["error"];
        let code = error["code"].as_str().unwrap_or("no error code");
        let details = error["details"].as_array().cloned().unwrap_or_default();
        if details.is_empty() {
            *self.by_reason.entry(format!("HTTP {status} {code}")).or_default() += events;
            self.example(format!("HTTP {status} {code}: {}", error["message"].as_str().unwrap_or_default()));
            return;
        }
        // A batch is refused whole: its events count under the first field named, each
        // detail shows as an example.
        let field = |d: &Value| d["field"].as_str().map_or("the whole event".to_owned(), |f| format!("field {f}"));
        *self.by_reason.entry(format!("HTTP {status} {code}, {}", field(&details[0]))).or_default() += events;
        for d in &details {
            let at = d["index"].as_u64().map_or(String::new(), |i| format!("event {i} of the batch, "));
            self.example(format!("{at}{}: {}", field(d), d["message"].as_str().unwrap_or_default()));
        }
    }

    fn example(&mut self, message: String) {
        if self.examples.len() < EXAMPLES && !self.examples.contains(&message) {
            self.examples.push(message);
        }
    }
}

impl Tally {
    /// A tally that also keeps the id of every acknowledged event.
    pub fn recording_ids() -> Tally {
        Tally { acked_ids: Some(Mutex::default()), ..Tally::default() }
    }

    fn acked<'a>(&self, events: impl IntoIterator<Item = &'a Value>) {
        if let Some(ids) = &self.acked_ids {
            let mut ids = ids.lock().unwrap_or_else(PoisonError::into_inner);
            ids.extend(events.into_iter().filter_map(|v| v["event_id"].as_str()).map(str::to_owned));
        }
    }

    /// The recorded ids so far (empty unless made by [`Tally::recording_ids`]).
    pub fn take_acked_ids(&self) -> Vec<String> {
        self.acked_ids
            .as_ref()
            .map(|m| std::mem::take(&mut *m.lock().unwrap_or_else(PoisonError::into_inner)))
            .unwrap_or_default()
    }

    fn failed(&self, events: u64, answer: Result<(u16, &[u8]), &str>) {
        self.failed.fetch_add(events, Ordering::Relaxed);
        self.failures.lock().unwrap_or_else(PoisonError::into_inner).record(events, answer);
    }

    /// `(reason, events)` by most events first, and the first few messages.
    pub fn failures(&self) -> (Vec<(String, u64)>, Vec<String>) {
        let f = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let mut reasons: Vec<(String, u64)> = f.by_reason.iter().map(|(r, n)| (r.clone(), *n)).collect();
        reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        (reasons, f.examples.clone())
    }

    pub fn get(&self) -> [u64; 5] {
        [&self.sent, &self.accepted, &self.malformed, &self.refused, &self.failed].map(|a| a.load(Ordering::Relaxed))
    }
}

/// How much, how fast, in what shape.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Events per second over all connections; `None`: as fast as possible.
    pub rate: Option<f64>,
    /// Stop after this many events (valid + malformed); `None`: until stopped.
    pub events: Option<u64>,
    /// Stop after this long; `None`: until stopped.
    pub duration: Option<Duration>,
    /// Valid events per request / produce call.
    pub batch: usize,
    /// Concurrent connections (HTTP) or in-flight batches (Kafka).
    pub concurrency: usize,
}

/// One keep-alive HTTP/1.1 connection to the API, re-opened after an error.
#[derive(Debug)]
struct Connection {
    addr: String,
    sender: Option<http1::SendRequest<Full<Bytes>>>,
}

impl Connection {
    /// The status and, unless 202, the body of the answer.
    async fn post(&mut self, body: String) -> Result<(u16, Bytes), String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = TcpStream::connect(&self.addr).await.map_err(|e| format!("connect {}: {e}", self.addr))?;
            let _ = stream.set_nodelay(true);
            let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            self.sender = Some(sender);
        }
        let Some(sender) = self.sender.as_mut() else { return Err("no connection".into()) };
        let request = Request::post("/events")
            .header("host", &self.addr)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let result = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, if status == 202 { Bytes::new() } else { body }))
        }
        .await;
        result.map_err(|e| {
            self.sender = None;
            e.to_string()
        })
    }
}

/// Runs `source` against `target` until it is exhausted, the configured count or duration is
/// reached, or `stop` is set.
pub async fn run(
    source: impl Source,
    target: Target,
    config: RunConfig,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
) -> Duration {
    let generator = Arc::new(Mutex::new(source));
    let reserved = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..config.concurrency.max(1) {
        let (generator, target, config) = (generator.clone(), target.clone(), config.clone());
        let (tally, stop, reserved) = (tally.clone(), stop.clone(), reserved.clone());
        workers.spawn(async move {
            let mut connection = match &target {
                Target::Http { addr } => Some(Connection { addr: addr.clone(), sender: None }),
                Target::Kafka(_) => None,
            };
            loop {
                if stop.load(Ordering::Relaxed) || config.duration.is_some_and(|d| started.elapsed() >= d) {
                    return;
                }
                // Reserve this batch's place in the global schedule (count and rate).
                let n = config.batch.max(1) as u64;
                let first = reserved.fetch_add(n, Ordering::Relaxed);
                let n = match config.events {
                    Some(total) if first >= total => return,
                    Some(total) => n.min(total - first),
                    None => n,
                };
                if let Some(rate) = config.rate.filter(|r| *r > 0.0) {
                    let due = started + Duration::from_secs_f64(first as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let now_us = chrono::Utc::now().timestamp_micros();
                let generated: Vec<Generated> = {
                    let mut g = generator.lock().unwrap_or_else(PoisonError::into_inner);
                    (0..n).map_while(|_| g.next_body(now_us)).collect()
                };
                let exhausted = (generated.len() as u64) < n;
                send(&target, connection.as_mut(), generated, &tally).await;
                if exhausted {
                    return;
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    started.elapsed()
}

async fn send(target: &Target, connection: Option<&mut Connection>, generated: Vec<Generated>, tally: &Tally) {
    let (mut valid, mut malformed) = (Vec::new(), Vec::new());
    for g in generated {
        match g {
            Generated::Valid(v) => valid.push(v),
            Generated::Malformed { body, .. } => malformed.push(body),
        }
    }
    tally.sent.fetch_add(valid.len() as u64, Ordering::Relaxed);
    tally.malformed.fetch_add(malformed.len() as u64, Ordering::Relaxed);
    match (target, connection) {
        (Target::Http { .. }, Some(connection)) => {
            if !valid.is_empty() {
                let n = valid.len() as u64;
                let body = Value::Array(valid);
                match connection.post(body.to_string()).await {
                    Ok((202, _)) => {
                        tally.accepted.fetch_add(n, Ordering::Relaxed);
                        tally.acked(body.as_array().into_iter().flatten());
                    }
                    Ok((status, answer)) => tally.failed(n, Ok((status, &answer[..]))),
                    Err(e) => tally.failed(n, Err(e.as_str())),
                };
            }
            for body in malformed {
                match connection.post(body).await {
                    Ok((s, _)) if (400..500).contains(&s) => {
                        tally.refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((status, answer)) => tally.failed(1, Ok((status, &answer[..]))),
                    Err(e) => tally.failed(1, Err(e.as_str())),
                };
            }
        }
        (Target::Kafka(producer), _) => {
            let mut records: Vec<(String, Vec<u8>, Vec<u8>, bool)> = Vec::new();
            let mut events = Vec::new();
            for v in valid {
                let kind = v["type"].as_str().and_then(reco_core::EventType::parse);
                let topic = kind.unwrap_or(reco_core::EventType::View).topic();
                let key = v["user_id"].as_str().unwrap_or_default().as_bytes().to_vec();
                records.push((topic.to_owned(), key, v.to_string().into_bytes(), true));
                events.push(v);
            }
            records
                .extend(malformed.into_iter().map(|b| ("events_views".to_owned(), Vec::new(), b.into_bytes(), false)));
            let outgoing: Vec<Outgoing<'_>> =
                records.iter().map(|(t, k, p, _)| Outgoing { topic: t, key: k, payload: p }).collect();
            let results = producer.send_all(&outgoing).await;
            for (i, (result, (_, _, _, is_valid))) in results.into_iter().zip(&records).enumerate() {
                if result.is_ok() && *is_valid {
                    // Valid records come first in `records`, in the order of `events`.
                    tally.acked(events.get(i));
                }
                match (&result, is_valid) {
                    (Ok(_), true) => {
                        tally.accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    // Delivered raw; silver will dead-letter it.
                    (Ok(_), false) => {
                        tally.refused.fetch_add(1, Ordering::Relaxed);
                    }
                    (Err(e), _) => tally.failed(1, Err(e.to_string().as_str())),
                }
            }
        }
        (Target::Http { .. }, None) => {}
    }
}
