//! The shipped monitoring config, proven against a real Prometheus (the Debian package
//! `prometheus`, which `make test` installs): `promtool` accepts the configs and rules;
//! Prometheus started with `deploy/prometheus/prometheus.yml` (targets rewritten to the metrics
//! port of a running `reco up --metrics-addr …`) scrapes every target; and every PromQL expression of every dashboard panel and
//! alert rule, read from the shipped files, parses and returns at least one series after real
//! traffic (valid, invalid, straight-to-Kafka garbage, historic events for trending).

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use rdkafka::producer::{FutureProducer, FutureRecord};
use reco_testkit::{free_port, http, proc::Killed, up::RecoUp, wait_until};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tool(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| panic!("{name} not found: `make test` installs the Debian package prometheus"))
}
/// Valid events over three hours of 2019 (so gold publishes windows), invalid requests, a
/// trending read, an unknown path, and garbage produced straight into Kafka (dead letters).
async fn traffic(api: &str, broker: &str) {
    let base_ms: i64 = 1_551_398_400_000;
    for batch in 0..18 {
        let events: Vec<Value> = (0..50)
            .map(|i| {
                let kind = if i % 5 == 0 { "click" } else { "view" };
                let t = base_ms + (batch * 50 + i) * 12_000;
                json!({"type": kind, "user_id": format!("u{i}"), "item_id": format!("m{}", i % 7), "timestamp": t})
            })
            .collect();
        assert_eq!(http::post_json(api, "/events", &Value::Array(events)).await.unwrap().status, 202);
    }
    let invalid = json!({"type": "view", "user_id": "", "item_id": "m1"});
    assert_eq!(http::post_json(api, "/events", &invalid).await.unwrap().status, 422);
    assert_eq!(http::get(api, "/nope").await.unwrap().status, 404);
    let _ = http::get(api, "/trending?window=1h").await.unwrap();
    let _ = http::get(api, "/items/m1/similar").await.unwrap();
    let _ = http::get(api, "/users/u1/recommendations").await.unwrap();
    let _ = http::post_json(api, "/recommendations", &json!({"items": ["m1"]})).await.unwrap();
    let producer: FutureProducer = reco_kafka::client_config(broker).create().unwrap();
    for payload in ["not json", "{\"type\": \"view\"}"] {
        producer
            .send(FutureRecord::<(), _>::to("events_views").payload(payload), Duration::from_secs(5))
            .await
            .unwrap();
    }
}

/// The configs and rules pass `promtool`.
fn promtool_checks() {
    let dir = repo().join("deploy/prometheus");
    for args in [
        vec!["check", "config", "prometheus.yml"],
        vec!["check", "config", "prometheus-up.yml"],
        vec!["check", "rules", "alerts.yml"],
    ] {
        let out = Command::new(tool("promtool")).args(&args).current_dir(&dir).output().unwrap();
        assert!(out.status.success(), "promtool {args:?}: {}", String::from_utf8_lossy(&out.stdout));
    }
}

/// The shipped config with every target pointed at `target` and 1 s intervals.
fn rewritten_config(dir: &Path, target: &str) {
    let shipped = std::fs::read_to_string(repo().join("deploy/prometheus/prometheus.yml")).unwrap();
    let mut out = String::new();
    let mut targets = 0;
    for line in shipped.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("- targets:") {
            let indent = &line[..line.len() - trimmed.len()];
            out.push_str(&format!("{indent}- targets: [\"{target}\"]\n"));
            targets += 1;
        } else {
            out.push_str(&line.replace("interval: 15s", "interval: 1s"));
            out.push('\n');
        }
    }
    assert_eq!(targets, 3, "the API, silver and gold jobs are scraped");
    std::fs::write(dir.join("prometheus.yml"), out).unwrap();
    std::fs::copy(repo().join("deploy/prometheus/alerts.yml"), dir.join("alerts.yml")).unwrap();
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn api_get(prom: &str, path: &str) -> Value {
    let r = match http::get(prom, path).await {
        Ok(r) => r,
        Err(e) => return json!({"status": "error", "error": e.to_string()}),
    };
    serde_json::from_str(&r.text()).unwrap_or_else(|_| json!({"status": "error", "error": r.text()}))
}

/// Runs an instant query; `Ok(series count)` or the error Prometheus gave.
async fn query(prom: &str, q: &str) -> Result<usize, String> {
    let v = api_get(prom, &format!("/api/v1/query?query={}", encode(q))).await;
    if v["status"] != "success" {
        return Err(format!("{}: {}", v["errorType"], v["error"]));
    }
    Ok(v["data"]["result"].as_array().map_or(1, Vec::len))
}

fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

/// Grafana's variables, as a user with "All" selected sees them.
fn grafana_to_promql(e: &str) -> String {
    e.replace("$__rate_interval", "20s").replace("$job", ".*").replace("$instance", ".*")
}

/// `<quantity> <cmp> <number>` → `<quantity>` (alerts.yml's documented form).
fn quantity(alert_expr: &str) -> Option<String> {
    let e = alert_expr.trim();
    let number_start = e.rfind(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e'))? + 1;
    let rest = e[..number_start].trim_end();
    let op = ["==", "!=", ">=", "<=", ">", "<"].into_iter().find(|op| rest.ends_with(op))?;
    Some(rest[..rest.len() - op.len()].trim_end().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboards_and_alerts_work_against_a_real_prometheus() {
    promtool_checks();

    let lake = tempfile::tempdir().unwrap();
    // As deployed: /metrics on its own port, not on the API's.
    let metrics = format!("127.0.0.1:{}", free_port());
    let up = RecoUp::start(
        env!("CARGO_BIN_EXE_reco"),
        lake.path(),
        &[
            ("RECO_METRICS_ADDR", &metrics),
            ("RECO_SILVER_MAX_BATCH_AGE_MS", "300"),
            ("RECO_GOLD_POLL_INTERVAL_MS", "200"),
            ("RECO_GOLD_IDLE_TIMEOUT_MS", "2000"),
        ],
    );
    let (api, broker) = (up.api(), up.broker());
    traffic(&api, &broker).await;
    assert_eq!(http::get(&api, "/metrics").await.unwrap().status, 404);

    let dir = tempfile::tempdir().unwrap();
    rewritten_config(dir.path(), &metrics);
    let prom = format!("127.0.0.1:{}", free_port());
    let _prometheus = Killed(
        Command::new(tool("prometheus"))
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={prom}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );

    let all_up = wait_until(Duration::from_secs(60), || async {
        let v = api_get(&prom, "/api/v1/targets").await;
        let targets = v["data"]["activeTargets"].as_array().cloned().unwrap_or_default();
        targets.len() == 3 && targets.iter().all(|t| t["health"] == "up")
    })
    .await;
    assert!(all_up, "every target is up: {}", api_get(&prom, "/api/v1/targets").await);

    // Dashboards: every panel expression, straight from the JSON files.
    let mut panel_exprs = Vec::new();
    for name in ["api-overview", "platform-overview", "streaming-pipeline"] {
        let path = repo().join(format!("deploy/grafana/dashboards/{name}.json"));
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(dashboard["uid"].as_str().is_some_and(|u| u.starts_with("reco-")), "{name} has a fixed uid");
        let before = panel_exprs.len();
        exprs(&dashboard["panels"], &mut panel_exprs);
        assert!(panel_exprs.len() - before >= 6, "{name} has panels");
    }
    // Alert rules: as Prometheus loaded them from alerts.yml.
    let rules = api_get(&prom, "/api/v1/rules").await;
    let alerts: Vec<(String, String)> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .map(|r| (r["name"].as_str().unwrap().to_owned(), r["query"].as_str().unwrap().to_owned()))
        .collect();
    assert!(alerts.len() >= 7, "alert rules loaded: {alerts:?}");

    let mut checks: Vec<(String, String)> =
        panel_exprs.iter().map(|e| (format!("panel {e}"), grafana_to_promql(e))).collect();
    for (name, expr) in &alerts {
        let q = quantity(expr).unwrap_or_else(|| panic!("{name}: not of the form `<quantity> <cmp> <number>`"));
        checks.push((format!("alert {name}"), q));
    }
    // Series appear as the jobs work (lag statistics every 5 s, windows after the idle
    // timeout, rates after two scrapes): wait for all, then report every one still empty.
    wait_until(Duration::from_secs(90), || async {
        for (_, q) in &checks {
            if !matches!(query(&prom, q).await, Ok(n) if n > 0) {
                return false;
            }
        }
        true
    })
    .await;
    let mut failing = Vec::new();
    for (what, q) in &checks {
        match query(&prom, q).await {
            Ok(0) => failing.push(format!("{what}: no series")),
            Ok(_) => {}
            Err(e) => failing.push(format!("{what}: {e}")),
        }
    }
    assert!(failing.is_empty(), "{} of {} expressions fail:\n{}", failing.len(), checks.len(), failing.join("\n"));

    // Every rule evaluates without error.
    let rules = api_get(&prom, "/api/v1/rules").await;
    for group in rules["data"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            assert_eq!(rule["health"], "ok", "rule {} evaluates: {}", rule["name"], rule["lastError"]);
        }
    }
}
