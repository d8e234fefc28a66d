use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

const NOW: i64 = 1_764_150_000_000_000; // 2025-11-26T09:40:00Z in µs

fn stored(value: &Value) -> Result<Event, Vec<FieldError>> {
    validate_event(value, &Rules::default(), NOW, Mode::Stored { topic_type: None })
}

fn ingest(value: &Value) -> Result<Event, Vec<FieldError>> {
    let mut n = 0;
    let mut ids = || {
        n += 1;
        format!("assigned-{n}")
    };
    validate_event(value, &Rules::default(), NOW, Mode::Ingest { assign_id: &mut ids })
}

/// The single error of a rejected event, as (field, kind).
fn only_error(result: Result<Event, Vec<FieldError>>) -> (Option<String>, ErrorKind) {
    let errors = result.expect_err("event should be rejected");
    assert_eq!(errors.len(), 1, "expected one error, got {errors:?}");
    (errors[0].field.clone(), errors[0].kind)
}

fn view() -> Value {
    json!({"type": "view", "event_id": "e1", "user_id": "u1", "item_id": "i1",
           "timestamp": "2019-03-01T10:00:00.123Z"})
}

fn with(mut base: Value, key: &str, v: Value) -> Value {
    base[key] = v;
    base
}

fn without(mut base: Value, key: &str) -> Value {
    base.as_object_mut().map(|o| o.remove(key));
    base
}

#[test]
fn valid_view_is_normalised() {
    let e = stored(&view()).unwrap();
    assert_eq!(e.event_type, EventType::View);
    assert_eq!(e.event_time_us, 1_551_434_400_123_000);
    assert_eq!(e.session_id, None);
    assert_eq!(e.rating, None);
}

#[test]
fn integer_ids_become_decimal_strings() {
    let e = stored(&with(with(view(), "user_id", json!(42)), "item_id", json!(-7))).unwrap();
    assert_eq!((e.user_id.as_str(), e.item_id.as_str()), ("42", "-7"));
}

#[test]
fn epoch_millis_timestamp() {
    let e = stored(&with(view(), "timestamp", json!(1_551_434_400_123_i64))).unwrap();
    assert_eq!(e.event_time_us, 1_551_434_400_123_000);
}

#[test]
fn ingest_assigns_missing_id_and_time() {
    let e = ingest(&without(without(view(), "event_id"), "timestamp")).unwrap();
    assert_eq!(e.event_id, "assigned-1");
    assert_eq!(e.event_time_us, NOW);
}

#[test]
fn stored_requires_id_and_time() {
    assert_eq!(only_error(stored(&without(view(), "event_id"))), (Some("event_id".into()), ErrorKind::MissingField));
    assert_eq!(only_error(stored(&without(view(), "timestamp"))), (Some("timestamp".into()), ErrorKind::MissingField));
}

#[test]
fn topic_decides_missing_type_and_rejects_a_different_one() {
    let topic_type = Some(EventType::Click);
    let ok = validate_event(&without(view(), "type"), &Rules::default(), NOW, Mode::Stored { topic_type });
    assert_eq!(ok.unwrap().event_type, EventType::Click);
    let wrong = validate_event(&view(), &Rules::default(), NOW, Mode::Stored { topic_type });
    assert_eq!(only_error(wrong), (Some("type".into()), ErrorKind::InvalidField));
}

#[test]
fn rating_rules() {
    let rating = with(view(), "type", json!("rating"));
    assert_eq!(stored(&with(rating.clone(), "rating", json!(4.5))).unwrap().rating, Some(4.5));
    assert_eq!(only_error(stored(&rating)), (Some("rating".into()), ErrorKind::MissingField));
    assert_eq!(only_error(stored(&with(rating.clone(), "rating", json!(5.5)))).1, ErrorKind::InvalidField);
    assert_eq!(only_error(stored(&with(rating.clone(), "rating", json!(-0.1)))).1, ErrorKind::InvalidField);
    assert_eq!(only_error(stored(&with(rating, "rating", json!("NaN")))).1, ErrorKind::InvalidField);
    assert_eq!(only_error(stored(&with(view(), "rating", json!(3)))), (Some("rating".into()), ErrorKind::InvalidField));
}

#[test]
fn rejected_fields_are_named() {
    let cases = [
        (with(view(), "user_id", json!("")), "user_id", ErrorKind::InvalidField),
        (with(view(), "user_id", json!("x".repeat(257))), "user_id", ErrorKind::InvalidField),
        (with(view(), "item_id", json!(1.5)), "item_id", ErrorKind::InvalidField),
        (with(view(), "item_id", json!(null)), "item_id", ErrorKind::MissingField),
        (with(view(), "event_id", json!("e".repeat(129))), "event_id", ErrorKind::InvalidField),
        (with(view(), "event_id", json!(7)), "event_id", ErrorKind::InvalidField),
        (with(view(), "type", json!("purchase")), "type", ErrorKind::InvalidField),
        (with(view(), "usr_id", json!("u")), "usr_id", ErrorKind::UnknownField),
        (with(view(), "timestamp", json!("yesterday")), "timestamp", ErrorKind::InvalidField),
        (with(view(), "timestamp", json!(1.5)), "timestamp", ErrorKind::InvalidField),
        (with(view(), "timestamp", json!("1969-12-31T23:59:59Z")), "timestamp", ErrorKind::TimestampOutOfRange),
        (with(view(), "timestamp", json!(-1)), "timestamp", ErrorKind::TimestampOutOfRange),
        (with(view(), "timestamp", json!(u64::MAX)), "timestamp", ErrorKind::TimestampOutOfRange),
        (with(view(), "timestamp", json!(NOW / 1000 + 16 * 60 * 1000)), "timestamp", ErrorKind::TimestampOutOfRange),
        (with(view(), "session_id", json!([])), "session_id", ErrorKind::InvalidField),
    ];
    for (value, field, kind) in cases {
        assert_eq!(only_error(stored(&value)), (Some(field.to_owned()), kind), "{value}");
    }
}

