//! The web console in a real browser (headless Chromium through chromedriver) against a running
//! `reco up`: the pipeline numbers follow the events this test posts and equal `/metrics`, the
//! trending lists equal a recount of the posted events, a trending item opens its item view, the
//! explore views show what the API answers, no page logs a console error, the page fits a phone's
//! width, and with API tokens the console shows nothing until given one. Screenshots (desktop and
//! narrow) go to `$CARGO_TARGET_TMPDIR/console/`.

use std::{path::PathBuf, time::Duration};

use chrono::DateTime;
use reco_testkit::{Samples, browser::Browser, gold::recount, http, up::RecoUp, wait_for};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// The README's trending example plus two users who visit m50, m51, m52 together and one who
/// views m50: enough for complete windows, neighbour lists and a user's recommendations.
fn batches() -> Vec<Vec<Value>> {
    let at = |hm: &str| format!("2019-03-01T{hm}:00Z");
    let mut out: Vec<Vec<Value>> = ["10", "10", "10", "11"]
        .iter()
        .map(|h| {
            vec![
                json!({"type": "view", "user_id": "u1", "item_id": "m1", "timestamp": at(&format!("{h}:01"))}),
                json!({"type": "click", "user_id": "u2", "item_id": "m2", "timestamp": at(&format!("{h}:02"))}),
            ]
        })
        .collect();
    for user in ["u7", "u8"] {
        out.push(vec![
            json!({"type": "view", "user_id": user, "item_id": "m50", "timestamp": at("10:20")}),
            json!({"type": "view", "user_id": user, "item_id": "m51", "timestamp": at("10:21")}),
            json!({"type": "click", "user_id": user, "item_id": "m52", "timestamp": at("10:22")}),
        ]);
    }
    out.push(vec![json!({"type": "view", "user_id": "u9", "item_id": "m50", "timestamp": at("10:30")})]);
    // Later events from a dozen users, so every partition of both tables has one and the
    // watermark passes the windows above.
    out.push(
        (10..22)
            .flat_map(|u| {
                [
                    json!({"type": "view", "user_id": format!("u{u}"), "item_id": "m60", "timestamp": at("11:05")}),
                    json!({"type": "click", "user_id": format!("u{u}"), "item_id": "m61", "timestamp": at("11:06")}),
                ]
            })
            .collect(),
    );
    out
}

fn digits(text: &str) -> Option<f64> {
    let kept: String = text.chars().filter(|c| c.is_ascii_digit() || *c == '.').collect();
    kept.parse().ok()
}

async fn metrics(api: &str) -> Samples {
    Samples::parse(&http::get(api, "/metrics").await.unwrap().text())
}

fn sum(samples: &Samples, name: &str) -> f64 {
    samples.matching(name, &[]).map(|s| s.value).sum()
}

fn shots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The console's shown value of a `data-metric` cell, once it equals `want`.
async fn shown_metric(b: &Browser, metric: &str, want: f64) -> Option<f64> {
    let css = format!("[data-metric=\"{metric}\"]");
    wait_for(WAIT, || async { b.text(&css).await.as_deref().and_then(digits).filter(|v| *v == want) }).await
}

