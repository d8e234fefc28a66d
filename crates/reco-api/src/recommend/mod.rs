//! `GET /users/{user_id}/recommendations` and `POST /recommendations`: a user's (or an
//! anonymous session's) recent positive items combined through their published neighbour
//! lists (`score.rs`), topped up from trending.
//!
//! The user's side is live: [`UserHistories`] follows the event topics themselves
//! (`follow.rs`), so an interaction changes its user's recommendations as soon as the broker
//! hands it back, well within a second, without waiting for silver, gold or the watermark.
//! The neighbour lists are gold's, as `GET /items/{id}/similar` serves them.

mod follow;
pub mod history;
pub mod score;

use std::{collections::HashSet, sync::Arc};

use axum::{
    Json,
    body::{Body, to_bytes},
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use reco_core::{ErrorKind, FieldError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

pub use follow::UserHistories;
pub use history::HistoryConfig;

use crate::{ApiError, AppState, SimilarCache, similar::List};

const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 100;
/// Items a `POST /recommendations` body may name.
const MAX_SESSION_ITEMS: usize = 100;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RecommendQuery {
    /// Items to return, 1 to 100 (default 10).
    limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Recommended {
    item_id: String,
    /// Σ weight · recency · neighbour score over the history (docs/ARCHITECTURE.md,
    /// "Serving: recommendations"); 0 for an item filled in from trending.
    score: f64,
    /// The history items that contributed most, largest first; empty for a trending fill.
    because: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserRecommendations {
    user_id: String,
    items: Vec<Recommended>,
    /// `neighbors`, `neighbors+trending` (a short list filled up from trending) or `trending`
    /// (nothing to combine: a new user, or no neighbours for their items yet).
    #[schema(example = "neighbors")]
    source: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionRecommendations {
    items: Vec<Recommended>,
    #[schema(example = "neighbors")]
    source: &'static str,
}

/// A session's items, oldest first.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct SessionInput {
    /// Items the session interacted with, oldest first (1 to 100); none is recommended back.
    #[schema(example = json!(["m1", "m7"]))]
    #[allow(dead_code)] // Read from the raw JSON, which gives field-naming errors.
    items: Vec<String>,
    /// Items to return, 1 to 100 (default 10).
    #[allow(dead_code)]
    limit: Option<usize>,
}

fn bad(field: &str, message: String) -> ApiError {
    let detail = FieldError { index: None, field: Some(field.into()), kind: ErrorKind::InvalidField, message };
    let summary = format!("{field}: {}", detail.message);
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", summary).details(vec![detail])
}

fn parse_limit(s: Option<&str>) -> Result<usize, ApiError> {
    match s {
        None => Ok(DEFAULT_LIMIT),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => {
                let mut e = bad("limit", format!("must be an integer from 1 to {MAX_LIMIT}, got {s:?}"));
                e.status = StatusCode::BAD_REQUEST;
                e.body.error.code = "invalid_parameter";
                e.body.error.message = format!("query parameter {}", e.body.error.message);
                Err(e)
            }
        },
    }
}

fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "recommendations_unavailable",
        "this server has no lakehouse or no Kafka connection to serve recommendations from",
    )
}

struct Items(Arc<List>);

impl AsRef<[(String, f64, i64)]> for Items {
    fn as_ref(&self) -> &[(String, f64, i64)] {
        &self.0.items
    }
}

/// Combines `history` through the neighbour lists and fills up from trending.
fn recommend(
    state: &AppState,
    similar: &SimilarCache,
    history: &[(Arc<str>, f64)],
    seen: &HashSet<Arc<str>>,
    limit: usize,
) -> (Vec<Recommended>, &'static str) {
    let scored = score::combine(history, |i| similar.list(i).map(Items), |i| seen.contains(i), score::RECENCY, limit);
    let mut items: Vec<Recommended> = scored
        .into_iter()
        .map(|s| Recommended {
            item_id: s.item.to_string(),
            score: s.score,
            because: s.because.iter().map(|b| b.to_string()).collect(),
        })
        .collect();
    let combined = items.len();
    if items.len() < limit {
        let listed: HashSet<String> = items.iter().map(|r| r.item_id.clone()).collect();
        let fill = state.trending.as_ref().map(|t| t.fill_items()).unwrap_or_default();
        let fill = fill.into_iter().filter(|i| !seen.contains(i.as_str()) && !listed.contains(i));
        items.extend(fill.take(limit - items.len()).map(|item_id| Recommended {
            item_id,
            score: 0.0,
            because: vec![],
        }));
    }
    let source = match (combined, items.len() > combined) {
        (0, _) => "trending",
        (_, true) => "neighbors+trending",
        (_, false) => "neighbors",
    };
    (items, source)
}

/// What this user is likely to interact with next.
#[utoipa::path(
    get,
    path = "/users/{user_id}/recommendations",
    tag = "recommendations",
    params(("user_id" = String, Path, description = "The user"), RecommendQuery),
    responses(
        (status = 200, description = "Recommendations; from trending for a user with no history", body = UserRecommendations),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 400, description = "A query parameter is invalid", body = crate::error::ErrorBody),
        (status = 503, description = "Recommendations are not configured on this server", body = crate::error::ErrorBody),
    )
)]
pub(crate) async fn get_user_recommendations(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    Query(q): Query<RecommendQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let limit = parse_limit(q.limit.as_deref())?;
    let (Some(similar), Some(histories)) = (state.similar.as_ref(), state.histories.as_ref()) else {
        return Err(unavailable());
    };
    let history = histories.get(&user_id).unwrap_or_default();
    let (items, source) = recommend(&state, similar, &history.positives, &history.seen, limit);
    let body = UserRecommendations { user_id, items, source };
    // The answer changes with every interaction of the user: its own hash is the tag.
    let etag = format!("\"{:016x}\"", fnv1a(&serde_json::to_vec(&body).unwrap_or_default()));
    Ok(crate::cached_json(&headers, &etag, 1, || body))
}

