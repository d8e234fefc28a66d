//! Events posted to the API are exactly the events in Kafka: right topic, keyed by user_id,
//! ids assigned where missing.

use crate::common;

use std::collections::HashMap;

use axum::http::StatusCode;
use common::Harness;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn posted_events_land_on_their_topics_keyed_by_user() {
    let h = Harness::start().await;
    let single = json!({"type": "view", "event_id": "v-1", "user_id": "u1", "item_id": "m1",
                        "timestamp": "2019-03-01T10:00:00Z", "session_id": "s1"});
    let (status, body) = h.post_json(&single.to_string()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["event_ids"], json!(["v-1"]));

    let batch = json!([
        {"type": "click", "user_id": 42, "item_id": "m2", "timestamp": 1_551_434_400_000_i64},
        {"type": "rating", "event_id": "r-1", "user_id": "u3", "item_id": 7, "rating": 4.5},
        {"type": "view", "user_id": "u4", "item_id": "m4"},
    ]);
    let (status, body) = h.post_json(&batch.to_string()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let ids: Vec<String> = serde_json::from_value(body["event_ids"].clone()).unwrap();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[1], "r-1");
    for assigned in [&ids[0], &ids[2]] {
        let uuid = uuid::Uuid::parse_str(assigned).expect("assigned id is a UUID");
        assert_eq!(uuid.get_version_num(), 7, "assigned ids are UUIDv7");
    }

    // Read everything back with an independent consumer.
    let mut by_id: HashMap<String, (String, Vec<u8>, Value)> = HashMap::new();
    for topic in ["events_views", "events_clicks", "events_ratings"] {
        for r in reco_testkit::read_topic(&h.bootstrap, topic).await {
            let value: Value = serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap();
            let id = value["event_id"].as_str().unwrap().to_owned();
            assert!(by_id.insert(id, (r.topic, r.key.unwrap(), value)).is_none(), "duplicate in Kafka");
        }
    }
    assert_eq!(by_id.len(), 4, "exactly the posted events, no more");

    let (topic, key, v) = &by_id["v-1"];
    assert_eq!((topic.as_str(), key.as_slice()), ("events_views", b"u1".as_slice()));
    assert_eq!(v["timestamp"], "2019-03-01T10:00:00.000000Z");
    assert_eq!(v["session_id"], "s1");

    let (topic, key, v) = &by_id[&ids[0]];
    assert_eq!((topic.as_str(), key.as_slice()), ("events_clicks", b"42".as_slice()));
    assert_eq!(v["user_id"], "42", "integer ids are stored as decimal strings");
    assert_eq!(v["timestamp"], "2019-03-01T10:00:00.000000Z");

    let (topic, key, v) = &by_id["r-1"];
    assert_eq!((topic.as_str(), key.as_slice()), ("events_ratings", b"u3".as_slice()));
    assert_eq!((v["item_id"].clone(), v["rating"].clone()), (json!("7"), json!(4.5)));

    let (topic, _, v) = &by_id[&ids[2]];
    assert_eq!(topic, "events_views");
    let ts = chrono::DateTime::parse_from_rfc3339(v["timestamp"].as_str().unwrap()).unwrap();
    let age = chrono::Utc::now().signed_duration_since(ts);
    assert!(age.num_seconds().abs() < 60, "missing timestamp becomes the receive time, got {ts}");
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_openapi() {
    let h = Harness::start().await;
    let (status, _, _) = h.get("/health/live").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = h.get("/health/ready").await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let (status, _, body) = h.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let spec: Value = serde_json::from_slice(&body).unwrap();
    for path in ["/events", "/health/live", "/health/ready"] {
        assert!(spec["paths"][path].is_object(), "{path} documented");
    }
    assert!(spec["components"]["schemas"]["EventInput"].is_object());
    assert_eq!(spec["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    for status in ["401", "429"] {
        assert!(spec["paths"]["/events"]["post"]["responses"][status].is_object(), "POST /events documents {status}");
    }
    // Query parameters are optional and in the query; the item is in the path.
    let params = |path: &str| spec["paths"][path]["get"]["parameters"].as_array().cloned().unwrap_or_default();
    let trending = params("/trending");
    assert!(trending.len() >= 4, "{trending:?}");
    for p in &trending {
        assert_eq!((p["in"].as_str(), p["required"].as_bool()), (Some("query"), Some(false)), "{p}");
    }
    let similar = params("/items/{item_id}/similar");
    let place = |name: &str| similar.iter().find(|p| p["name"] == name).map(|p| p["in"].clone());
    assert_eq!(place("item_id"), Some(Value::from("path")), "{similar:?}");
    assert_eq!(place("limit"), Some(Value::from("query")), "{similar:?}");
    let for_user = params("/users/{user_id}/recommendations");
    let place = |name: &str| for_user.iter().find(|p| p["name"] == name).map(|p| p["in"].clone());
    assert_eq!(place("user_id"), Some(Value::from("path")), "{for_user:?}");
    assert_eq!(place("limit"), Some(Value::from("query")), "{for_user:?}");
    let session = &spec["paths"]["/recommendations"]["post"];
    assert!(session["requestBody"].is_object() && session["responses"]["422"].is_object(), "{session}");
    for schema in ["UserRecommendations", "SessionRecommendations", "SessionInput", "Recommended"] {
        assert!(spec["components"]["schemas"][schema].is_object(), "{schema} documented");
    }
    // One event or an array of them; tags a reader can browse by.
    let body = &spec["components"]["schemas"]["EventsBody"]["oneOf"];
    assert_eq!(body.as_array().map(Vec::len), Some(2), "{body}");
    assert!(body.to_string().contains("\"array\""), "{body}");
    assert_eq!(spec["paths"]["/events"]["post"]["tags"], serde_json::json!(["events"]));
    assert!(!spec.to_string().contains('§'), "no references to sections of our own docs");

    // The document is valid OpenAPI, by an independent validator (installed by `make test`).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(&spec).unwrap()).unwrap();
    let python = reco_testkit::s3::venv_bin("python");
    let out = std::process::Command::new(&python)
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} (run `make test`, which installs the validator): {e}"));
    assert!(
        out.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
