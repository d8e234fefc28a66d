//! The validated event and its canonical JSON form (the Kafka message value).

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// The kind of interaction; it selects the topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    View,
    Click,
    Rating,
}

impl EventType {
    pub const ALL: [EventType; 3] = [EventType::View, EventType::Click, EventType::Rating];

    /// The name used in the JSON `type` field.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::View => "view",
            EventType::Click => "click",
            EventType::Rating => "rating",
        }
    }

    /// The default Kafka topic for this kind (CONTRACTS §2).
    pub fn topic(self) -> &'static str {
        match self {
            EventType::View => "events_views",
            EventType::Click => "events_clicks",
            EventType::Rating => "events_ratings",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The kind whose default topic is `topic`, for records read back from Kafka.
    pub fn from_topic(topic: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.topic() == topic)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A valid event: every field checked, ids normalised to strings, time in UTC microseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub event_type: EventType,
    pub event_id: String,
    pub user_id: String,
    pub item_id: String,
    /// Event time, microseconds since the Unix epoch (UTC). Never negative.
    pub event_time_us: i64,
    pub session_id: Option<String>,
    /// Present exactly when `event_type` is `Rating`.
    pub rating: Option<f64>,
}

/// The canonical wire form. Field order is fixed so the bytes are stable for a given event.
#[derive(Serialize)]
struct Wire<'a> {
    #[serde(rename = "type")]
    event_type: EventType,
    event_id: &'a str,
    user_id: &'a str,
    item_id: &'a str,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rating: Option<f64>,
}

impl Event {
    /// The canonical JSON the API writes to Kafka: every id assigned, timestamp as RFC 3339
    /// with microseconds, so the silver job needs no defaults and re-validates it unchanged.
    pub fn to_json(&self) -> Vec<u8> {
        let wire = Wire {
            event_type: self.event_type,
            event_id: &self.event_id,
            user_id: &self.user_id,
            item_id: &self.item_id,
            timestamp: format_timestamp_us(self.event_time_us),
            session_id: self.session_id.as_deref(),
            rating: self.rating,
        };
        // Serialising a struct of strings and finite floats cannot fail.
        serde_json::to_vec(&wire).unwrap_or_default()
    }
}

/// RFC 3339 in UTC with microsecond precision, e.g. `2019-03-01T10:00:00.000000Z`.
pub fn format_timestamp_us(us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true))
        .unwrap_or_default()
}
