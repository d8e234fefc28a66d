//! The silver job (`reco silver`, a child process) where Kafka offsets do not simply go up by
//! one: a topic deleted and re-created, transactions committed and aborted, records deleted by
//! retention before silver read them, and a crash between the dead-letter and the silver
//! commit. Each checks what is in the lake against what the test produced, and the counters
//! an operator would look at (`reco_silver_offsets_skipped_total`,
//! `reco_silver_offset_resets_total`).

use std::{
    collections::HashMap,
    path::Path,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use rdkafka::producer::{FutureProducer, FutureRecord};
use reco_kafka::topics;
use reco_lake::{Format, Lake, TopicTables, read};
use reco_testkit::{Samples, free_addr, http, log_starts, proc::exit_within, wait_until};

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
/// waits on a group handover), metrics on a free port. stderr is kept for [`exit_within`].
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
async fn deadletters(lake: &Lake, topic: &str) -> Vec<(String, String)> {
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
    let (status, stderr) = exit_within(job, Duration::from_secs(60));
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
    let (status, stderr) = exit_within(job, Duration::from_secs(60));
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

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_between_the_dead_letter_and_the_silver_commit_leaves_each_record_in_one_table() {
    let broker = reco_testkit::broker_with_topics().await;
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path(), Format::Delta).unwrap();

    // 3 s further ahead of its Kafka timestamp than the 15 min tolerated: "future" on the first
    // read. Judged by the wall clock instead, the re-read 5 s later would find it valid and
    // write it to silver as well; judged by the record's timestamp it is future both times.
    let sent_ms = now_ms();
    let future = view("future", sent_ms + 15 * 60 * 1000 + 3000);
    let valid: Vec<String> = (0..30).map(|i| format!("valid-{i}")).collect();
    let mut payloads: Vec<String> = valid.iter().map(|id| view(id, sent_ms)).collect();
    payloads.push(future.clone());
    payloads.push("not json".into());
    produce(&producer(&bootstrap), VIEWS, &payloads, Some(sent_ms)).await;

    let (job, _) = silver(&bootstrap, dir.path(), &[], &[("RECO_FAULT", "crash_between_commits")]);
    let (status, stderr) = exit_within(job, Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| !s.success()) && stderr.contains("RECO_FAULT=crash_between_commits"),
        "the job aborted at the fault point: {status:?}\n{stderr}"
    );
    let after_crash = deadletters(&lake, VIEWS).await;
    assert!(after_crash.iter().any(|(payload, _)| *payload == future), "the crash left the dead letters committed");

    let readable_at = Instant::now() + Duration::from_millis((sent_ms + 5000 - now_ms()).max(0) as u64);
    tokio::time::sleep_until(readable_at.into()).await;
    let (job, _) = silver(&bootstrap, dir.path(), &[], &[]);
    let ids = wait_for_ids(&lake, VIEWS, &valid, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop(job);
    assert_exactly(&silver_ids(&lake, VIEWS).await, &valid, "silver after the restart");
    assert!(!ids.contains_key("future"));
    let letters = deadletters(&lake, VIEWS).await;
    let copies = |p: &str| letters.iter().filter(|(payload, _)| payload == p).count();
    assert_eq!(copies(&future), 1, "the future event dead-lettered once: {letters:?}");
    assert_eq!(copies("not json"), 1, "the bad record dead-lettered once: {letters:?}");
    assert_eq!(letters.len(), 2, "nothing else dead-lettered: {letters:?}");
    assert!(letters.iter().any(|(p, kind)| *p == future && kind == "timestamp_out_of_range"));
    broker.stop().await;
}

/// `reco broker` (SQLite storage under `dir`) on `addr`, once it serves the platform's topics.
async fn broker_process(dir: &Path, addr: &str, env: &[(&str, &str)]) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_reco"))
        .arg("broker")
        .env("RECO_BROKER_ADDR", addr)
        .env("RECO_BROKER_STORAGE", "sqlite")
        .env("LAKEHOUSE_PATH", dir)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn reco broker");
    let names: Vec<String> = topics::default_topics().into_iter().map(|s| s.name).collect();
    let serving = wait_until(Duration::from_secs(60), || async {
        topics::describe_topics(addr, &names).await.is_ok_and(|t| t.len() == names.len())
    })
    .await;
    assert!(serving, "reco broker serves its topics on {addr}");
    child
}

