//! Crash tests of the silver job, run as child processes against the embedded broker:
//! - SIGKILL at random moments (10 times) while 100,000 events are produced, plus one abort
//!   between "files written" and "commit"; after a final clean run, silver + dead-letter hold
//!   every produced record exactly once;
//! - two workers in one group, one killed mid-way: the survivor alone takes over its partitions
//!   once its session ended (embedded broker and librdkafka's mock cluster), or a replacement
//!   joins and the two share them; exactly once still holds.

use std::{
    collections::HashSet,
    process::{Child, Command, Stdio},
    time::{Duration, Instant, SystemTime},
};

use rdkafka::producer::{FutureProducer, FutureRecord};
use reco_lake::{Format, Lake, TopicTables, read};
use reco_testkit::{Samples, free_port};

const EVENTS: usize = 100_000;
const KILLS: usize = 10;
/// Events produced only once the kill loop is over, for the worker that aborts before commit.
const TAIL: usize = 5_000;

fn pseudo_random(max_ms: u64) -> u64 {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    nanos.wrapping_mul(6364136223846793005).rotate_left(17) % max_ms
}

/// The lake of a crash loop: `LAKEHOUSE_PATH` and the environment it needs (S3 credentials).
struct Place {
    location: String,
    env: Vec<(String, String)>,
}

impl Place {
    fn env(&self) -> Vec<(&str, &str)> {
        self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }
}

/// `instance`: static group membership id; `None` for dynamic membership.
pub(crate) fn spawn_on(
    bootstrap: &str,
    lake: impl AsRef<std::ffi::OsStr>,
    format: &str,
    fault: Option<&str>,
    instance: Option<&str>,
    metrics: &str,
    env: &[(&str, &str)],
) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reco"));
    cmd.args(["silver", "--metrics-addr", metrics, "--max-batch-age-ms", "300"])
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
        .env("LAKEHOUSE_PATH", lake)
        .env("STORAGE_FORMAT", format)
        .env("RUST_LOG", "warn,reco_silver=info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(f) = fault {
        cmd.env("RECO_FAULT", f);
    }
    if let Some(id) = instance {
        cmd.env("RECO_SILVER_INSTANCE_ID", id);
    }
    cmd.spawn().expect("spawn reco silver")
}

pub(crate) fn stop(mut child: Child) {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success(), "clean stop on SIGTERM");
}

/// Produces records number `from..to` (ids `e<i>`, one in 997 not JSON), in chunks of 1000
/// with `pause` between; returns how many were not JSON.
async fn produce_range(bootstrap: String, from: usize, to: usize, pause: Duration) -> usize {
    let producer: FutureProducer = reco_kafka::client_config(&bootstrap).set("linger.ms", "5").create().unwrap();
    let mut bad = 0;
    for chunk in from / 1000..to / 1000 {
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
        tokio::time::sleep(pause).await;
    }
    bad
}

/// Kafka coordinates of every committed row (silver and dead-letter), and the silver ids.
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

/// Waits until `expected` records are committed, then checks each is committed exactly once.
async fn assert_exactly_once(lake: &Lake, expected: usize, bad: usize) {
    let done = reco_testkit::wait_until(Duration::from_secs(240), || {
        let lake = lake.clone();
        async move { committed(&lake).await.0.len() >= expected }
    })
    .await;
    let (coords, ids) = committed(lake).await;
    let unique: HashSet<_> = coords.iter().cloned().collect();
    assert_eq!(unique.len(), coords.len(), "no record committed twice");
    assert!(done, "everything committed in time: {} of {expected}", coords.len());
    assert_eq!(coords.len(), expected, "every produced record is committed");
    assert_eq!(ids.len(), expected - bad, "every valid event in silver once");
}

async fn rows_written(metrics_addr: &str) -> f64 {
    match reco_testkit::http::get(metrics_addr, "/metrics").await {
        Ok(r) => Samples::parse(&r.text()).matching("reco_silver_rows_written_total", &[]).map(|s| s.value).sum(),
        Err(_) => 0.0,
    }
}

