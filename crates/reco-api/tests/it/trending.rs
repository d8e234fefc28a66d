//! `GET /trending` over real gold tables (Delta and Parquet) written by reco-lake: the latest
//! window, limits, `at=`, ETag revalidation, refresh when a new window lands, and clear 4xx.

use std::{sync::Arc, time::Duration};

use axum::{
    body::Body,
    http::{HeaderMap, Request, StatusCode, header},
};
use http_body_util::BodyExt;
use reco_api::{ApiConfig, AppState, TrendingCache, app};
use reco_kafka::{EventProducer, ProducerSettings};
use reco_lake::{Format, GoldTable, Lake, TrendingRow, WindowRows};
use reco_telemetry::Telemetry;
use serde_json::Value;
use tower::ServiceExt;

const HOUR: i64 = 3_600_000_000;
/// 2019-03-01T00:00:00Z.
const BASE: i64 = 1_551_398_400_000_000;

fn window(start_us: i64, items: usize, computed_at_us: i64) -> WindowRows {
    window_as(start_us, items, computed_at_us, true)
}

fn window_as(start_us: i64, items: usize, computed_at_us: i64, complete: bool) -> WindowRows {
    let rows = (0..items)
        .map(|i| TrendingRow {
            window_start_us: start_us,
            window_end_us: start_us + HOUR,
            item_id: format!("item-{i:03}"),
            views: (100 - i) as i64,
            clicks: 1,
            score: (100 - i) as f64 + 3.0,
            rank: i as i32 + 1,
            complete,
            computed_at_us,
        })
        .collect();
    WindowRows { start_us, rows }
}

/// The API's state serving `cache`. Nobody produces here; the producer only completes it.
fn state_with(cache: Arc<TrendingCache>) -> AppState {
    let producer = EventProducer::new(ProducerSettings {
        bootstrap_servers: reco_testkit::free_addr().to_string(),
        ..ProducerSettings::default()
    })
    .unwrap();
    AppState {
        producer,
        telemetry: Arc::new(Telemetry::new()),
        config: Arc::new(ApiConfig::default()),
        trending: Some(cache),
        similar: None,
        histories: None,
    }
}

