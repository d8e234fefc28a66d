//! `GET /openapi.json`, generated from the handlers' annotations so it cannot drift.

use axum::Json;
use utoipa::OpenApi;

#[derive(OpenApi, Debug)]
#[openapi(
    info(title = "reco", description = "Event ingest and trending API of the reco platform"),
    paths(crate::events::post_events, crate::trending::get_trending, crate::health::live, crate::health::ready),
    components(schemas(
        crate::events::EventInput,
        crate::events::Accepted,
        crate::trending::TrendingResponse,
        crate::trending::TrendingItem,
        crate::error::ErrorBody,
        crate::error::ErrorDetail,
        reco_core::FieldError,
        reco_core::ErrorKind,
    ))
)]
pub struct ApiDoc;

pub(crate) async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
