//! The one JSON error shape every endpoint answers with:
//! `{"error": {"code": "...", "message": "...", "details": [...]}}`.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use reco_core::FieldError;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
    pub retry_after_secs: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code, e.g. `validation_failed`, `broker_unavailable`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// Per-item, per-field problems (validation errors).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldError>,
    /// Per-item delivery status, when some events of a batch were not acknowledged.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub items: Option<Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody { error: ErrorDetail { code, message: message.into(), details: vec![], items: None } },
            retry_after_secs: None,
        }
    }

    pub fn details(mut self, details: Vec<FieldError>) -> Self {
        self.body.error.details = details;
        self
    }

    pub fn items(mut self, items: Value) -> Self {
        self.body.error.items = Some(items);
        self
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
