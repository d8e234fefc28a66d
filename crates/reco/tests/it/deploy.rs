//! The production compose stack, checked as far as possible without a Docker engine: the file
//! is parsed by a real YAML parser (PyYAML, installed by `make test`); every reco service runs a
//! real subcommand with flags and environment variables that subcommand accepts; ports agree
//! with the addresses the services listen on and with Prometheus' targets; Grafana has no
//! default password; the Dockerfile is multi-stage and runs as a non-root user.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn compose() -> Value {
    let python = std::env::var("RECO_PYTHON")
        .unwrap_or_else(|_| format!("{}/.cache/reco-venv/bin/python", std::env::var("HOME").unwrap_or_default()));
    let out = Command::new(&python)
        .args(["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))"])
        .arg(repo().join("deploy/docker-compose.yml"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} (run `make test`, which installs it): {e}"));
    assert!(out.status.success(), "compose file parses: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect()).unwrap_or_default()
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn compose_services_run_real_reco_commands() {
    let compose = compose();
    let services = compose["services"].as_object().unwrap();
    for name in [
        "kafka",
        "minio",
        "bucket-init",
        "topics-init",
        "reco-api",
        "reco-silver",
        "reco-gold",
        "prometheus",
        "grafana",
        "kafka-ui",
    ] {
        assert!(services.contains_key(name), "service {name}");
    }
    let mut reco_services = 0;
    for (name, service) in services {
        for dep in service["depends_on"].as_object().map(|d| d.keys().collect::<Vec<_>>()).unwrap_or_default() {
            assert!(services.contains_key(dep), "{name} depends on unknown service {dep}");
        }
        if service["image"] != "reco:local" {
            continue;
        }
        reco_services += 1;
        assert!(service["build"]["dockerfile"] == "Dockerfile", "{name} is built from the repo's Dockerfile");
        let command = strings(&service["command"]);
        assert!(!command.is_empty(), "{name} names its subcommand");
        // Clap rejects an unknown subcommand or flag before it prints help.
        let help = Command::new(env!("CARGO_BIN_EXE_reco")).args(&command).arg("--help").output().unwrap();
        assert!(
            help.status.success(),
            "{name}: `reco {} --help` fails: {}",
            command.join(" "),
            String::from_utf8_lossy(&help.stderr)
        );
        let help = String::from_utf8_lossy(&help.stdout);
        let known: BTreeSet<&str> = help.split("[env: ").skip(1).filter_map(|s| s.split('=').next()).collect();
        for key in service["environment"].as_object().map(|e| e.keys().collect::<Vec<_>>()).unwrap_or_default() {
            // RUST_LOG and the AWS variables are read by the logger and the object store.
            if key != "RUST_LOG" && !key.starts_with("AWS_") {
                assert!(known.contains(key.as_str()), "{name}: `reco {}` has no option for {key}", command.join(" "));
            }
        }
        if service["restart"] != "no" {
            assert_eq!(service["restart"], "unless-stopped", "{name} restarts");
            assert!(service["healthcheck"]["test"].is_array(), "{name} has a health check");
        }
    }
    assert_eq!(reco_services, 4, "topics-init, API, silver and gold run the reco image");

    // Listening addresses agree with published/exposed ports and with Prometheus' targets.
    let env = |s: &str, k: &str| services[s]["environment"][k].as_str().unwrap().to_owned();
    let api_port = port_of(&env("reco-api", "RECO_HTTP_ADDR"));
    assert!(strings(&services["reco-api"]["ports"]).iter().any(|p| p.ends_with(&format!(":{api_port}"))));
    // The API's metrics: their own port, inside the compose network only.
    let api_metrics_port = port_of(&env("reco-api", "RECO_METRICS_ADDR"));
    assert!(strings(&services["reco-api"]["expose"]).contains(&api_metrics_port.to_string()));
    assert!(!strings(&services["reco-api"]["ports"]).iter().any(|p| p.ends_with(&format!(":{api_metrics_port}"))));
    let silver_port = port_of(&env("reco-silver", "RECO_METRICS_ADDR"));
    let gold_port = port_of(&env("reco-gold", "RECO_METRICS_ADDR"));
    assert!(strings(&services["reco-silver"]["expose"]).contains(&silver_port.to_string()));
    assert!(strings(&services["reco-gold"]["expose"]).contains(&gold_port.to_string()));
    let prometheus = std::fs::read_to_string(repo().join("deploy/prometheus/prometheus.yml")).unwrap();
    let targets: BTreeSet<String> = prometheus
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- targets: [\"")?.strip_suffix("\"]").map(str::to_owned))
        .collect();
    let expected: BTreeSet<String> = [
        format!("reco-api:{api_metrics_port}"),
        format!("reco-silver:{silver_port}"),
        format!("reco-gold:{gold_port}"),
    ]
    .into();
    assert_eq!(targets, expected, "Prometheus scrapes the compose services on their ports");
    // The healthchecks probe the ports the services listen on.
    for (service, port) in [("reco-api", api_port), ("reco-silver", silver_port), ("reco-gold", gold_port)] {
        let probe = strings(&services[service]["healthcheck"]["test"]).join(" ");
        assert!(probe.contains(&format!("/127.0.0.1/{port} ")), "{service} probes its port {port}: {probe}");
    }

    // No open doors: only the API is published beyond this host, and it requires tokens from
    // a file compose refuses to start without; Kafka UI runs only on request, read-only.
    for (name, service) in services {
        for port in strings(&service["ports"]) {
            let public = port.split(':').count() == 2;
            assert!(!public || name == "reco-api", "{name} publishes {port} beyond 127.0.0.1");
        }
    }
    assert_eq!(env("reco-api", "RECO_API_TOKENS_FILE"), "/run/secrets/api_tokens");
    let tokens = compose["secrets"]["api_tokens"]["file"].as_str().unwrap();
    assert!(tokens.starts_with("${") && tokens.contains(":?"), "required from the environment: {tokens}");
    assert_eq!(strings(&services["kafka-ui"]["profiles"]), ["debug"]);
    assert_eq!(env("kafka-ui", "KAFKA_CLUSTERS_0_READONLY"), "true");

    // Grafana: the password comes from the environment, never admin/admin.
    let password = env("grafana", "GF_SECURITY_ADMIN_PASSWORD");
    assert!(password.starts_with("${") && password.contains(":?"), "required from the environment: {password}");
    let datasource =
        std::fs::read_to_string(repo().join("deploy/grafana/provisioning/datasources/prometheus.yml")).unwrap();
    assert!(datasource.contains("uid: reco-prometheus"));
    for dashboard in ["api-overview", "platform-overview", "streaming-pipeline"] {
        let text = std::fs::read_to_string(repo().join(format!("deploy/grafana/dashboards/{dashboard}.json"))).unwrap();
        let json: Value = serde_json::from_str(&text).unwrap();
        assert!(text.contains("\"uid\": \"reco-prometheus\""), "{dashboard} uses the provisioned datasource");
        assert!(json["templating"]["list"].as_array().unwrap().iter().any(|v| v["name"] == "job"), "{dashboard}: $job");
    }
}

#[test]
fn dockerfile_is_multi_stage_and_non_root() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let froms = dockerfile.lines().filter(|l| l.starts_with("FROM ")).count();
    assert!(froms >= 2, "multi-stage build");
    let user = dockerfile.lines().rev().find_map(|l| l.strip_prefix("USER ")).expect("a USER line");
    assert!(!["root", "0"].contains(&user.trim()), "runs as non-root, not {user}");
    assert!(dockerfile.contains("--locked"), "builds the locked dependency tree");
}

