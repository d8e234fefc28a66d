//! Bad input corpora shared by the API's own tests and the reliability suite: request bodies
//! the API must refuse with the right status, code and field.

use serde_json::{Value, json};

/// A valid view without an `event_id` (the API assigns one).
pub fn view() -> Value {
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
pub type Case = (&'static str, String, u16, &'static str, Option<(Option<usize>, &'static str)>);

/// Bad `POST /events` bodies for an API with `body_limit_bytes = 4096` and
/// `max_batch_events = 10` (`RECO_BODY_LIMIT_BYTES`, `RECO_MAX_BATCH_EVENTS`).
pub fn api_corpus() -> Vec<Case> {
    [not_events(), bad_ids_and_ratings(), bad_times_and_text()].concat()
}

/// Bodies that are not JSON, not events, or too large.
fn not_events() -> Vec<Case> {
    let overflow = json!({"type": "rating", "user_id": "u", "item_id": "i", "rating": null}).to_string();
    vec![
        ("malformed JSON", "{\"type\": \"view\",".into(), 400, "invalid_json", None),
        ("not JSON at all", "hello".into(), 400, "invalid_json", None),
        ("empty body", String::new(), 400, "invalid_json", None),
        (
            "bare NaN",
            "{\"type\":\"rating\",\"user_id\":\"u\",\"item_id\":\"i\",\"rating\":NaN}".into(),
            400,
            "invalid_json",
            None,
        ),
        ("number overflow", overflow.replace("null", "1e999"), 400, "invalid_json", None),
        ("JSON string body", "\"view\"".into(), 422, "validation_failed", None),
        ("JSON number body", "42".into(), 422, "validation_failed", None),
        ("empty batch", "[]".into(), 422, "validation_failed", None),
        ("event is an array", "[[1, 2]]".into(), 422, "validation_failed", None),
        (
            "one bad item in a batch",
            format!("[{}, {}, {}]", view(), with("item_id", json!("")), view()),
            422,
            "validation_failed",
            Some((Some(1), "item_id")),
        ),
        ("batch too large", format!("[{}]", vec![view().to_string(); 11].join(",")), 413, "batch_too_large", None),
        (
            "body over the limit",
            format!("{{\"type\": \"view\", \"pad\": \"{}\"}}", "x".repeat(5000)),
            413,
            "body_too_large",
            None,
        ),
    ]
}

/// Events with a missing, mistyped or out-of-range type, id or rating.
fn bad_ids_and_ratings() -> Vec<Case> {
    let rating = |r: Value| json!({"type": "rating", "user_id": "u", "item_id": "i", "rating": r}).to_string();
    vec![
        ("missing type", without("type"), 422, "validation_failed", Some((None, "type"))),
        ("unknown type", with("type", json!("purchase")), 422, "validation_failed", Some((None, "type"))),
        ("type not a string", with("type", json!(1)), 422, "validation_failed", Some((None, "type"))),
        ("missing user_id", without("user_id"), 422, "validation_failed", Some((None, "user_id"))),
        ("empty user_id", with("user_id", json!("")), 422, "validation_failed", Some((None, "user_id"))),
        (
            "overlong user_id",
            with("user_id", json!("u".repeat(257))),
            422,
            "validation_failed",
            Some((None, "user_id")),
        ),
        ("user_id object", with("user_id", json!({"id": 1})), 422, "validation_failed", Some((None, "user_id"))),
        ("missing item_id", without("item_id"), 422, "validation_failed", Some((None, "item_id"))),
        ("fractional item_id", with("item_id", json!(1.5)), 422, "validation_failed", Some((None, "item_id"))),
        ("item_id boolean", with("item_id", json!(true)), 422, "validation_failed", Some((None, "item_id"))),
        ("empty event_id", with("event_id", json!("")), 422, "validation_failed", Some((None, "event_id"))),
        (
            "overlong event_id",
            with("event_id", json!("e".repeat(129))),
            422,
            "validation_failed",
            Some((None, "event_id")),
        ),
        ("unknown field", with("usr_id", json!("u1")), 422, "validation_failed", Some((None, "usr_id"))),
        ("rating on a view", with("rating", json!(3)), 422, "validation_failed", Some((None, "rating"))),
        (
            "missing rating",
            json!({"type": "rating", "user_id": "u", "item_id": "i"}).to_string(),
            422,
            "validation_failed",
            Some((None, "rating")),
        ),
        ("rating \"NaN\"", rating(json!("NaN")), 422, "validation_failed", Some((None, "rating"))),
        ("rating above range", rating(json!(5.01)), 422, "validation_failed", Some((None, "rating"))),
        ("rating below range", rating(json!(-1)), 422, "validation_failed", Some((None, "rating"))),
    ]
}

/// Events with an impossible timestamp or text no id may hold.
fn bad_times_and_text() -> Vec<Case> {
    let far_future = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    vec![
        (
            "timestamp before 1970",
            with("timestamp", json!("1969-07-20T20:17:00Z")),
            422,
            "validation_failed",
            Some((None, "timestamp")),
        ),
        ("negative epoch ms", with("timestamp", json!(-5)), 422, "validation_failed", Some((None, "timestamp"))),
        (
            "epoch seconds sent as milliseconds",
            with("timestamp", json!(chrono::Utc::now().timestamp() - 60)),
            422,
            "validation_failed",
            Some((None, "timestamp")),
        ),
        ("user_id only whitespace", with("user_id", json!("   ")), 422, "validation_failed", Some((None, "user_id"))),
        ("item_id with a newline", with("item_id", json!("m\n1")), 422, "validation_failed", Some((None, "item_id"))),
        (
            "session_id with NUL",
            with("session_id", json!("s\u{0}")),
            422,
            "validation_failed",
            Some((None, "session_id")),
        ),
        (
            "timestamp far in the future",
            with("timestamp", json!(far_future)),
            422,
            "validation_failed",
            Some((None, "timestamp")),
        ),
        (
            "timestamp not RFC 3339",
            with("timestamp", json!("26/11/2026 10:00")),
            422,
            "validation_failed",
            Some((None, "timestamp")),
        ),
        ("session_id array", with("session_id", json!(["s"])), 422, "validation_failed", Some((None, "session_id"))),
    ]
}

/// Checks one refusal against its case: status, code, a message, and the field named in the
/// details (at the batch index when given).
pub fn check_refusal(case: &Case, status: u16, body: &Value) -> Result<(), String> {
    let (what, _, want_status, code, field) = case;
    if status != *want_status || body["error"]["code"] != *code {
        return Err(format!("{what}: {status} {body}, wanted {want_status} {code}"));
    }
    if body["error"]["message"].as_str().is_none_or(str::is_empty) {
        return Err(format!("{what}: no message in {body}"));
    }
    if let Some((index, field)) = field {
        let details = body["error"]["details"].as_array().ok_or_else(|| format!("{what}: no details in {body}"))?;
        if !details.iter().any(|d| d["field"] == *field && index.is_none_or(|i| d["index"] == i)) {
            return Err(format!("{what}: expected field {field} (index {index:?}) in {body}"));
        }
    }
    Ok(())
}
