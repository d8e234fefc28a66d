//! What exposing the API to the internet relies on: bearer tokens, metrics off the public
//! router, CORS, `text/plain` beacons and the per-caller rate limit. Real router, real
//! producer, real embedded broker: "nothing produced" is counted in the topics.

use crate::common;

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    http::{HeaderMap, Request, StatusCode, header},
};
use common::Harness;
use http_body_util::BodyExt;
use reco_api::{ApiConfig, RateLimit, Tokens};
use reco_kafka::BrokerStorage;
use reco_testkit::{Samples, bad::view};
use serde_json::Value;
use tower::ServiceExt;

const WEB: &str = "web-0123456789abcdef";
const APP: &str = "app-fedcba9876543210";

fn tokens() -> Option<Arc<Tokens>> {
    Some(Arc::new(Tokens::from_pairs([("web", WEB), ("app", APP)]).unwrap()))
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn post(auth: Option<&str>) -> Request<Body> {
    let mut r = Request::post("/events").header("content-type", "application/json");
    if let Some(auth) = auth {
        r = r.header(header::AUTHORIZATION, auth);
    }
    r.body(Body::from(view().to_string())).unwrap()
}

/// The API on an embedded broker with a SQLite log.
async fn harness(config: ApiConfig) -> Harness {
    let dir = tempfile::tempdir().unwrap().keep();
    let broker = reco_testkit::broker_with_topics_on(BrokerStorage::Sqlite(dir.join("tansu.db"))).await;
    Harness::on_broker(broker, config, Duration::from_secs(5))
}

/// Records in the three topics, read back.
async fn produced(h: &Harness) -> usize {
    let mut n = 0;
    for topic in ["events_views", "events_clicks", "events_ratings"] {
        n += reco_testkit::read_topic(&h.bootstrap, topic).await.len();
    }
    n
}

fn metric(h: &Harness, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    Samples::parse(&h.state.telemetry.render()).get(name, labels)
}

#[tokio::test(flavor = "multi_thread")]
async fn with_tokens_only_a_known_bearer_token_produces() {
    let config = ApiConfig { tokens: tokens(), ..ApiConfig::default() };
    let h = harness(config).await;
    let app = h.app();
    let rejected = |h: &Harness| metric(h, "reco_api_events_rejected_total", &[("reason", "unauthorized")]);
    assert_eq!(rejected(&h), Some(0.0), "known at 0 before any request");
    assert_eq!(metric(&h, "reco_api_authenticated_requests_total", &[("token", "app")]), Some(0.0));

    let refused = [
        (None, "Bearer realm=\"reco\""),
        (Some("Bearer not-a-token-at-all-xx"), "Bearer realm=\"reco\", error=\"invalid_token\""),
        (Some(&*format!("Bearer {WEB}x")), "Bearer realm=\"reco\", error=\"invalid_token\""),
        (Some(&*format!("Basic {WEB}")), "Bearer realm=\"reco\", error=\"invalid_request\""),
    ];
    for (auth, challenge) in refused {
        let (status, headers, json) = send(&app, post(auth)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(headers[header::WWW_AUTHENTICATE], challenge, "{auth:?}");
        assert_eq!(json["error"]["code"], "unauthorized", "{auth:?}: the one error shape");
        assert!(!json.to_string().contains(WEB), "a token is never echoed");
    }
    assert_eq!(produced(&h).await, 0, "a refused request produces nothing");
    assert_eq!(rejected(&h), Some(4.0));

    let (status, _, json) = send(&app, post(Some(&format!("Bearer {WEB}")))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{json}");
    let (status, _, _) = send(&app, post(Some(&format!("bearer  {APP} ")))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "the scheme is case-insensitive");
    assert_eq!(produced(&h).await, 2);
    assert_eq!(metric(&h, "reco_api_authenticated_requests_total", &[("token", "web")]), Some(1.0));
    assert!(!h.state.telemetry.render().contains(WEB), "metrics name tokens, never show them");

    // Reading stays open unless asked; probes always are.
    assert_ne!(h.get("/trending?window=1h").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(h.get("/health/live").await.0, StatusCode::OK);
    let guarded = ApiConfig { tokens: tokens(), tokens_for_trending: true, ..ApiConfig::default() };
    let h2 = harness(guarded).await;
    assert_eq!(h2.get("/trending?window=1h").await.0, StatusCode::UNAUTHORIZED);
    let authed = Request::get("/trending?window=1h").header(header::AUTHORIZATION, format!("Bearer {APP}"));
    assert_ne!(send(&h2.app(), authed.body(Body::empty()).unwrap()).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_leave_the_api_router_when_they_have_their_own_listener() {
    let on = harness(ApiConfig::default()).await;
    let (status, _, body) = on.get("/metrics").await;
    assert_eq!(status, StatusCode::OK, "the seed's layout by default");
    assert!(String::from_utf8_lossy(&body).contains("reco_api_events_rejected_total"));
    let off = harness(ApiConfig { metrics_on_api: false, ..ApiConfig::default() }).await;
    let (status, _, body) = off.get("/metrics").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!String::from_utf8_lossy(&body).contains("reco_api_events_rejected_total"));
    assert_eq!(off.get("/health/live").await.0, StatusCode::OK);
}

fn preflight(origin: &str) -> Request<Body> {
    Request::builder()
        .method("OPTIONS")
        .uri("/events")
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type,authorization")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_answers_allowed_origins_only_and_before_the_token_check() {
    let allowed = "https://shop.example.com";
    let config = ApiConfig {
        tokens: tokens(),
        cors_origins: vec![allowed.into(), "http://localhost:3000".into()],
        ..ApiConfig::default()
    };
    let h = harness(config).await;
    let app = h.app();

    let (status, headers, _) = send(&app, preflight(allowed)).await;
    assert!(status.is_success(), "a pre-flight carries no token and must not get 401: {status}");
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], allowed);
    let methods = headers[header::ACCESS_CONTROL_ALLOW_METHODS].to_str().unwrap().to_owned();
    assert!(methods.contains("POST"), "{methods}");
    let allowed_headers = headers[header::ACCESS_CONTROL_ALLOW_HEADERS].to_str().unwrap().to_ascii_lowercase();
    assert!(allowed_headers.contains("authorization") && allowed_headers.contains("content-type"));

    let (_, headers, _) = send(&app, preflight("https://evil.example.net")).await;
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none(), "a refused origin gets no allow header");

    let mut request = post(Some(&format!("Bearer {WEB}")));
    request.headers_mut().insert(header::ORIGIN, allowed.parse().unwrap());
    let (status, headers, _) = send(&app, request).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], allowed);

    // Without an allowlist no CORS header is ever sent.
    let plain = harness(ApiConfig::default()).await;
    let (_, headers, _) = send(&plain.app(), preflight(allowed)).await;
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}

