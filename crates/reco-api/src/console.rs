//! The web console (`GET /`, `/console/…`): a read-only page for people trying reco, showing the
//! pipeline's live numbers, the trending lists and the recommendations to explore.
//!
//! Plain HTML, CSS and JavaScript embedded in the binary, so it works offline and needs no
//! build step; the page calls the same public endpoints as any client (`/trending`,
//! `/items/{id}/similar`, …) plus `/console/metrics`, this process's metrics text. The page
//! computes rates from two readings itself, so the console needs no Prometheus. With API tokens
//! configured, `/console/metrics` requires one (the page asks for it and keeps it in the tab's
//! sessionStorage), and every other call carries it, so the console shows nothing the API
//! would refuse. Data shown on the page is written as text, never as HTML: item and user ids
//! come from events anyone could post.

use axum::{
    extract::State,
    http::{HeaderName, HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};

use crate::AppState;

const INDEX_HTML: &str = include_str!("../console/index.html");
const CONSOLE_JS: &str = include_str!("../console/console.js");
const CONSOLE_CSS: &str = include_str!("../console/console.css");
const ICON_SVG: &str = include_str!("../console/favicon.svg");

/// No inline script or style, nothing from elsewhere, no framing (clickjacking), no plugins:
/// the page only talks to the API that served it.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub(crate) async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// `/console` without the slash: one canonical address for the page.
pub(crate) async fn to_index() -> Redirect {
    Redirect::permanent("/console/")
}

pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", CONSOLE_JS)
}

pub(crate) async fn style() -> Response {
    asset("text/css; charset=utf-8", CONSOLE_CSS)
}

/// Browsers ask for an icon on every page; without one each visit logs a 404.
pub(crate) async fn icon() -> Response {
    asset("image/svg+xml", ICON_SVG)
}

/// This process's metrics text, on the API port even when `/metrics` has its own listener: the
/// console reads the process it is served by. Token-guarded when tokens are configured.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = crate::render_metrics(&state.telemetry);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    // `no-cache`: the browser revalidates, so a new binary's console is seen at once.
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// Middleware on the console's routes: the security headers of every console response.
pub(crate) async fn security_headers(req: axum::extract::Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page loads its script and style by these paths; a rename on one side fails here.
    #[test]
    fn page_names_its_assets() {
        assert!(INDEX_HTML.contains(r#"<script src="/console/console.js" defer></script>"#));
        assert!(INDEX_HTML.contains(r#"href="/console/console.css""#));
    }

    /// The CSP forbids inline script and style: the page must not depend on either.
    #[test]
    fn page_has_no_inline_script_or_style() {
        let lower = INDEX_HTML.to_ascii_lowercase();
        assert!(!lower.contains("<script>") && !lower.contains("<style"), "inline script or style in index.html");
        assert!(!lower.contains(" style=") && !lower.contains(" onclick="), "inline attribute in index.html");
        assert!(!CONSOLE_JS.contains("innerHTML"), "console.js writes data as text, never as HTML");
    }
}
