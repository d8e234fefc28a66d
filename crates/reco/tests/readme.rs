//! The README's examples, run as a new user runs them: the shell blocks are read from README.md
//! and executed (curl against a fresh `reco up` with the default settings, only the ports
//! moved), and the output the README shows is what comes back.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use reco_testkit::{http, up::RecoUp};
use serde_json::Value;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap()
}

/// The first ```sh block after the heading `heading`.
fn block_after(readme: &str, heading: &str) -> String {
    let section = &readme[readme.find(heading).unwrap_or_else(|| panic!("README has {heading:?}"))..];
    let start = section.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = section[start..].find("```").expect("the block ends");
    section[start..start + end].to_owned()
}

/// Runs README shell text with the API's address in place of `localhost:8000`.
fn run_shell(script: &str, api: &str) -> String {
    let script = script.replace("localhost:8000", api);
    let out = Command::new("bash").args(["-euo", "pipefail", "-c", &script]).output().expect("bash");
    assert!(out.status.success(), "README commands failed: {}\n{script}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The JSON the README shows after the command starting with `command`: its `# ` comment lines,
/// with `"…"` for values that change from run to run (returned as `null`).
fn shown_output(block: &str, command: &str) -> Value {
    let after = &block[block.find(command).unwrap_or_else(|| panic!("README runs {command:?}"))..];
    let text: String = after
        .lines()
        .skip(1)
        .map_while(|l| l.trim_start().strip_prefix("# "))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\"…\"", "null");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("README's output of {command:?} is JSON: {e}\n{text}"))
}

/// DESIGN §5 through the README: a few events in one hour of 2019 posted to a fresh lake, then
/// the newest complete 1 h window appears within seconds (partitions no event went to hold
/// nothing back) and is exactly what the README shows.
#[tokio::test(flavor = "multi_thread")]
async fn the_trending_example_completes_within_seconds_as_shown() {
    let dir = tempfile::tempdir().unwrap();
    // The README's defaults: SQLite broker storage, every job setting as shipped.
    let up = RecoUp::start(env!("CARGO_BIN_EXE_reco"), dir.path(), &[("RECO_BROKER_STORAGE", "sqlite")]);
    let api = up.api();
    let block = block_after(&readme(), "### Trending now");
    let (posts, rest) = block.split_once("\nsleep ").expect("the example posts, then sleeps");
    let query = rest.lines().skip(1).find(|l| l.starts_with("curl")).expect("then queries").to_owned();
    let started = Instant::now();
    run_shell(posts, &api);
    let shown = shown_output(&block, &query);

    let uri = query.split('\'').nth(1).unwrap().replace("localhost:8000", "");
    let mut last = String::new();
    let deadline = started + Duration::from_secs(20);
    let body = loop {
        let r = http::get(&api, &uri).await.unwrap();
        if r.status == 200 {
            break serde_json::from_str::<Value>(&r.text()).unwrap();
        }
        last = format!("{} {}", r.status, r.text());
        assert!(Instant::now() < deadline, "no complete window 20 s after the posts; last answer {last}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("complete window {:?} after the first post (last 404: {last})", started.elapsed());
    let mut got = body.clone();
    got["computed_at"] = Value::Null;
    assert_eq!(got, shown, "GET {uri} serves what the README shows");
    assert!(up.stop().success());
}
