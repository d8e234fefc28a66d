//! `reco gen` against a running `reco up`, as a user runs it: through the API (valid events
//! accepted and in silver, malformed ones refused and counted) with a fast historic clock so
//! gold publishes windows, and straight into Kafka (malformed records end up in dead-letter).

use std::{process::Command, time::Duration};

use reco_lake::{Format, Lake, TopicTables, read};
use reco_testkit::{Samples, http, up::RecoUp, wait_until};

fn run_gen(args: &[&str], http_port: u16, broker_port: u16) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_reco"))
        .arg("gen")
        .args(args)
        .env("RECO_GEN_API_URL", format!("http://127.0.0.1:{http_port}"))
        .env("KAFKA_BOOTSTRAP_SERVERS", format!("127.0.0.1:{broker_port}"))
        .env("RUST_LOG", "error")
        .output()
        .expect("run reco gen");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The number after `label` in the summary line.
fn figure(summary: &str, before: &str) -> u64 {
    let at = summary.find(before).unwrap_or_else(|| panic!("{before:?} in {summary}"));
    summary[..at].split_whitespace().last().unwrap().trim_start_matches('(').parse().unwrap()
}

async fn silver_rows(lake: &Lake) -> (usize, usize) {
    let (mut rows, mut dead) = (0, 0);
    for (topic, rating) in [("events_views", false), ("events_clicks", false), ("events_ratings", true)] {
        let mut t = TopicTables::open(lake, topic, rating).await.unwrap();
        rows += read::read_silver(&t.silver_files().await.unwrap()).unwrap().len();
        dead += read::read_deadletter(&t.deadletter_files().await.unwrap()).unwrap().len();
    }
    (rows, dead)
}

#[tokio::test(flavor = "multi_thread")]
async fn gen_feeds_the_platform_through_the_api_and_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let up = RecoUp::start(
        env!("CARGO_BIN_EXE_reco"),
        dir.path(),
        &[
            ("RECO_SILVER_MAX_BATCH_AGE_MS", "300"),
            ("RECO_GOLD_POLL_INTERVAL_MS", "200"),
            ("RECO_GOLD_IDLE_TIMEOUT_MS", "2000"),
        ],
    );
    let (http_port, broker_port) = (up.http_port, up.broker_port);
    let lake = Lake::new(dir.path(), Format::Delta).unwrap();

    // Through the API: three hours of 2019 in a few seconds.
    let (ok, summary) = run_gen(
        &[
            "--events",
            "3000",
            "--rate",
            "0",
            "--malformed-ratio",
            "0.05",
            "--historic-start",
            "2019-03-01",
            "--speedup",
            "3600",
            "--items",
            "300",
        ],
        http_port,
        broker_port,
    );
    assert!(ok, "{summary}");
    let accepted = figure(&summary, "valid accepted");
    let refused = figure(&summary, "refused as expected");
    assert_eq!(figure(&summary, "events in"), 3000, "{summary}");
    assert!(accepted > 2500 && refused > 50, "{summary}");
    assert_eq!(figure(&summary, "failed"), 0, "{summary}");
    let metrics = Samples::parse(&http::get(&format!("127.0.0.1:{http_port}"), "/metrics").await.unwrap().text());
    let rejected: f64 = metrics.matching("reco_api_events_rejected_total", &[]).map(|s| s.value).sum();
    assert_eq!(rejected as u64, refused, "every malformed event was refused by validation");
    let in_silver =
        wait_until(Duration::from_secs(60), || async { silver_rows(&lake).await.0 as u64 == accepted }).await;
    assert!(in_silver, "every accepted event reaches silver: {:?} of {accepted}", silver_rows(&lake).await);
    let trending = wait_until(Duration::from_secs(30), || async {
        http::get(&format!("127.0.0.1:{http_port}"), "/trending?window=1h").await.unwrap().status == 200
    })
    .await;
    assert!(trending, "gold publishes windows of the generated history");

    // Straight into Kafka: malformed records bypass the API and are dead-lettered by silver.
    let (ok, summary) = run_gen(
        &["--target", "kafka", "--events", "1000", "--rate", "0", "--malformed-ratio", "0.1", "--seed", "9"],
        http_port,
        broker_port,
    );
    assert!(ok, "{summary}");
    let (valid, malformed) = (figure(&summary, "valid accepted"), figure(&summary, "malformed ("));
    assert_eq!(valid + malformed, 1000, "{summary}");
    let settled = wait_until(Duration::from_secs(60), || async {
        silver_rows(&lake).await == ((accepted + valid) as usize, malformed as usize)
    })
    .await;
    assert!(
        settled,
        "silver and dead-letter: {:?}, expected ({}, {malformed})",
        silver_rows(&lake).await,
        accepted + valid
    );

    // A MovieLens-style log replayed with a column mapping: ratings, each also a view; bad
    // rows reported by line and skipped; replaying again sends the same ids (de-duplicated).
    let log = dir.path().join("ratings.csv");
    let mut csv = String::from("userId,movieId,rating,timestamp\n");
    for i in 0..200 {
        csv.push_str(&format!("{},{},{}.5,{}\n", i % 17, i % 23, i % 5, 1_260_759_144 + i * 60));
    }
    csv.push_str("5,,4.0,1260759144\n5,9,oops,1260759144\n");
    std::fs::write(&log, csv).unwrap();
    let replay = |log: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_reco"))
            .arg("replay")
            .arg(log)
            .args(["--user-col", "userId", "--item-col", "movieId", "--time-col", "timestamp", "--time-unit", "s"])
            .args(["--rating-col", "rating", "--type", "rating", "--rating-as-view"])
            .env("RECO_GEN_API_URL", format!("http://127.0.0.1:{http_port}"))
            .env("RUST_LOG", "error")
            .output()
            .unwrap()
    };
    let out = replay(&log);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("line 202:") && stderr.contains("line 203:"), "bad rows by line: {stderr}");
    assert_eq!(figure(&stdout, "valid accepted"), 400, "{stdout}");
    let expected = (accepted + valid + 400) as usize;
    let settled = wait_until(Duration::from_secs(60), || async { silver_rows(&lake).await.0 == expected }).await;
    assert!(settled, "replayed events in silver: {:?}, expected {expected}", silver_rows(&lake).await);
    assert!(replay(&log).status.success());
    let duplicates = wait_until(Duration::from_secs(60), || async {
        silver_rows(&lake).await == (expected, malformed as usize + 400)
    })
    .await;
    assert!(duplicates, "a second replay is de-duplicated: {:?}", silver_rows(&lake).await);

    // A rating out of range sinks its batch (validated all or nothing): the run fails and says
    // why, by field, with the API's message. Without a terminal, progress comes as lines.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "userId,movieId,rating,timestamp\n1,2,4.0,1260759144\n1,3,7.5,1260759145\n").unwrap();
    let out = replay(&bad);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("why events failed") && stderr.contains("HTTP 422 validation_failed, field rating"),
        "{stderr}"
    );
    assert!(stderr.contains("of the batch, field rating:"), "the API's own message: {stderr}");

    assert!(up.stop().success());
}
