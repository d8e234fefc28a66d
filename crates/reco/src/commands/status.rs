//! `reco status`: one command that says whether the platform works, for an operator (a table)
//! or an orchestrator (`--json`, exit code 0 healthy / 1 degraded / 2 down). It replaces the
//! original Airflow DAG's file checks with real ones: the broker answers, the topics are as
//! specified, the silver group has members and bounded lag, the API is ready, the jobs answer
//! with their freshness, and gold has published.

use std::{collections::BTreeMap, process::ExitCode, time::Duration};

use reco_kafka::{group::GroupStatus, topics::describe_topics_within};
use reco_lake::{GoldTable, gold::table_name};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cli::StatusArgs;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Ok,
    Degraded,
    Down,
}

#[derive(Debug, Serialize)]
struct Check {
    name: String,
    status: Level,
    detail: String,
}

#[derive(Debug, Serialize)]
struct Report {
    status: Level,
    checks: Vec<Check>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<GroupStatus>,
    /// Per job and table: now minus the newest event time / window end (seconds).
    freshness: BTreeMap<String, BTreeMap<String, f64>>,
    /// Newest published window per gold table: `[start, end)` in RFC 3339.
    gold: BTreeMap<String, (String, String)>,
}

impl Report {
    fn check(&mut self, name: &str, status: Level, detail: impl Into<String>) {
        self.checks.push(Check { name: name.to_owned(), status, detail: detail.into() });
        self.status = self.status.max(status);
    }
}

pub async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let timeout = Duration::from_millis(args.timeout_ms);
    let mut report = Report {
        status: Level::Ok,
        checks: Vec::new(),
        group: None,
        freshness: BTreeMap::new(),
        gold: BTreeMap::new(),
    };
    check_kafka(&args, timeout, &mut report).await;
    let api_url = args.api_url.clone().unwrap_or_else(default_api_url);
    check_services(&args, &api_url, timeout, &mut report).await;
    check_gold(&args.lake.lake()?, &mut report).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(ExitCode::from(report.status as u8))
}

/// The broker, each topic's partitions and retention, and the silver group's members and lag.
async fn check_kafka(args: &StatusArgs, timeout: Duration, report: &mut Report) {
    let bootstrap = &args.kafka.kafka_bootstrap_servers;
    let specs = args.topics.specs();
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    // librdkafka gives up at `timeout` itself (see `describe_topics_within`); the timer is a
    // backstop only.
    let backstop = timeout + Duration::from_secs(2);
    let states = match tokio::time::timeout(backstop, describe_topics_within(bootstrap, &names, timeout)).await {
        Err(_) => return report.check("broker", Level::Down, format!("{bootstrap}: no answer within {timeout:?}")),
        Ok(Err(e)) => return report.check("broker", Level::Down, e.to_string()),
        Ok(Ok(states)) => states,
    };
    report.check("broker", Level::Ok, format!("{bootstrap} answers"));
    for spec in &specs {
        let (level, detail) = match states.iter().find(|s| s.name == spec.name) {
            None => (Level::Degraded, "missing: run `reco topics init`".to_owned()),
            Some(s) if s.partitions != spec.partitions => {
                (Level::Degraded, format!("{} partitions, expected {}", s.partitions, spec.partitions))
            }
            Some(s) if s.retention_ms.is_some_and(|r| r != spec.retention_ms) => (
                Level::Degraded,
                format!(
                    "retention.ms {}, expected {}: run `reco topics init --fix`",
                    s.retention_ms.unwrap_or_default(),
                    spec.retention_ms
                ),
            ),
            Some(s) => {
                let retention = s.retention_ms.map_or("broker default".to_owned(), |ms| human(ms as f64 / 1000.0));
                (Level::Ok, format!("{} partitions, retention {retention}", s.partitions))
            }
        };
        report.check(&format!("topic {}", spec.name), level, detail);
    }
    let check = format!("group {}", args.silver_group_id);
    match reco_kafka::group::group_status(bootstrap, &args.silver_group_id, &names, timeout).await {
        Ok(group) => {
            let lag: i64 = group.partitions.iter().map(|p| p.lag).sum();
            let (level, detail) = if group.state.is_some() && group.members.is_empty() && lag > 0 {
                (Level::Degraded, format!("no member consumes; {lag} records waiting"))
            } else if lag > args.max_lag {
                (Level::Degraded, format!("lag {lag} records, above --max-lag {}", args.max_lag))
            } else {
                let members = match &group.state {
                    Some(state) => format!("{} members ({state})", group.members.len()),
                    None => "members not reported by the broker".to_owned(),
                };
                (Level::Ok, format!("{members}, lag {lag} records"))
            };
            report.check(&check, level, detail);
            report.group = Some(group);
        }
        Err(e) => report.check(&check, Level::Degraded, e.to_string()),
    }
}