async fn get(state: &AppState, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Value) {
    let mut request = Request::get(uri);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = app(state.clone()).oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn trending(format: Format) {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path(), format).unwrap();
    let cache = TrendingCache::new(lake.clone(), reco_core::TRENDING_WINDOWS.to_vec(), 50);
    let state = state_with(cache.clone());

    // Before the gold job has published anything: 404 saying so.
    cache.refresh().await.unwrap();
    let (status, _, body) = get(&state, "/trending?window=1h", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "no_window");
    assert!(body["error"]["message"].as_str().unwrap().contains("1h"), "{body}");

    let mut table = GoldTable::open(&lake, "trending_now_1h").await.unwrap();
    table
        .replace(vec![window(BASE, 50, BASE + HOUR), window(BASE + 300_000_000, 50, BASE + 2 * HOUR)], None)
        .await
        .unwrap();
    cache.refresh().await.unwrap();

    let (status, headers, body) = get(&state, "/trending?window=1h", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["window"], "1h");
    assert_eq!(body["window_start"], "2019-03-01T00:05:00Z");
    assert_eq!(body["window_end"], "2019-03-01T01:05:00Z");
    assert_eq!(body["complete"], true);
    assert_eq!(body["computed_at"], "2019-03-01T02:00:00Z");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 20, "default limit");
    assert_eq!(
        items[0],
        serde_json::json!({"rank": 1, "item_id": "item-000", "score": 103.0, "views": 100, "clicks": 1})
    );
    assert!(headers[header::CACHE_CONTROL].to_str().unwrap().contains("max-age"));
    let etag = headers[header::ETAG].to_str().unwrap().to_owned();

    // Revalidation: same ETag → 304; another limit is another representation.
    let (status, _, _) = get(&state, "/trending?window=1h", &[("if-none-match", &etag)]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    let (status, headers, body) = get(&state, "/trending?window=1h&limit=50", &[("if-none-match", &etag)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"].as_array().unwrap().len(), 50);
    assert_ne!(headers[header::ETAG].to_str().unwrap(), etag);

    // at=: the newest window that had ended by then.
    let (status, _, body) = get(&state, "/trending?window=1h&at=2019-03-01T01:02:00Z", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["window_start"], "2019-03-01T00:00:00Z");
    let (status, _, body) = get(&state, "/trending?window=1h&at=2019-03-01T00:30:00Z", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // Before the oldest kept window the answer says what may have happened, not "not yet".
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("oldest kept ends at 2019-03-01T01:00:00"), "{message}");
    assert!(message.contains("RECO_GOLD_RETENTION_HOURS") && message.contains("backfill"), "{message}");

    // A republished window (same start, new computed_at) replaces the cached one; the old
    // ETag no longer matches.
    table.replace(vec![window(BASE + 300_000_000, 10, BASE + 3 * HOUR)], None).await.unwrap();
    cache.refresh().await.unwrap();
    let (status, _, body) = get(&state, "/trending?window=1h", &[("if-none-match", &etag)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["computed_at"], "2019-03-01T03:00:00Z");
    assert_eq!(body["items"].as_array().unwrap().len(), 10);

    // Provisional windows (published while all input was idle, before the watermark passed
    // their end) are served only when asked for; the default stays on the newest complete one.
    let provisional = (1..=3).map(|k| window_as(BASE + (1 + k) * 300_000_000, 5, BASE + 4 * HOUR, false)).collect();
    table.replace(provisional, None).await.unwrap();
    cache.refresh().await.unwrap();
    let (_, _, body) = get(&state, "/trending?window=1h", &[]).await;
    assert_eq!((body["window_start"].as_str(), body["complete"].as_bool()), (Some("2019-03-01T00:05:00Z"), Some(true)));
    let (_, _, body) = get(&state, "/trending?window=1h&provisional=true", &[]).await;
    assert_eq!(
        (body["window_start"].as_str(), body["complete"].as_bool()),
        (Some("2019-03-01T00:20:00Z"), Some(false))
    );
    let (_, _, body) = get(&state, "/trending?window=1h&at=2019-03-01T01:16:00Z", &[]).await;
    assert_eq!(body["window_start"], "2019-03-01T00:05:00Z", "at= skips provisional windows too: {body}");
    let (_, _, body) = get(&state, "/trending?window=1h&at=2019-03-01T01:16:00Z&provisional=1", &[]).await;
    assert_eq!(body["window_start"], "2019-03-01T00:15:00Z");
    // Completed later: served by default.
    table.replace(vec![window(BASE + 600_000_000, 7, BASE + 5 * HOUR)], None).await.unwrap();
    cache.refresh().await.unwrap();
    let (_, _, body) = get(&state, "/trending?window=1h", &[]).await;
    assert_eq!(
        (body["window_start"].as_str(), body["items"].as_array().map(Vec::len)),
        (Some("2019-03-01T00:10:00Z"), Some(7))
    );

    // Bad parameters name the parameter.
    for (uri, field) in [
        ("/trending?window=7d", "window"),
        ("/trending?limit=0", "limit"),
        ("/trending?limit=51", "limit"),
        ("/trending?limit=ten", "limit"),
        ("/trending?at=yesterday", "at"),
        ("/trending?provisional=maybe", "provisional"),
    ] {
        let (status, _, body) = get(&state, uri, &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(body["error"]["details"][0]["field"], field, "{uri}: {body}");
    }
    // The 24h table does not exist yet.
    assert_eq!(get(&state, "/trending?window=24h", &[]).await.0, StatusCode::NOT_FOUND);
    // Only provisional windows in it: 404 by default, saying where they are.
    let mut daily = GoldTable::open(&lake, "trending_now_24h").await.unwrap();
    daily.replace(vec![window_as(BASE, 3, BASE + HOUR, false)], None).await.unwrap();
    cache.refresh().await.unwrap();
    let (status, _, body) = get(&state, "/trending?window=24h", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"]["message"].as_str().unwrap().contains("provisional=true"), "{body}");
    assert_eq!(get(&state, "/trending?window=24h&provisional=true", &[]).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn trending_delta() {
    trending(Format::Delta).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn trending_parquet() {
    trending(Format::Parquet).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_background_refresh_picks_up_new_windows() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path(), Format::Delta).unwrap();
    let cache = TrendingCache::new(lake.clone(), vec![reco_core::TRENDING_WINDOWS[0]], 100);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(cache.clone().run(Duration::from_millis(50), shutdown.clone()));
    let mut table = GoldTable::open(&lake, "trending_now_1h").await.unwrap();
    table.replace(vec![window(BASE, 5, BASE + HOUR)], None).await.unwrap();
    let state = state_with(cache);
    let seen = reco_testkit::wait_until(Duration::from_secs(10), || async {
        get(&state, "/trending", &[]).await.0 == StatusCode::OK
    })
    .await;
    assert!(seen, "the cache never picked up the new gold version");
    shutdown.cancel();
    task.await.unwrap();
}