#[tokio::test(flavor = "multi_thread")]
async fn records_deleted_by_retention_before_silver_read_them_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path(), Format::Delta).unwrap();
    let bootstrap = free_addr().to_string();
    let retention = [("RECO_VIEWS_RETENTION_MS", "60000")];
    let broker = broker_process(dir.path(), &bootstrap, &retention).await;

    // Written a day ago (Kafka timestamp): past the topic's one-minute retention.
    let old: Vec<String> = (0..30).map(|i| view(&format!("old-{i}"), now_ms())).collect();
    let fresh: Vec<String> = (0..20).map(|i| format!("fresh-{i}")).collect();
    let p = producer(&bootstrap);
    produce(&p, VIEWS, &old, Some(now_ms() - 24 * 3600 * 1000)).await;
    produce(&p, VIEWS, &fresh.iter().map(|id| view(id, now_ms())).collect::<Vec<_>>(), None).await;
    drop(p);
    // The broker applies retention when it starts (then every 5 s).
    stop(broker);
    let broker = broker_process(dir.path(), &bootstrap, &retention).await;
    let expired = wait_until(Duration::from_secs(30), || async {
        log_starts(&bootstrap, VIEWS, 3).iter().sum::<i64>() == old.len() as i64
    })
    .await;
    assert!(expired, "the broker deleted the expired records: log starts {:?}", log_starts(&bootstrap, VIEWS, 3));

    let (job, metrics) = silver(&bootstrap, dir.path(), &[], &[]);
    let ids = wait_for_ids(&lake, VIEWS, &fresh, Duration::from_secs(60)).await;
    let deleted =
        metric(&metrics, "reco_silver_offsets_skipped_total", &[("topic", VIEWS), ("reason", "retention")]).await;
    let gaps = metric(&metrics, "reco_silver_offsets_skipped_total", &[("topic", VIEWS), ("reason", "gap")]).await;
    stop(job);
    stop(broker);
    assert_exactly(&ids, &fresh, "silver holds what retention left");
    assert_eq!(deleted, old.len() as f64, "every record deleted before silver read it counted as retention");
    assert_eq!(gaps, 0.0, "none counted as a gap");
}

/// Offsets without a record in the middle of a log, as transaction markers, aborted
/// transactions and compaction leave them. The embedded broker has no transactions (see the
/// ignored test above), but it compacts: every record of a key but the newest is deleted.
#[tokio::test(flavor = "multi_thread")]
async fn gaps_left_by_compaction_are_read_past_at_once_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path(), Format::Delta).unwrap();
    let bootstrap = free_addr().to_string();
    let broker = broker_process(dir.path(), &bootstrap, &[]).await;
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        reco_kafka::client_config(&bootstrap).create().unwrap();
    let options = rdkafka::admin::AdminOptions::new();
    admin.delete_topics(&[VIEWS], &options).await.unwrap();
    let compacted = rdkafka::admin::NewTopic::new(VIEWS, 3, rdkafka::admin::TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact");
    reco_testkit::create_topic(&bootstrap, &compacted).await;

    // Per partition: a first record of its own key (so the log start stays put), then bursts
    // where keys repeat unevenly; only each key's newest record survives compaction.
    let p = producer(&bootstrap);
    let (mut expected, mut removed) = (Vec::new(), 0usize);
    for partition in 0..3 {
        let mut records: Vec<(String, String)> = vec![(format!("head-{partition}"), format!("head-{partition}"))];
        for i in 0..(40 + partition as usize * 25) {
            let key = format!("key-{}", (i * 7) % (5 + partition as usize * 3));
            records.push((key, format!("p{partition}-{i}")));
        }
        let mut newest: HashMap<&str, &str> = HashMap::new();
        for (key, id) in &records {
            newest.insert(key, id);
        }
        expected.extend(newest.values().map(|id| id.to_string()));
        removed += records.len() - newest.len();
        let mut pending = Vec::new();
        for (key, id) in &records {
            let payload = view(id, now_ms());
            let record = FutureRecord::to(VIEWS).partition(partition).key(key).payload(&payload);
            pending.push(p.send_result(record).expect("queued"));
        }
        for f in pending {
            f.await.unwrap().map_err(|(e, _)| e).expect("acknowledged");
        }
    }
    drop(p);
    stop(broker);
    let broker = broker_process(dir.path(), &bootstrap, &[]).await;
    assert_eq!(log_starts(&bootstrap, VIEWS, 3), vec![0, 0, 0], "compaction kept each log's first record");

    let (job, metrics) = silver(&bootstrap, dir.path(), &[], &[]);
    let ids = wait_for_ids(&lake, VIEWS, &expected, Duration::from_secs(30)).await;
    let caught_up = wait_until(Duration::from_secs(20), || async {
        let text = http::get(&metrics, "/metrics").await.map(|r| r.text()).unwrap_or_default();
        let lag: Vec<f64> =
            Samples::parse(&text).matching("reco_silver_consumer_lag", &[("topic", VIEWS)]).map(|s| s.value).collect();
        lag.len() == 3 && lag.iter().all(|v| *v == 0.0)
    })
    .await;
    let gaps = metric(&metrics, "reco_silver_offsets_skipped_total", &[("topic", VIEWS), ("reason", "gap")]).await;
    let deleted =
        metric(&metrics, "reco_silver_offsets_skipped_total", &[("topic", VIEWS), ("reason", "retention")]).await;
    stop(job);
    stop(broker);
    assert_exactly(&ids, &expected, "silver holds each key's newest record");
    assert!(caught_up, "consumer lag of every partition reached 0 (no stall at a gap)");
    assert_eq!(gaps, removed as f64, "every compacted offset counted as a gap");
    assert_eq!(deleted, 0.0, "nothing counted as retention");
}