/// `http://` and `RECO_HTTP_ADDR` (the API's own setting; a wildcard host means this
/// machine), else the API's default address.
fn default_api_url() -> String {
    match std::env::var("RECO_HTTP_ADDR") {
        Ok(addr) if !addr.trim().is_empty() => {
            let addr = addr.trim().replace("0.0.0.0", "127.0.0.1").replace("[::]", "[::1]");
            format!("http://{addr}")
        }
        _ => "http://127.0.0.1:8000".to_owned(),
    }
}

/// The API's readiness, and the jobs' liveness and freshness from their `/metrics`: the API's
/// own when it carries the jobs' metrics (`reco up`) and no job URL was given.
async fn check_services(args: &StatusArgs, api_url: &str, timeout: Duration, report: &mut Report) {
    match http_get(api_url, "/health/ready", timeout).await {
        Ok((200, _)) => report.check("api", Level::Ok, format!("{api_url} ready")),
        Ok((status, body)) => report.check("api", Level::Down, format!("{api_url} answers {status}: {body}")),
        Err(e) => report.check("api", Level::Down, format!("{api_url}: {e}")),
    }
    // Every process declares every metric family, but only one running the silver job has
    // samples of its (its known counters start at 0).
    let given = args.silver_url.is_some() || args.gold_url.is_some();
    let all_in_one = args.all_in_one
        || (!given
            && matches!(http_get(api_url, "/metrics", timeout).await,
                Ok((200, text)) if text.lines().any(|l| l.starts_with("reco_silver_"))));
    let (silver_url, gold_url) = if all_in_one {
        (api_url.to_owned(), api_url.to_owned())
    } else {
        (
            args.silver_url.clone().unwrap_or_else(|| "http://127.0.0.1:9101".into()),
            args.gold_url.clone().unwrap_or_else(|| "http://127.0.0.1:9102".into()),
        )
    };
    for (job, url, metric) in
        [("silver", silver_url, "reco_silver_freshness_seconds"), ("gold", gold_url, "reco_gold_freshness_seconds")]
    {
        let name = format!("{job} job");
        match http_get(&url, "/metrics", timeout).await {
            Ok((200, text)) => {
                let fresh = labelled_values(&text, metric, "table");
                let detail = if fresh.is_empty() {
                    "alive; nothing written yet".to_owned()
                } else {
                    // Reported, not judged: a quiet platform or a historic replay is old by
                    // design (the RecoGoldStale alert judges it against the event rate).
                    let parts: Vec<String> = fresh.iter().map(|(t, s)| format!("{t} {} ago", human(*s))).collect();
                    format!("alive; newest data {}", parts.join(", "))
                };
                report.check(&name, Level::Ok, detail);
                report.freshness.insert(job.to_owned(), fresh);
            }
            Ok((status, _)) => report.check(&name, Level::Degraded, format!("{url} answers {status}")),
            Err(e) => {
                let hint = if all_in_one { "" } else { " (the jobs inside `reco up`: --all-in-one)" };
                report.check(&name, Level::Degraded, format!("{url}: {e}{hint}"));
            }
        }
    }
}

