//! With the broker down, `POST /events` answers 503 with Retry-After within the bounded time,
//! never 202; once the broker is back, posting works again.

use crate::common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::Harness;
use reco_api::ApiConfig;
use reco_kafka::{BrokerStorage, EmbeddedBroker};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn broker_down_means_503_and_recovery_after() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tansu.db");
    let ack = Duration::from_secs(2);
    // SQLite storage, as `reco up` uses, so a restart keeps topics and producer state.
    let addr = reco_testkit::free_addr();
    let broker = EmbeddedBroker::start(addr, BrokerStorage::Sqlite(db.clone())).await.unwrap();
    let mut specs = reco_kafka::topics::default_topics();
    specs.iter_mut().for_each(|s| s.replication_factor = Some(1));
    reco_kafka::topics::ensure_topics(&broker.bootstrap(), &specs, false).await.unwrap();
    let mut h = Harness::on_broker(broker, ApiConfig::default(), ack);
    let broker = h.broker.take().unwrap();

    let event = |id: &str| json!({"type": "view", "event_id": id, "user_id": "u", "item_id": "i"}).to_string();
    let (status, body) = h.post_json(&event("before")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    broker.stop().await;
    let started = Instant::now();
    let (status, headers, body) = h
        .send_raw(
            axum::http::Request::post("/events")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(event("during")))
                .unwrap(),
        )
        .await;
    let took = started.elapsed();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "broker_unavailable");
    assert_eq!(body["error"]["items"][0]["status"], "not_acknowledged");
    assert_eq!(body["error"]["items"][0]["event_id"], "during");
    assert!(headers.contains_key("retry-after"));
    assert!(took < ack + Duration::from_secs(3), "bounded: answered after {took:?}");
    let (ready, _, _) = h.get("/health/ready").await;
    assert_eq!(ready, StatusCode::SERVICE_UNAVAILABLE);

    let broker = EmbeddedBroker::start(addr, BrokerStorage::Sqlite(db)).await.unwrap();
    let recovered = reco_testkit::wait_until(Duration::from_secs(30), || async {
        h.post_json(&event("after")).await.0 == StatusCode::ACCEPTED
    })
    .await;
    assert!(recovered, "posting works again once the broker is back");
    let ids: Vec<String> = reco_testkit::read_topic(&h.bootstrap, "events_views")
        .await
        .into_iter()
        .map(|r| {
            serde_json::from_slice::<serde_json::Value>(&r.payload.unwrap()).unwrap()["event_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(ids.contains(&"before".to_owned()) && ids.contains(&"after".to_owned()), "{ids:?}");
    broker.stop().await;
}
