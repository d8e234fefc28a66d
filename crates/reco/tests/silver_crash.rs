//! Crash test: a child `reco silver` is SIGKILLed at random moments while 100,000 events are
//! produced, once more deliberately between "files written" and "commit"; after a final clean
//! run, silver + dead-letter hold every produced record exactly once.

use std::{
    collections::HashSet,
    process::{Child, Command, Stdio},
    time::{Duration, Instant, SystemTime},
};

use rdkafka::producer::{FutureProducer, FutureRecord};
use reco_lake::{Format, Lake, TopicTables, read};

const EVENTS: usize = 100_000;
const KILLS: usize = 10;

fn pseudo_random(max_ms: u64) -> u64 {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    nanos.wrapping_mul(6364136223846793005).rotate_left(17) % max_ms
}

fn spawn_silver(bootstrap: &str, lake: &std::path::Path, format: &str, fault: Option<&str>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reco"));
    cmd.args(["silver", "--metrics-addr", "127.0.0.1:0", "--max-batch-age-ms", "300"])
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
        .env("LAKEHOUSE_PATH", lake)
        .env("STORAGE_FORMAT", format)
        .env("RUST_LOG", "warn,reco_silver=info")
        .env("RECO_SILVER_INSTANCE_ID", "crash-test-worker")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(f) = fault {
        cmd.env("RECO_FAULT", f);
    }
    cmd.spawn().expect("spawn reco silver")
}

async fn committed(lake: &Lake) -> (Vec<(String, i32, i64)>, HashSet<String>) {
    let mut coords = Vec::new();
    let mut ids = HashSet::new();
    for topic in ["events_views", "events_clicks"] {
        let mut t = TopicTables::open(lake, topic, false).await.unwrap();
        for r in read::read_silver(&t.silver_files().await.unwrap()).unwrap() {
            coords.push((topic.to_owned(), r.kafka_partition, r.kafka_offset));
            assert!(ids.insert(r.event_id.clone()), "{} written twice", r.event_id);
        }
        for r in read::read_deadletter(&t.deadletter_files().await.unwrap()).unwrap() {
            coords.push((topic.to_owned(), r.kafka_partition, r.kafka_offset));
        }
    }
    (coords, ids)
}

async fn crash_case(format: Format, format_name: &str) {
    let broker = reco_testkit::broker_with_topics().await;
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();

    let producing = tokio::spawn({
        let bootstrap = bootstrap.clone();
        async move {
            let producer: FutureProducer =
                reco_kafka::client_config(&bootstrap).set("linger.ms", "5").create().unwrap();
            let mut bad = 0;
            for chunk in 0..EVENTS / 1000 {
                let mut pending = Vec::new();
                for i in chunk * 1000..(chunk + 1) * 1000 {
                    let topic = if i % 3 == 0 { "events_clicks" } else { "events_views" };
                    let payload = if i % 997 == 0 {
                        bad += 1;
                        format!("not json {i}")
                    } else {
                        let t = if topic == "events_clicks" { "click" } else { "view" };
                        format!(
                            r#"{{"type":"{t}","event_id":"e{i}","user_id":"u{}","item_id":"m{}","timestamp":{}}}"#,
                            i % 101,
                            i % 37,
                            1_551_434_400_000_i64 + i as i64
                        )
                    };
                    let key = format!("u{}", i % 101);
                    pending.push(producer.send_result(FutureRecord::to(topic).key(&key).payload(&payload)).unwrap());
                }
                for p in pending {
                    p.await.unwrap().map_err(|(e, _)| e).unwrap();
                }
            }
            bad
        }
    });

    let started = Instant::now();
    for kill in 0..KILLS {
        let mut child = spawn_silver(&bootstrap, dir.path(), format_name, None);
        tokio::time::sleep(Duration::from_millis(400 + pseudo_random(1600))).await;
        child.kill().unwrap();
        child.wait().unwrap();
        eprintln!("kill {kill} at {:?}", started.elapsed());
    }
    // Deliberately between "files written" and "commit".
    let mut child = spawn_silver(&bootstrap, dir.path(), format_name, Some("crash_before_commit"));
    let status = child.wait().unwrap();
    assert!(!status.success(), "the fault hook aborts the process");

    let bad = producing.await.unwrap();
    let lake = Lake::new(dir.path(), format).unwrap();
    let mut clean = spawn_silver(&bootstrap, dir.path(), format_name, None);
    let done = reco_testkit::wait_until(Duration::from_secs(240), || {
        let lake = lake.clone();
        async move { committed(&lake).await.0.len() >= EVENTS }
    })
    .await;
    Command::new("kill").args(["-TERM", &clean.id().to_string()]).status().unwrap();
    assert!(clean.wait().unwrap().success(), "clean stop");
    assert!(done, "final run drained everything");

    let (coords, ids) = committed(&lake).await;
    let unique: HashSet<_> = coords.iter().cloned().collect();
    assert_eq!(unique.len(), coords.len(), "no record committed twice");
    assert_eq!(coords.len(), EVENTS, "every produced record is committed");
    assert_eq!(ids.len(), EVENTS - bad, "every valid event in silver once");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_loop_delta() {
    crash_case(Format::Delta, "delta").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_loop_parquet() {
    crash_case(Format::Parquet, "parquet").await;
}
