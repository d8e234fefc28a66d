//! Item neighbours end to end through `reco up` (API → Kafka → silver → gold → GET
//! /items/{id}/similar): views, clicks and ratings of many users, posted fast in uneven bursts
//! with pauses, become an `item_neighbors` table equal to an independent recount of the events
//! this test posted (`reco_testkit::neighbors`, the documented rules), and the API serves those
//! lists; an item gold never saw is a 404 in the usual error shape.

use std::time::Duration;

use reco_lake::{Format, Lake};
use reco_testkit::{
    http,
    neighbors::{Event, Kind, Rules, Step, published, recount, same_lists},
    up::RecoUp,
    wait_until, xorshift,
};
use serde_json::{Value, json};

/// 2019-03-01T00:00:00Z in microseconds.
const BASE: i64 = 1_551_398_400_000_000;
const EVENTS: usize = 2500;

/// In event-time order, as live traffic arrives: 60 users of uneven activity in four taste
/// groups, sessions ending by gaps (a few named), views, clicks and ratings (some low).
fn interactions() -> Vec<Event> {
    let mut next = xorshift(0x005E_ED0F_2019);
    let mut t = BASE;
    (0..EVENTS)
        .map(|_| {
            t += if next().is_multiple_of(30) { 45 * 60_000_000 } else { (next() % 60) as i64 * 1_000_000 };
            let user = (next() % 60).min(next() % 60);
            let item = (user % 4) * 12 + (next() % 12).min(next() % 12);
            let kind = match next() % 10 {
                0..=5 => Kind::View,
                6 | 7 => Kind::Click,
                _ => Kind::Rating(1.0 + (next() % 9) as f64 / 2.0),
            };
            let session = user.is_multiple_of(7).then(|| format!("s{user}-{}", (t - BASE) / 7_200_000_000));
            Event { user: format!("u{user}"), item: format!("m{item}"), session, kind, time_us: t }
        })
        .collect()
}

fn as_json(e: &Event) -> Value {
    let (kind, rating) = match e.kind {
        Kind::View => ("view", None),
        Kind::Click => ("click", None),
        Kind::Rating(r) => ("rating", Some(r)),
    };
    let mut v = json!({"type": kind, "user_id": e.user, "item_id": e.item, "timestamp": e.time_us / 1000});
    if let Some(r) = rating {
        v["rating"] = json!(r);
    }
    if let Some(s) = &e.session {
        v["session_id"] = json!(s);
    }
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn posted_interactions_become_exact_neighbour_lists_served_by_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let up = RecoUp::start(
        env!("CARGO_BIN_EXE_reco"),
        dir.path(),
        &[
            ("RECO_SILVER_MAX_BATCH_AGE_MS", "300"),
            ("RECO_GOLD_POLL_INTERVAL_MS", "200"),
            ("RECO_GOLD_IDLE_TIMEOUT_MS", "2000"),
        ],
    );
    let api = up.api();
    let events = interactions();
    // Uneven bursts, 1 to 300 events a request, with pauses now and then.
    let mut next = xorshift(77);
    let mut rest = &events[..];
    while !rest.is_empty() {
        let n = (1 + next() % 300) as usize;
        let (burst, tail) = rest.split_at(n.min(rest.len()));
        let body = Value::Array(burst.iter().map(as_json).collect());
        let response = http::post_json(&api, "/events", &body).await.unwrap();
        assert_eq!(response.status, 202, "{}", response.text());
        if next().is_multiple_of(4) {
            tokio::time::sleep(Duration::from_millis(next() % 400)).await;
        }
        rest = tail;
    }

    let mut steps: Vec<Step> = events.iter().cloned().map(Step::Event).collect();
    steps.push(Step::Advance(events.last().unwrap().time_us));
    let expected = recount(&Rules::default(), &steps);
    assert!(expected.len() >= 30, "the posted sessions make lists: {}", expected.len());
    let lake = Lake::new(dir.path(), Format::Delta).unwrap();
    let settled =
        wait_until(Duration::from_secs(90), || async { same_lists(&published(&lake).await, &expected) }).await;
    if !settled {
        let got = published(&lake).await;
        let differ: Vec<_> = expected.iter().filter(|(k, v)| got.get(*k) != Some(v)).take(2).collect();
        panic!(
            "item_neighbors != recount: {} items expected, {} published; e.g. {differ:?}",
            expected.len(),
            got.len()
        );
    }

    // The API serves the lists (after its refresh), most similar first, `limit` of them.
    let (item, list) = expected.iter().max_by_key(|(_, l)| l.len()).unwrap();
    let uri = format!("/items/{item}/similar?limit=5");
    // The API re-reads the table every second: wait until it has read the version checked
    // above (the first neighbour as recounted), not merely until it has some list.
    let first = list[0].0.clone();
    let served = wait_until(Duration::from_secs(10), || async {
        let r = http::get(&api, &uri).await.unwrap();
        r.status == 200 && serde_json::from_str::<Value>(&r.text()).unwrap()["items"][0]["item_id"] == first.as_str()
    });
    assert!(served.await, "GET {uri} serves the published list");
    let response = http::get(&api, &uri).await.unwrap();
    let body: Value = serde_json::from_str(&response.text()).unwrap();
    assert_eq!(body["item_id"], item.as_str());
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), list.len().min(5));
    for (got, (id, score, support)) in items.iter().zip(list) {
        assert_eq!(got["item_id"], id.as_str(), "{body}");
        assert_eq!(got["support"].as_u64(), Some(u64::from(*support)));
        assert!((got["score"].as_f64().unwrap() - score).abs() < 1e-9, "{body}");
    }
    assert!(response.headers.contains_key("etag"));

    let unknown = http::get(&api, "/items/never-seen/similar").await.unwrap();
    assert_eq!(unknown.status, 404);
    let error: Value = serde_json::from_str(&unknown.text()).unwrap();
    assert_eq!(error["error"]["code"], "unknown_item", "{error}");
    let bad = http::get(&api, &format!("/items/{item}/similar?limit=0")).await.unwrap();
    assert_eq!(bad.status, 400);

    let metrics = reco_testkit::Samples::parse(&http::get(&api, "/metrics").await.unwrap().text());
    let endpoint = [("endpoint", "/items/{item_id}/similar"), ("method", "GET"), ("status", "200")];
    assert!(metrics.value("http_requests_total", &endpoint) >= 2.0, "the endpoint is counted in the HTTP metrics");
    assert!(up.stop().success(), "clean exit");
}
