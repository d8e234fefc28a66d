//! `http_requests_total` and `http_request_duration_seconds`, with the names and labels the
//! original FastAPI service exposed, so existing dashboards keep working.

use std::{sync::Arc, time::Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

use crate::Telemetry;

/// The `endpoint` label of requests that matched no route. One fixed value, so scanners
/// probing random paths cannot blow up the series count.
pub const UNMATCHED_ENDPOINT: &str = "unmatched";

/// Explicit buckets (seconds): the Prometheus client defaults, which the original used.
const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    endpoint: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    method: &'static str,
    endpoint: String,
}

#[derive(Debug)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<DurationLabels, Histogram>,
}

impl HttpMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let requests = Family::default();
        let duration = Family::<DurationLabels, Histogram>::new_with_constructor(|| Histogram::new(BUCKETS));
        registry.register("http_requests", "HTTP requests by method, route template and status", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "HTTP request duration in seconds by method and route template",
            duration.clone(),
        );
        HttpMetrics { requests, duration }
    }

    pub fn observe(&self, method: &str, endpoint: &str, status: u16, seconds: f64) {
        let method = known_method(method);
        self.requests.get_or_create(&RequestLabels { method, endpoint: endpoint.to_owned(), status }).inc();
        self.duration.get_or_create(&DurationLabels { method, endpoint: endpoint.to_owned() }).observe(seconds);
    }
}

/// Methods outside the standard set share one label value, for the same reason as
/// [`UNMATCHED_ENDPOINT`].
fn known_method(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"];
    KNOWN.into_iter().find(|m| *m == method).unwrap_or("OTHER")
}

/// Axum middleware recording both HTTP metrics. Install with `Router::layer` (not
/// `route_layer`) so unmatched requests are counted too.
pub async fn track_http(State(telemetry): State<Arc<Telemetry>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let endpoint =
        req.extensions().get::<MatchedPath>().map_or_else(|| UNMATCHED_ENDPOINT.to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    telemetry.http.observe(&method, &endpoint, response.status().as_u16(), start.elapsed().as_secs_f64());
    response
}
