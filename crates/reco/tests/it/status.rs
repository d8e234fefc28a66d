//! `reco status` against a running `reco up`: healthy (exit 0) with every check listed, JSON
//! for machines; a job that does not answer is degraded (exit 1); with the platform stopped
//! it is down (exit 2).

use std::process::{Command, Output};

use reco_testkit::{free_port, http, up::RecoUp};
use serde_json::{Value, json};

fn status(lake: &std::path::Path, http_port: u16, broker_port: u16, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reco"))
        .arg("status")
        .args(extra)
        .env("KAFKA_BOOTSTRAP_SERVERS", format!("127.0.0.1:{broker_port}"))
        .env("LAKEHOUSE_PATH", lake)
        .env("RECO_STATUS_API_URL", format!("http://127.0.0.1:{http_port}"))
        .env("RECO_STATUS_TIMEOUT_MS", "3000")
        .env_remove("RUST_LOG")
        .output()
        .expect("run reco status")
}

#[tokio::test(flavor = "multi_thread")]
async fn status_reports_healthy_degraded_and_down() {
    let lake = tempfile::tempdir().unwrap();
    let up = RecoUp::start(env!("CARGO_BIN_EXE_reco"), lake.path(), &[]);
    let (http_port, broker_port, api) = (up.http_port, up.broker_port, up.api());
    let event = json!({"type": "view", "user_id": "u", "item_id": "m1", "timestamp": "2019-03-01T10:00:00Z"});
    assert_eq!(http::post_json(&api, "/events", &event).await.unwrap().status, 202);

    // A healthy platform: no librdkafka error or warning lines (they came with every short-lived
    // client: the bootstrap connection replaced by the advertised one reads "AllBrokersDown").
    // `reco status` finds the jobs' metrics on the API's port by itself.
    for flags in [&[][..], &["--all-in-one"], &[]] {
        let out = status(lake.path(), http_port, broker_port, flags);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
        assert!(!stderr.contains("ERROR") && !stderr.contains("WARN"), "reco status logged: {stderr}");
    }

    // The broker describes the group once silver has joined it (tansu's SQLite engine failed
    // every DescribeGroups, so status showed no members and the broker logged two ERROR lines
    // per call).
    let started = std::time::Instant::now();
    let report = loop {
        let healthy = status(lake.path(), http_port, broker_port, &["--all-in-one", "--json"]);
        let report: Value = serde_json::from_slice(&healthy.stdout).expect("JSON report");
        assert_eq!(healthy.status.code(), Some(0), "{report:#}");
        assert_eq!(report["status"], "ok");
        if report["group"]["state"] == "Stable" || started.elapsed() > std::time::Duration::from_secs(20) {
            break report;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert_eq!(report["group"]["state"], "Stable", "{report:#}");
    assert_eq!(report["group"]["members"].as_array().unwrap().len(), 1, "reco up's silver worker: {report:#}");
    let names: Vec<&str> = report["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    for expected in [
        "broker",
        "topic events_views",
        "topic events_ratings",
        "group reco-silver",
        "api",
        "silver job",
        "gold job",
        "trending_now_1h",
        "item_neighbors",
    ] {
        assert!(names.contains(&expected), "check {expected} in {names:?}");
    }
    let partitions = report["group"]["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 9, "three partitions of three topics");

    // The standalone jobs' metrics ports answer nothing here: degraded, and the table says why.
    let degraded =
        status(lake.path(), http_port, broker_port, &["--silver-url", &format!("http://127.0.0.1:{}", free_port())]);
    let text = String::from_utf8_lossy(&degraded.stdout);
    assert_eq!(degraded.status.code(), Some(1), "{text}");
    assert!(text.lines().any(|l| l.starts_with("silver job") && l.contains("DEGRADED")), "{text}");

    assert!(up.stop().success());
    let down = status(lake.path(), http_port, broker_port, &["--all-in-one"]);
    let text = String::from_utf8_lossy(&down.stdout);
    assert_eq!(down.status.code(), Some(2), "{text}");
    assert!(text.lines().any(|l| l.starts_with("broker") && l.contains("DOWN")), "{text}");
}
