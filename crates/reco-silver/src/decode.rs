//! One Kafka record → a silver row or a dead-letter row. Pure: the same validation as the API.

use reco_core::{ErrorKind, EventType, FieldError, Mode, Rules, decode_json, validate_event};
use reco_lake::{DeadLetterRow, SilverRow};

/// The coordinates and bytes of one record.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_us: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Valid(SilverRow),
    Invalid { kind: ErrorKind, message: String },
}

/// Validates a record's payload. How far in the future an event may be is judged against the
/// record's Kafka timestamp (when the producer sent it, or the broker appended it), not the
/// time of reading, so a re-read after a crash decides exactly as the first read did (CONTRACTS
/// §4); only a record without a timestamp falls back to `now_us`, which also stamps
/// `ingested_at`.
pub fn decode(record: &RawRecord<'_>, rules: &Rules, now_us: i64) -> Decoded {
    let judged_at = record.timestamp_us.unwrap_or(now_us);
    let Some(payload) = record.payload else {
        return Decoded::Invalid { kind: ErrorKind::InvalidJson, message: "record has no value".into() };
    };
    let value = match decode_json(payload) {
        Ok(v) => v,
        Err(e) => return Decoded::Invalid { kind: e.kind, message: e.message },
    };
    let topic_type = EventType::from_topic(record.topic);
    match validate_event(&value, rules, judged_at, Mode::Stored { topic_type }) {
        Ok(e) => Decoded::Valid(SilverRow {
            event_id: e.event_id,
            user_id: e.user_id,
            item_id: e.item_id,
            event_time_us: e.event_time_us,
            session_id: e.session_id,
            rating: e.rating,
            kafka_partition: record.partition,
            kafka_offset: record.offset,
            ingested_at_us: now_us,
        }),
        Err(errors) => Decoded::Invalid {
            kind: errors.first().map_or(ErrorKind::InvalidField, |e| e.kind),
            message: describe(&errors),
        },
    }
}

/// "field: message; field: message" — every problem, readable in one cell.
fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| match &e.field {
            Some(f) => format!("{f}: {}", e.message),
            None => e.message.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The dead-letter row of a record.
pub fn deadletter_row(record: &RawRecord<'_>, kind: ErrorKind, message: String, now_us: i64) -> DeadLetterRow {
    DeadLetterRow {
        kafka_topic: record.topic.to_owned(),
        kafka_partition: record.partition,
        kafka_offset: record.offset,
        kafka_timestamp_us: record.timestamp_us,
        key: record.key.map(<[u8]>::to_vec),
        payload: record.payload.map(<[u8]>::to_vec),
        error_kind: kind.as_str().to_owned(),
        error_message: message,
        dead_lettered_at_us: now_us,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(payload: &[u8]) -> RawRecord<'_> {
        RawRecord {
            topic: "events_views",
            partition: 1,
            offset: 7,
            timestamp_us: None,
            key: None,
            payload: Some(payload),
        }
    }

    #[test]
    fn valid_and_invalid() {
        let now = 1_800_000_000_000_000;
        let ok = br#"{"event_id":"e","user_id":"u","item_id":"i","timestamp":"2019-01-01T00:00:00Z"}"#;
        assert!(matches!(decode(&record(ok), &Rules::default(), now), Decoded::Valid(r) if r.kafka_offset == 7));
        let click = br#"{"type":"click","event_id":"e","user_id":"u","item_id":"i","timestamp":0}"#;
        assert!(matches!(
            decode(&record(click), &Rules::default(), now),
            Decoded::Invalid { kind: ErrorKind::InvalidField, .. }
        ));
        assert!(matches!(
            decode(&record(b"\xff"), &Rules::default(), now),
            Decoded::Invalid { kind: ErrorKind::InvalidJson, .. }
        ));
        let no_value = RawRecord { payload: None, ..record(b"") };
        assert!(matches!(
            decode(&no_value, &Rules::default(), now),
            Decoded::Invalid { kind: ErrorKind::InvalidJson, .. }
        ));
    }

    /// A record's verdict depends only on the record: "too far in the future" is judged against
    /// its Kafka timestamp, so reading it again an hour later (after a crash between the
    /// dead-letter and silver commits) decides the same way.
    #[test]
    fn the_verdict_does_not_depend_on_when_the_record_is_read() {
        let sent = 1_800_000_000_000_000_i64;
        let minute = 60_000_000;
        let at = |t: i64| format!(r#"{{"event_id":"e","user_id":"u","item_id":"i","timestamp":{}}}"#, t / 1000);
        let (ahead, near) = (at(sent + 20 * minute), at(sent + 5 * minute));
        for (payload, valid) in [(ahead.as_bytes(), false), (near.as_bytes(), true)] {
            let r = RawRecord { timestamp_us: Some(sent), ..record(payload) };
            for read_at in [sent, sent + 60 * minute, sent + 24 * 60 * minute] {
                let verdict = decode(&r, &Rules::default(), read_at);
                assert_eq!(matches!(verdict, Decoded::Valid(_)), valid, "read at +{} min", (read_at - sent) / minute);
            }
        }
    }
}
