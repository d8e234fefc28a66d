//! Bad input: malformed requests to a running `reco serve` (every one refused with a 4xx naming
//! the problem, nothing reaches Kafka), malformed records written straight into the topics
//! (every one in a dead-letter table with its reason and its exact bytes, every valid neighbour
//! in silver), and a fuzz run of silver's decoder (no panic, every refusal explained).

use std::{collections::HashMap, time::Duration};

use proptest::{
    prelude::*,
    test_runner::{Config, TestRunner},
};
use rdkafka::producer::{FutureProducer, FutureRecord};
use reco_core::{ErrorKind, Rules};
use reco_lake::{Format, Lake, TopicTables, read::read_deadletter};
use reco_silver::{Decoded, RawRecord, decode};
use reco_testkit::bad::{api_corpus, check_refusal};
use reco_traffic::synthetic::{GenConfig, Generated, Generator};
use serde_json::{Value, json};

use crate::common::{api, lake_dir, scale, silver, silver_ids, verdict};

/// The first `n` malformed bodies `reco gen` produces (all its kinds of mistake).
fn generated_malformed(n: usize) -> Vec<(&'static str, String)> {
    let mut generator = Generator::new(GenConfig { malformed_ratio: 1.0, seed: 3, ..GenConfig::default() });
    let now = chrono::Utc::now().timestamp_micros();
    let mut out = Vec::new();
    while out.len() < n {
        if let Generated::Malformed { kind, body } = generator.next(now) {
            out.push((kind, body));
        }
    }
    out
}

/// A record written straight into Kafka: `(topic, payload, field the reason must name)`.
type BadRecord = (&'static str, Option<Vec<u8>>, Option<&'static str>);