fn beacon(uri: &str) -> Request<Body> {
    Request::post(uri).header("content-type", "text/plain;charset=UTF-8").body(Body::from(view().to_string())).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn text_plain_beacons_are_accepted_only_when_enabled() {
    let off = harness(ApiConfig { tokens: tokens(), ..ApiConfig::default() }).await;
    let with_token = format!("/events?access_token={WEB}");
    let (status, _, _) = send(&off.app(), beacon(&with_token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no query-parameter token unless beacons are enabled");
    let mut request = beacon("/events");
    request.headers_mut().insert(header::AUTHORIZATION, format!("Bearer {WEB}").parse().unwrap());
    let (status, _, json) = send(&off.app(), request).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{json}");
    assert_eq!(produced(&off).await, 0);

    let on = harness(ApiConfig { tokens: tokens(), text_plain: true, ..ApiConfig::default() }).await;
    let (status, _, json) = send(&on.app(), beacon(&with_token)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{json}");
    let (status, _, _) = send(&on.app(), beacon("/events?access_token=wrong-token-0123456789")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = send(&on.app(), beacon("/events")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(produced(&on).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_over_the_rate_limit_gets_429_and_the_allowed_rate_passes() {
    let limit = RateLimit { per_second: NonZeroU32::new(5).unwrap(), burst: NonZeroU32::new(5).unwrap() };
    let config = ApiConfig { tokens: tokens(), rate_limit: Some(limit), ..ApiConfig::default() };
    let h = harness(config).await;
    let app = h.app();
    let web = format!("Bearer {WEB}");

    // A burst of 12 at once: the 5 of the burst pass, the rest are told when to come back.
    let answers = futures::future::join_all((0..12).map(|_| send(&app, post(Some(&web))))).await;
    let passed = answers.iter().filter(|(s, _, _)| *s == StatusCode::ACCEPTED).count();
    let limited: Vec<_> = answers.iter().filter(|(s, _, _)| *s == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!((passed, limited.len()), (5, 7), "{:?}", answers.iter().map(|a| a.0).collect::<Vec<_>>());
    for (_, headers, json) in &limited {
        let retry: u64 = headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
        assert!((1..=2).contains(&retry), "Retry-After {retry}");
        assert_eq!(json["error"]["code"], "rate_limited");
    }
    assert_eq!(produced(&h).await, 5, "a limited request produces nothing");
    assert_eq!(metric(&h, "reco_api_events_rejected_total", &[("reason", "rate_limited")]), Some(7.0));

    // Each caller has its own budget: the other token is untouched by web's burst.
    let (status, _, _) = send(&app, post(Some(&format!("Bearer {APP}")))).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // At the allowed rate (4/s under a 5/s limit) nothing is refused, after the wait it named.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..8 {
        let (status, _, json) = send(&app, post(Some(&web))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{json}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(produced(&h).await, 14);
}

fn get(path: &str, auth: Option<&str>) -> Request<Body> {
    let mut r = Request::get(path);
    if let Some(auth) = auth {
        r = r.header(header::AUTHORIZATION, auth);
    }
    r.body(Body::empty()).unwrap()
}

/// The console's page and assets are public (they hold no data) and carry the headers that keep
/// them from running foreign script or being framed; its data needs a token once tokens exist.
#[tokio::test(flavor = "multi_thread")]
async fn console_page_is_locked_down_and_its_data_needs_a_token() {
    let h = harness(ApiConfig { tokens: tokens(), ..ApiConfig::default() }).await;
    let app = h.app();
    for (path, kind) in [
        ("/", "text/html"),
        ("/console/", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
        ("/console/favicon.svg", "image/svg+xml"),
    ] {
        let response = app.clone().oneshot(get(path, None)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers();
        assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with(kind), "{path}: {headers:?}");
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY", "{path}");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
    }
    let (status, headers, _) = send(&app, get("/console", None)).await;
    assert_eq!((status, &headers[header::LOCATION]), (StatusCode::PERMANENT_REDIRECT, &"/console/".parse().unwrap()));

    let (status, _, body) = send(&app, get("/console/metrics", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _, _) = send(&app, get("/console/metrics", Some("Bearer not-a-token-of-ours"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let response = app.clone().oneshot(get("/console/metrics", Some(&format!("Bearer {WEB}")))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    let samples = Samples::parse(&text);
    assert!(samples.get("reco_api_events_rejected_total", &[("reason", "invalid_json")]).is_some(), "{text}");

    // Off, the console's paths are unknown like any other.
    let off = harness(ApiConfig { console: false, ..ApiConfig::default() }).await;
    for path in ["/", "/console/", "/console/metrics"] {
        let (status, _, body) = send(&off.app(), get(path, None)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
}
