//! Field-by-field validation of one event (CONTRACTS §3).
//!
//! Validation collects every problem of an event rather than stopping at the first, so a
//! client fixing a payload sees all its mistakes at once and a dead-letter row explains all of
//! them. The first error's kind is the record's `error_kind`.

use chrono::DateTime;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::event::{Event, EventType};

/// Why a record is rejected. A small fixed set: it is a metric label and a dead-letter column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    InvalidJson,
    MissingField,
    InvalidField,
    UnknownField,
    TimestampOutOfRange,
    Duplicate,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::InvalidJson,
        ErrorKind::MissingField,
        ErrorKind::InvalidField,
        ErrorKind::UnknownField,
        ErrorKind::TimestampOutOfRange,
        ErrorKind::Duplicate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidJson => "invalid_json",
            ErrorKind::MissingField => "missing_field",
            ErrorKind::InvalidField => "invalid_field",
            ErrorKind::UnknownField => "unknown_field",
            ErrorKind::TimestampOutOfRange => "timestamp_out_of_range",
            ErrorKind::Duplicate => "duplicate",
        }
    }
}

/// One problem with one field of one event.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Position in a batch; `None` for a single event or a record read from Kafka.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// The offending field; `None` when the whole item is wrong (not JSON, not an object).
    pub field: Option<String>,
    pub kind: ErrorKind,
    pub message: String,
}

impl FieldError {
    fn new(field: &str, kind: ErrorKind, message: impl Into<String>) -> Self {
        FieldError { index: None, field: Some(field.to_owned()), kind, message: message.into() }
    }

    fn item(kind: ErrorKind, message: impl Into<String>) -> Self {
        FieldError { index: None, field: None, kind, message: message.into() }
    }

    pub fn at(mut self, index: usize) -> Self {
        self.index = Some(index);
        self
    }
}

/// The configurable limits of CONTRACTS §3.
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    /// Longest `user_id`, `item_id` and `session_id`, in bytes.
    pub max_id_bytes: usize,
    /// Longest `event_id`, in bytes.
    pub max_event_id_bytes: usize,
    /// How far in the future an event time may be (client clock skew), in microseconds.
    pub max_future_us: i64,
    /// The earliest event time accepted, in microseconds since the epoch. Old enough for any
    /// historic dataset (MovieLens starts in 1995), late enough that epoch seconds sent where
    /// milliseconds belong (a January 1970 time) are refused instead of silently dropped later.
    pub min_event_time_us: i64,
    pub rating_min: f64,
    pub rating_max: f64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            max_id_bytes: 256,
            max_event_id_bytes: 128,
            // Fifteen minutes: generous for phone clocks, small enough to catch ms/µs mix-ups.
            max_future_us: 15 * 60 * 1_000_000,
            // 1980-01-01T00:00:00Z.
            min_event_time_us: 315_532_800_000_000,
            rating_min: 0.0,
            rating_max: 5.0,
        }
    }
}

/// Where the event comes from, which decides how missing optional fields are treated.
#[allow(missing_debug_implementations)]
pub enum Mode<'a> {
    /// An API request: a missing `timestamp` becomes the receive time and a missing
    /// `event_id` is assigned by the given generator (the API uses UUIDv7).
    Ingest { assign_id: &'a mut dyn FnMut() -> String },
    /// A record read from a topic. Nothing is assigned: a record must carry its `event_id`
    /// (the de-duplication key) and `timestamp`, because a default chosen at read time would
    /// differ on every re-read. `topic_type` is the kind implied by the topic; a missing
    /// `type` takes it and a different `type` is an error.
    Stored { topic_type: Option<EventType> },
}

const FIELDS: [&str; 7] = ["type", "event_id", "user_id", "item_id", "timestamp", "session_id", "rating"];

/// Parses bytes as JSON, mapping a syntax error to an `invalid_json` error.
pub fn decode_json(bytes: &[u8]) -> Result<Value, FieldError> {
    serde_json::from_slice(bytes)
        .map_err(|e| FieldError::item(ErrorKind::InvalidJson, format!("body is not valid JSON: {e}")))
}