/// Fails on any error the pages logged: script errors, CSP refusals, failed loads.
async fn no_console_errors(b: &Browser, step: &str) {
    let severe: Vec<_> = b.console_log().await.into_iter().filter(|e| e.level == "SEVERE").collect();
    assert!(severe.is_empty(), "{step}: console errors {severe:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn console_shows_the_pipeline_trending_and_recommendations() {
    let dir = tempfile::tempdir().unwrap();
    // Gold applies co-visits once the watermark passes them or the input has been quiet for the
    // idle timeout: a short one, since this test's last events come in one burst.
    let env = [
        ("RECO_SILVER_MAX_BATCH_AGE_MS", "200"),
        ("RECO_GOLD_POLL_INTERVAL_MS", "200"),
        ("RECO_GOLD_IDLE_TIMEOUT_MS", "2000"),
    ];
    let up = RecoUp::start(env!("CARGO_BIN_EXE_reco"), dir.path(), &env);
    let api = up.api();
    let b = Browser::start(1280, 900).await;

    b.goto(&format!("http://{api}/")).await;
    assert!(shown_metric(&b, "reco_api_events_accepted_total", 0.0).await.is_some(), "pipeline before any event");

    // Posted as traffic arrives: bursts of concurrent requests, then a pause.
    let batches = batches();
    let posted: usize = batches.iter().map(Vec::len).sum();
    for burst in batches.chunks(3) {
        let sends: Vec<_> = burst
            .iter()
            .map(|batch| {
                let (api, body) = (api.clone(), Value::from(batch.clone()));
                tokio::spawn(async move { http::post_json(&api, "/events", &body).await })
            })
            .collect();
        for send in sends {
            assert_eq!(send.await.unwrap().unwrap().status, 202);
        }
    }
    let posted_at = std::time::Instant::now();
    let accepted = shown_metric(&b, "reco_api_events_accepted_total", posted as f64).await;
    println!("console showed {posted} accepted events {:?} after the last post", posted_at.elapsed());
    assert!(accepted.is_some(), "the console never showed the {posted} accepted events");
    assert!(shown_metric(&b, "reco_silver_rows_written_total", posted as f64).await.is_some(), "silver rows");
    let m = metrics(&api).await;
    assert_eq!(sum(&m, "reco_api_events_accepted_total"), posted as f64, "/metrics agrees");
    let silver: f64 = m
        .matching("reco_silver_rows_written_total", &[])
        .filter(|s| !s.labels["table"].contains("_deadletter"))
        .map(|s| s.value)
        .sum();
    assert_eq!(silver, posted as f64, "/metrics agrees");
    let inputs = b.run("return document.querySelectorAll('#stage-watermark li').length", json!([])).await;
    assert!(inputs.as_u64().unwrap_or(0) > 0, "gold's inputs are listed with their watermarks");
    std::fs::write(shots().join("pipeline-desktop.png"), b.screenshot().await).unwrap();
    no_console_errors(&b, "pipeline").await;

    // Trending: the complete 1 h window the console shows is the recount of what was posted.
    b.click("nav a[data-view=trending]").await;
    let css = "#trending-1h section[data-complete=true]";
    let script = format!(
        "const s = document.querySelector('{css}'); \
         return s ? [s.dataset.start, [...s.querySelectorAll('tbody tr td:nth-child(2)')].map(td => td.textContent)] : null"
    );
    let window = wait_for(WAIT, || async {
        let v = b.run(&script, json!([])).await;
        let holds = v[1].as_array().is_some_and(|items| items.contains(&json!("m52")));
        holds.then(|| (v[0].as_str().unwrap_or_default().to_owned(), v[1].clone()))
    });
    let (start, shown) = window.await.expect("a complete 1 h window holding m52 on the trending page");
    let events: Vec<(String, bool, i64)> = batches
        .iter()
        .flatten()
        .map(|e| {
            let t = DateTime::parse_from_rfc3339(e["timestamp"].as_str().unwrap()).unwrap().timestamp_micros();
            (e["item_id"].as_str().unwrap().to_owned(), e["type"] == "click", t)
        })
        .collect();
    let start_us = DateTime::parse_from_rfc3339(&start).unwrap().timestamp_micros();
    let want: Vec<String> = recount(&events, 20)[&("1h".to_owned(), start_us)].iter().map(|r| r.0.clone()).collect();
    assert_eq!(shown, json!(want), "the 1 h window starting {start}");
    std::fs::write(shots().join("trending-desktop.png"), b.screenshot().await).unwrap();
    no_console_errors(&b, "trending").await;

    // A trending item opens its item view: m52's neighbours once gold has published them.
    let neighbours = wait_for(WAIT, || async {
        let r = http::get(&api, "/items/m52/similar").await.ok()?;
        (r.status == 200).then(|| r.json())
    });
    let neighbours = neighbours.await.expect("gold publishes m52's neighbours");
    b.click(&format!("{css} a[href=\"#/item/m52\"]")).await;
    let listed = wait_for(WAIT, || async {
        let v = b
            .run(
                "return [...document.querySelectorAll('#similar tbody tr td:nth-child(2)')].map(td => td.textContent)",
                json!([]),
            )
            .await;
        v.as_array().filter(|a| !a.is_empty()).cloned()
    });
    let want: Vec<Value> = neighbours["items"].as_array().unwrap().iter().map(|i| i["item_id"].clone()).collect();
    assert_eq!(listed.await.expect("the item view lists m52's similar items"), want);
    assert!(b.url().await.ends_with("#/item/m52"));
    no_console_errors(&b, "item view").await;

    // A user's recommendations and an anonymous session, as the API answers them.
    b.goto(&format!("http://{api}/#/user/u9")).await;
    let rows = "table.recommendations tbody tr td:first-child";
    let same = wait_for(WAIT, || async {
        let answer = http::get(&api, "/users/u9/recommendations?limit=20").await.ok()?.json();
        let want: Vec<Value> = answer["items"].as_array()?.iter().map(|i| i["item_id"].clone()).collect();
        let shown = b
            .run(&format!("return [...document.querySelectorAll('{rows}')].map(td => td.textContent)"), json!([]))
            .await;
        (!want.is_empty() && want.contains(&json!("m51")) && shown == json!(want)).then_some(want)
    });
    assert!(same.await.is_some(), "u9's recommendations (m51 among them) as the API answers them");
    b.click("nav a[data-view=explore]").await;
    b.type_into("#session-input", "m50").await;
    b.click("#session-form button").await;
    let session = wait_for(WAIT, || async { b.text("#session-result").await.filter(|t| t.contains("m51")) }).await;
    assert!(session.is_some(), "a session of m50 is recommended m51");
    let unlabelled = b
        .run("return [...document.querySelectorAll('input')].filter(i => i.labels.length === 0).length", json!([]))
        .await;
    assert_eq!(unlabelled, json!(0), "every input has a label");
    no_console_errors(&b, "explore").await;

    // A phone's width: nothing wider than the screen, screenshots of both pages.
    b.resize(390, 844).await;
    for (page, file) in [("#/pipeline", "pipeline-narrow.png"), ("#/trending", "trending-narrow.png")] {
        b.goto(&format!("http://{api}/{page}")).await;
        wait_for(WAIT, || async { b.text("main h1").await }).await.expect("a page heading");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let overflow = b
            .run("return document.documentElement.scrollWidth - document.documentElement.clientWidth", json!([]))
            .await;
        assert_eq!(overflow, json!(0), "{page} is wider than a 390 px screen");
        std::fs::write(shots().join(file), b.screenshot().await).unwrap();
    }
    no_console_errors(&b, "narrow").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn console_with_tokens_shows_nothing_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "console:console-0123456789abcdef\n").unwrap();
    let lake = dir.path().join("lake");
    let up = RecoUp::start(env!("CARGO_BIN_EXE_reco"), &lake, &[("RECO_API_TOKENS_FILE", tokens.to_str().unwrap())]);
    let api = up.api();
    let b = Browser::start(1280, 900).await;

    b.goto(&format!("http://{api}/")).await;
    let asked = wait_for(WAIT, || async {
        let hidden = b.run("return document.getElementById('token').hidden", json!([])).await;
        (hidden == json!(false)).then_some(())
    });
    assert!(asked.await.is_some(), "the console asks for a token");
    assert_eq!(b.text("#pipeline").await, None, "no pipeline numbers without a token");

    b.type_into("#token-input", "not-the-token-0000000000").await;
    b.click("#token-form button").await;
    let refused = wait_for(WAIT, || async { b.text("#token-error").await.filter(|t| t.contains("refused")) }).await;
    assert!(refused.is_some(), "a wrong token is refused");
    assert_eq!(b.text("#pipeline").await, None);

    b.type_into("#token-input", "console-0123456789abcdef").await;
    b.click("#token-form button").await;
    assert!(shown_metric(&b, "reco_api_events_accepted_total", 0.0).await.is_some(), "the pipeline with the token");
    let stored = b.run("return [sessionStorage.length, localStorage.length, document.cookie]", json!([])).await;
    assert_eq!(stored, json!([1, 0, ""]), "the token is kept in the tab only");
    std::fs::write(shots().join("token-desktop.png"), b.screenshot().await).unwrap();
}