/// What an anonymous session is likely to interact with next.
#[utoipa::path(
    post,
    path = "/recommendations",
    tag = "recommendations",
    request_body(content = SessionInput, description = "The session's items, oldest first"),
    responses(
        (status = 200, description = "Recommendations for the session", body = SessionRecommendations),
        (status = 400, description = "Body is not JSON", body = crate::error::ErrorBody),
        (status = 422, description = "A field is invalid; the details name it", body = crate::error::ErrorBody),
        (status = 503, description = "Recommendations are not configured on this server", body = crate::error::ErrorBody),
    )
)]
pub(crate) async fn post_recommendations(
    State(state): State<AppState>,
    body: Body,
) -> Result<Json<SessionRecommendations>, ApiError> {
    let too_large = || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "request body exceeds 64 KiB");
    let bytes = to_bytes(body, 64 * 1024).await.map_err(|_| too_large())?;
    let value = reco_core::decode_json(&bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.message.clone()).details(vec![e]))?;
    let (items, limit) = parse_session(&value)?;
    let Some(similar) = state.similar.as_ref() else { return Err(unavailable()) };
    // Most recent first, each as a view would count; repeats count once, at their latest.
    let mut history: Vec<(Arc<str>, f64)> = Vec::new();
    for item in items.iter().rev() {
        if !history.iter().any(|(h, _)| **h == **item) {
            history.push((Arc::from(item.as_str()), 1.0));
        }
    }
    let seen: HashSet<Arc<str>> = history.iter().map(|(i, _)| i.clone()).collect();
    let (items, source) = recommend(&state, similar, &history, &seen, limit);
    Ok(Json(SessionRecommendations { items, source }))
}

fn parse_session(value: &Value) -> Result<(Vec<String>, usize), ApiError> {
    let Value::Object(fields) = value else {
        return Err(bad("items", "the body must be an object {\"items\": [...], \"limit\": N}".into()));
    };
    if let Some(unknown) = fields.keys().find(|k| !matches!(k.as_str(), "items" | "limit")) {
        return Err(bad(unknown, "unknown field (expected items, limit)".into()));
    }
    let Some(Value::Array(raw)) = fields.get("items") else {
        return Err(bad("items", "required: an array of item ids, oldest first".into()));
    };
    if raw.is_empty() || raw.len() > MAX_SESSION_ITEMS {
        return Err(bad("items", format!("must hold 1 to {MAX_SESSION_ITEMS} item ids, got {}", raw.len())));
    }
    let mut items = Vec::with_capacity(raw.len());
    for (i, v) in raw.iter().enumerate() {
        let id = match v {
            Value::String(s) if !s.is_empty() && s.len() <= 256 => s.clone(),
            Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
            _ => return Err(bad(&format!("items[{i}]"), format!("must be a non-empty item id, got {v}"))),
        };
        items.push(id);
    }
    let limit = match fields.get("limit") {
        None | Some(Value::Null) => DEFAULT_LIMIT,
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| (1..=MAX_LIMIT as u64).contains(&n)) => {
            n.as_u64().unwrap_or(10) as usize
        }
        Some(v) => return Err(bad("limit", format!("must be an integer from 1 to {MAX_LIMIT}, got {v}"))),
    };
    Ok((items, limit))
}

/// FNV-1a, 64 bits: a stable tag of a response body.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}
