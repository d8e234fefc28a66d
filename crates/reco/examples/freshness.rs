//! End-to-end freshness under steady load, and the peak memory of each service.
//!
//! The embedded broker runs in this process; `reco serve`, `reco silver` and `reco gold` run as
//! separate children of the release binary (default settings: silver flushes once caught up
//! after 250 ms, at most 2 s; gold polls every 1 s). Synthetic traffic is posted at a steady
//! rate with a historic clock running `SPEEDUP` times faster than the wall clock, so windows
//! close every few seconds. Afterwards the Delta
//! logs say when each silver row and each gold window became readable (the commit timestamp):
//!   - sent → in silver: commit time − wall time the event was generated and sent (its event
//!     time mapped back through the clock); an upper bound of "acknowledged → in silver";
//!   - window closable → published: commit time of the window's first publication − wall time
//!     the clock passed `window end + allowed lateness` (before that the job must wait);
//!   - a user's interaction acknowledged → in their recommendations: twice a second a new user
//!     views an item that has neighbours and polls `GET /users/{id}/recommendations` until an
//!     item names it in `because`.
//!
//! `cargo run --release -p reco --example freshness -- [SECONDS=120] [RATE=2000] [SPEEDUP=60]`
//!
//! The resident memory of every process is sampled every 5 s and printed at five points of the
//! run, so a component whose memory grows with the traffic shows itself. With a larger
//! `SPEEDUP` the event-time horizons (24 h de-duplication, 24 h windows) fill early in the run.
//! `RECO_BROKER_STORAGE=sqlite` puts the embedded broker on SQLite, as `reco up` runs it.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Arc, Mutex, atomic::AtomicBool},
    time::Duration,
};

use reco_lake::deltalake::arrow::{array::AsArray, datatypes::TimestampMicrosecondType};
use reco_lake::gold::stats_window_start;
use reco_testkit::proc::Service;
use reco_traffic::{
    send::{RunConfig, Tally, Target, run},
    synthetic::{Clock, GenConfig, Generator},
};
use serde_json::Value;

const START_US: i64 = 1_551_398_400_000_000;
/// Allowed lateness in event time: one second of wall time at the default speed-up of 60.
const LATENESS_SECS: i64 = 60;

fn percentiles(mut v: Vec<f64>) -> String {
    if v.is_empty() {
        return "no samples".into();
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!("p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms (n = {})", at(0.5), at(0.95), at(0.99), v.len())
}

/// A Delta commit: its timestamp in ms, and the paths it added with their statistics (new data only).
type Commit = (i64, Vec<(String, Option<String>)>);

/// Every commit in the Delta log of `table`.
fn commits(table: &Path) -> Vec<Commit> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(table.join("_delta_log")) else { return out };
    for entry in dir.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let (mut at, mut adds) = (None, Vec::new());
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
            if let Some(ts) = v["commitInfo"]["timestamp"].as_i64() {
                at = Some(ts);
            }
            // Compaction re-adds rows already committed (`dataChange: false`); their first
            // commit is the one that made them readable.
            if v["add"]["dataChange"] == Value::Bool(false) {
                continue;
            }
            if let Some(p) = v["add"]["path"].as_str() {
                adds.push((p.to_owned(), v["add"]["stats"].as_str().map(str::to_owned)));
            }
        }
        if let Some(at) = at {
            out.push((at, adds));
        }
    }
    out
}

/// `(commits, data files live at the end)` of the Delta table at `table`: what compaction
/// keeps bounded while silver commits several times a second.
fn files(table: &Path) -> (usize, usize) {
    let (mut commits, mut live) = (0, std::collections::HashSet::new());
    let mut logs: Vec<_> = std::fs::read_dir(table.join("_delta_log"))
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "json")).collect())
        .unwrap_or_default();
    logs.sort();
    for path in logs {
        commits += 1;
        for line in std::fs::read_to_string(&path).unwrap_or_default().lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
            if let Some(p) = v["add"]["path"].as_str() {
                live.insert(p.to_owned());
            }
            if let Some(p) = v["remove"]["path"].as_str() {
                live.remove(p);
            }
        }
    }
    (commits, live.len())
}

type RssSample = (f64, [u64; 4]);

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(120.0);
    let rate: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2000.0);
    let speedup: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(60.0);
    // The release binary next to this example (target/release/examples/freshness).
    let bin = std::env::var("RECO_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().join("reco"));
    print!("{}", measure(&bin, seconds, rate, speedup).await);
}

