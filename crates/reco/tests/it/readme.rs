//! The README's examples, run as a new user runs them: the shell blocks are read from README.md
//! and executed (curl against a fresh `reco up` with the default settings, only the ports
//! moved), and the output the README shows is what comes back.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use reco_testkit::{
    http,
    readme::{block_after, readme},
    up::RecoUp,
};
use serde_json::Value;

/// Runs README shell text with the API's address in place of `localhost:8000`.
fn run_shell(script: &str, api: &str) -> String {
    let script = script.replace("localhost:8000", api);
    let out = Command::new("bash").args(["-euo", "pipefail", "-c", &script]).output().expect("bash");
    assert!(out.status.success(), "README commands failed: {}\n{script}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The JSON the README shows after the command starting with `command`: its `# ` comment lines,
/// with `…` (quoted or not) for values that change from run to run (returned as `null`).
fn shown_output(block: &str, command: &str) -> Value {
    let after = &block[block.find(command).unwrap_or_else(|| panic!("README runs {command:?}"))..];
    let text: String = after
        .lines()
        .skip(1)
        .map_while(|l| l.trim_start().strip_prefix("# "))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\"…\"", "null")
        .replace('…', "null");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("README's output of {command:?} is JSON: {e}\n{text}"))
}

/// Runs the example under `heading`: its posts, then its query until it answers as shown
/// (within `within` of the posts, standing in for the example's `sleep`); returns the answer
/// with the fields the README shows as `…` set to `null`, what the README shows, and how long
/// it took.
async fn run_example(api: &str, heading: &str, within: Duration) -> (Value, Value, Duration) {
    let block = block_after(&readme(), heading);
    let (posts, rest) = block.split_once("\nsleep ").expect("the example posts, then sleeps");
    let query = rest.lines().skip(1).find(|l| l.starts_with("curl")).expect("then queries").to_owned();
    let started = Instant::now();
    run_shell(posts, api);
    let shown = shown_output(&block, &query);
    let uri = query.split('\'').nth(1).unwrap().replace("localhost:8000", "");
    // Until the answer is the one shown (a 200 may come before: a user's list from trending
    // until the API has read their post), or `within` has passed.
    loop {
        let r = http::get(api, &uri).await.unwrap();
        let last = format!("{} {}", r.status, r.text());
        if r.status == 200 {
            let got = null_where_shown_null(serde_json::from_str::<Value>(&r.text()).unwrap(), &shown);
            if got == shown || started.elapsed() >= within {
                return (got, shown, started.elapsed());
            }
        }
        assert!(started.elapsed() < within, "{heading}: no answer {within:?} after the posts; last: {last}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `got` with every field that `shown` has as `null` set to `null` too (values that change from
/// run to run), arrays element by element.
fn null_where_shown_null(mut got: Value, shown: &Value) -> Value {
    match (&mut got, shown) {
        (Value::Object(g), Value::Object(s)) => {
            for (k, v) in s {
                if let Some(field) = g.get_mut(k) {
                    *field = if v.is_null() { Value::Null } else { null_where_shown_null(field.take(), v) };
                }
            }
        }
        (Value::Array(g), Value::Array(s)) => {
            for (field, v) in g.iter_mut().zip(s) {
                *field = null_where_shown_null(field.take(), v);
            }
        }
        _ => {}
    }
    got
}

/// CONTRACTS §5 through the README: a few events in one hour of 2019 posted to a fresh lake, then
/// the newest complete 1 h window appears within seconds (partitions no event went to hold
/// nothing back) and is exactly what the README shows. Then the recommendations example, on
/// the same platform as a reader following the README has it: the similar items it shows, and
/// a user's recommendations from them one post later.
#[tokio::test(flavor = "multi_thread")]
async fn the_trending_similar_items_and_recommendations_examples_answer_as_shown() {
    let dir = tempfile::tempdir().unwrap();
    // The README's defaults: SQLite broker storage, every job setting as shipped.
    let up = RecoUp::start(env!("CARGO_BIN_EXE_reco"), dir.path(), &[("RECO_BROKER_STORAGE", "sqlite")]);
    let api = up.api();
    let (got, shown, took) = run_example(&api, "### Trending now", Duration::from_secs(20)).await;
    eprintln!("trending: the complete window {took:?} after the first post");
    assert_eq!(got, shown, "GET /trending serves what the README shows");

    // Applied once the inputs are quiet for the idle timeout (60 s), as the README says.
    let (got, shown, took) = run_example(&api, "### Recommendations", Duration::from_secs(90)).await;
    eprintln!("similar items: the list {took:?} after the first post");
    assert_eq!(got, shown, "GET /items/{{id}}/similar serves what the README shows");

    // The user's view of u7 and u8's sessions, one post later.
    let (got, shown, took) = run_example(&api, "### Recommendations: for a user", Duration::from_secs(5)).await;
    eprintln!("recommendations: the list {took:?} after the post");
    assert_eq!(got, shown, "GET /users/{{id}}/recommendations serves what the README shows");
    assert!(up.stop().success());
}