#[test]
fn every_problem_is_reported() {
    let errors = stored(&json!({"type": "rating", "user_id": "", "extra": 1})).unwrap_err();
    let fields: Vec<_> = errors.iter().filter_map(|e| e.field.as_deref()).collect();
    for f in ["extra", "user_id", "item_id", "rating", "timestamp", "event_id"] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
}

#[test]
fn non_objects_and_bad_json() {
    assert_eq!(only_error(stored(&json!([1]))), (None, ErrorKind::InvalidField));
    assert_eq!(decode_json(b"{\"type\": NaN}").unwrap_err().kind, ErrorKind::InvalidJson);
    assert_eq!(decode_json(b"{\"rating\": 1e999}").unwrap_err().kind, ErrorKind::InvalidJson);
}

#[test]
fn wire_form_round_trips() {
    let e = stored(&with(with(view(), "session_id", json!("s9")), "user_id", json!(5))).unwrap();
    let again = stored(&decode_json(&e.to_json()).unwrap()).unwrap();
    assert_eq!(again, e);
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        ".{0,300}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("type".to_owned()),
                        Just("user_id".to_owned()),
                        Just("timestamp".to_owned()),
                        Just("rating".to_owned()),
                        "[a-z_]{1,10}"
                    ],
                    inner
                ),
                0..8
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn arb_event() -> impl Strategy<Value = Event> {
    // Ids start with a visible character (blank ids are refused), then anything printable.
    let id = prop_oneof!["[^\\s\\p{C}]\\PC{0,63}", any::<u32>().prop_map(|n| n.to_string())];
    (
        prop::sample::select(EventType::ALL.to_vec()),
        "[!-~][ -~]{0,127}",
        id.clone(),
        id,
        Rules::default().min_event_time_us..=NOW,
        prop::option::of("[a-z0-9]{1,20}"),
        0.0..=5.0f64,
    )
        .prop_map(|(event_type, event_id, user_id, item_id, event_time_us, session_id, r)| Event {
            event_type,
            event_id,
            user_id,
            item_id,
            event_time_us,
            session_id,
            rating: (event_type == EventType::Rating).then_some(r),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_json_never_panics(value in arb_json()) {
        let _ = stored(&value);
        let _ = ingest(&value);
        let _ = decode_json(value.to_string().as_bytes());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(v) = decode_json(&bytes) {
            let _ = stored(&v);
        }
    }

    #[test]
    fn valid_events_round_trip(event in arb_event()) {
        let decoded = decode_json(&event.to_json()).unwrap();
        let again = stored(&decoded).unwrap();
        prop_assert_eq!(again, event);
    }
}

#[test]
fn epoch_seconds_sent_as_milliseconds_are_refused_with_the_reason() {
    let seconds = 1_764_000_000_i64; // 2025-11-24T16:00:00Z in seconds, before the tests' NOW
    let (field, kind) = only_error(stored(&with(view(), "timestamp", json!(seconds))));
    assert_eq!((field.as_deref(), kind), (Some("timestamp"), ErrorKind::TimestampOutOfRange));
    let errors = stored(&with(view(), "timestamp", json!(seconds))).unwrap_err();
    let message = &errors[0].message;
    assert!(message.contains("1970-01-21") && message.contains("before 1980-01-01"), "{message}");
    assert!(message.contains("looks like seconds") && message.contains("1764000000000"), "{message}");
    // The same instant in milliseconds, and old data from 1997, are fine.
    assert!(stored(&with(view(), "timestamp", json!(seconds * 1000))).is_ok());
    assert!(stored(&with(view(), "timestamp", json!("1997-09-20T03:00:00Z"))).is_ok());
    // Before the bound but not a seconds mix-up: no hint.
    let errors = stored(&with(view(), "timestamp", json!("1975-01-01T00:00:00Z"))).unwrap_err();
    assert!(!errors[0].message.contains("seconds"), "{}", errors[0].message);
}

#[test]
fn ids_that_are_blank_or_hold_control_characters_are_refused() {
    for field in ["user_id", "item_id", "session_id", "event_id"] {
        for (bad, why) in [("", "empty"), ("   ", "whitespace"), ("u\n1", "U+000A at byte 1"), ("\u{0}x", "U+0000")] {
            let errors = stored(&with(view(), field, json!(bad))).unwrap_err();
            assert!(
                errors.iter().any(|e| e.field.as_deref() == Some(field) && e.message.contains(why)),
                "{field} = {bad:?}: {errors:?}"
            );
        }
        // Spaces inside an id, and non-ASCII letters, are fine.
        assert!(stored(&with(view(), field, json!("Zoë Müller 7"))).is_ok(), "{field}");
    }
}