/// Latencies (ms) of the recommendation probes.
static PROBES: Mutex<Vec<f64>> = Mutex::new(Vec::new());
/// Events the probes posted (acknowledged), beside the generator's.
static PROBE_EVENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Set at the end of the load: the probe finishes the one in flight and stops.
static PROBES_STOP: AtomicBool = AtomicBool::new(false);

/// Twice a second during the load: a new user views an item that has neighbours (event time on
/// the generator's clock, so gold's watermark is not disturbed), then asks for their
/// recommendations until one names that item in `because`; the time from the acknowledgment.
async fn probe_recommendations(http: String, event_time_us: impl Fn(f64) -> i64) {
    use reco_testkit::http;
    for n in 0.. {
        if PROBES_STOP.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        // A trending item with neighbours now (the generator's items drift).
        let Some(item) = trending_with_neighbors(&http).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let user = format!("probe-{n}");
        let now_ms = chrono::Utc::now().timestamp_micros() as f64 / 1000.0;
        let event = serde_json::json!({"type": "view", "user_id": user, "item_id": item, "timestamp": event_time_us(now_ms) / 1000});
        let Ok(r) = http::post_json(&http, "/events", &event).await else { continue };
        if r.status != 202 {
            continue;
        }
        PROBE_EVENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let acked = std::time::Instant::now();
        let uri = format!("/users/{user}/recommendations");
        while acked.elapsed() < Duration::from_secs(10) {
            let r = http::get(&http, &uri).await;
            let named = r.is_ok_and(|r| r.text().contains(&format!("\"because\":[\"{item}\"")));
            if named {
                PROBES.lock().unwrap().push(acked.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn trending_with_neighbors(http: &str) -> Option<String> {
    use reco_testkit::http;
    let r = http::get(http, "/trending?window=1h&provisional=true&limit=20").await.ok()?;
    let body: Value = serde_json::from_str(&r.text()).ok()?;
    for item in body["items"].as_array()? {
        let id = item["item_id"].as_str()?;
        if http::get(http, &format!("/items/{id}/similar")).await.is_ok_and(|r| r.status == 200) {
            return Some(id.to_owned());
        }
    }
    None
}

/// Runs the benchmark with the `reco` binary at `bin` and returns its tables (markdown). The
/// smoke test (`tests/it/bench_smoke.rs`) includes this file as a module and calls this function,
/// so it needs no example binary that some earlier build left in the target directory.
pub async fn measure(bin: &Path, seconds: f64, rate: f64, speedup: f64) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let lake_s = lake.to_string_lossy().to_string();
    let broker = if std::env::var("RECO_BROKER_STORAGE").is_ok_and(|s| s == "sqlite") {
        let storage = reco_kafka::BrokerStorage::Sqlite(dir.path().join("broker").join("tansu.db"));
        let broker = reco_kafka::EmbeddedBroker::start(reco_testkit::free_addr(), storage).await.unwrap();
        let mut specs = reco_kafka::topics::default_topics();
        specs.iter_mut().for_each(|s| s.replication_factor = Some(1));
        reco_kafka::topics::ensure_topics(&broker.bootstrap(), &specs, false).await.unwrap();
        broker
    } else {
        reco_testkit::broker_with_topics().await
    };
    let bootstrap = broker.bootstrap();
    let http = reco_testkit::free_addr().to_string();
    let lake_env = [("LAKEHOUSE_PATH", lake_s.as_str()), ("KAFKA_BOOTSTRAP_SERVERS", &bootstrap)];
    // The API serves trending and recommendations from the same lake.
    let serve = Service::start(bin, &["serve"], &[lake_env[0], lake_env[1], ("RECO_HTTP_ADDR", &http)]);
    let silver = Service::start(bin, &["silver", "--metrics-addr", "127.0.0.1:0"], &lake_env);
    let lateness = LATENESS_SECS.to_string();
    let gold = Service::start(
        bin,
        &["gold", "--metrics-addr", "127.0.0.1:0"],
        &[("LAKEHOUSE_PATH", lake_s.as_str()), ("RECO_GOLD_ALLOWED_LATENESS_SECS", &lateness)],
    );
    let up = reco_testkit::wait_until(Duration::from_secs(30), || async {
        reco_testkit::http::get(&http, "/health/ready").await.is_ok_and(|r| r.status == 200)
    })
    .await;
    assert!(up, "reco serve did not become ready");

    let generator = Generator::new(GenConfig {
        seed: 5,
        clock: Clock::Historic { start_us: START_US, speedup },
        ..GenConfig::default()
    });
    let tally = Arc::new(Tally::default());
    let config = RunConfig {
        rate: Some(rate),
        events: Some((rate * seconds) as u64),
        duration: None,
        batch: 100,
        concurrency: 4,
    };
    // The generator's clock starts at its first event, right after this instant.
    let started_ms = chrono::Utc::now().timestamp_micros() as f64 / 1000.0;
    let wall_ms = move |event_us: i64| started_ms + (event_us - START_US) as f64 / speedup / 1000.0;
    let pids = [serve.pid(), silver.pid(), gold.pid(), std::process::id()];
    // (seconds into the load, RSS in MiB of serve, silver, gold, this process)
    let samples: Arc<Mutex<Vec<RssSample>>> = Arc::default();
    let sampler = tokio::spawn({
        let samples = samples.clone();
        async move {
            let started = tokio::time::Instant::now();
            loop {
                let rss = pids.map(|p| reco_testkit::proc::rss_of(p).0 / 1024);
                samples.lock().unwrap().push((started.elapsed().as_secs_f64(), rss));
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    });
    PROBES_STOP.store(false, std::sync::atomic::Ordering::SeqCst);
    PROBE_EVENTS.store(0, std::sync::atomic::Ordering::Relaxed);
    PROBES.lock().unwrap().clear();
    let probe = tokio::spawn(probe_recommendations(http.clone(), move |now_ms| {
        START_US + ((now_ms - started_ms) * 1000.0 * speedup) as i64
    }));
    let took =
        run(generator, Target::Http { addr: http.clone() }, config, tally.clone(), Arc::new(AtomicBool::new(false)))
            .await;
    PROBES_STOP.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = probe.await;
    let to_recommended = PROBES.lock().unwrap().clone();
    let load_end_ms = started_ms + took.as_secs_f64() * 1000.0;
    sampler.abort();
    let samples = samples.lock().unwrap().clone();
    let [sent, accepted, _, _, failed] = tally.get();
    // Let the last silver batch commit before reading the logs.
    tokio::time::sleep(Duration::from_secs(4)).await;

    let mut to_silver = Vec::new();
    for topic in ["events_views", "events_clicks", "events_ratings"] {
        let table = lake.join("silver").join(topic);
        for (at, adds) in commits(&table) {
            for (path, _) in adds {
                let batches = reco_lake::read::read_parquet(&table.join(&path), &["event_time"]).expect("read silver");
                for b in batches {
                    let times = b.column(0).as_primitive::<TimestampMicrosecondType>();
                    to_silver.extend(times.values().iter().map(|t| at as f64 - wall_ms(*t)));
                }
            }
        }
    }
    // An event arrives once: more rows than acknowledged events means a rewrite (compaction)
    // was taken for an arrival (`commits` skips adds with `dataChange: false` for that reason).
    let probes = PROBE_EVENTS.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        to_silver.len() as u64 <= accepted + probes,
        "{} silver arrivals for {accepted} events and {probes} probes",
        to_silver.len()
    );
    let mut to_gold: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for (name, length_us) in [("1h", 3_600_000_000_i64), ("24h", 86_400_000_000)] {
        let table = lake.join("gold").join(format!("trending_now_{name}"));
        let mut first: BTreeMap<i64, i64> = BTreeMap::new();
        for (at, adds) in commits(&table) {
            for start in adds.iter().filter_map(|(_, s)| stats_window_start(s.as_deref()?)) {
                first.entry(start).and_modify(|t| *t = (*t).min(at)).or_insert(at);
            }
        }
        // Windows closed by the watermark during the load (not by the idle timeout after it).
        let closable = |start: i64| wall_ms(start + length_us + LATENESS_SECS * 1_000_000);
        let samples = first
            .into_iter()
            .filter(|(start, at)| closable(*start) > started_ms && (*at as f64) < load_end_ms)
            .map(|(start, at)| at as f64 - closable(start));
        to_gold.entry(name).or_default().extend(samples);
    }
    let peak = |s: &Service| s.rss_kib().1 / 1024;
    let (api_peak, silver_peak, gold_peak) = (peak(&serve), peak(&silver), peak(&gold));
    let this_peak = reco_testkit::proc::rss_of(std::process::id()).1 / 1024;
    let clean = serve.stop() & silver.stop() & gold.stop();
    broker.stop().await;

    writeln!(
        out,
        "\n## Freshness under steady load ({rate:.0} ev/s for {:.0} s, clock ×{speedup})",
        took.as_secs_f64()
    )
    .unwrap();
    writeln!(
        out,
        "{accepted} of {sent} events acknowledged, {failed} failed; {probes} probe events; services stopped cleanly: \
         {clean}\n"
    )
    .unwrap();
    let part = format!("freshness ({rate:.0} ev/s, 3 services)");
    writeln!(out, "| path | latency | reference (same run / config) |").unwrap();
    writeln!(out, "|---|---|---|").unwrap();
    // The services inherit this process's environment: name the settings they ran with (200 ms
    // is `reco gold`'s own default active poll, DEFAULT_ACTIVE_POLL_INTERVAL_MS).
    let setting = |var: &str, default: u64| std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let batch_ms = setting("RECO_SILVER_MAX_BATCH_AGE_MS", 2000);
    let min_ms = setting("RECO_SILVER_MIN_BATCH_AGE_MS", 250).min(batch_ms);
    let poll_ms = setting("RECO_GOLD_ACTIVE_POLL_INTERVAL_MS", 200).min(setting("RECO_GOLD_POLL_INTERVAL_MS", 1000));
    let silver = percentiles(to_silver);
    let batch = format!("silver batch age {min_ms} ms once caught up, at most {batch_ms} ms (config)");
    writeln!(out, "| sent → committed in silver | {silver} | {batch} |").unwrap();
    reco_testkit::bench::report(&part, "sent → committed in silver", &silver, &batch, None);
    for (name, v) in to_gold {
        let gold = percentiles(v);
        let reference = format!("silver batch {min_ms}-{batch_ms} ms + gold poll {poll_ms} ms");
        writeln!(out, "| window {name} closable (end + lateness) → published | {gold} | {reference} (config) |")
            .unwrap();
        let measure = format!("window {name} closable (end + lateness) → published");
        reco_testkit::bench::report(&part, &measure, &gold, &format!("{reference} (config)"), None);
    }
    let recs = percentiles(to_recommended);
    let reference = "no batch or poll on this path: the API follows the topics (design)";
    writeln!(out, "| a user's interaction acknowledged → in their recommendations | {recs} | {reference} |").unwrap();
    reco_testkit::bench::report(
        &part,
        "interaction acknowledged → in the user's recommendations",
        &recs,
        reference,
        None,
    );
    writeln!(out, "\n| silver table | commits | data files at the end |").unwrap();
    writeln!(out, "|---|---:|---:|").unwrap();
    for topic in ["events_views", "events_clicks", "events_ratings"] {
        let (commits, live) = files(&lake.join("silver").join(topic));
        writeln!(out, "| {topic} | {commits} | {live} |").unwrap();
    }
    writeln!(out, "\n| component | peak RSS |").unwrap();
    writeln!(out, "|---|---|").unwrap();
    writeln!(out, "| reco serve (API) | {api_peak} MiB |").unwrap();
    writeln!(out, "| reco silver | {silver_peak} MiB |").unwrap();
    writeln!(out, "| reco gold | {gold_peak} MiB |").unwrap();
    writeln!(out, "| embedded broker + load generator (this process) | {this_peak} MiB |").unwrap();
    writeln!(out, "\n| RSS (MiB) at | reco serve | reco silver | reco gold | broker + load generator |").unwrap();
    writeln!(out, "|---|---:|---:|---:|---:|").unwrap();
    let n = samples.len();
    for i in [0, n / 5, n * 3 / 10, n / 2, n.saturating_sub(1)].into_iter().filter(|i| *i < n) {
        let (t, [a, s, g, b]) = samples[i];
        writeln!(out, "| {t:.0} s | {a} | {s} | {g} | {b} |").unwrap();
    }
    for (component, mib) in [("reco serve", api_peak), ("reco silver", silver_peak), ("reco gold", gold_peak)] {
        reco_testkit::bench::report("peak RSS under steady load", component, &format!("{mib} MiB"), "", None);
    }
    out
}
