//! The reco HTTP API (CONTRACTS §6): `POST /events`, `GET /trending`, `GET /items/{id}/similar`,
//! `GET /users/{id}/recommendations`, `POST /recommendations`, health probes, `/metrics` and `/openapi.json`.
//!
//! [`app`] builds the whole router from an [`AppState`], so tests drive it with
//! `tower::ServiceExt::oneshot` and no socket; [`serve`] runs it with graceful shutdown.
//!
//! Exposure controls, all off by default and all set in [`ApiConfig`]: bearer tokens
//! ([`auth`]), a per-caller rate limit ([`limit`]), CORS for browser pages, `text/plain`
//! beacons, and `/metrics` moved off the public router.

pub mod auth;
mod console;
mod error;
mod events;
mod health;
pub mod limit;
mod openapi;
pub mod recommend;
mod similar;
mod trending;

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::{Next, from_fn_with_state},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use reco_core::Rules;
use reco_kafka::EventProducer;
use reco_telemetry::{Telemetry, track_http};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use auth::{Caller, TokenFileError, Tokens};
pub use error::ApiError;
pub use limit::RateLimit;
pub use openapi::ApiDoc;
pub use recommend::{HistoryConfig, UserHistories};
pub use similar::SimilarCache;
pub use trending::TrendingCache;

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
    /// Validation limits (CONTRACTS §3).
    pub rules: Rules,
    /// Bearer tokens `POST /events` requires; `None` accepts every request.
    pub tokens: Option<Arc<Tokens>>,
    /// With `tokens`, `GET /trending` requires one too.
    pub tokens_for_trending: bool,
    /// Origins allowed to call the API from a browser (CORS); empty: no CORS headers, so
    /// browsers refuse cross-origin calls. `*` allows every origin.
    pub cors_origins: Vec<String>,
    /// Accept `text/plain` bodies holding JSON (what `navigator.sendBeacon` sends with a
    /// string, and which needs no CORS pre-flight), and the `access_token` query parameter.
    pub text_plain: bool,
    /// Requests per second per caller (token name, else client IP); `None`: no limit.
    pub rate_limit: Option<RateLimit>,
    /// Serve `/metrics` on this router. Off when the metrics have their own listener.
    pub metrics_on_api: bool,
    /// Serve the web console (`GET /`, `/console/…`, module `console`).
    pub console: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            body_limit_bytes: 1024 * 1024,
            max_batch_events: 1000,
            request_timeout: Duration::from_secs(10),
            rules: Rules::default(),
            tokens: None,
            tokens_for_trending: false,
            cors_origins: Vec::new(),
            text_plain: false,
            rate_limit: None,
            metrics_on_api: true,
            console: true,
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
    /// Serves `GET /items/{id}/similar` from the gold table `item_neighbors`; `None` answers
    /// it 503.
    pub similar: Option<Arc<SimilarCache>>,
    /// Each user's recent items, followed from the event topics, behind
    /// `GET /users/{id}/recommendations`; `None` answers it 503.
    pub histories: Option<Arc<UserHistories>>,
}

