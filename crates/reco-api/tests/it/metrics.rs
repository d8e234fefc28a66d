//! `/metrics` is parsed, not grepped: counters and histograms move by the right amounts,
//! `endpoint` is the route template, and unknown paths share one label value.

use crate::common;

use axum::http::StatusCode;
use common::Harness;
use reco_testkit::Samples;
use serde_json::json;

async fn scrape(h: &Harness) -> Samples {
    let (status, headers, body) = h.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    Samples::parse(&String::from_utf8(body).unwrap())
}

const REQS: &str = "http_requests_total";
const DUR_COUNT: &str = "http_request_duration_seconds_count";

#[tokio::test(flavor = "multi_thread")]
async fn http_and_ingest_metrics_move_by_the_right_amounts() {
    let h = Harness::start().await;
    let before = scrape(&h).await;

    let good = json!({"type": "view", "user_id": "u", "item_id": "i"}).to_string();
    for _ in 0..3 {
        assert_eq!(h.post_json(&good).await.0, StatusCode::ACCEPTED);
    }
    let batch = json!([{"type": "click", "user_id": "u", "item_id": "i"},
                       {"type": "click", "user_id": "v", "item_id": "j"}])
    .to_string();
    assert_eq!(h.post_json(&batch).await.0, StatusCode::ACCEPTED);
    let bad = json!({"type": "view", "user_id": "", "item_id": "i"}).to_string();
    assert_eq!(h.post_json(&bad).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    // Refusals of the whole body count too, each with its reason.
    assert_eq!(h.post_json("[]").await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(h.post_json("42").await.0, StatusCode::UNPROCESSABLE_ENTITY);
    for path in ["/nope", "/admin/secret", "/events/123", "/wp-login.php"] {
        assert_eq!(h.get(path).await.0, StatusCode::NOT_FOUND);
    }

    let after = scrape(&h).await;
    let delta = |name: &str, labels: &[(&str, &str)]| after.value(name, labels) - before.value(name, labels);

    let post = [("method", "POST"), ("endpoint", "/events")];
    assert_eq!(delta(REQS, &[post[0], post[1], ("status", "202")]), 4.0);
    assert_eq!(delta(REQS, &[post[0], post[1], ("status", "422")]), 3.0);
    assert_eq!(delta(DUR_COUNT, &post), 7.0, "every request observed once");
    let inf_bucket = after.value("http_request_duration_seconds_bucket", &[post[0], post[1], ("le", "+Inf")]);
    assert_eq!(inf_bucket, after.value(DUR_COUNT, &post), "+Inf bucket equals count");
    assert!(after.value("http_request_duration_seconds_sum", &post) > 0.0);
    let buckets = after.matching("http_request_duration_seconds_bucket", &post).count();
    assert_eq!(buckets, 12, "11 explicit buckets plus +Inf");

    assert_eq!(delta(REQS, &[("endpoint", "unmatched"), ("status", "404")]), 4.0);
    let endpoints = after.label_values(REQS, "endpoint");
    assert!(
        endpoints.iter().all(|e| !e.contains("secret") && !e.contains("wp-login") && e != "/events/123"),
        "{endpoints:?}"
    );

    assert_eq!(delta("reco_api_events_accepted_total", &[("topic", "events_views")]), 3.0);
    assert_eq!(delta("reco_api_events_accepted_total", &[("topic", "events_clicks")]), 2.0);
    assert_eq!(delta("reco_api_events_rejected_total", &[("reason", "invalid_field")]), 1.0);
    assert_eq!(delta("reco_api_events_rejected_total", &[("reason", "empty_batch")]), 1.0);
    assert_eq!(delta("reco_api_events_rejected_total", &[("reason", "not_an_event")]), 1.0);
    assert!(after.value("process_resident_memory_bytes", &[]) > 0.0);
    assert_eq!(
        delta(REQS, &[("method", "GET"), ("endpoint", "/metrics"), ("status", "200")]),
        1.0,
        "the first scrape counted"
    );
}
