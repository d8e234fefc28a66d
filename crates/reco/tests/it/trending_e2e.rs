//! End to end through `reco up` (API → Kafka → silver → gold → GET /trending), with five
//! hours of historic event time (a day in 2019) posted partly in order and partly out of
//! order: after draining, every published window of both tables equals a recount of the
//! posted events done here, row for row, and `GET /trending` serves the newest complete window
//! (and, with `provisional=true`, the newest window of all).

use std::time::Duration;

use chrono::{DateTime, Utc};
use reco_lake::{Format, Lake};
use reco_testkit::{
    gold::{Input, Windows, published, recount, silver_events},
    http,
    up::RecoUp,
    wait_until,
};
use serde_json::{Value, json};

const MIN_MS: i64 = 60_000;
/// 2019-03-01T00:00:00Z in milliseconds.
const BASE_MS: i64 = 1_551_398_400_000;
const EVENTS: usize = 4000;

/// Zipf-ish items over five hours; every fourth event a click.
fn events() -> Vec<Value> {
    let mut next = reco_testkit::xorshift(0x9E37_79B9_7F4A_7C15);
    (0..EVENTS)
        .map(|i| {
            let item = format!("m{}", (next() % 60).min(next() % 60).min(next() % 60));
            let t = BASE_MS + (i as i64 * 5 * 60 * MIN_MS) / EVENTS as i64;
            let kind = if next().is_multiple_of(4) { "click" } else { "view" };
            json!({"type": kind, "user_id": format!("u{}", next() % 500), "item_id": item, "timestamp": t})
        })
        .collect()
}

fn rfc3339(us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(us).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test(flavor = "multi_thread")]
async fn posted_history_becomes_exact_trending_windows() {
    let dir = tempfile::tempdir().unwrap();
    let up = RecoUp::start(
        env!("CARGO_BIN_EXE_reco"),
        dir.path(),
        &[
            ("RECO_SILVER_MAX_BATCH_AGE_MS", "300"),
            ("RECO_GOLD_POLL_INTERVAL_MS", "200"),
            ("RECO_GOLD_IDLE_TIMEOUT_MS", "3000"),
            ("RECO_GOLD_CHECKPOINT_INTERVAL_SECS", "1"),
        ],
    );
    let api = up.api();

    // The first 60 % in order; the rest in reverse order within 100-event batches (out of
    // order by up to ~7 minutes, beyond the allowed lateness, so windows are re-published).
    let all = events();
    let (in_order, rest) = all.split_at(EVENTS * 6 / 10);
    let mut batches: Vec<Vec<Value>> = in_order.chunks(100).map(<[Value]>::to_vec).collect();
    batches.extend(rest.chunks(100).map(|c| c.iter().rev().cloned().collect()));
    for batch in &batches {
        let response = http::post_json(&api, "/events", &Value::Array(batch.clone())).await.unwrap();
        assert_eq!(response.status, 202, "{}", response.text());
    }

    let lake = Lake::new(dir.path(), Format::Delta).unwrap();
    let drained = wait_until(Duration::from_secs(90), || async { silver_events(&lake).await.len() == EVENTS }).await;
    assert!(drained, "every posted event reaches silver");
    let posted: Vec<Input> = all
        .iter()
        .map(|e| {
            (e["item_id"].as_str().unwrap().to_owned(), e["type"] == "click", e["timestamp"].as_i64().unwrap() * 1000)
        })
        .collect();
    let expected = recount(&posted, 100);
    let settled = wait_until(Duration::from_secs(60), || async { published(&lake).await == expected }).await;
    if !settled {
        let last: Windows = published(&lake).await;
        let missing: Vec<_> = expected.keys().filter(|k| !last.contains_key(*k)).take(5).collect();
        let differ: Vec<_> = expected.iter().filter(|(k, v)| last.get(*k).is_some_and(|l| l != *v)).take(3).collect();
        panic!(
            "gold != recount: {} expected, {} published; missing {missing:?}; differing {differ:?}",
            expected.len(),
            last.len()
        );
    }
    assert!(expected.keys().filter(|(w, _)| w == "1h").count() >= 60, "five hours hold many 1h windows");

    // GET /trending serves the newest complete window of each table (the watermark passed its
    // end), items as recounted; `provisional=true` the newest of all.
    let metrics = reco_testkit::Samples::parse(&http::get(&api, "/metrics").await.unwrap().text());
    let watermark = (metrics.value("reco_gold_watermark_seconds", &[]) * 1e6) as i64;
    for (window, length, query) in
        [("1h", 3_600_000_000, ""), ("24h", 86_400_000_000, ""), ("1h", 3_600_000_000, "&provisional=true")]
    {
        let provisional = !query.is_empty();
        let (key, rows) =
            expected.iter().rfind(|((w, s), _)| w == window && (provisional || s + length <= watermark)).unwrap();
        let uri = format!("/trending?window={window}&limit=20{query}");
        let found = wait_until(Duration::from_secs(10), || async {
            let r = http::get(&api, &uri).await.unwrap();
            r.status == 200 && serde_json::from_str::<Value>(&r.text()).unwrap()["window_start"] == rfc3339(key.1)
        })
        .await;
        assert!(found, "GET {uri} serves the newest window {}", rfc3339(key.1));
        let body: Value = serde_json::from_str(&http::get(&api, &uri).await.unwrap().text()).unwrap();
        assert_eq!(body["complete"], !provisional, "{body}");
        let items = body["items"].as_array().unwrap();
        assert_eq!(items.len(), rows.len().min(20));
        for (item, (id, views, clicks, score, rank)) in items.iter().zip(rows) {
            assert_eq!(item["item_id"], id.as_str());
            assert_eq!((item["views"].as_i64(), item["clicks"].as_i64()), (Some(*views), Some(*clicks)));
            assert_eq!((item["score"].as_f64(), item["rank"].as_i64()), (Some(*score), Some(*rank as i64)));
        }
    }

    let metrics = reco_testkit::Samples::parse(&http::get(&api, "/metrics").await.unwrap().text());
    assert!(metrics.value("reco_gold_windows_published_total", &[("window", "1h")]) >= 60.0);
    assert!(metrics.value("reco_gold_watermark_seconds", &[]) > (BASE_MS / 1000) as f64);

    assert!(up.stop().success(), "clean exit");
}
