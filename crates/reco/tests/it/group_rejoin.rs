//! A static group member that lost its session (stopped longer than its session timeout, as a
//! paused VM or container is) rejoins the embedded broker's group and reads again within
//! seconds. tansu's coordinator kept the expired member as the group's leader: the rejoining
//! member, told to wait for that leader's assignment, held no partitions until the rebalance
//! timeout (5 minutes), and silver read nothing meanwhile. The broker-outage scenario lost the
//! same way one run in ten (third_party/README.md, tansu-broker).

use std::{
    collections::HashSet,
    process::{Child, Command},
    time::Duration,
};

use rdkafka::producer::{FutureProducer, FutureRecord};
use reco_kafka::BrokerStorage;
use reco_lake::{Format, Lake};

use crate::silver_crash::{spawn_on, stop};

const SESSION_MS: u64 = 6_000;

fn signal(child: &Child, name: &str) {
    assert!(Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap().success());
}

/// Views of items `probe-<from>..probe-<to>`, keyed by item so they spread over partitions.
async fn produce(producer: &FutureProducer, from: usize, to: usize) -> Vec<String> {
    let mut items = Vec::new();
    for i in from..to {
        let item = format!("probe-{i}");
        let mut event = reco_testkit::bad::view();
        event["event_id"] = format!("rejoin-{i}").into();
        event["item_id"] = item.clone().into();
        let payload = event.to_string();
        let record = FutureRecord::to("events_views").key(&item).payload(&payload);
        producer.send(record, Duration::from_secs(10)).await.expect("acknowledged");
        items.push(item);
    }
    items
}

/// Whether silver holds a view of every one of `items`.
async fn in_silver(lake: &Lake, items: &[String]) -> bool {
    let held: HashSet<String> =
        reco_testkit::gold::silver_events(lake).await.into_iter().map(|(item, ..)| item).collect();
    items.iter().all(|i| held.contains(i))
}

#[tokio::test(flavor = "multi_thread")]
async fn static_member_stopped_past_its_session_reads_again() {
    let dir = tempfile::tempdir().unwrap();
    let broker = reco_testkit::broker_with_topics_on(BrokerStorage::Sqlite(dir.path().join("broker.db"))).await;
    let bootstrap = broker.bootstrap();
    let lake_path = dir.path().join("lake");
    let lake = Lake::new(&lake_path, Format::Delta).unwrap();
    let producer: FutureProducer = reco_kafka::client_config(&bootstrap).create().unwrap();
    // A static member (StatefulSet-style instance id) with a short session.
    let session = SESSION_MS.to_string();
    let env = [("RECO_SILVER_SESSION_TIMEOUT_MS", session.as_str())];
    let job = spawn_on(&bootstrap, &lake_path, "delta", None, Some("rejoin-silver"), "127.0.0.1:0", &env);

    let first = produce(&producer, 0, 30).await;
    let joined = reco_testkit::wait_until(Duration::from_secs(60), || in_silver(&lake, &first)).await;
    assert!(joined, "silver did not read the first events");

    // Stopped past its session: the coordinator expires it while it cannot answer.
    signal(&job, "STOP");
    tokio::time::sleep(Duration::from_millis(SESSION_MS + 4_000)).await;
    signal(&job, "CONT");

    let second = produce(&producer, 30, 60).await;
    // A rejoin takes a few seconds (the session check, the static member's 3 s join pause);
    // the coordinator's bug held the partitions for the 5-minute rebalance timeout.
    let resumed = reco_testkit::wait_until(Duration::from_secs(45), || in_silver(&lake, &second)).await;
    stop(job);
    assert!(resumed, "silver read nothing within 45 s after rejoining the group");
}
