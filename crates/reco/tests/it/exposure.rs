//! Exposing the API as an operator does it, with the real binary: a token file re-read on
//! SIGHUP, /metrics on its own port, and a warning when the API is open to the network
//! without tokens.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use reco_testkit::{Samples, free_port, http, proc::Killed, up::RecoUp};
use serde_json::json;

const FIRST: &str = "first-0123456789abcdef";
const SECOND: &str = "second-0123456789abcdef";

async fn post_with(api: &str, token: Option<&str>) -> u16 {
    let event = json!({"type": "view", "user_id": "u1", "item_id": "m1"});
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    http::request_with(api, "POST", "/events", &headers, Some(event.to_string())).await.unwrap().status
}

#[tokio::test(flavor = "multi_thread")]
async fn reco_up_with_a_token_file_reloaded_on_sighup_and_metrics_on_their_own_port() {
    let lake = tempfile::tempdir().unwrap();
    let tokens = lake.path().join("tokens");
    std::fs::write(&tokens, format!("# web shop\nweb:{FIRST}\n")).unwrap();
    let metrics = format!("127.0.0.1:{}", free_port());
    let up = RecoUp::start(
        env!("CARGO_BIN_EXE_reco"),
        lake.path(),
        &[("RECO_API_TOKENS_FILE", tokens.to_str().unwrap()), ("RECO_METRICS_ADDR", &metrics)],
    );
    let api = up.api();

    assert_eq!(http::get(&api, "/metrics").await.unwrap().status, 404, "/metrics left the API port");
    assert_eq!(post_with(&api, None).await, 401);
    assert_eq!(post_with(&api, Some(SECOND)).await, 401);
    assert_eq!(post_with(&api, Some(FIRST)).await, 202);

    // Rotate: the new file names a new token; SIGHUP makes it the only one.
    std::fs::write(&tokens, format!("web:{SECOND}\n")).unwrap();
    Command::new("kill").args(["-HUP", &up.pid().to_string()]).status().unwrap();
    // Tries made before the signal is handled are refused and counted as such below.
    let early_refusals = std::sync::atomic::AtomicU32::new(0);
    let rotated = reco_testkit::wait_until(Duration::from_secs(10), || async {
        let status = post_with(&api, Some(SECOND)).await;
        if status == 401 {
            early_refusals.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        status == 202
    })
    .await;
    assert!(rotated, "the new token works after SIGHUP");
    let early_refusals = f64::from(early_refusals.into_inner());
    assert_eq!(post_with(&api, Some(FIRST)).await, 401, "the old token is gone");

    // A broken file is not half-applied: the process keeps the tokens it had.
    std::fs::write(&tokens, "web:short\n").unwrap();
    Command::new("kill").args(["-HUP", &up.pid().to_string()]).status().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(post_with(&api, Some(SECOND)).await, 202);

    let text = http::get(&metrics, "/metrics").await.unwrap().text();
    let samples = Samples::parse(&text);
    assert_eq!(samples.get("reco_api_authenticated_requests_total", &[("token", "web")]), Some(3.0));
    assert_eq!(
        samples.get("reco_api_events_rejected_total", &[("reason", "unauthorized")]),
        Some(3.0 + early_refusals),
        "no token, the second token before rotation, the first after it (and tries before SIGHUP landed)"
    );
    assert!(text.contains("reco_silver_") && text.contains("reco_gold_"), "the jobs' metrics are there too");
    assert!(!text.contains(FIRST) && !text.contains(SECOND), "no token in the metrics");
    assert!(up.stop().success());
}

/// Starts `reco serve` and returns what it logged up to its listening line.
fn serve_log(lake: &std::path::Path, env: &[(&str, &str)]) -> String {
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_reco"))
            .arg("serve")
            .env("LAKEHOUSE_PATH", lake)
            .env("KAFKA_BOOTSTRAP_SERVERS", format!("127.0.0.1:{}", free_port()))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut log = String::new();
    for line in BufReader::new(child.0.stderr.take().unwrap()).lines().map_while(Result::ok) {
        log.push_str(&line);
        log.push('\n');
        if line.contains("reco serve listening") {
            break;
        }
    }
    log
}

#[test]
fn serve_warns_when_it_listens_beyond_loopback_without_tokens() {
    let lake = tempfile::tempdir().unwrap();
    let open = format!("0.0.0.0:{}", free_port());
    let log = serve_log(lake.path(), &[("RECO_HTTP_ADDR", &open)]);
    assert!(log.contains("without tokens") && log.contains("RECO_API_TOKENS_FILE"), "{log}");

    let tokens = lake.path().join("tokens");
    std::fs::write(&tokens, format!("web:{FIRST}\n")).unwrap();
    let open = format!("0.0.0.0:{}", free_port());
    let log = serve_log(lake.path(), &[("RECO_HTTP_ADDR", &open), ("RECO_API_TOKENS_FILE", tokens.to_str().unwrap())]);
    assert!(log.contains("reco serve listening") && !log.contains("without tokens"), "{log}");
    assert!(!log.contains(FIRST), "the token is never logged");

    let local = format!("127.0.0.1:{}", free_port());
    let log = serve_log(lake.path(), &[("RECO_HTTP_ADDR", &local)]);
    assert!(log.contains("reco serve listening") && !log.contains("without tokens"), "{log}");

    // A token file that cannot be used stops the service, naming the variable and the line.
    std::fs::write(&tokens, "web:short\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_reco"))
        .arg("serve")
        .env("LAKEHOUSE_PATH", lake.path())
        .env("RECO_HTTP_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("RECO_API_TOKENS_FILE", &tokens)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("RECO_API_TOKENS_FILE") && stderr.contains("line 1"), "{stderr}");
}

/// The rules an operator sets apply to the API and to silver alike: a rating the API accepted
/// under a wider range is kept by silver (it was dead-lettered under silver's defaults), and
/// what the rules refuse is dead-lettered when it reaches Kafka past the API.
#[tokio::test(flavor = "multi_thread")]
async fn the_api_and_silver_share_the_rules_an_operator_sets() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use reco_lake::{Lake, TopicTables, read};

    let lake_dir = tempfile::tempdir().unwrap();
    let up = RecoUp::start(
        env!("CARGO_BIN_EXE_reco"),
        lake_dir.path(),
        &[("RECO_RATING_MAX", "10"), ("RECO_MIN_EVENT_TIME", "2019-01-01"), ("RECO_SILVER_MAX_BATCH_AGE_MS", "200")],
    );
    let api = up.api();
    let rating = |id: &str, r: f64, t: &str| json!({"type": "rating", "event_id": id, "user_id": "u1", "item_id": "m1", "rating": r, "timestamp": t});
    let accepted = http::post_json(&api, "/events", &rating("wide", 8.0, "2019-03-01T10:00:00Z")).await.unwrap();
    assert_eq!(accepted.status, 202, "{}", accepted.text());
    let early = http::post_json(&api, "/events", &rating("early", 3.0, "2018-06-01T10:00:00Z")).await.unwrap();
    assert_eq!(early.status, 422);
    assert!(early.text().contains("2019-01-01"), "names the configured earliest time: {}", early.text());

    // Past the API, straight into Kafka: silver applies the same rules.
    let producer: FutureProducer = reco_kafka::client_config(&up.broker()).create().unwrap();
    for event in [rating("too-high", 11.0, "2019-03-01T10:00:00Z"), rating("too-early", 3.0, "2018-06-01T10:00:00Z")] {
        let payload = event.to_string();
        producer
            .send(FutureRecord::to("events_ratings").key("u1").payload(&payload), Duration::from_secs(5))
            .await
            .unwrap();
    }

    let lake = Lake::new(lake_dir.path(), reco_lake::Format::Delta).unwrap();
    let landed = reco_testkit::wait_until(Duration::from_secs(30), || async {
        let Ok(mut tables) = TopicTables::open(&lake, "events_ratings", true).await else { return false };
        let kept = read::read_silver(&tables.silver_files().await.unwrap()).unwrap();
        let dead = read::read_deadletter(&tables.deadletter_files().await.unwrap()).unwrap();
        kept.len() == 1 && dead.len() == 2
    })
    .await;
    let mut tables = TopicTables::open(&lake, "events_ratings", true).await.unwrap();
    let kept: Vec<String> =
        read::read_silver(&tables.silver_files().await.unwrap()).unwrap().into_iter().map(|r| r.event_id).collect();
    let dead: Vec<String> = read::read_deadletter(&tables.deadletter_files().await.unwrap())
        .unwrap()
        .into_iter()
        .map(|r| String::from_utf8_lossy(&r.payload.unwrap_or_default()).into_owned())
        .collect();
    assert!(landed, "silver kept {kept:?}, dead-lettered {dead:?}");
    assert_eq!(kept, ["wide"]);
    assert!(dead.iter().any(|p| p.contains("too-high")) && dead.iter().any(|p| p.contains("too-early")), "{dead:?}");
    assert!(up.stop().success());
}
