//! Item neighbours end to end through `reco up` (API → Kafka → silver → gold → GET
//! /items/{id}/similar): views, clicks and ratings of many users, posted fast in uneven bursts
//! with pauses, become an `item_neighbors` table equal to an independent recount of the events
//! this test posted (`reco_testkit::neighbors`, the documented rules), and the API serves those
//! lists; an item gold never saw is a 404 in the usual error shape. Users' recommendations
//! equal the same recount's lists combined through each user's posted history (seen items
//! left out, `because` right, trending for a new user), a user's next interaction shows at
//! once, and an anonymous session gets the same rule through `POST /recommendations`.

use std::time::Duration;

use reco_lake::{Format, Lake};
use reco_testkit::{
    http,
    neighbors::{
        Event, HISTORY, Kind, Lists, RECENCY, Rules, Step, published, recommend, recount, same_lists, user_history,
    },
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
    // The API re-reads the table every second: wait until it serves the version checked above
    // (an earlier one, published while the stream was still coming, can share its first
    // neighbour); a wrong list never matches and fails after 10 s.
    let matches = |body: &Value| {
        let items = body["items"].as_array().cloned().unwrap_or_default();
        body["item_id"] == item.as_str()
            && items.len() == list.len().min(5)
            && items.iter().zip(list).all(|(got, (id, score, support))| {
                got["item_id"] == id.as_str()
                    && got["support"].as_u64() == Some(u64::from(*support))
                    && got["score"].as_f64().is_some_and(|s| (s - score).abs() < 1e-9)
            })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = http::get(&api, &uri).await.unwrap();
        let body: Value = serde_json::from_str(&r.text()).unwrap_or_default();
        if r.status == 200 && r.headers.contains_key("etag") && matches(&body) {
            break;
        }
        let status = r.status;
        assert!(
            std::time::Instant::now() < deadline,
            "GET {uri} serves the published list {list:?}; last answer {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let unknown = http::get(&api, "/items/never-seen/similar").await.unwrap();
    assert_eq!(unknown.status, 404);
    let error: Value = serde_json::from_str(&unknown.text()).unwrap();
    assert_eq!(error["error"]["code"], "unknown_item", "{error}");
    let bad = http::get(&api, &format!("/items/{item}/similar?limit=0")).await.unwrap();
    assert_eq!(bad.status, 400);

    check_recommendations(&api, &lake, &events, &expected).await;
    let metrics = reco_testkit::Samples::parse(&http::get(&api, "/metrics").await.unwrap().text());
    let endpoint = [("endpoint", "/items/{item_id}/similar"), ("method", "GET"), ("status", "200")];
    assert!(metrics.value("http_requests_total", &endpoint) >= 2.0, "the endpoint is counted in the HTTP metrics");
    let endpoint = [("endpoint", "/users/{user_id}/recommendations"), ("method", "GET"), ("status", "200")];
    assert!(metrics.value("http_requests_total", &endpoint) >= 5.0, "the endpoint is counted in the HTTP metrics");
    assert!(up.stop().success(), "clean exit");
}

async fn get_json(api: &str, uri: &str) -> Value {
    let r = http::get(api, uri).await.unwrap();
    assert_eq!(r.status, 200, "GET {uri}: {}", r.text());
    serde_json::from_str(&r.text()).unwrap()
}

/// `want` (from the recount) followed by the trending fill, as the API should answer.
fn expected_items(
    want: &[(String, f64, Vec<String>)],
    trending: &[String],
    seen: &[String],
    limit: usize,
) -> Vec<String> {
    let mut items: Vec<String> = want.iter().map(|w| w.0.clone()).collect();
    for t in trending {
        if items.len() < limit && !seen.contains(t) && !items.contains(t) {
            items.push(t.clone());
        }
    }
    items
}

/// The served list equals the recount: same items in order, scores and `because` of the
/// combined ones, the fill after them; no seen item.
fn same_recommendations(
    body: &Value,
    want: &[(String, f64, Vec<String>)],
    trending: &[String],
    seen: &[String],
) -> bool {
    let items = body["items"].as_array().unwrap();
    let ids: Vec<String> = items.iter().map(|i| i["item_id"].as_str().unwrap().to_owned()).collect();
    if ids != expected_items(want, trending, seen, 10) {
        return false;
    }
    want.iter().zip(items).all(|((_, score, because), got)| {
        (got["score"].as_f64().unwrap() - score).abs() < 1e-9 && got["because"] == json!(because)
    })
}

/// The list a trending fill takes from: the newest 1-hour window, provisional or not.
async fn trending_now(api: &str) -> Vec<String> {
    get_json(api, "/trending?window=1h&provisional=true&limit=100").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn check_recommendations(api: &str, lake: &Lake, events: &[Event], lists: &Lists) {
    let rules = Rules::default();
    assert!(!trending_now(api).await.is_empty(), "the posted views make a trending list");
    // Every check below reads the trending list afresh beside the answer it checks: gold may
    // still publish a newer window meanwhile (its last provisional one), and the fill follows.

    // Users of every activity level. Their histories are followed from the topics, which
    // the API may still be reading: wait for each to match.
    for user in ["u0", "u3", "u11", "u25", "u40"] {
        let (history, seen) = user_history(&rules, events, user, HISTORY);
        let want = recommend(lists, &history, &seen, RECENCY, 10);
        let uri = format!("/users/{user}/recommendations?limit=10");
        let matched = wait_until(Duration::from_secs(10), || async {
            same_recommendations(&get_json(api, &uri).await, &want, &trending_now(api).await, &seen)
        })
        .await;
        let (body, trending) = (get_json(api, &uri).await, trending_now(api).await);
        assert!(matched, "GET {uri} = {body}\nexpected {want:?} then trending {trending:?}");
        let source = if want.is_empty() {
            "trending"
        } else if want.len() < 10 {
            "neighbors+trending"
        } else {
            "neighbors"
        };
        assert_eq!(body["source"], source, "{body}");
    }
    let fill_is_trending = wait_until(Duration::from_secs(10), || async {
        let (new, trending) = (get_json(api, "/users/never-seen/recommendations").await, trending_now(api).await);
        new["items"].as_array().unwrap().len() == trending.len().min(10)
            && same_recommendations(&new, &[], &trending, &[])
    })
    .await;
    let new = get_json(api, "/users/never-seen/recommendations").await;
    assert!(fill_is_trending, "{new}\nexpected trending {:?}", trending_now(api).await);
    assert_eq!(new["source"], "trending", "{new}");

    // A session: the same rule over the items given, oldest first, each weighing as a view.
    let session = ["m0", "m5", "m13"];
    let history: Vec<(String, f64)> = session.iter().rev().map(|i| (i.to_string(), rules.view_weight)).collect();
    let seen: Vec<String> = session.iter().map(|i| i.to_string()).collect();
    let want = recommend(lists, &history, &seen, RECENCY, 10);
    assert!(!want.is_empty());
    let request = json!({"items": session, "limit": 10});
    let session_matches = wait_until(Duration::from_secs(10), || async {
        let r = http::post_json(api, "/recommendations", &request).await.unwrap();
        let body: Value = serde_json::from_str(&r.text()).unwrap_or_default();
        r.status == 200 && same_recommendations(&body, &want, &trending_now(api).await, &seen)
    })
    .await;
    let r = http::post_json(api, "/recommendations", &request).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(session_matches, "{}\nexpected {want:?}", r.text());
    for (bad, field) in [
        (json!({"items": []}), "items"),
        (json!({"items": ["a", 1.5]}), "items[1]"),
        (json!({"items": ["a"], "limit": 0}), "limit"),
    ] {
        let r = http::post_json(api, "/recommendations", &bad).await.unwrap();
        assert_eq!(r.status, 422, "{bad}: {}", r.text());
        let error: Value = serde_json::from_str(&r.text()).unwrap();
        assert_eq!(error["error"]["details"][0]["field"], field, "{error}");
    }

    // The user's next interaction: the item they click is gone from their list and leads
    // their history at once (gold's lists may change a little later, when it applies it).
    let (history, seen) = user_history(&rules, events, "u3", HISTORY);
    let x = recommend(lists, &history, &seen, RECENCY, 1)[0].0.clone();
    let t = events.last().unwrap().time_us + 60_000_000;
    let click = json!({"type": "click", "user_id": "u3", "item_id": x, "timestamp": t / 1000});
    let posted = std::time::Instant::now();
    assert_eq!(http::post_json(api, "/events", &click).await.unwrap().status, 202);
    let gone = wait_until(Duration::from_secs(5), || async {
        let body = get_json(api, "/users/u3/recommendations").await;
        body["items"].as_array().unwrap().iter().all(|i| i["item_id"] != x.as_str())
    })
    .await;
    assert!(gone, "the clicked item {x} left u3's recommendations");
    eprintln!("u3's click on {x} showed in their recommendations after {:?}", posted.elapsed());
    // Then the whole list follows the rule over the new history, with the lists gold
    // publishes once it has applied the click too.
    let mut after = events.to_vec();
    after.push(Event { user: "u3".into(), item: x.clone(), session: None, kind: Kind::Click, time_us: t });
    let (history, seen) = user_history(&rules, &after, "u3", HISTORY);
    assert_eq!(history[0], (x.clone(), rules.click_weight));
    let settled = wait_until(Duration::from_secs(30), || async {
        // The click counts in trending too, so the fill may change as well.
        let want = recommend(&published(lake).await, &history, &seen, RECENCY, 10);
        same_recommendations(&get_json(api, "/users/u3/recommendations").await, &want, &trending_now(api).await, &seen)
    })
    .await;
    let body = get_json(api, "/users/u3/recommendations").await;
    assert!(settled, "u3's list after the click follows the rule: {body}");
}
