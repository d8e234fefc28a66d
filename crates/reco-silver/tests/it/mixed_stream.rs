//! A mixed stream straight into Kafka (valid events of all types, 24 kinds of bad records,
//! duplicates): after the job drains, silver holds exactly the valid de-duplicated events,
//! field by field, and dead-letter exactly the bad records with the right `error_kind`.
//! The metrics equal the known counts. Run for Delta and for Parquet.

use std::{collections::HashMap, sync::Arc, time::Duration};

use rdkafka::producer::{FutureProducer, FutureRecord};
use reco_lake::{Format, Lake, TopicTables, read};
use reco_silver::SilverConfig;
use reco_telemetry::Telemetry;
use reco_testkit::Samples;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const TOPICS: [&str; 3] = ["events_views", "events_clicks", "events_ratings"];

/// (topic, user, item, event_time µs, session, rating) of one valid event.
type ExpectedRow = (String, String, String, i64, Option<String>, Option<f64>);

struct Expected {
    /// event_id → its expected silver row
    silver: HashMap<String, ExpectedRow>,
    /// (topic, payload, error_kind)
    deadletter: Vec<(String, Option<Vec<u8>>, String)>,
    produced: usize,
}

fn good(topic: &str, i: usize) -> Value {
    let (t, rating) = match topic {
        "events_views" => ("view", None),
        "events_clicks" => ("click", None),
        _ => ("rating", Some((i % 11) as f64 / 2.0)),
    };
    let mut v = json!({"type": t, "event_id": format!("{topic}-{i}"), "user_id": format!("u{}", i % 17),
                       "item_id": i % 23, "timestamp": 1_551_434_400_000_i64 + i as i64 * 1000});
    if i.is_multiple_of(3) {
        v["session_id"] = json!(format!("s{i}"));
    }
    if let Some(r) = rating {
        v["rating"] = json!(r);
    }
    v
}

