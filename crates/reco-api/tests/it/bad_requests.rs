//! A corpus of bad requests: each gets the right 4xx naming the field, and nothing at all
//! reaches Kafka.

use crate::common;

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use common::Harness;
use reco_api::ApiConfig;
use reco_testkit::bad::{api_corpus, check_refusal, view};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn every_bad_request_is_refused_with_its_field_and_nothing_is_produced() {
    let config = ApiConfig { body_limit_bytes: 4096, max_batch_events: 10, ..ApiConfig::default() };
    let h = Harness::with(config, std::time::Duration::from_secs(5)).await;
    let cases = api_corpus();
    assert!(cases.len() >= 25);
    let rejected = || -> f64 {
        let text = h.state.telemetry.render();
        reco_testkit::Samples::parse(&text).matching("reco_api_events_rejected_total", &[]).map(|s| s.value).sum()
    };
    for case in &cases {
        let before = rejected();
        let (got, json) = h.post_json(&case.1).await;
        check_refusal(case, got.as_u16(), &json).unwrap();
        // Each case is one bad event or one bad body: counted once, with a reason.
        assert_eq!(rejected() - before, 1.0, "{}: counted in reco_api_events_rejected_total", case.0);
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
