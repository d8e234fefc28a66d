//! `reco topics init` against a real (embedded) broker: creates the topics of CONTRACTS §2,
//! is idempotent, reports drift and fixes it with `--fix`.

use std::process::Output;

use reco_kafka::topics::{TopicSpec, describe_topics, ensure_topics};
use serde_json::Value;

async fn init(bootstrap: &str, extra: &[&str]) -> (Output, Value) {
    let bootstrap = bootstrap.to_owned();
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_reco"))
            .args(["topics", "init", "--json", "--replication-factor", "1"])
            .args(&extra)
            .env("KAFKA_BOOTSTRAP_SERVERS", &bootstrap)
            .output()
            .expect("run reco")
    })
    .await
    .unwrap();
    let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "stdout is JSON: {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, json)
}

fn outcomes(report: &Value) -> Vec<(String, String)> {
    report
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["topic"].as_str().unwrap().to_owned(), r["outcome"].as_str().unwrap().to_owned()))
        .collect()
}

const NAMES: [&str; 3] = ["events_clicks", "events_ratings", "events_views"];

#[tokio::test(flavor = "multi_thread")]
async fn init_creates_then_changes_nothing() {
    let broker =
        reco_kafka::EmbeddedBroker::start(reco_testkit::free_addr(), reco_kafka::BrokerStorage::Memory).await.unwrap();
    let bootstrap = broker.bootstrap();

    let (out, report) = init(&bootstrap, &[]).await;
    assert!(out.status.success());
    assert_eq!(outcomes(&report), NAMES.map(|n| (n.to_owned(), "created".to_owned())).to_vec());

    let (out, report) = init(&bootstrap, &[]).await;
    assert!(out.status.success());
    assert_eq!(
        outcomes(&report),
        NAMES.map(|n| (n.to_owned(), "unchanged".to_owned())).to_vec(),
        "second run changes nothing"
    );

    let names: Vec<String> = NAMES.map(String::from).to_vec();
    let states = describe_topics(&bootstrap, &names).await.unwrap();
    let described: Vec<(String, i32, Option<i64>)> =
        states.into_iter().map(|s| (s.name, s.partitions, s.retention_ms)).collect();
    assert_eq!(
        described,
        vec![
            ("events_clicks".into(), 3, Some(604_800_000)),
            ("events_ratings".into(), 3, Some(2_592_000_000)),
            ("events_views".into(), 3, Some(604_800_000)),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_is_reported_then_fixed() {
    let broker =
        reco_kafka::EmbeddedBroker::start(reco_testkit::free_addr(), reco_kafka::BrokerStorage::Memory).await.unwrap();
    let bootstrap = broker.bootstrap();
    // Someone created events_views by hand with 1-day retention and 2 partitions.
    let drifted =
        TopicSpec { name: "events_views".into(), partitions: 2, retention_ms: 86_400_000, replication_factor: Some(1) };
    ensure_topics(&bootstrap, &[drifted], false).await.unwrap();

    let (out, report) = init(&bootstrap, &[]).await;
    assert_eq!(out.status.code(), Some(1), "drift left in place exits 1");
    let views = report.as_array().unwrap().iter().find(|r| r["topic"] == "events_views").unwrap();
    assert_eq!(views["outcome"], "drifted");
    let drifts: Vec<(&str, &str, &str, bool)> = views["drifts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["setting"].as_str().unwrap(),
                d["expected"].as_str().unwrap(),
                d["actual"].as_str().unwrap(),
                d["fixed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(drifts, vec![("partitions", "3", "2", false), ("retention.ms", "604800000", "86400000", false)]);

    let (_, report) = init(&bootstrap, &["--fix"]).await;
    let views = report.as_array().unwrap().iter().find(|r| r["topic"] == "events_views").unwrap();
    let fixed: Vec<bool> = views["drifts"].as_array().unwrap().iter().map(|d| d["fixed"].as_bool().unwrap()).collect();
    assert_eq!(fixed, vec![false, true], "retention fixed; partition count only reported");

    let state = describe_topics(&bootstrap, &["events_views".to_owned()]).await.unwrap();
    assert_eq!(state[0].retention_ms, Some(604_800_000), "the broker now has the expected retention");
    assert_eq!(state[0].partitions, 2);
}