async fn crash_case(format: Format, format_name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let place = Place { location: dir.path().display().to_string(), env: Vec::new() };
    crash_case_on(&Lake::new(dir.path(), format).unwrap(), &place, format_name).await;
}

async fn crash_case_on(lake: &Lake, place: &Place, format_name: &str) {
    let broker = reco_testkit::broker_with_topics().await;
    let bootstrap = broker.bootstrap();
    let producing = tokio::spawn(produce_range(bootstrap.clone(), 0, EVENTS - TAIL, Duration::ZERO));
    let worker = |fault| {
        let env = place.env();
        spawn_on(&bootstrap, &place.location, format_name, fault, Some("crash-test-worker"), "127.0.0.1:0", &env)
    };

    let started = Instant::now();
    for kill in 0..KILLS {
        let mut child = worker(None);
        tokio::time::sleep(Duration::from_millis(400 + pseudo_random(1600))).await;
        child.kill().unwrap();
        child.wait().unwrap();
        eprintln!("SIGKILL {kill} at {:?}", started.elapsed());
    }
    // Deliberately between "files written" and "commit". The killed workers may have written
    // everything produced so far: the last events arrive now, for this one to write.
    let mut child = worker(Some("crash_before_commit"));
    let bad = producing.await.unwrap() + produce_range(bootstrap.clone(), EVENTS - TAIL, EVENTS, Duration::ZERO).await;
    assert!(!child.wait().unwrap().success(), "the fault hook aborts the process");

    // The replacement joins a consumer group of its own. Silver resumes from the offsets in the
    // lake, never the group's, so that changes nothing this test is about (the lake's exactly
    // once). In the group of the eleven killed members, the embedded broker (tansu 0.6) sometimes
    // never gave a clean worker an assignment: with static membership 3 of about 8 CI runs,
    // joining within a second of the crash or 12 s after; with dynamic membership 12 s after, once
    // in three full test runs on 2026-11-29 ("partitions assigned" never logged, 240 s of silence). Real
    // Kafka assigns a rejoining member at once, and the rebalance tests cover group handover.
    let mut recovery = place.env();
    recovery.push(("RECO_SILVER_GROUP_ID", "reco-silver-recovery"));
    let clean = spawn_on(&bootstrap, &place.location, format_name, None, None, "127.0.0.1:0", &recovery);
    assert_exactly_once(lake, EVENTS, bad).await;
    stop(clean);
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

/// The same on an S3 lake (a real S3 server): commits by conditional put, files in the bucket.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_loop_on_s3() {
    let s3 = reco_testkit::s3::S3Server::start().await;
    let place = Place { location: s3.lake_url("silver-kills"), env: s3.env() };
    crash_case_on(&s3.lake("silver-kills"), &place, "delta").await;
}