/// The newest window of each trending table (lengths from the gold job's configuration) and
/// the item neighbour table.
async fn check_gold(lake: &reco_lake::Lake, report: &mut Report) {
    for spec in reco_gold::window::Config::default().windows {
        let name = table_name(spec.name);
        match GoldTable::open_existing(lake, &name).await {
            Ok(Some(table)) => match table.row_sets().iter().next_back() {
                Some((&start, file)) => {
                    let (from, to) = (rfc3339(start), rfc3339(start + spec.length_us));
                    let file = file.clone();
                    let read = tokio::task::spawn_blocking(move || reco_lake::gold::read_gold(&file)).await;
                    let state = match read {
                        Ok(Ok(rows)) if rows.first().is_some_and(|r| !r.complete) => {
                            "provisional: the watermark has not passed its end"
                        }
                        Ok(Ok(_)) => "complete",
                        _ => "unreadable just now",
                    };
                    report.check(&name, Level::Ok, format!("newest window {from} – {to}, {state}"));
                    report.gold.insert(name, (from, to));
                }
                None => report.check(&name, Level::Ok, "no window published yet"),
            },
            Ok(None) => report.check(&name, Level::Ok, "no window published yet"),
            Err(e) => report.check(&name, Level::Degraded, e.to_string()),
        }
    }
    let neighbors = reco_lake::gold::neighbors::TABLE;
    match GoldTable::open_existing(lake, neighbors).await {
        Ok(Some(table)) => {
            let detail = format!("{} buckets of item lists published", table.row_sets().len());
            report.check(neighbors, Level::Ok, detail);
        }
        Ok(None) => report.check(neighbors, Level::Ok, "no list published yet"),
        Err(e) => report.check(neighbors, Level::Degraded, e.to_string()),
    }
}

fn print_table(report: &Report) {
    println!("{:<22} {:<9} detail", "check", "status");
    for c in &report.checks {
        let status = match c.status {
            Level::Ok => "ok",
            Level::Degraded => "DEGRADED",
            Level::Down => "DOWN",
        };
        println!("{:<22} {:<9} {}", c.name, status, c.detail);
    }
    if let Some(group) = &report.group {
        for p in group.partitions.iter().filter(|p| p.lag > 0) {
            println!("  lag {}[{}]: {} (committed {:?}, end {})", p.topic, p.partition, p.lag, p.committed, p.end);
        }
    }
    println!("overall: {:?}", report.status);
}

fn human(secs: f64) -> String {
    match secs {
        s if s < 120.0 => format!("{s:.0}s"),
        s if s < 7200.0 => format!("{:.0}m", s / 60.0),
        s if s < 172_800.0 => format!("{:.1}h", s / 3600.0),
        s => format!("{:.0}d", s / 86_400.0),
    }
}

fn rfc3339(us: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// `label value → sample value` of `metric` in Prometheus/OpenMetrics text.
fn labelled_values(text: &str, metric: &str, label: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with(metric)) {
        let Some(rest) = line.strip_prefix(metric).and_then(|r| r.strip_prefix('{')) else { continue };
        let Some((labels, value)) = rest.split_once('}') else { continue };
        let Ok(value) = value.trim().parse::<f64>() else { continue };
        let key = format!("{label}=\"");
        if let Some(v) = labels.split(',').find_map(|kv| kv.strip_prefix(&key)?.strip_suffix('"')) {
            out.insert(v.to_owned(), value);
        }
    }
    out
}

/// A minimal HTTP/1.0 GET (one request per connection; no TLS: these are in-cluster endpoints).
async fn http_get(base: &str, path: &str, timeout: Duration) -> anyhow::Result<(u16, String)> {
    let url = url::Url::parse(base).map_err(|e| anyhow::anyhow!("bad URL {base}: {e}"))?;
    anyhow::ensure!(url.scheme() == "http", "only http:// URLs are supported, got {base}");
    let host = url.host_str().ok_or_else(|| anyhow::anyhow!("no host in {base}"))?.to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nAccept: */*\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        anyhow::Ok(String::from_utf8_lossy(&raw).into_owned())
    };
    let raw = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {timeout:?}"))??;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, body.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_is_read_per_table() {
        let text = "# TYPE reco_silver_freshness_seconds gauge\n\
            reco_silver_freshness_seconds{table=\"silver/events_views\"} 12.5\n\
            reco_silver_freshness_seconds_other{table=\"x\"} 1\n\
            reco_silver_freshness_seconds{table=\"silver/events_clicks\"} 3\n";
        let got = labelled_values(text, "reco_silver_freshness_seconds", "table");
        assert_eq!(got.len(), 2);
        assert_eq!(got["silver/events_views"], 12.5);
    }
}
