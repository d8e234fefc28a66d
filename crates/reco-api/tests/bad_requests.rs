//! A corpus of bad requests: each gets the right 4xx naming the field, and nothing at all
//! reaches Kafka.

mod common;

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use common::Harness;
use reco_api::ApiConfig;
use serde_json::{Value, json};

fn view() -> Value {
    json!({"type": "view", "user_id": "u1", "item_id": "m1", "timestamp": "2019-03-01T10:00:00Z"})
}

fn with(key: &str, v: Value) -> String {
    let mut e = view();
    e[key] = v;
    e.to_string()
}

fn without(key: &str) -> String {
    let mut e = view();
    e.as_object_mut().unwrap().remove(key);
    e.to_string()
}

/// (description, body, expected status, expected code, field named in details: (index, field))
type Case = (&'static str, String, StatusCode, &'static str, Option<(Option<usize>, &'static str)>);

fn corpus() -> Vec<Case> {
    use StatusCode as S;
    let far_future = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let rating = |r: Value| json!({"type": "rating", "user_id": "u", "item_id": "i", "rating": r}).to_string();
    vec![
        ("malformed JSON", "{\"type\": \"view\",".into(), S::BAD_REQUEST, "invalid_json", None),
        ("not JSON at all", "hello".into(), S::BAD_REQUEST, "invalid_json", None),
        ("empty body", String::new(), S::BAD_REQUEST, "invalid_json", None),
        (
            "bare NaN",
            "{\"type\":\"rating\",\"user_id\":\"u\",\"item_id\":\"i\",\"rating\":NaN}".into(),
            S::BAD_REQUEST,
            "invalid_json",
            None,
        ),
        ("number overflow", rating(json!(null)).replace("null", "1e999"), S::BAD_REQUEST, "invalid_json", None),
        ("JSON string body", "\"view\"".into(), S::UNPROCESSABLE_ENTITY, "validation_failed", None),
        ("JSON number body", "42".into(), S::UNPROCESSABLE_ENTITY, "validation_failed", None),
        ("empty batch", "[]".into(), S::UNPROCESSABLE_ENTITY, "validation_failed", None),
        ("missing type", without("type"), S::UNPROCESSABLE_ENTITY, "validation_failed", Some((None, "type"))),
        (
            "unknown type",
            with("type", json!("purchase")),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some((None, "type")),
        ),
        (
            "type not a string",
            with("type", json!(1)),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some((None, "type")),
        ),
        ("missing user_id", without("user_id"), S::UNPROCESSABLE_ENTITY, "validation_failed", Some((None, "user_id"))),
        (
            "empty user_id",
            with("user_id", json!("")),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some((None, "user_id")),
        ),
        (
            "overlong user_id",
            with("user_id", json!("u".repeat(257))),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some((None, "user_id")),
        ),
        (
            "user_id object",
            with("user_id", json!({"id": 1})),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some((None, "user_id")),
        ),
        ("missing item_id", without("item_id"), S::UNPROCESSABLE_ENTITY, "validation_failed", Some((None, "item_id"))),
        (
            "fractional item_id",
            with("item_id", json!(1.5)),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some((None, "item_id")),
        ),
        (
            "item_id boolean",
            with("item_id", json!(true)),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some((None, "item_id")),
        ),
        (
            "empty event_id",
            with("event_id", json!("")),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some((None, "event_id")),
        ),
        (
            "overlong event_id",
            with("event_id", json!("e".repeat(129))),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some((None, "event_id")),
        ),
        (
            "unknown field",
            with("usr_id", json!("u1")),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some((None, "usr_id")),
        ),
        (
            "rating on a view",
            with("rating", json!(3)),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some((None, "rating")),
        ),
        (
            "missing rating",
            json!({"type": "rating", "user_id": "u", "item_id": "i"}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some((None, "rating")),
        ),
        ("rating \"NaN\"", rating(json!("NaN")), S::UNPROCESSABLE_ENTITY, "validation_failed", Some((None, "rating"))),
        (
            "rating above range",
            rating(json!(5.01)),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some((None, "rating")),
        ),
        ("rating below range", rating(json!(-1)), S::UNPROCESSABLE_ENTITY, "validation_failed", Some((None, "rating"))),
        (
            "timestamp before 1970",
            with("timestamp", json!("1969-07-20T20:17:00Z")),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some((None, "timestamp")),
        ),
        (
            "negative epoch ms",
            with("timestamp", json!(-5)),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some((None, "timestamp")),
        ),
        (
            "timestamp far in the future",
            with("timestamp", json!(far_future)),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some((None, "timestamp")),
        ),
        (
            "timestamp not RFC 3339",
            with("timestamp", json!("26/11/2026 10:00")),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some((None, "timestamp")),
        ),
        (
            "session_id array",
            with("session_id", json!(["s"])),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some((None, "session_id")),
        ),
        ("event is an array", "[[1, 2]]".into(), S::UNPROCESSABLE_ENTITY, "validation_failed", None),
        (
            "one bad item in a batch",
            format!("[{}, {}, {}]", view(), with("item_id", json!("")), view()),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some((Some(1), "item_id")),
        ),
        (
            "batch too large",
            format!("[{}]", vec![view().to_string(); 11].join(",")),
            S::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            None,
        ),
        (
            "body over the limit",
            format!("{{\"type\": \"view\", \"pad\": \"{}\"}}", "x".repeat(5000)),
            S::PAYLOAD_TOO_LARGE,
            "body_too_large",
            None,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_bad_request_is_refused_with_its_field_and_nothing_is_produced() {
    let config = ApiConfig { body_limit_bytes: 4096, max_batch_events: 10, ..ApiConfig::default() };
    let h = Harness::with(config, std::time::Duration::from_secs(5)).await;
    let cases = corpus();
    assert!(cases.len() >= 25);
    for (what, body, status, code, field) in cases {
        let (got, json) = h.post_json(&body).await;
        assert_eq!(got, status, "{what}: {json}");
        assert_eq!(json["error"]["code"], code, "{what}: {json}");
        assert!(json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: message");
        if let Some((index, field)) = field {
            let details = json["error"]["details"].as_array().unwrap_or_else(|| panic!("{what}: details in {json}"));
            let named = details.iter().any(|d| d["field"] == field && index.is_none_or(|i| d["index"] == i));
            assert!(named, "{what}: expected field {field} (index {index:?}) in {json}");
        }
    }

    // Requests that are wrong before the body is even read.
    let wrong_type =
        Request::post("/events").header("content-type", "text/plain").body(Body::from(view().to_string())).unwrap();
    let (status, json) = h.send(wrong_type).await;
    assert_eq!(
        (status, json["error"]["code"].clone()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, json!("unsupported_media_type"))
    );
    let no_type = Request::post("/events").body(Body::from(view().to_string())).unwrap();
    assert_eq!(h.send(no_type).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let declared_huge = Request::post("/events")
        .header("content-type", "application/json")
        .header("content-length", "999999999")
        .body(Body::from(view().to_string()))
        .unwrap();
    assert_eq!(h.send(declared_huge).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, json) = h.send(Request::put("/events").body(Body::empty()).unwrap()).await;
    assert_eq!((status, json["error"]["code"].clone()), (StatusCode::METHOD_NOT_ALLOWED, json!("method_not_allowed")));

    assert_eq!(h.total_in_topics().await, 0, "a refused request must produce nothing");

    // And the same harness still accepts a good event, so the zero above is meaningful.
    let (status, _) = h.post_json(&view().to_string()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(h.total_in_topics().await, 1);
}