/// Two workers split the group; B is SIGKILLed mid-stream, and its replacement C joins (as a
/// Deployment or StatefulSet restarts a killed pod): the group rebalances between A and C,
/// both take partitions another worker was writing, and every record is still written once.
#[tokio::test(flavor = "multi_thread")]
async fn two_workers_one_killed_then_replaced() {
    let broker = reco_testkit::broker_with_topics().await;
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let events = 60_000;
    // A steady stream (~40 s) that runs across B's death and C's arrival.
    let producing = tokio::spawn(produce_range(bootstrap.clone(), 0, events, Duration::from_millis(600)));
    let metrics: Vec<String> = (0..3).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    let a = spawn_on(&bootstrap, dir.path(), "delta", None, None, &metrics[0], &[]);
    let mut b = spawn_on(&bootstrap, dir.path(), "delta", None, None, &metrics[1], &[]);
    let both_working = reco_testkit::wait_until(Duration::from_secs(60), || {
        let (ma, mb) = (metrics[0].clone(), metrics[1].clone());
        async move { rows_written(&ma).await > 0.0 && rows_written(&mb).await > 0.0 }
    })
    .await;
    assert!(both_working, "both workers committed rows");
    b.kill().unwrap();
    b.wait().unwrap();
    // Well past B's session timeout (10 s): A has taken B's partitions by then (see
    // `survivor_takes_over_after_session_timeout_on_the_embedded_broker`), and C's join moves
    // some to C, from wherever A got to.
    tokio::time::sleep(Duration::from_secs(25)).await;
    let c = spawn_on(&bootstrap, dir.path(), "delta", None, None, &metrics[2], &[]);
    // Kill the survivors if an assertion below fails, so they do not outlive the test.
    let guard = Survivors(vec![a.id(), c.id()]);
    let bad = producing.await.unwrap();
    let lake = Lake::new(dir.path(), Format::Delta).unwrap();
    assert_exactly_once(&lake, events, bad).await;
    let (a_rows, c_rows) = (rows_written(&metrics[0]).await, rows_written(&metrics[2]).await);
    eprintln!("rows written: A {a_rows}, replacement C {c_rows}");
    assert!(c_rows > 0.0, "the replacement took over partitions");
    std::mem::forget(guard);
    stop(a);
    stop(c);
    broker.stop().await;
}

/// Kills the listed processes on drop (a failed assertion), so no worker outlives its test.
struct Survivors(Vec<u32>);

impl Drop for Survivors {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}

/// Two workers on the embedded broker, one SIGKILLed mid-stream: once its session has ended,
/// the survivor alone takes over its partitions (third_party/README.md, tansu-broker change 3).
#[tokio::test(flavor = "multi_thread")]
async fn survivor_takes_over_after_session_timeout_on_the_embedded_broker() {
    let broker = reco_testkit::broker_with_topics().await;
    survivor_takes_over(broker.bootstrap()).await;
    broker.stop().await;
}

/// The same on librdkafka's mock cluster (in this test process; the workers reach it over
/// TCP): a broker with a real group coordinator that expires a member whose session ends.
#[tokio::test(flavor = "multi_thread")]
async fn survivor_takes_over_after_session_timeout_on_the_mock_cluster() {
    let cluster = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    for topic in ["events_views", "events_clicks", "events_ratings"] {
        cluster.create_topic(topic, 3, 1).expect("topic created");
    }
    survivor_takes_over(cluster.bootstrap_servers()).await;
}

async fn survivor_takes_over(bootstrap: String) {
    let dir = tempfile::tempdir().unwrap();
    let events = 60_000;
    // A steady stream that runs across B's death and A's takeover.
    let producing = tokio::spawn(produce_range(bootstrap.clone(), 0, events, Duration::from_millis(400)));
    let (metrics_a, metrics_b) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let a = spawn_on(&bootstrap, dir.path(), "delta", None, None, &metrics_a, &[]);
    let mut b = spawn_on(&bootstrap, dir.path(), "delta", None, None, &metrics_b, &[]);
    let guard = Survivors(vec![a.id(), b.id()]);
    // Both must own partitions and commit before B dies, or there is no rebalance to test.
    let both_working = reco_testkit::wait_until(Duration::from_secs(60), || {
        let (ma, mb) = (metrics_a.clone(), metrics_b.clone());
        async move { rows_written(&ma).await > 0.0 && rows_written(&mb).await > 0.0 }
    })
    .await;
    assert!(both_working, "both workers committed rows");
    // B dies mid-stream; after its session times out, A gets B's partitions and resumes them
    // from the offsets B committed to the tables.
    b.kill().unwrap();
    b.wait().unwrap();
    let a_before = rows_written(&metrics_a).await;
    let bad = producing.await.unwrap();
    let lake = Lake::new(dir.path(), Format::Delta).unwrap();
    assert_exactly_once(&lake, events, bad).await;
    let a_after = rows_written(&metrics_a).await;
    eprintln!("worker A wrote {a_before} rows before B died and {a_after} in all");
    assert!(a_after > a_before, "the survivor kept writing");
    std::mem::forget(guard);
    stop(a);
}