fn bad_records() -> Vec<(&'static str, Option<Vec<u8>>, &'static str)> {
    let base = |topic: &str| good(topic, 999);
    let with = |topic: &str, k: &str, v: Value| {
        let mut e = base(topic);
        e[k] = v;
        Some(e.to_string().into_bytes())
    };
    let without = |topic: &str, k: &str| {
        let mut e = base(topic);
        e.as_object_mut().unwrap().remove(k);
        Some(e.to_string().into_bytes())
    };
    let v = "events_views";
    vec![
        (v, Some(b"{".to_vec()), "invalid_json"),
        (v, Some(Vec::new()), "invalid_json"),
        (v, Some(vec![0xff, 0xfe, 0x00]), "invalid_json"),
        (v, None, "invalid_json"),
        (v, Some(br#"{"rating": NaN}"#.to_vec()), "invalid_json"),
        (v, Some(b"[1,2]".to_vec()), "invalid_field"),
        (v, Some(b"\"view\"".to_vec()), "invalid_field"),
        (v, without(v, "event_id"), "missing_field"),
        (v, without(v, "timestamp"), "missing_field"),
        (v, without(v, "user_id"), "missing_field"),
        (v, without(v, "item_id"), "missing_field"),
        (v, with(v, "user_id", json!("")), "invalid_field"),
        (v, with(v, "item_id", json!("x".repeat(300))), "invalid_field"),
        (v, with(v, "colour", json!("red")), "unknown_field"),
        (v, with(v, "type", json!("click")), "invalid_field"),
        (v, with(v, "type", json!("purchase")), "invalid_field"),
        (v, with(v, "rating", json!(3)), "invalid_field"),
        ("events_ratings", without("events_ratings", "rating"), "missing_field"),
        ("events_ratings", with("events_ratings", "rating", json!(9)), "invalid_field"),
        (v, with(v, "timestamp", json!("1960-01-01T00:00:00Z")), "timestamp_out_of_range"),
        (v, with(v, "timestamp", json!("2999-01-01T00:00:00Z")), "timestamp_out_of_range"),
        ("events_clicks", with("events_clicks", "timestamp", json!("noon")), "invalid_field"),
        ("events_clicks", with("events_clicks", "user_id", json!(1.5)), "invalid_field"),
        ("events_clicks", with("events_clicks", "event_id", json!(12)), "invalid_field"),
    ]
}

async fn produce_stream(bootstrap: &str) -> Expected {
    let producer: FutureProducer = reco_kafka::client_config(bootstrap).create().unwrap();
    let mut expected = Expected { silver: HashMap::new(), deadletter: Vec::new(), produced: 0 };
    let send = |topic: &'static str, key: String, payload: Option<Vec<u8>>| {
        let producer = producer.clone();
        async move {
            let mut record = FutureRecord::<String, Vec<u8>>::to(topic).key(&key);
            if let Some(p) = &payload {
                record = record.payload(p);
            }
            producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
        }
    };
    for topic in TOPICS {
        for i in 0..150 {
            let v = good(topic, i);
            let ts = v["timestamp"].as_i64().unwrap() * 1000;
            expected.silver.insert(
                v["event_id"].as_str().unwrap().to_owned(),
                (
                    topic.to_owned(),
                    v["user_id"].as_str().unwrap().to_owned(),
                    v["item_id"].to_string(),
                    ts,
                    v["session_id"].as_str().map(String::from),
                    v["rating"].as_f64(),
                ),
            );
            send(topic, v["user_id"].as_str().unwrap().to_owned(), Some(v.to_string().into_bytes())).await;
            expected.produced += 1;
            if i % 10 == 0 {
                // A client retry: same event, same key, sent again later.
                send(topic, v["user_id"].as_str().unwrap().to_owned(), Some(v.to_string().into_bytes())).await;
                expected.deadletter.push((topic.to_owned(), Some(v.to_string().into_bytes()), "duplicate".into()));
                expected.produced += 1;
            }
        }
    }
    for (topic, payload, kind) in bad_records() {
        send(topic, "bad".into(), payload.clone()).await;
        expected.deadletter.push((topic.to_owned(), payload, kind.to_owned()));
        expected.produced += 1;
    }
    expected
}

async fn run_case(format: Format) {
    let broker = reco_testkit::broker_with_topics().await;
    let bootstrap = broker.bootstrap();
    let expected = produce_stream(&bootstrap).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path(), format).unwrap();
    let mut config = SilverConfig::new(&bootstrap, lake.clone());
    config.max_batch_age = Duration::from_millis(300);
    config.group_id = format!("silver-test-{format:?}");
    let telemetry = Arc::new(Telemetry::new());
    let shutdown = CancellationToken::new();
    let job = tokio::spawn(reco_silver::run(config, telemetry.clone(), shutdown.clone()));

    let produced = expected.produced as f64;
    let drained = reco_testkit::wait_until(Duration::from_secs(60), || {
        let samples = Samples::parse(&telemetry.render());
        let written: f64 = samples.matching("reco_silver_rows_written_total", &[]).map(|s| s.value).sum();
        async move { written >= produced }
    })
    .await;
    shutdown.cancel();
    job.await.unwrap().unwrap();
    assert!(drained, "silver job did not drain {produced} records: {}", telemetry.render());

    let mut silver = HashMap::new();
    let mut deadletter = Vec::new();
    for topic in TOPICS {
        let mut tables = TopicTables::open(&lake, topic, topic == "events_ratings").await.unwrap();
        for row in read::read_silver(&tables.silver_files().await.unwrap()).unwrap() {
            let id = row.event_id.clone();
            assert!(silver.insert(id.clone(), (topic.to_owned(), row)).is_none(), "{id} twice in silver");
        }
        for row in read::read_deadletter(&tables.deadletter_files().await.unwrap()).unwrap() {
            assert_eq!(row.kafka_topic, topic);
            deadletter.push((row.kafka_topic.clone(), row.payload.clone(), row.error_kind.clone(), row));
        }
    }
    assert_eq!(silver.len(), expected.silver.len(), "exactly the valid, de-duplicated events");
    for (id, (topic, user, item, time, session, rating)) in &expected.silver {
        let (t, row) = &silver[id];
        assert_eq!(t, topic);
        let item = item.trim_matches('"');
        assert_eq!(
            (&row.user_id, row.item_id.as_str(), row.event_time_us, &row.session_id, row.rating),
            (user, item, *time, session, *rating),
            "{id}"
        );
    }
    let mut got: Vec<(String, Option<Vec<u8>>, String)> =
        deadletter.iter().map(|(t, p, k, _)| (t.clone(), p.clone(), k.clone())).collect();
    let mut want = expected.deadletter.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "dead-letter holds exactly the bad records with their error kinds");
    assert!(deadletter.iter().all(|(_, _, _, r)| !r.error_message.is_empty()));
    let offsets: std::collections::HashSet<(String, i32, i64)> = silver
        .values()
        .map(|(t, r)| (t.clone(), r.kafka_partition, r.kafka_offset))
        .chain(deadletter.iter().map(|(_, _, _, r)| (r.kafka_topic.clone(), r.kafka_partition, r.kafka_offset)))
        .collect();
    assert_eq!(offsets.len(), expected.produced, "every produced record is in exactly one table");

    for topic in TOPICS {
        compare_with_independent_reader(&lake, format, topic, &silver, &deadletter);
    }

    let m = Samples::parse(&telemetry.render());
    let sum = |name: &str| m.matching(name, &[]).map(|s| s.value).sum::<f64>();
    assert_eq!(sum("reco_silver_records_in_total"), produced);
    assert_eq!(sum("reco_silver_duplicates_total"), 45.0);
    assert_eq!(
        m.value("reco_silver_deadlettered_total", &[("topic", "events_views"), ("reason", "invalid_json")]),
        5.0
    );
    assert_eq!(m.value("reco_silver_rows_written_total", &[("table", "silver/events_views")]), 150.0);
    let dl_written: f64 = TOPICS
        .iter()
        .map(|t| m.value("reco_silver_rows_written_total", &[("table", &format!("silver/_deadletter/{t}"))]))
        .sum();
    assert_eq!(dl_written, expected.deadletter.len() as f64);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mixed_stream_delta() {
    run_case(Format::Delta).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mixed_stream_parquet() {
    run_case(Format::Parquet).await;
}

/// Reads the tables with Python `deltalake`/pyarrow (installed by `make test`) and compares.
fn compare_with_independent_reader(
    lake: &Lake,
    format: Format,
    topic: &str,
    silver: &HashMap<String, (String, reco_lake::SilverRow)>,
    deadletter: &[(String, Option<Vec<u8>>, String, reco_lake::DeadLetterRow)],
) {
    let python = std::env::var("RECO_PYTHON")
        .unwrap_or_else(|_| format!("{}/.cache/reco-venv/bin/python", std::env::var("HOME").unwrap_or_default()));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/read_lake.py");
    let format_name = if format == Format::Delta { "delta" } else { "parquet" };
    let run = || {
        std::process::Command::new(&python)
            .arg(script)
            .arg(lake.local_root().expect("a local lake"))
            .args([format_name, topic])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {python} (run `make test`, which installs it): {e}"))
    };
    let mut out = run();
    if out.status.code().is_none() || String::from_utf8_lossy(&out.stderr).contains("terminate called") {
        // The Python reader's native runtime once aborted under a loaded machine (a crash of
        // the reader, not a finding about our tables): one more try, reported.
        eprintln!("independent reader crashed ({}); retrying once", String::from_utf8_lossy(&out.stderr));
        out = run();
    }
    assert!(out.status.success(), "independent reader failed: {}", String::from_utf8_lossy(&out.stderr));
    let theirs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sorted = |rows: Vec<Value>| {
        let mut rows: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
        rows.sort();
        rows
    };
    let ours_silver: Vec<Value> = silver
        .values()
        .filter(|(t, _)| t == topic)
        .map(|(_, r)| {
            let mut v = json!({"event_id": r.event_id, "user_id": r.user_id, "item_id": r.item_id,
                "event_time": r.event_time_us, "session_id": r.session_id,
                "kafka_partition": r.kafka_partition, "kafka_offset": r.kafka_offset});
            if let Some(rating) = r.rating {
                v["rating"] = json!(rating);
            }
            v
        })
        .collect();
    let ours_dl: Vec<Value> = deadletter
        .iter()
        .filter(|(t, ..)| t == topic)
        .map(|(_, _, _, r)| {
            json!({"kafka_topic": r.kafka_topic, "kafka_partition": r.kafka_partition, "kafka_offset": r.kafka_offset,
                   "payload": r.payload, "error_kind": r.error_kind})
        })
        .collect();
    let theirs_silver = theirs["silver"].as_array().cloned().unwrap_or_default();
    let theirs_dl = theirs["deadletter"].as_array().cloned().unwrap_or_default();
    assert_eq!(sorted(theirs_silver), sorted(ours_silver), "{topic}: silver as read by Python {format_name}");
    assert_eq!(sorted(theirs_dl), sorted(ours_dl), "{topic}: dead-letter as read by Python {format_name}");
}
