//! Liveness (the process answers) and readiness (its dependencies answer).

use std::time::Duration;

use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};

use crate::{ApiError, AppState};

/// Short: a readiness probe that hangs is worse than one that says "not ready".
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, description = "The process is up")))]
pub(crate) async fn live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "health",
    responses(
        (status = 200, description = "The broker and the lakehouse answer"),
        (status = 503, description = "The broker or the lakehouse does not answer", body = crate::error::ErrorBody),
    )
)]
pub(crate) async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if let Some(cache) = &state.trending
        && let Err(e) = cache.lake_reachable().await
    {
        return Err(
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", format!("lakehouse: {e}")).retry_after(1)
        );
    }
    let lake = if state.trending.is_some() { "ok" } else { "not configured" };
    match state.producer.ping(PROBE_TIMEOUT).await {
        Ok(()) => Ok(Json(json!({"status": "ready", "checks": {"broker": "ok", "lakehouse": lake}}))),
        Err(e) => {
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", format!("broker: {e}")).retry_after(1))
        }
    }
}
