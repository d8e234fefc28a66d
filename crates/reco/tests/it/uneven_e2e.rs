//! Gold through `reco up` under uneven input (issue 15): a fast historic replay of two months
//! posted as fast as the API takes it, and a lull in live traffic. Expectations come from the
//! events this test posted (recounted here), never from what gold or silver accepted.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reco_lake::{Format, Lake};
use reco_testkit::{
    Samples,
    gold::{Input, Windows, published_with_state, recount, silver_events},
    http,
    up::RecoUp,
    wait_until, xorshift,
};
use serde_json::{Value, json};

const MIN_MS: i64 = 60_000;
/// 2019-03-01T00:00:00Z in milliseconds.
const BASE_MS: i64 = 1_551_398_400_000;

async fn metrics(api: &str) -> Samples {
    Samples::parse(&http::get(api, "/metrics").await.unwrap().text())
}

fn sum(m: &Samples, name: &str) -> f64 {
    m.matching(name, &[]).map(|s| s.value).sum()
}

fn watermark_us(m: &Samples) -> i64 {
    (m.value("reco_gold_watermark_seconds", &[]) * 1e6).round() as i64
}

fn length_us(window: &str) -> i64 {
    if window == "1h" { 3_600_000_000 } else { 86_400_000_000 }
}

/// Two months of interactions in event-time order, views and clicks interleaved, users spread
/// over the partitions: posted in batches of 1,000 as fast as the API acknowledges them.
/// Every window the watermark passed is complete and equals the recount of the posted events;
/// the rest are provisional and equal it too; nothing was dropped or counted late.
#[tokio::test(flavor = "multi_thread")]
async fn a_fast_historic_replay_counts_every_event() {
    const DAYS: i64 = 61;
    const EVENTS: i64 = DAYS * 300;
    let dir = tempfile::tempdir().unwrap();
    let up = RecoUp::start(
        env!("CARGO_BIN_EXE_reco"),
        dir.path(),
        &[
            // Many small silver commits: each holds the partitions at different points.
            ("RECO_SILVER_MAX_BATCH_AGE_MS", "100"),
            ("RECO_GOLD_POLL_INTERVAL_MS", "200"),
            ("RECO_GOLD_IDLE_TIMEOUT_MS", "3000"),
            ("RECO_GOLD_CHECKPOINT_INTERVAL_SECS", "1"),
            ("RECO_GOLD_RETENTION_HOURS", "0"),
        ],
    );
    let api = up.api();
    let mut next = xorshift(0x5EED_1234_ABCD_0001);
    let mut posted: Vec<Input> = Vec::new();
    let events: Vec<Value> = (0..EVENTS)
        .map(|i| {
            let t = BASE_MS + i * DAYS * 24 * 60 * MIN_MS / EVENTS + (next() % 1000) as i64;
            let item = format!("m{}", (next() % 80).min(next() % 80));
            let click = next().is_multiple_of(3);
            posted.push((item.clone(), click, t * 1000));
            let kind = if click { "click" } else { "view" };
            json!({"type": kind, "user_id": format!("u{}", next() % 997), "item_id": item, "timestamp": t})
        })
        .collect();
    for batch in events.chunks(1000) {
        let response = http::post_json(&api, "/events", &Value::Array(batch.to_vec())).await.unwrap();
        assert_eq!(response.status, 202, "{}", response.text());
    }

    let lake = Lake::new(dir.path(), Format::Delta).unwrap();
    let drained =
        wait_until(Duration::from_secs(120), || async { silver_events(&lake).await.len() == posted.len() }).await;
    assert!(drained, "every posted event reaches silver");
    // Gold counted every event, then went idle and published the open windows provisionally.
    let counted = wait_until(Duration::from_secs(300), || async {
        let m = metrics(&api).await;
        sum(&m, "reco_gold_events_in_total") == posted.len() as f64
            && sum(&m, "reco_gold_windows_provisional_total") > 0.0
    })
    .await;
    let m = metrics(&api).await;
    assert_eq!(sum(&m, "reco_gold_beyond_horizon_events_total"), 0.0, "events dropped as beyond the horizon");
    assert_eq!(sum(&m, "reco_gold_late_events_total"), 0.0, "in-order events counted as late");
    assert!(counted, "gold did not count every event: {} of {}", sum(&m, "reco_gold_events_in_total"), posted.len());

    let expected = recount(&posted, 100);
    let newest_complete = |w: &Windows, wm: i64| w.keys().filter(|(n, s)| s + length_us(n) <= wm).count();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let (got, provisional) = loop {
        let now = published_with_state(&lake).await;
        if now.0 == expected || std::time::Instant::now() > deadline {
            break now;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    if got != expected {
        let wrong = expected.iter().filter(|(k, v)| got.get(*k) != Some(*v)).count();
        panic!("{wrong} of {} windows differ from the recount ({} published)", expected.len(), got.len());
    }
    let watermark = watermark_us(&metrics(&api).await);
    let newest = posted.iter().map(|e| e.2).max().unwrap();
    assert!(watermark > newest - 60 * 60_000_000, "the watermark reached the end of the replay: {watermark}");
    for (name, start) in expected.keys() {
        let ended = start + length_us(name) <= watermark;
        assert_eq!(provisional.contains(&(name.clone(), *start)), !ended, "window {name} {start}");
    }
    assert!(newest_complete(&expected, watermark) > 17_000, "two months of closed windows");
    assert!(up.stop().success(), "clean exit");
}

fn rfc3339_us(s: &str) -> i64 {
    DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros()
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Live traffic for the lull test: event time runs with the clock, `behind_ms` behind it.
struct Live {
    api: String,
    behind_ms: i64,
    next: Box<dyn FnMut() -> u64 + Send>,
    /// `GET /trending` answers checked against the watermark.
    checks: usize,
}

impl Live {
    fn event(&mut self, t_ms: i64) -> Value {
        let kind = if (self.next)().is_multiple_of(4) { "click" } else { "view" };
        let (user, item) = ((self.next)() % 50, (self.next)() % 10);
        json!({"type": kind, "user_id": format!("u{user}"), "item_id": format!("m{item}"), "timestamp": t_ms})
    }

    async fn post(&self, batch: Vec<Value>) {
        let r = http::post_json(&self.api, "/events", &Value::Array(batch)).await.unwrap();
        assert_eq!(r.status, 202, "{}", r.text());
    }

    /// `GET /trending` (default) serves a complete window that ends by the watermark.
    async fn check_trending(&mut self) {
        let r = http::get(&self.api, "/trending?window=1h").await.unwrap();
        let watermark = watermark_us(&metrics(&self.api).await);
        if r.status == 200 {
            let body = r.json();
            let end = rfc3339_us(body["window_end"].as_str().unwrap());
            assert!(end <= watermark, "GET /trending served a window ending after the watermark: {body}");
            assert_eq!(body["complete"], true, "{body}");
            self.checks += 1;
        }
    }

    /// Twenty events every 250 ms for `seconds`, checking `GET /trending` in between.
    async fn run(&mut self, seconds: u64) {
        let until = std::time::Instant::now() + Duration::from_secs(seconds);
        while std::time::Instant::now() < until {
            let t = now_ms() - self.behind_ms;
            let batch = (0..20).map(|k| self.event(t - k * 10)).collect();
            self.post(batch).await;
            self.check_trending().await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Windows of `length` sliding by `slide` (ms) that hold `t` and ended by `watermark_us`.
fn ended_windows_holding(t_ms: i64, length: i64, slide: i64, watermark_us: i64) -> i64 {
    let mut n = 0;
    let mut s = t_ms.div_euclid(slide) * slide;
    while s > t_ms - length {
        n += i64::from((s + length) * 1000 <= watermark_us);
        s -= slide;
    }
    n
}

/// Live traffic, a lull longer than the idle timeout, traffic again (the idle timeout is 5 s
/// here instead of 60 s, and the lull 12 s, to keep the test short). `GET /trending` never
/// serves a window ending after the watermark; the provisional windows are served only with
/// `provisional=true`; after the lull, on-time events are not late, and only the windows that
/// genuinely late events fall in are published again. One event dated 10 minutes ahead (a
/// client clock running fast) closes nothing early.
#[tokio::test(flavor = "multi_thread")]
async fn a_lull_publishes_provisional_windows_and_changes_no_lateness() {
    let dir = tempfile::tempdir().unwrap();
    let up = RecoUp::start(
        env!("CARGO_BIN_EXE_reco"),
        dir.path(),
        &[
            ("RECO_SILVER_MAX_BATCH_AGE_MS", "200"),
            ("RECO_GOLD_POLL_INTERVAL_MS", "200"),
            ("RECO_GOLD_IDLE_TIMEOUT_MS", "5000"),
        ],
    );
    // Event time runs with the clock, D behind it, so that it passes a 5-minute mark B plus the
    // lateness 20 s into the test: the 1 h window ending at B completes while traffic runs.
    let five = 5 * MIN_MS;
    let b = (now_ms() - 5 * MIN_MS + 20_000).div_euclid(five) * five;
    let behind_ms = now_ms() - (b + 5 * MIN_MS - 20_000);
    let mut live = Live { api: up.api(), behind_ms, next: Box::new(xorshift(7)), checks: 0 };
    // The last 15 minutes first (nothing is late before the first watermark).
    let start = now_ms() - behind_ms;
    let backlog = (0..300).map(|k| live.event(start - 15 * MIN_MS + k * 3000)).collect();
    live.post(backlog).await;
    live.run(15).await;
    // A client whose clock runs 10 minutes fast.
    let skewed =
        json!({"type": "view", "user_id": "skewed", "item_id": "from-the-future", "timestamp": now_ms() + 10 * MIN_MS});
    live.post(vec![skewed]).await;
    live.run(15).await;
    let m = metrics(&live.api).await;
    let watermark = watermark_us(&m);
    assert!(watermark <= (now_ms() - 5 * MIN_MS) * 1000, "the watermark ran ahead of the clock: {watermark}");
    assert!(watermark >= b * 1000, "the watermark passed B: {watermark} < {}", b * 1000);
    let r = http::get(&live.api, "/trending?window=1h").await.unwrap();
    assert_eq!(r.status, 200, "the window ending at B is complete: {}", r.text());
    assert!(r.json()["items"].as_array().unwrap().iter().all(|i| i["item_id"] != "from-the-future"));

    // The lull: all input idle → the open windows are published provisionally.
    let provisional_before = sum(&m, "reco_gold_windows_provisional_total");
    let lull_end = std::time::Instant::now() + Duration::from_secs(12);
    while std::time::Instant::now() < lull_end {
        live.check_trending().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let m = metrics(&live.api).await;
    assert!(sum(&m, "reco_gold_windows_provisional_total") > provisional_before, "no provisional publication");
    let watermark = watermark_us(&m);
    let p = http::get(&live.api, "/trending?window=1h&provisional=true").await.unwrap().json();
    assert_eq!(p["complete"], false, "{p}");
    assert!(rfc3339_us(p["window_end"].as_str().unwrap()) > watermark, "{p}");
    let republished_before = sum(&m, "reco_gold_windows_republished_total");
    assert_eq!(sum(&m, "reco_gold_late_events_total"), 0.0, "nothing posted so far is late");

    // Traffic again, on time, and three genuinely late events (20 minutes behind) among it.
    live.run(5).await;
    let late_at = now_ms() - behind_ms - 20 * MIN_MS;
    // One phone syncing what it recorded offline: one user, one kind, one request, so one
    // partition and one silver commit; each window holding them is republished once.
    let late = (0..3)
        .map(|k| json!({"type": "view", "user_id": "offline", "item_id": format!("m{k}"), "timestamp": late_at + k}))
        .collect();
    live.post(late).await;
    live.run(10).await;
    let m = metrics(&live.api).await;
    assert_eq!(sum(&m, "reco_gold_late_events_total"), 3.0, "only the three late events are late");
    let watermark = watermark_us(&m);
    let bound = ended_windows_holding(late_at, 60 * MIN_MS, 5 * MIN_MS, watermark)
        + ended_windows_holding(late_at, 24 * 60 * MIN_MS, 15 * MIN_MS, watermark);
    let republished = sum(&m, "reco_gold_windows_republished_total") - republished_before;
    assert!(republished >= 1.0 && republished <= bound as f64, "{republished} republished, bound {bound}");
    assert!(live.checks > 5, "GET /trending was checked while it served windows: {}", live.checks);
    assert!(up.stop().success(), "clean exit");
}