/// Metric names in a PromQL expression (ours: `reco_`, `http_`, `process_`), histogram
/// suffixes removed.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in expr.match_indices(['r', 'h', 'p']) {
        let rest = &expr[i..];
        let preceded = expr[..i].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if preceded || !["reco_", "http_", "process_"].iter().any(|p| rest.starts_with(p)) {
            continue;
        }
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        let name =
            ["_bucket", "_count", "_sum"].iter().fold(name, |n, s| n.strip_suffix(s).map(str::to_owned).unwrap_or(n));
        out.push(name);
    }
    out
}

#[test]
fn every_metric_in_dashboards_and_alerts_is_documented() {
    let docs = std::fs::read_to_string(repo().join("docs/METRICS.md")).unwrap();
    let used_by = docs.split("## Where each metric is used").nth(1).expect("METRICS.md has a usage section");
    let mut exprs = Vec::new();
    for dashboard in ["api-overview", "platform-overview", "streaming-pipeline"] {
        let text = std::fs::read_to_string(repo().join(format!("deploy/grafana/dashboards/{dashboard}.json"))).unwrap();
        exprs.extend(text.split("\"expr\": ").skip(1).map(|s| s.split("\n").next().unwrap().to_owned()));
    }
    let alerts = std::fs::read_to_string(repo().join("deploy/prometheus/alerts.yml")).unwrap();
    exprs.extend(alerts.split("expr:").skip(1).map(|s| s.split("for:").next().unwrap().to_owned()));
    let names: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    assert!(names.len() > 15, "{names:?}");
    for name in names {
        let quoted = format!("`{name}`");
        assert!(docs.contains(&quoted), "{name} is used but not documented in docs/METRICS.md");
        assert!(used_by.contains(&quoted), "{name} is missing from the usage table of docs/METRICS.md");
    }
}
