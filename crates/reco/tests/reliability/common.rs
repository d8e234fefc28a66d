//! What the reliability scenarios share: their scale, the verdict line, child `reco` services
//! that can be SIGKILLed and restarted, a load generator that remembers which events were
//! acknowledged, and an exactly-once check of silver against those acknowledgments.

use std::{
    collections::HashMap,
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, atomic::AtomicBool},
    time::{Duration, SystemTime},
};

use reco_lake::{Lake, TopicTables, read::read_batches};
pub use reco_testkit::proc::{Service, rss_of};
use reco_traffic::{
    send::{RunConfig, Tally, Target, run},
    synthetic::{Clock, GenConfig, Generator},
};
use tokio::task::JoinHandle;

/// 2019-03-01T00:00:00Z: historic event time, so windows close by watermark, not wall clock.
pub const HISTORY_START_US: i64 = 1_551_398_400_000_000;

/// `RECO_RELIABILITY=full` runs the sizes (`make reliability`); anything else runs the
/// quick subset CI runs on every change.
pub fn full() -> bool {
    std::env::var("RECO_RELIABILITY").is_ok_and(|v| v == "full")
}

/// Picks the quick or the full value.
pub fn scale<T>(quick: T, full_value: T) -> T {
    if full() { full_value } else { quick }
}

/// Prints the scenario's one-line verdict (and appends it to `$RECO_RELIABILITY_REPORT`, so
/// `make reliability` can print all of them together), then fails the test if it did not pass.
pub fn verdict(scenario: &str, pass: bool, numbers: &str) {
    let line = format!(
        "reliability {scenario:<10} {} [{}] {numbers}",
        if pass { "PASS" } else { "FAIL" },
        if full() { "full" } else { "quick" }
    );
    println!("\n{line}");
    if let Ok(path) = std::env::var("RECO_RELIABILITY_REPORT")
        && let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path)
    {
        let _ = writeln!(f, "{line}");
    }
    assert!(pass, "{line}");
}

/// A number in `0..max` that differs from run to run (kill moments).
pub fn pseudo_random(max: u64) -> u64 {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    nanos.wrapping_mul(6364136223846793005).rotate_left(17) % max.max(1)
}

/// A `reco` subcommand of this build as a child process.
pub fn service(args: &[&str], env: &[(&str, &str)]) -> Service {
    Service::start(env!("CARGO_BIN_EXE_reco"), args, env)
}

/// `reco serve` on a free port against `bootstrap`; waits until it answers.
pub async fn api(bootstrap: &str, extra: &[(&str, &str)]) -> (Service, String) {
    let addr = reco_testkit::free_addr().to_string();
    let mut env = vec![("KAFKA_BOOTSTRAP_SERVERS", bootstrap), ("RECO_HTTP_ADDR", addr.as_str())];
    env.extend_from_slice(extra);
    let service = service(&["serve"], &env);
    let up = reco_testkit::wait_until(Duration::from_secs(60), || async {
        reco_testkit::http::get(&addr, "/health/live").await.is_ok_and(|r| r.status == 200)
    })
    .await;
    assert!(up, "reco serve did not come up on {addr}");
    (service, addr)
}

/// `reco silver` with a static member id, so a restarted worker takes its partitions back at
/// once instead of waiting out the session timeout.
pub fn silver(bootstrap: &str, lake: &Path, format: &str) -> Service {
    let lake = lake.to_string_lossy();
    service(
        &["silver", "--metrics-addr", "127.0.0.1:0", "--max-batch-age-ms", "500"],
        &[
            ("KAFKA_BOOTSTRAP_SERVERS", bootstrap),
            ("LAKEHOUSE_PATH", &lake),
            ("STORAGE_FORMAT", format),
            ("RECO_SILVER_INSTANCE_ID", "reliability-silver"),
            ("RUST_LOG", "error,reco_silver=warn"),
        ],
    )
}

/// Top N of the gold job in these scenarios (and of the recount it is compared with).
pub const TOP_N: usize = 20;

pub fn gold(lake: &Path, format: &str) -> Service {
    let lake = lake.to_string_lossy();
    service(
        &["gold", "--metrics-addr", "127.0.0.1:0"],
        &[
            ("LAKEHOUSE_PATH", &lake),
            ("STORAGE_FORMAT", format),
            ("RECO_GOLD_POLL_INTERVAL_MS", "200"),
            ("RECO_GOLD_IDLE_TIMEOUT_MS", "3000"),
            ("RECO_GOLD_CHECKPOINT_INTERVAL_SECS", "1"),
            ("RECO_GOLD_TOP_N", &TOP_N.to_string()),
        ],
    )
}

