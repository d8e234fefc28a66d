//! Shared setup: a real embedded broker, a real producer, the real router.
#![allow(dead_code)]

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode},
};
use http_body_util::BodyExt;
use reco_api::{ApiConfig, AppState, app};
use reco_kafka::{EmbeddedBroker, EventProducer, ProducerSettings};
use reco_telemetry::Telemetry;
use serde_json::Value;
use tower::ServiceExt;

pub struct Harness {
    pub broker: Option<EmbeddedBroker>,
    pub bootstrap: String,
    pub state: AppState,
}

impl Harness {
    pub async fn start() -> Harness {
        Self::with(ApiConfig::default(), Duration::from_secs(5)).await
    }

    pub async fn with(config: ApiConfig, ack_timeout: Duration) -> Harness {
        Self::on_broker(reco_testkit::broker_with_topics().await, config, ack_timeout)
    }

    /// On a broker the test started itself (with the platform's topics).
    pub fn on_broker(broker: EmbeddedBroker, config: ApiConfig, ack_timeout: Duration) -> Harness {
        let bootstrap = broker.bootstrap();
        let producer = EventProducer::new(ProducerSettings {
            bootstrap_servers: bootstrap.clone(),
            ack_timeout,
            ..ProducerSettings::default()
        })
        .expect("producer");
        let state = AppState {
            producer,
            telemetry: Arc::new(Telemetry::new()),
            config: Arc::new(config),
            trending: None,
            similar: None,
            histories: None,
        };
        Harness { broker: Some(broker), bootstrap, state }
    }

    pub fn app(&self) -> Router {
        app(self.state.clone())
    }

    pub async fn post_json(&self, body: &str) -> (StatusCode, Value) {
        self.send(
            Request::post("/events")
                .header("content-type", "application/json")
                .body(Body::from(body.to_owned()))
                .unwrap(),
        )
        .await
    }

    pub async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        let (status, _, body) = self.send_raw(request).await;
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (status, json)
    }

    pub async fn send_raw(&self, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let response = self.app().oneshot(request).await.expect("router never fails");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.expect("body").to_bytes().to_vec();
        (status, headers, body)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        self.send_raw(Request::get(path).body(Body::empty()).unwrap()).await
    }

    pub async fn total_in_topics(&self) -> i64 {
        let mut n = 0;
        for t in ["events_views", "events_clicks", "events_ratings"] {
            n += reco_testkit::topic_count(&self.bootstrap, t).await;
        }
        n
    }
}