/// Validates one event. `now_us` is the current time (injected: this crate reads no clock).
pub fn validate_event(value: &Value, rules: &Rules, now_us: i64, mode: Mode<'_>) -> Result<Event, Vec<FieldError>> {
    let Value::Object(obj) = value else {
        return Err(vec![FieldError::item(
            ErrorKind::InvalidField,
            format!("an event must be a JSON object, got {}", json_type(value)),
        )]);
    };
    let mut errors = Vec::new();

    for key in obj.keys() {
        if !FIELDS.contains(&key.as_str()) {
            errors.push(FieldError::new(
                key,
                ErrorKind::UnknownField,
                format!("unknown field `{key}`; expected one of {}", FIELDS.join(", ")),
            ));
        }
    }

    let topic_type = match &mode {
        Mode::Stored { topic_type } => *topic_type,
        Mode::Ingest { .. } => None,
    };
    let event_type = event_type(obj, topic_type, &mut errors);
    let user_id = id_field(obj, "user_id", rules.max_id_bytes, true, &mut errors);
    let item_id = id_field(obj, "item_id", rules.max_id_bytes, true, &mut errors);
    let session_id = id_field(obj, "session_id", rules.max_id_bytes, false, &mut errors);
    let rating = rating(obj, event_type, rules, &mut errors);
    let ingest = matches!(mode, Mode::Ingest { .. });
    let event_time_us = timestamp(obj, rules, now_us, ingest, &mut errors);
    let event_id = match obj.get("event_id") {
        Some(Value::String(s)) if s.len() > rules.max_event_id_bytes => {
            errors.push(too_long("event_id", s.len(), rules.max_event_id_bytes));
            None
        }
        Some(Value::String(s)) => match id_problem(s) {
            Some(problem) => {
                errors.push(FieldError::new("event_id", ErrorKind::InvalidField, problem));
                None
            }
            None => Some(s.clone()),
        },
        Some(Value::Null) | None => match mode {
            Mode::Ingest { assign_id } => Some(assign_id()),
            Mode::Stored { .. } => {
                errors.push(FieldError::new(
                    "event_id",
                    ErrorKind::MissingField,
                    "is required on the topic (the API assigns one; direct producers must set it)",
                ));
                None
            }
        },
        Some(other) => {
            errors.push(FieldError::new(
                "event_id",
                ErrorKind::InvalidField,
                format!("must be a string, got {}", json_type(other)),
            ));
            None
        }
    };

    match (event_type, event_id, user_id, item_id, event_time_us) {
        (Some(event_type), Some(event_id), Some(user_id), Some(item_id), Some(event_time_us)) if errors.is_empty() => {
            Ok(Event { event_type, event_id, user_id, item_id, event_time_us, session_id, rating })
        }
        _ => Err(errors),
    }
}

fn event_type(
    obj: &Map<String, Value>,
    topic_type: Option<EventType>,
    errors: &mut Vec<FieldError>,
) -> Option<EventType> {
    match (obj.get("type"), topic_type) {
        (Some(Value::String(s)), expected) => match EventType::parse(s) {
            Some(t) if expected.is_none_or(|e| e == t) => Some(t),
            Some(t) => {
                let e = expected.map(EventType::topic).unwrap_or_default();
                errors.push(FieldError::new(
                    "type",
                    ErrorKind::InvalidField,
                    format!("a `{t}` event does not belong on topic {e}"),
                ));
                None
            }
            None => {
                errors.push(FieldError::new(
                    "type",
                    ErrorKind::InvalidField,
                    format!("unknown type {s:?}; expected view, click or rating"),
                ));
                None
            }
        },
        (None | Some(Value::Null), Some(expected)) => Some(expected),
        (None | Some(Value::Null), None) => {
            errors.push(FieldError::new("type", ErrorKind::MissingField, "is required"));
            None
        }
        (Some(other), _) => {
            errors.push(FieldError::new(
                "type",
                ErrorKind::InvalidField,
                format!("must be a string, got {}", json_type(other)),
            ));
            None
        }
    }
}

/// What is wrong with an id string, if anything: empty or only whitespace (no two users could
/// be told apart by it), or a control character (a newline or NUL in an id breaks every log
/// line, CSV export and terminal that shows it).
fn id_problem(s: &str) -> Option<String> {
    if s.trim().is_empty() {
        return Some(if s.is_empty() { "must not be empty".into() } else { "must not be only whitespace".into() });
    }
    let (at, c) = s.char_indices().find(|(_, c)| c.is_control())?;
    Some(format!("must not contain control characters (U+{:04X} at byte {at})", c as u32))
}

/// `user_id`, `item_id`, `session_id`: a non-empty string, or a JSON integer kept as its
/// decimal string (public datasets such as MovieLens use integer ids).
fn id_field(
    obj: &Map<String, Value>,
    name: &str,
    max: usize,
    required: bool,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match obj.get(name) {
        Some(Value::String(s)) if s.len() > max => {
            errors.push(too_long(name, s.len(), max));
            None
        }
        Some(Value::String(s)) => match id_problem(s) {
            Some(problem) => {
                errors.push(FieldError::new(name, ErrorKind::InvalidField, problem));
                None
            }
            None => Some(s.clone()),
        },
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        Some(Value::Null) | None if !required => None,
        Some(Value::Null) | None => {
            errors.push(FieldError::new(name, ErrorKind::MissingField, "is required"));
            None
        }
        Some(other) => {
            errors.push(FieldError::new(
                name,
                ErrorKind::InvalidField,
                format!("must be a string or an integer, got {}", json_type(other)),
            ));
            None
        }
    }
}

