//! `POST /events`: validate, produce, answer only after the broker acknowledged.
//!
//! Batch semantics: **validation is all-or-nothing** (one invalid event and nothing is
//! produced; the answer lists every problem by item index and field). **Delivery is reported
//! per item**: Kafka cannot make one write across partitions atomic without transactions, so
//! when some events are not acknowledged in time the answer is 503 with each item's status
//! and id. Retrying the same batch with those ids is safe: silver de-duplicates by
//! `event_id`. Clients that need exactly-once across retries should send their own ids.

use std::time::Instant;

use axum::{
    Json,
    body::{Body, to_bytes},
    extract::State,
    http::{HeaderMap, StatusCode, header},
};
use reco_core::{Event, FieldError, Mode, decode_json, validate_event};
use reco_kafka::Outgoing;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::{ApiError, AppState};

/// 202 answer: the ids of the accepted events, in request order.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub accepted: usize,
    pub event_ids: Vec<String>,
}

/// One event as a client sends it. Documentation only (as is [`EventsBody`]): the handler
/// validates the raw JSON so it can name every offending field.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct EventInput {
    /// `view`, `click` or `rating`; selects the topic.
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "view")]
    event_type: String,
    /// At most 128 bytes; assigned (UUIDv7) when missing. The de-duplication key.
    event_id: Option<String>,
    /// Non-empty, at most 256 bytes; a JSON integer is kept as its decimal string.
    #[schema(value_type = String, example = "u42")]
    user_id: String,
    /// Non-empty, at most 256 bytes; a JSON integer is kept as its decimal string.
    #[schema(value_type = String, example = "m1029")]
    item_id: String,
    /// RFC 3339 string or integer epoch milliseconds; the event time. Defaults to receipt time.
    #[schema(value_type = Option<String>, example = "2026-11-26T10:00:00.123Z")]
    timestamp: Option<String>,
    session_id: Option<String>,
    /// Required for `rating`, forbidden otherwise; within the configured range (default 0–5).
    rating: Option<f64>,
}

/// The body of `POST /events`: one event, or an array of them (a batch, accepted or refused
/// whole).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum EventsBody {
    One(EventInput),
    Batch(Vec<EventInput>),
}

#[utoipa::path(
    post,
    path = "/events",
    tag = "events",
    request_body(content = EventsBody, description = "One event object, or an array of them (a batch)"),
    responses(
        (status = 202, description = "Every event acknowledged by the broker", body = Accepted),
        (status = 400, description = "Body is not JSON", body = crate::error::ErrorBody),
        (status = 401, description = "Tokens are configured and the request has no known bearer token; nothing was produced", body = crate::error::ErrorBody),
        (status = 413, description = "Body or batch too large", body = crate::error::ErrorBody),
        (status = 415, description = "Content-Type is not application/json (or text/plain, when beacons are enabled)", body = crate::error::ErrorBody),
        (status = 422, description = "Validation failed; nothing was produced", body = crate::error::ErrorBody),
        (status = 429, description = "Over this caller's request rate; see Retry-After; nothing was produced", body = crate::error::ErrorBody),
        (status = 503, description = "Broker did not acknowledge in time; per-item status", body = crate::error::ErrorBody),
    ),
    // A bearer token when the server has a token file; none otherwise.
    security(("bearer" = []), ())
)]
pub(crate) async fn post_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let config = &state.config;
    // Every refusal is counted: item errors by their kind, whole-body refusals by these.
    let refuse = |reason: &'static str, error: ApiError| {
        state.telemetry.ingest.rejected(reason);
        error
    };
    check_content_type(&headers, config.text_plain).map_err(|e| refuse("unsupported_media_type", e))?;
    let too_large = || {
        state.telemetry.ingest.rejected("body_too_large");
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request body exceeds {} bytes", config.body_limit_bytes),
        )
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > config.body_limit_bytes) {
        return Err(too_large());
    }
    let bytes = to_bytes(body, config.body_limit_bytes).await.map_err(|_| too_large())?;

    let value = decode_json(&bytes).map_err(|e| {
        state.telemetry.ingest.rejected(e.kind.as_str());
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.message.clone()).details(vec![e])
    })?;
    let (items, batch) = match value {
        Value::Array(items) => (items, true),
        obj @ Value::Object(_) => (vec![obj], false),
        other => {
            let message = format!("body must be an event object or an array of events, got {}", type_name(&other));
            let error = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", message);
            return Err(refuse("not_an_event", error));
        }
    };
    if items.is_empty() {
        let error = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "empty batch");
        return Err(refuse("empty_batch", error));
    }
    if items.len() > config.max_batch_events {
        let error = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!("batch has {} events; at most {} are accepted", items.len(), config.max_batch_events),
        );
        return Err(refuse("batch_too_large", error));
    }

    let events = validate_all(&state, &items, batch)?;
    deliver(&state, &events).await
}

