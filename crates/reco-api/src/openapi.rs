//! `GET /openapi.json`, generated from the handlers' annotations so it cannot drift.

use axum::Json;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

#[derive(OpenApi, Debug)]
#[openapi(
    info(title = "reco", description = "Event ingest and trending API of the reco platform"),
    paths(
        crate::events::post_events,
        crate::trending::get_trending,
        crate::similar::get_similar,
        crate::recommend::get_user_recommendations,
        crate::recommend::post_recommendations,
        crate::health::live,
        crate::health::ready
    ),
    components(schemas(
        crate::events::EventInput,
        crate::events::EventsBody,
        crate::events::Accepted,
        crate::trending::TrendingResponse,
        crate::trending::TrendingItem,
        crate::similar::SimilarResponse,
        crate::similar::SimilarItem,
        crate::recommend::UserRecommendations,
        crate::recommend::SessionRecommendations,
        crate::recommend::SessionInput,
        crate::recommend::Recommended,
        crate::error::ErrorBody,
        crate::error::ErrorDetail,
        reco_core::FieldError,
        reco_core::ErrorKind,
    )),
    modifiers(&BearerScheme)
)]
pub struct ApiDoc;

/// The `bearer` security scheme `POST /events` names (tokens from `RECO_API_TOKENS_FILE`).
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            let scheme = HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("A token from the server's token file (RECO_API_TOKENS_FILE), when it has one"));
            components.add_security_scheme("bearer", SecurityScheme::Http(scheme.build()));
        }
    }
}

pub(crate) async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