/// The complete router.
pub fn app(state: AppState) -> Router {
    let telemetry = state.telemetry.clone();
    let config = state.config.clone();
    let kinds: Vec<&'static str> = reco_core::ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
    let token_names = config.tokens.as_ref().map(|t| t.names()).unwrap_or_default();
    let topics = reco_core::EventType::ALL.map(reco_core::EventType::topic);
    telemetry.ingest.known(&kinds, &token_names, &topics);

    let guard = |guarded| from_fn_with_state((state.clone(), guarded), auth::require_token);
    let mut events = post(events::post_events);
    if let Some(limit) = config.rate_limit {
        let limiter = Arc::new(limit::Limiter::new(limit));
        events = events.route_layer(from_fn_with_state((state.clone(), limiter), limit::rate_limit));
    }
    let mut trending = get(trending::get_trending);
    let mut similar = get(similar::get_similar);
    let mut for_user = get(recommend::get_user_recommendations);
    let mut for_session = post(recommend::post_recommendations);
    if config.tokens_for_trending {
        trending = trending.route_layer(guard(auth::Guarded::Read));
        similar = similar.route_layer(guard(auth::Guarded::Read));
        for_user = for_user.route_layer(guard(auth::Guarded::Read));
        for_session = for_session.route_layer(guard(auth::Guarded::Read));
    }
    let mut router = Router::new()
        .route("/events", events.route_layer(guard(auth::Guarded::Ingest)))
        .route("/trending", trending)
        .route("/items/{item_id}/similar", similar)
        .route("/users/{user_id}/recommendations", for_user)
        .route("/recommendations", for_session)
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/openapi.json", get(openapi::openapi_json));
    if config.metrics_on_api {
        router = router.route("/metrics", get(metrics));
    }
    if config.console {
        router = router.merge(console_routes(&state));
    }
    let mut router = router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(config.request_timeout, request_timeout));
    if let Some(cors) = cors_layer(&config.cors_origins) {
        // Outside the token check: a browser's pre-flight carries no credentials.
        router = router.layer(cors);
    }
    // Outermost, so it sees the final status of every request, timeouts included.
    router.layer(from_fn_with_state(telemetry, track_http)).with_state(state)
}

/// The console's page, assets and data, each answer with the console's security headers. Its
/// data needs a token whenever tokens are configured, even where the API's reads do not: the
/// metrics say more about the platform than its lists do.
fn console_routes(state: &AppState) -> Router<AppState> {
    let guard = from_fn_with_state((state.clone(), auth::Guarded::Read), auth::require_token);
    Router::new()
        .route("/", get(console::index))
        .route("/console", get(console::to_index))
        .route("/console/", get(console::index))
        .route("/console/console.js", get(console::script))
        .route("/console/console.css", get(console::style))
        .route("/console/favicon.svg", get(console::icon))
        .route("/console/metrics", get(console::metrics).route_layer(guard))
        .layer(axum::middleware::from_fn(console::security_headers))
}

/// CORS for the allowed origins (checked when the configuration is read), or `None`.
fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
            .expose_headers([header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    )
}

/// Checks a CORS origin as a browser sends it: `scheme://host[:port]`, no path, or `*`.
pub fn check_origin(origin: &str) -> Result<(), String> {
    if origin == "*" {
        return Ok(());
    }
    let (scheme, rest) = origin.split_once("://").ok_or_else(|| format!("{origin:?} is not scheme://host[:port]"))?;
    let host_ok = !rest.is_empty() && !rest.contains(['/', '?', '#', ' ']) && HeaderValue::from_str(origin).is_ok();
    if !matches!(scheme, "http" | "https") || !host_ok {
        return Err(format!("{origin:?} is not an origin (http(s)://host[:port], no path or trailing slash)"));
    }
    Ok(())
}

/// Serves `app(state)` on `listener` until `shutdown` fires, then stops accepting and waits
/// for in-flight requests to finish.
pub async fn serve(listener: TcpListener, state: AppState, shutdown: CancellationToken) -> std::io::Result<()> {
    // The peer address keys the rate limit of unauthenticated callers.
    let service = app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(shutdown.cancelled_owned()).await
}

async fn metrics(State(state): State<AppState>) -> Response {
    render_metrics(&state.telemetry)
}

pub(crate) fn render_metrics(telemetry: &Telemetry) -> Response {
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

/// A JSON answer clients and CDNs may reuse for `max_age_secs` and revalidate by `etag`:
/// `304` without a body when `If-None-Match` names it, else `body()`.
pub(crate) fn cached_json<T: serde::Serialize>(
    headers: &axum::http::HeaderMap,
    etag: &str,
    max_age_secs: u32,
    body: impl FnOnce() -> T,
) -> Response {
    let mut response = if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes()) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        axum::Json(body()).into_response()
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    let control = HeaderValue::from_str(&format!("public, max-age={max_age_secs}"));
    h.insert(header::CACHE_CONTROL, control.unwrap_or(HeaderValue::from_static("no-cache")));
    response
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
