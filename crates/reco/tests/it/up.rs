//! `reco up` as a user runs it: a child process with no environment of ours, ready quickly,
//! accepting events, counting them in /metrics, and stopping cleanly on SIGTERM/SIGINT.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use reco_testkit::{Samples, free_port, http};
use serde_json::json;

struct Up {
    child: Child,
    http: String,
    broker: String,
    ready_line: String,
}

fn start_up(lake: &std::path::Path, storage: &str, broker_port: u16) -> Up {
    let http_port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_reco"))
        .arg("up")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RECO_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
        .env("RECO_BROKER_ADDR", format!("127.0.0.1:{broker_port}"))
        .env("LAKEHOUSE_PATH", lake)
        .env("RECO_BROKER_STORAGE", storage)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn reco up");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let ready_line = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("reco up: ready"))
        .expect("reco up prints its ready line");
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Up { child, http: format!("127.0.0.1:{http_port}"), broker: format!("127.0.0.1:{broker_port}"), ready_line }
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill").args(["-s", sig, &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "reco up did not stop within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn up_serves_events_and_metrics_then_stops_cleanly() {
    let lake = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let broker_port = free_port();
    let mut up = start_up(lake.path(), "sqlite", broker_port);
    let ready_after = started.elapsed();
    eprintln!("{} (observed by the test: {ready_after:?})", up.ready_line);
    let reported_ms: u64 = up.ready_line.split_whitespace().nth(4).unwrap().parse().unwrap();
    assert!(reported_ms < 2000, "ready within 2 s: {}", up.ready_line);

    let ready = http::get(&up.http, "/health/ready").await.unwrap();
    assert_eq!(ready.status, 200, "{}", ready.text());
    let events = json!([{"type": "view", "user_id": "u1", "item_id": "m1"},
                        {"type": "rating", "user_id": "u1", "item_id": "m1", "rating": 5}]);
    let response = http::post_json(&up.http, "/events", &events).await.unwrap();
    assert_eq!(response.status, 202, "{}", response.text());
    let metrics = Samples::parse(&http::get(&up.http, "/metrics").await.unwrap().text());
    assert_eq!(metrics.value("reco_api_events_accepted_total", &[("topic", "events_views")]), 1.0);
    assert_eq!(metrics.value("reco_api_events_accepted_total", &[("topic", "events_ratings")]), 1.0);
    assert_eq!(
        metrics.value("http_requests_total", &[("method", "POST"), ("endpoint", "/events"), ("status", "202")]),
        1.0
    );

    // The silver job inside `reco up` turns them into Delta rows, no extra command.
    let lake_root = lake.path().to_path_buf();
    let in_silver = reco_testkit::wait_until(Duration::from_secs(60), || {
        let root = lake_root.clone();
        async move {
            let lake = reco_lake::Lake::new(&root, reco_lake::Format::Delta).unwrap();
            let mut views = reco_lake::TopicTables::open(&lake, "events_views", false).await.unwrap();
            let mut ratings = reco_lake::TopicTables::open(&lake, "events_ratings", true).await.unwrap();
            let v = reco_lake::read::read_silver(&views.silver_files().await.unwrap()).unwrap();
            let r = reco_lake::read::read_silver(&ratings.silver_files().await.unwrap()).unwrap();
            v.len() == 1 && r.len() == 1 && r[0].rating == Some(5.0)
        }
    })
    .await;
    assert!(in_silver, "posted events appear in the silver tables");
    let first_in_silver = started.elapsed() - ready_after;
    eprintln!("the first events in silver {first_in_silver:?} after ready");

    signal(&up.child, "TERM");
    let status = wait_exit(&mut up.child, Duration::from_secs(15));
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    assert!(lake.path().join("_broker/tansu.db").exists(), "broker data kept in the lake folder");

    // A restart on the same lake keeps the data: the events are still in the topic.
    let mut again = start_up(lake.path(), "sqlite", broker_port);
    assert_eq!(reco_testkit::topic_count(&again.broker, "events_views").await, 1);
    assert_eq!(reco_testkit::topic_count(&again.broker, "events_ratings").await, 1);
    signal(&again.child, "INT");
    assert!(wait_exit(&mut again.child, Duration::from_secs(15)).success(), "clean exit on SIGINT");
}

/// `LAKEHOUSE_PATH=s3://…` was taken as a relative path: every table went into a folder named
/// `s3:` in the working directory, without a word. Every command that takes a lake refuses it.
#[test]
fn a_lake_url_is_refused_at_start_by_every_command() {
    let cwd = tempfile::tempdir().unwrap();
    for command in [&["up"][..], &["broker"], &["silver", "--metrics-addr", "127.0.0.1:0"], &["gold"], &["serve"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_reco"))
            .args(command)
            .current_dir(cwd.path())
            .env("LAKEHOUSE_PATH", "s3://reco/lake")
            .env("RECO_BROKER_ADDR", format!("127.0.0.1:{}", free_port()))
            .env("RECO_HTTP_ADDR", format!("127.0.0.1:{}", free_port()))
            .env("RECO_METRICS_ADDR", "127.0.0.1:0")
            .env("KAFKA_BOOTSTRAP_SERVERS", format!("127.0.0.1:{}", free_port()))
            .stdout(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "reco {command:?} refuses the URL");
        assert!(stderr.contains("s3://reco/lake") && stderr.contains("LAKEHOUSE_PATH"), "{command:?}: {stderr}");
        assert!(!cwd.path().join("s3:").exists(), "reco {command:?} created a folder named s3:");
    }
}

/// `reco up` with `env` in `cwd`, on free ports, expected to refuse to start: its exit status
/// and stderr (killed, and reported as such, if it is still running after 60 s).
fn up_once(cwd: &std::path::Path, env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reco"))
        .arg("up")
        .current_dir(cwd)
        .env("RECO_BROKER_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("RECO_HTTP_ADDR", format!("127.0.0.1:{}", free_port()))
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let running = child.try_wait().unwrap().is_none();
    if running {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status, if running { format!("still running after 60 s: {stderr}") } else { stderr })
}

/// Configuration mistakes are refused before anything starts, naming the setting: a mistyped
/// URL, a file where the lake folder should be, a bad tokens file (no broker data created).
#[test]
fn configuration_mistakes_are_refused_before_anything_starts() {
    let cwd = tempfile::tempdir().unwrap();
    let (status, stderr) = up_once(cwd.path(), &[("LAKEHOUSE_PATH", "s3//bucket/prefix")]);
    assert!(!status.success() && stderr.contains("LAKEHOUSE_PATH=s3//bucket/prefix"), "{stderr}");
    assert!(stderr.contains("s3://bucket/prefix"), "{stderr}");
    assert!(!cwd.path().join("s3").exists(), "created a folder s3/");

    std::fs::write(cwd.path().join("lake-file"), b"not a folder").unwrap();
    let (status, stderr) = up_once(cwd.path(), &[("LAKEHOUSE_PATH", "lake-file")]);
    assert!(!status.success() && stderr.contains("is a file, not a folder"), "{stderr}");

    std::fs::write(cwd.path().join("tokens"), "no colon here\n").unwrap();
    let (status, stderr) = up_once(cwd.path(), &[("LAKEHOUSE_PATH", "lake"), ("RECO_API_TOKENS_FILE", "tokens")]);
    assert!(!status.success() && stderr.contains("RECO_API_TOKENS_FILE"), "{stderr}");
    assert!(!cwd.path().join("lake/_broker").exists(), "the broker started before the tokens were read");
}

/// A second `reco up` on a folder in use is refused, naming it; the first keeps running.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_reco_up_on_the_same_folder_is_refused() {
    let lake = tempfile::tempdir().unwrap();
    let first = reco_testkit::up::RecoUp::start(env!("CARGO_BIN_EXE_reco"), lake.path(), &[]);
    let path = lake.path().to_string_lossy().into_owned();
    let (status, stderr) = up_once(lake.path(), &[("LAKEHOUSE_PATH", path.as_str())]);
    assert!(!status.success() && stderr.contains("in use by another"), "{stderr}");
    let live = http::get(&first.api(), "/health/live").await.unwrap();
    assert_eq!(live.status, 200, "the first reco up still answers");
    assert!(first.stop().success());
}

/// Counters whose label values are known in advance are series at 0 before anything happens,
/// so a dashboard of a fresh platform shows "none" rather than "no data".
#[tokio::test(flavor = "multi_thread")]
async fn known_counters_are_exported_at_zero_before_any_traffic() {
    let lake = tempfile::tempdir().unwrap();
    let up = reco_testkit::up::RecoUp::start(env!("CARGO_BIN_EXE_reco"), lake.path(), &[]);
    let expected: [(&str, &[(&str, &str)]); 7] = [
        ("reco_silver_deadlettered_total", &[("topic", "events_views"), ("reason", "invalid_json")]),
        ("reco_silver_deadlettered_total", &[("topic", "events_ratings"), ("reason", "duplicate")]),
        ("reco_silver_offsets_skipped_total", &[("topic", "events_clicks"), ("reason", "retention")]),
        ("reco_silver_offset_resets_total", &[("topic", "events_views")]),
        ("reco_gold_windows_published_total", &[("window", "1h")]),
        ("reco_gold_windows_republished_total", &[("window", "24h")]),
        ("reco_gold_late_events_total", &[("table", "silver/events_clicks")]),
    ];
    let api = up.api();
    let all_there = reco_testkit::wait_until(Duration::from_secs(30), || async {
        let Ok(r) = http::get(&api, "/metrics").await else { return false };
        let samples = Samples::parse(&r.text());
        expected.iter().all(|(name, labels)| samples.get(name, labels) == Some(0.0))
    })
    .await;
    let text = http::get(&api, "/metrics").await.unwrap().text();
    assert!(all_there, "every known series at 0 before traffic:\n{text}");
    assert!(up.stop().success());
}