/// Synthetic traffic in flight; `tally` counts it and keeps every acknowledged event id.
pub struct Load {
    pub tally: Arc<Tally>,
    pub stop: Arc<AtomicBool>,
    pub task: JoinHandle<Duration>,
}

/// Starts `reco gen`'s generator against the API at `addr`: valid events only, historic clock
/// at `speedup`, `rate` events/s (`None`: as fast as possible), until `events` or `stop`.
pub fn load(addr: &str, seed: u64, rate: Option<f64>, events: Option<u64>, speedup: f64) -> Load {
    let generator = Generator::new(GenConfig {
        seed,
        items: 2_000,
        users: 1_000,
        clock: Clock::Historic { start_us: HISTORY_START_US, speedup },
        ..GenConfig::default()
    });
    let tally = Arc::new(Tally::recording_ids());
    let stop = Arc::new(AtomicBool::new(false));
    let config = RunConfig { rate, events, duration: None, batch: 100, concurrency: 4 };
    let task =
        tokio::spawn(run(generator, Target::Http { addr: addr.to_owned() }, config, tally.clone(), stop.clone()));
    Load { tally, stop, task }
}

/// `event_id` → copies, over the silver tables of every topic.
pub async fn silver_ids(lake: &Lake) -> HashMap<String, u32> {
    let mut ids = HashMap::new();
    for (topic, rating) in [("events_views", false), ("events_clicks", false), ("events_ratings", true)] {
        let Ok(mut tables) = TopicTables::open(lake, topic, rating).await else { continue };
        let Ok(files) = tables.silver_files().await else { continue };
        for f in files {
            for b in read_batches(&f, &["event_id"]).expect("read silver") {
                let column = b.column(0).as_any().downcast_ref::<reco_lake::deltalake::arrow::array::StringArray>();
                for id in column.expect("event_id is a string column").iter().flatten() {
                    *ids.entry(id.to_owned()).or_insert(0) += 1;
                }
            }
        }
    }
    ids
}

/// How silver compares with the acknowledged events.
#[derive(Debug, Default)]
pub struct Audit {
    pub missing: usize,
    pub duplicated: usize,
    pub rows: usize,
}

impl Audit {
    pub fn exactly_once(&self) -> bool {
        self.missing == 0 && self.duplicated == 0
    }
}

pub fn audit(acked: &[String], silver: &HashMap<String, u32>) -> Audit {
    Audit {
        missing: acked.iter().filter(|id| !silver.contains_key(*id)).count(),
        duplicated: silver.values().filter(|n| **n > 1).count(),
        rows: silver.values().map(|n| *n as usize).sum(),
    }
}

/// Waits (up to `timeout`) until silver holds every acknowledged event, then audits it.
pub async fn audit_when_drained(lake: &Lake, acked: &[String], timeout: Duration) -> Audit {
    reco_testkit::wait_until(timeout, || async { audit(acked, &silver_ids(lake).await).missing == 0 }).await;
    audit(acked, &silver_ids(lake).await)
}

pub fn lake_dir(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("lake")
}

/// `event_id` → copies over every topic's silver table, read by the independent reader
/// (`scripts/read_lake.py`: the Python `deltalake` package, code reco did not write).
pub fn independent_ids(lake: &Path, format: &str) -> HashMap<String, u32> {
    let python = std::env::var("RECO_PYTHON")
        .unwrap_or_else(|_| format!("{}/.cache/reco-venv/bin/python", std::env::var("HOME").unwrap_or_default()));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/read_lake.py");
    let mut ids = HashMap::new();
    for topic in ["events_views", "events_clicks", "events_ratings"] {
        let out = std::process::Command::new(&python)
            .arg(script)
            .arg(lake)
            .args([format, topic])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {python} (run `make test`, which installs it): {e}"));
        assert!(out.status.success(), "independent reader failed: {}", String::from_utf8_lossy(&out.stderr));
        let tables: serde_json::Value = serde_json::from_slice(&out.stdout).expect("reader prints JSON");
        for row in tables["silver"].as_array().expect("silver rows") {
            *ids.entry(row["event_id"].as_str().expect("event_id").to_owned()).or_insert(0) += 1;
        }
    }
    ids
}