fn kafka_corpus() -> Vec<BadRecord> {
    let mut out: Vec<BadRecord> = Vec::new();
    // The API corpus as stored records: each object gets an event_id (the API would have
    // added one), so the record is bad for the reason the case is about, not for lacking it.
    for (i, (what, body, _, _, field)) in api_corpus().into_iter().enumerate() {
        if what == "missing type" {
            // A stored record may leave `type` out: its topic names it (CONTRACTS §3: "in the Kafka value it may be kept").
            continue;
        }
        let payload = match serde_json::from_str::<Value>(&body) {
            Ok(Value::Object(mut map)) => {
                map.entry("event_id").or_insert(json!(format!("bad-{i}")));
                if !map.contains_key("timestamp") {
                    map.insert("timestamp".into(), json!("2019-03-01T10:00:00Z"));
                }
                Value::Object(map).to_string()
            }
            _ => body,
        };
        out.push((
            "events_views",
            Some(payload.into_bytes()),
            field.map(|f| f.1).filter(|_| field.unwrap().0.is_none()),
        ));
    }
    for (_, body) in generated_malformed(21) {
        out.push(("events_clicks", Some(body.into_bytes()), None));
    }
    let view = r#"{"type":"view","event_id":"k1","user_id":"u","item_id":"i","timestamp":1551434400000}"#;
    out.extend([
        ("events_views", None, None),
        ("events_views", Some(Vec::new()), None),
        ("events_views", Some(vec![0xff, 0xfe, b'{', 0x80]), None),
        ("events_clicks", Some(view.as_bytes().to_vec()), Some("type")),
        ("events_ratings", Some(view.replace("view", "rating").into_bytes()), Some("rating")),
        ("events_views", Some(view.replace("k1", "").into_bytes()), Some("event_id")),
    ]);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let lake_path = lake_dir(&dir);
    let broker = reco_testkit::broker_with_topics().await;
    let bootstrap = broker.bootstrap();
    let (serve, http) = api(&bootstrap, &[("RECO_BODY_LIMIT_BYTES", "4096"), ("RECO_MAX_BATCH_EVENTS", "10")]).await;
    let mut silver_job = silver(&bootstrap, &lake_path, "delta");

    // 1. Through the API.
    let mut api_problems = Vec::new();
    let corpus = api_corpus();
    for case in &corpus {
        let r = reco_testkit::http::request(&http, "POST", "/events", Some(case.1.clone())).await.unwrap();
        let body = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        if let Err(e) = check_refusal(case, r.status, &body) {
            api_problems.push(e);
        }
    }
    let generated = generated_malformed(21);
    for (kind, body) in &generated {
        let r = reco_testkit::http::request(&http, "POST", "/events", Some(body.clone())).await.unwrap();
        let named = serde_json::from_slice::<Value>(&r.body).is_ok_and(|b| b["error"]["message"].is_string());
        if !(400..500).contains(&r.status) || !named {
            api_problems.push(format!("{kind}: {} {}", r.status, r.text()));
        }
    }
    let via_api = corpus.len() + generated.len();
    let mut leaked = 0;
    for topic in ["events_views", "events_clicks", "events_ratings"] {
        leaked += reco_testkit::topic_count(&bootstrap, topic).await;
    }

    // 2. Straight into Kafka, between valid records.
    eprintln!("bad input: records straight into Kafka");
    let producer: FutureProducer = reco_kafka::client_config(&bootstrap).create().unwrap();
    let bad = kafka_corpus();
    // Kafka coordinates → (payload, field the reason must name).
    let mut sent: HashMap<(String, i32, i64), &BadRecord> = HashMap::new();
    let mut valid_ids = Vec::new();
    for (i, (topic, payload, _)) in bad.iter().enumerate() {
        let mut record = FutureRecord::<str, [u8]>::to(topic).key("k");
        if let Some(p) = payload {
            record = record.payload(p);
        }
        let d = producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
        sent.insert((topic.to_string(), d.partition, d.offset), &bad[i]);
        let id = format!("good-{i}");
        let good =
            json!({"type": "view", "event_id": id, "user_id": "u", "item_id": "i", "timestamp": 1551434400000_i64});
        let good = good.to_string();
        producer
            .send(FutureRecord::<str, str>::to("events_views").key("k").payload(&good), Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        valid_ids.push(id);
    }

    let lake = Lake::new(&lake_path, Format::Delta).unwrap();
    let deadletter = |lake: Lake| async move {
        let mut rows = Vec::new();
        for (topic, rating) in [("events_views", false), ("events_clicks", false), ("events_ratings", true)] {
            if let Ok(mut t) = TopicTables::open(&lake, topic, rating).await
                && let Ok(files) = t.deadletter_files().await
            {
                rows.extend(read_deadletter(&files).unwrap());
            }
        }
        rows
    };
    let expected = bad.len();
    reco_testkit::wait_until(Duration::from_secs(60), || {
        let lake = lake.clone();
        async move { deadletter(lake).await.len() >= expected }
    })
    .await;
    let rows = deadletter(lake.clone()).await;
    let mut kafka_problems = Vec::new();
    for row in &rows {
        let key = (row.kafka_topic.clone(), row.kafka_partition, row.kafka_offset);
        let Some((_, payload, field)) = sent.get(&key) else {
            kafka_problems.push(format!("dead-lettered a record that was not sent bad: {key:?}"));
            continue;
        };
        if row.payload != *payload || row.error_kind.is_empty() || row.error_message.is_empty() {
            kafka_problems.push(format!("{key:?}: bytes or reason lost: {} {}", row.error_kind, row.error_message));
        }
        if let Some(f) = field
            && !row.error_message.contains(f)
        {
            kafka_problems.push(format!("{key:?}: reason does not name {f}: {}", row.error_message));
        }
    }
    for (key, (_, payload, _)) in &sent {
        if !rows.iter().any(|r| (&r.kafka_topic, r.kafka_partition, r.kafka_offset) == (&key.0, key.1, key.2)) {
            let shown = payload.as_deref().map(String::from_utf8_lossy);
            kafka_problems.push(format!("{key:?} ({shown:?}) is in no dead-letter table"));
        }
    }
    let silver = silver_ids(&lake).await;
    let good_in_silver = valid_ids.iter().filter(|id| silver.get(*id) == Some(&1)).count();
    let alive = silver_job.alive();
    let stopped = silver_job.stop() & serve.stop();
    broker.stop().await;

    // 3. The decoder itself, fuzzed.
    eprintln!("bad input: fuzzing the decoder");
    let (cases, fuzz_problem) = fuzz_decoder(scale(20_000, 200_000));

    let pass = api_problems.is_empty()
        && leaked == 0
        && rows.len() == bad.len()
        && kafka_problems.is_empty()
        && good_in_silver == valid_ids.len()
        && silver.len() == valid_ids.len()
        && alive
        && stopped
        && fuzz_problem.is_none();
    verdict(
        "bad-input",
        pass,
        &format!(
            "API: {via_api} malformed requests, {} refused correctly, {leaked} reached Kafka; Kafka: {} bad records, {} \
             dead-lettered with reason and bytes, {good_in_silver}/{} valid neighbours in silver; decoder fuzz: {cases} \
             cases, {}{}",
            via_api - api_problems.len(),
            bad.len(),
            rows.len() - kafka_problems.len().min(rows.len()),
            valid_ids.len(),
            fuzz_problem.as_deref().unwrap_or("no panic"),
            api_problems.iter().chain(&kafka_problems).take(3).map(|p| format!("; {p}")).collect::<String>(),
        ),
    );
}

/// Arbitrary bytes, and valid events with one mutation (a byte flipped, cut short, a field
/// replaced by an arbitrary JSON value), through `decode`: it must not panic, and an invalid
/// record must come with a kind and a message.
fn fuzz_decoder(cases: u32) -> (u32, Option<String>) {
    let valid = json!({"type": "rating", "event_id": "e1", "user_id": "u1", "item_id": "m1",
        "timestamp": "2019-03-01T10:00:00Z", "session_id": "s", "rating": 4.5});
    let text = valid.to_string();
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,300}".prop_map(Value::from),
    ];
    let value = leaf.prop_recursive(3, 20, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::hash_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let fields = ["type", "event_id", "user_id", "item_id", "timestamp", "session_id", "rating", "extra"];
    let input = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..400),
        (0..text.len(), any::<u8>()).prop_map({
            let text = text.clone();
            move |(at, b)| {
                let mut bytes = text.clone().into_bytes();
                bytes[at] = b;
                bytes
            }
        }),
        (0..text.len()).prop_map({
            let text = text.clone();
            move |at| text.as_bytes()[..at].to_vec()
        }),
        (prop::sample::select(fields.to_vec()), value).prop_map({
            let valid = valid.clone();
            move |(field, v)| {
                let mut event = valid.clone();
                event[field] = v;
                event.to_string().into_bytes()
            }
        }),
    ];
    let topics = prop::sample::select(vec!["events_views", "events_clicks", "events_ratings", "other"]);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let rules = Rules::default();
    let now = chrono::Utc::now().timestamp_micros();
    let result = runner.run(&(input, topics), |(payload, topic)| {
        let record =
            RawRecord { topic, partition: 0, offset: 0, timestamp_us: None, key: None, payload: Some(&payload) };
        // What the bytes are, judged without the decoder: JSON at all, and if so which ids.
        let parsed = serde_json::from_slice::<Value>(&payload).ok();
        let id = |v: &Value, field: &str| match &v[field] {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        match decode(&record, &rules, now) {
            Decoded::Valid(row) => {
                let Some(v) = parsed else { return Err(TestCaseError::fail("bytes that are not JSON accepted")) };
                prop_assert_eq!(id(&v, "user_id"), Some(row.user_id.clone()));
                prop_assert_eq!(id(&v, "item_id"), Some(row.item_id.clone()));
                prop_assert_eq!(id(&v, "event_id"), Some(row.event_id.clone()));
            }
            Decoded::Invalid { kind, message } => {
                // Not JSON is exactly the invalid_json refusals; anything else names its field.
                prop_assert_eq!(kind == ErrorKind::InvalidJson, parsed.is_none(), "{:?}: {}", kind, message);
                prop_assert!(!message.is_empty(), "unexplained refusal");
            }
        }
        Ok(())
    });
    (cases, result.err().map(|e| format!("decoder fuzz failed: {e}")))
}
