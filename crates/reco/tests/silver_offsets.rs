//! The silver job (`reco silver`, a child process) where Kafka offsets do not simply go up by
//! one: a topic deleted and re-created, transactions committed and aborted, records deleted by
//! retention before silver read them, and a crash between the dead-letter and the silver
//! commit. Each checks what is in the lake against what the test produced, and the counters
//! an operator would look at (`reco_silver_offsets_skipped_total`,
//! `reco_silver_offset_resets_total`).

use std::{
    collections::HashMap,
    io::Read,
    path::Path,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use rdkafka::{
    producer::{FutureProducer, FutureRecord, Producer},
    util::Timeout,
};
use reco_kafka::{BrokerStorage, EmbeddedBroker, topics};
use reco_lake::{Format, Lake, TopicTables, read};
use reco_testkit::{Samples, free_addr, http, wait_until};

const VIEWS: &str = "events_views";

/// A valid view with id `id`, event time `at_ms`.
fn view(id: &str, at_ms: i64) -> String {
    format!(r#"{{"type":"view","event_id":"{id}","user_id":"u-{id}","item_id":"m1","timestamp":{at_ms}}}"#)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Sends `payloads` to `topic` (keys spread them over the partitions), with Kafka timestamp
/// `timestamp_ms` when given, and waits for every acknowledgment.
async fn produce(producer: &FutureProducer, topic: &str, payloads: &[String], timestamp_ms: Option<i64>) {
    let mut pending = Vec::new();
    for (i, payload) in payloads.iter().enumerate() {
        let key = format!("k{i}");
        let mut record = FutureRecord::to(topic).key(&key).payload(payload);
        if let Some(t) = timestamp_ms {
            record = record.timestamp(t);
        }
        pending.push(producer.send_result(record).expect("queued"));
    }
    for p in pending {
        p.await.expect("delivered").map_err(|(e, _)| e).expect("acknowledged");
    }
}

fn producer(bootstrap: &str) -> FutureProducer {
    reco_kafka::client_config(bootstrap).set("linger.ms", "5").create().expect("producer")
}

/// `reco silver` on `bootstrap` and `lake` (a consumer group of its own per start, so no start
/// waits on a group handover), metrics on a free port. stderr is kept for [`exit_of`].
fn silver(bootstrap: &str, lake: &Path, args: &[&str], env: &[(&str, &str)]) -> (Child, String) {
    let metrics = free_addr().to_string();
    static STARTS: AtomicUsize = AtomicUsize::new(0);
    let group = format!("silver-offsets-{}-{}", std::process::id(), STARTS.fetch_add(1, Ordering::Relaxed));
    let child = Command::new(env!("CARGO_BIN_EXE_reco"))
        .args(["silver", "--metrics-addr", &metrics, "--max-batch-age-ms", "300"])
        .args(args)
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
        .env("LAKEHOUSE_PATH", lake)
        .env("RECO_SILVER_GROUP_ID", group)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn reco silver");
    (child, metrics)
}

fn stop(mut child: Child) {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success(), "clean stop on SIGTERM");
}

/// Waits (up to `timeout`) for the child to exit by itself; its status and stderr.
fn exit_of(mut child: Child, timeout: Duration) -> (Option<std::process::ExitStatus>, String) {
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    let _ = child.stderr.take().map(|mut s| s.read_to_string(&mut stderr));
    (status, stderr)
}

/// `event_id` → copies in the silver table of `topic`.
async fn silver_ids(lake: &Lake, topic: &str) -> HashMap<String, u32> {
    let mut tables = TopicTables::open(lake, topic, false).await.unwrap();
    let mut ids = HashMap::new();
    for row in read::read_silver(&tables.silver_files().await.unwrap()).unwrap() {
        *ids.entry(row.event_id).or_insert(0) += 1;
    }
    ids
}

/// The dead-letter rows of `topic`: (payload text, error kind).
async fn dead_letters(lake: &Lake, topic: &str) -> Vec<(String, String)> {
    let mut tables = TopicTables::open(lake, topic, false).await.unwrap();
    read::read_deadletter(&tables.deadletter_files().await.unwrap())
        .unwrap()
        .into_iter()
        .map(|r| (String::from_utf8_lossy(&r.payload.unwrap_or_default()).into_owned(), r.error_kind))
        .collect()
}

/// Waits until silver holds exactly `expected` ids of `topic`, each once.
async fn wait_for_ids(lake: &Lake, topic: &str, expected: &[String], timeout: Duration) -> HashMap<String, u32> {
    wait_until(timeout, || async { silver_ids(lake, topic).await.len() >= expected.len() }).await;
    silver_ids(lake, topic).await
}

fn assert_exactly(ids: &HashMap<String, u32>, expected: &[String], what: &str) {
    let missing: Vec<_> = expected.iter().filter(|id| !ids.contains_key(*id)).take(5).collect();
    let doubled: Vec<_> = ids.iter().filter(|(_, n)| **n > 1).take(5).collect();
    let extra: Vec<_> = ids.keys().filter(|id| !expected.contains(id)).take(5).collect();
    assert!(
        missing.is_empty() && doubled.is_empty() && extra.is_empty() && ids.len() == expected.len(),
        "{what}: {} ids in silver, {} expected; missing {missing:?}, doubled {doubled:?}, not produced {extra:?}",
        ids.len(),
        expected.len()
    );
}

async fn metric(addr: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let Ok(response) = http::get(addr, "/metrics").await else { return f64::NAN };
    Samples::parse(&response.text()).matching(name, labels).map(|s| s.value).sum()
}

async fn recreate(bootstrap: &str, topic: &str) {
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        reco_kafka::client_config(bootstrap).create().unwrap();
    let deleted = admin.delete_topics(&[topic], &rdkafka::admin::AdminOptions::new()).await.unwrap();
    assert!(deleted.iter().all(Result::is_ok), "topic deleted: {deleted:?}");
    let mut specs = topics::default_topics();
    specs.iter_mut().for_each(|s| s.replication_factor = Some(1));
    let recreated = wait_until(Duration::from_secs(30), || async {
        topics::ensure_topics(bootstrap, &specs, false).await.is_ok_and(|r| r.iter().any(|t| t.topic == topic))
    })
    .await;
    assert!(recreated, "topic re-created");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recreated_topic_is_refused_by_default_and_read_from_its_start_with_the_flag() {
    let broker = reco_testkit::broker_with_topics().await;
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path(), Format::Delta).unwrap();
    // A producer per log: the embedded broker keeps an idempotent producer's sequence numbers
    // across a topic's re-creation and then stores one record per partition of the next log.
    let p = producer(&bootstrap);

    let first: Vec<String> = (0..300).map(|i| format!("first-{i}")).collect();
    produce(&p, VIEWS, &first.iter().map(|id| view(id, now_ms())).collect::<Vec<_>>(), None).await;
    let (job, _) = silver(&bootstrap, dir.path(), &[], &[]);
    assert_exactly(&wait_for_ids(&lake, VIEWS, &first, Duration::from_secs(60)).await, &first, "first log");
    stop(job);

    // Shorter than before: the log ends below silver's offsets.
    recreate(&bootstrap, VIEWS).await;
    let second: Vec<String> = (0..60).map(|i| format!("second-{i}")).collect();
    let p = producer(&bootstrap);
    produce(&p, VIEWS, &second.iter().map(|id| view(id, now_ms())).collect::<Vec<_>>(), None).await;
    let (job, _) = silver(&bootstrap, dir.path(), &[], &[]);
    let (status, stderr) = exit_of(job, Duration::from_secs(60));
    assert!(status.is_some_and(|s| !s.success()), "refused with an error exit, not run on: {status:?}\n{stderr}");
    for needle in ["events_views partition", "--on-offset-reset=continue", "RECO_ON_OFFSET_RESET"] {
        assert!(stderr.contains(needle), "the error names {needle:?}:\n{stderr}");
    }
    assert_eq!(silver_ids(&lake, VIEWS).await.len(), first.len(), "nothing written by the refusing job");

    let (job, metrics) = silver(&bootstrap, dir.path(), &["--on-offset-reset", "continue"], &[]);
    let mut all = first.clone();
    all.extend(second.iter().cloned());
    assert_exactly(&wait_for_ids(&lake, VIEWS, &all, Duration::from_secs(60)).await, &all, "after continue");
    let resets = metric(&metrics, "reco_silver_offset_resets_total", &[("topic", VIEWS)]).await;
    assert!(resets >= 1.0, "resets counted: {resets}");
    stop(job);

    // Another cluster whose log is longer: it passes silver's offsets, but the record at
    // silver's last offset is another one.
    broker.stop().await;
    let broker = reco_testkit::broker_with_topics().await;
    let bootstrap = broker.bootstrap();
    let third: Vec<String> = (0..600).map(|i| format!("third-{i}")).collect();
    let p = producer(&bootstrap);
    produce(&p, VIEWS, &third.iter().map(|id| view(id, now_ms())).collect::<Vec<_>>(), None).await;
    let (job, _) = silver(&bootstrap, dir.path(), &[], &[]);
    let (status, stderr) = exit_of(job, Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| !s.success()),
        "a longer log of another cluster is refused too: {status:?}\n{stderr}"
    );
    assert!(stderr.contains("is not event_id"), "the error says which record differs:\n{stderr}");
    let (job, _) = silver(&bootstrap, dir.path(), &["--on-offset-reset=continue"], &[]);
    all.extend(third.iter().cloned());
    assert_exactly(&wait_for_ids(&lake, VIEWS, &all, Duration::from_secs(60)).await, &all, "after the move");
    stop(job);
    broker.stop().await;
}
