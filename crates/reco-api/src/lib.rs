//! The reco HTTP API (DESIGN §6): `POST /events`, `GET /trending`, health probes, `/metrics` and
//! `/openapi.json`.
//!
//! [`app`] builds the whole router from an [`AppState`], so tests drive it with
//! `tower::ServiceExt::oneshot` and no socket; [`serve`] runs it with graceful shutdown.

mod error;
mod events;
mod health;
mod openapi;
mod trending;

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::{Next, from_fn_with_state},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use reco_core::Rules;
use reco_kafka::EventProducer;
use reco_telemetry::{Telemetry, track_http};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;
pub use openapi::ApiDoc;
pub use trending::{ServedWindow, TrendingCache};

/// Settings of the HTTP API. `Default` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Largest accepted request body, in bytes; larger bodies get 413.
    pub body_limit_bytes: usize,
    /// Most events in one `POST /events` batch; more get 413.
    pub max_batch_events: usize,
    /// Longest a request may take before it is answered 503. Longer than the producer's
    /// acknowledgment timeout, so a slow broker yields the more precise "not acknowledged".
    pub request_timeout: Duration,
    /// Validation limits (DESIGN §3).
    pub rules: Rules,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            body_limit_bytes: 1024 * 1024,
            max_batch_events: 1000,
            request_timeout: Duration::from_secs(10),
            rules: Rules::default(),
        }
    }
}

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    pub producer: EventProducer,
    pub telemetry: Arc<Telemetry>,
    pub config: Arc<ApiConfig>,
    /// Serves `GET /trending` from the gold tables; `None` answers it 503.
    pub trending: Option<Arc<TrendingCache>>,
}

/// The complete router.
pub fn app(state: AppState) -> Router {
    let telemetry = state.telemetry.clone();
    let timeout = state.config.request_timeout;
    Router::new()
        .route("/events", post(events::post_events))
        .route("/trending", get(trending::get_trending))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(timeout, request_timeout))
        // Outermost, so it sees the final status of every request, timeouts included.
        .layer(from_fn_with_state(telemetry, track_http))
        .with_state(state)
}

/// Serves `app(state)` on `listener` until `shutdown` fires, then stops accepting and waits
/// for in-flight requests to finish.
pub async fn serve(listener: TcpListener, state: AppState, shutdown: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, app(state)).with_graceful_shutdown(shutdown.cancelled_owned()).await
}

async fn metrics(State(state): State<AppState>) -> Response {
    render_metrics(&state.telemetry)
}

fn render_metrics(telemetry: &Telemetry) -> Response {
    ([(header::CONTENT_TYPE, reco_telemetry::CONTENT_TYPE)], telemetry.render()).into_response()
}

/// The small router of a job process (silver, gold): `/metrics` and `/health/live`.
pub fn metrics_app(telemetry: Arc<Telemetry>) -> Router {
    Router::new()
        .route("/metrics", get(|State(t): State<Arc<Telemetry>>| async move { render_metrics(&t) }))
        .route("/health/live", get(health::live))
        .fallback(not_found)
        .layer(from_fn_with_state(telemetry.clone(), track_http))
        .with_state(telemetry)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint; see /openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this endpoint")
}

async fn request_timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "request_timeout",
            format!("the request did not complete within {} ms", limit.as_millis()),
        )
        .retry_after(1)
        .into_response(),
    }
}