fn rating(
    obj: &Map<String, Value>,
    event_type: Option<EventType>,
    rules: &Rules,
    errors: &mut Vec<FieldError>,
) -> Option<f64> {
    let value = obj.get("rating").filter(|v| !v.is_null());
    match (event_type, value) {
        (Some(EventType::Rating), None) => {
            errors.push(FieldError::new("rating", ErrorKind::MissingField, "is required for a rating event"));
            None
        }
        (Some(t @ (EventType::View | EventType::Click)), Some(_)) => {
            errors.push(FieldError::new(
                "rating",
                ErrorKind::InvalidField,
                format!("is only allowed on rating events, not on a {t}"),
            ));
            None
        }
        (_, Some(Value::Number(n))) => match n.as_f64() {
            Some(r) if r.is_finite() && r >= rules.rating_min && r <= rules.rating_max => Some(r),
            _ => {
                errors.push(FieldError::new(
                    "rating",
                    ErrorKind::InvalidField,
                    format!("{n} is outside [{}, {}]", rules.rating_min, rules.rating_max),
                ));
                None
            }
        },
        (_, Some(other)) => {
            errors.push(FieldError::new(
                "rating",
                ErrorKind::InvalidField,
                format!("must be a number, got {}", json_type(other)),
            ));
            None
        }
        (_, None) => None,
    }
}

/// `us` as an RFC 3339 UTC time, for messages.
fn format_us(us: i64) -> String {
    DateTime::from_timestamp_micros(us)
        .map_or_else(|| format!("{us} µs"), |t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

fn timestamp(
    obj: &Map<String, Value>,
    rules: &Rules,
    now_us: i64,
    ingest: bool,
    errors: &mut Vec<FieldError>,
) -> Option<i64> {
    const FIELD: &str = "timestamp";
    let parsed = match obj.get(FIELD) {
        None | Some(Value::Null) if ingest => return Some(now_us),
        None | Some(Value::Null) => {
            errors.push(FieldError::new(FIELD, ErrorKind::MissingField, "is required on the topic"));
            return None;
        }
        Some(Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => Ok(t.timestamp_micros()),
            Err(e) => Err(format!("{s:?} is not an RFC 3339 timestamp: {e}")),
        },
        Some(Value::Number(n)) => match (n.as_i64(), n.as_u64()) {
            (Some(ms), _) => Ok(ms.saturating_mul(1000)),
            (None, Some(_)) => Ok(i64::MAX),
            (None, None) => Err(format!("{n} is not an integer number of epoch milliseconds")),
        },
        Some(other) => {
            Err(format!("must be an RFC 3339 string or integer epoch milliseconds, got {}", json_type(other)))
        }
    };
    match parsed {
        Err(message) => {
            errors.push(FieldError::new(FIELD, ErrorKind::InvalidField, message));
            None
        }
        Ok(us) if us < rules.min_event_time_us => {
            let earliest = format_us(rules.min_event_time_us);
            let mut message = format!("{} is before {earliest}, the earliest event time accepted", format_us(us));
            // Epoch seconds where milliseconds belong land in January 1970; say so.
            if let Some(Value::Number(n)) = obj.get(FIELD)
                && let Some(seconds) = n.as_i64()
                && (rules.min_event_time_us..=now_us.saturating_add(rules.max_future_us))
                    .contains(&seconds.saturating_mul(1_000_000))
            {
                message.push_str(&format!(
                    "; {seconds} looks like seconds since the epoch: send milliseconds ({}) or an RFC 3339 string",
                    seconds.saturating_mul(1000)
                ));
            }
            errors.push(FieldError::new(FIELD, ErrorKind::TimestampOutOfRange, message));
            None
        }
        Ok(us) if us > now_us.saturating_add(rules.max_future_us) => {
            errors.push(FieldError::new(
                FIELD,
                ErrorKind::TimestampOutOfRange,
                format!(
                    "is {} s in the future; at most {} s is tolerated",
                    (us - now_us) / 1_000_000,
                    rules.max_future_us / 1_000_000
                ),
            ));
            None
        }
        Ok(us) => Some(us),
    }
}

fn too_long(field: &str, len: usize, max: usize) -> FieldError {
    FieldError::new(field, ErrorKind::InvalidField, format!("is {len} bytes; at most {max} allowed"))
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a fractional number",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