/// JSON bodies, and with `text_plain` (beacons) `text/plain` bodies, which are parsed as JSON.
fn check_content_type(headers: &HeaderMap, text_plain: bool) -> Result<(), ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") || (text_plain && essence == "text/plain") {
        return Ok(());
    }
    let expected = if text_plain { "application/json or text/plain" } else { "application/json" };
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("Content-Type must be {expected}, got {content_type:?}"),
    ))
}

fn validate_all(state: &AppState, items: &[Value], batch: bool) -> Result<Vec<Event>, ApiError> {
    let now_us = chrono::Utc::now().timestamp_micros();
    let mut assign_id = || uuid::Uuid::now_v7().to_string();
    let mut events = Vec::with_capacity(items.len());
    let mut errors: Vec<FieldError> = Vec::new();
    let mut invalid = 0;
    for (index, item) in items.iter().enumerate() {
        match validate_event(item, &state.config.rules, now_us, Mode::Ingest { assign_id: &mut assign_id }) {
            Ok(event) => events.push(event),
            Err(item_errors) => {
                invalid += 1;
                if let Some(first) = item_errors.first() {
                    state.telemetry.ingest.rejected(first.kind.as_str());
                }
                errors.extend(item_errors.into_iter().map(|e| if batch { e.at(index) } else { e }));
            }
        }
    }
    if errors.is_empty() {
        return Ok(events);
    }
    let message = if batch {
        format!("{invalid} of {} events are invalid; nothing was accepted", items.len())
    } else {
        "the event is invalid".to_owned()
    };
    Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", message).details(errors))
}

async fn deliver(state: &AppState, events: &[Event]) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let payloads: Vec<Vec<u8>> = events.iter().map(Event::to_json).collect();
    let records: Vec<Outgoing> = events
        .iter()
        .zip(&payloads)
        .map(|(e, p)| Outgoing { topic: e.event_type.topic(), key: e.user_id.as_bytes(), payload: p })
        .collect();
    let started = Instant::now();
    let results = state.producer.send_all(&records).await;
    state.telemetry.ingest.ack_duration(started.elapsed().as_secs_f64());

    let ingest = &state.telemetry.ingest;
    for (event, result) in events.iter().zip(&results) {
        match result {
            Ok(_) => ingest.accepted(event.event_type.topic(), 1),
            Err(_) => ingest.unacknowledged(event.event_type.topic(), 1),
        }
    }
    let event_ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
    let failed = results.iter().filter(|r| r.is_err()).count();
    if failed == 0 {
        return Ok((StatusCode::ACCEPTED, Json(Accepted { accepted: events.len(), event_ids })));
    }
    let first_error = results.iter().find_map(|r| r.as_ref().err()).map(ToString::to_string).unwrap_or_default();
    tracing::warn!(failed, total = events.len(), error = %first_error, "broker did not acknowledge events");
    let items: Vec<Value> = events
        .iter()
        .zip(&results)
        .enumerate()
        .map(|(index, (e, r))| {
            json!({
                "index": index,
                "event_id": e.event_id,
                "status": if r.is_ok() { "acknowledged" } else { "not_acknowledged" },
            })
        })
        .collect();
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "broker_unavailable",
        format!(
            "{failed} of {} events were not acknowledged by the broker ({first_error}); retry with the same event_ids",
            events.len()
        ),
    )
    .items(Value::Array(items))
    .retry_after(1))
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
