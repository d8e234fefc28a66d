//! The lakehouse on object storage: every test runs against a real S3-compatible server (moto,
//! a separate process on loopback) through `LAKEHOUSE_PATH=s3://…` and the standard AWS
//! variables, as a user would configure it.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use reco_lake::{CommitOutcome, SilverRow, StreamBatch, TopicTables};
use reco_testkit::{
    gold::{Input, SilverWriter, history, published, recount, silver_events},
    http,
    s3::S3Server,
    up::RecoUp,
    wait_until,
};
use serde_json::{Value, json};

const MIN_MS: i64 = 60_000;
/// 2019-03-01T00:00:00Z in milliseconds.
const BASE_MS: i64 = 1_551_398_400_000;

fn reco() -> Command {
    Command::new(env!("CARGO_BIN_EXE_reco"))
}

/// A child whose stderr is collected (and echoed) for assertions on its log lines.
struct Logged {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Logged {
    fn spawn(mut cmd: Command) -> Logged {
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn reco");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (sink, stderr) = (lines.clone(), child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                sink.lock().unwrap().push(line);
            }
        });
        Logged { child, lines }
    }

    fn logged(&self, needle: &str) -> bool {
        self.lines.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    fn signal(&self, signal: &str) {
        Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap();
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        self.signal("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Historic events over three hours, bursty: batches of uneven size, views and clicks mixed.
fn events(n: usize) -> Vec<Value> {
    let mut next = reco_testkit::xorshift(0x2545_F491_4F6C_DD1D);
    (0..n)
        .map(|i| {
            let item = format!("m{}", (next() % 40).min(next() % 40));
            let t = BASE_MS + (i as i64 * 3 * 60 * MIN_MS) / n as i64;
            let kind = if next().is_multiple_of(4) { "click" } else { "view" };
            json!({"type": kind, "user_id": format!("u{}", next() % 300), "item_id": item, "timestamp": t})
        })
        .collect()
}

/// `(item_id, event_time_us)` of every view and click row, read by the independent reader
/// (scripts/read_lake.py: the Python `deltalake` package) straight from the bucket.
fn independent_rows(s3: &S3Server, lake_url: &str) -> Vec<(String, i64)> {
    let python = std::env::var("RECO_PYTHON").unwrap_or_else(|_| reco_testkit::s3::venv_bin("python"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/read_lake.py");
    let mut rows = Vec::new();
    for topic in ["events_views", "events_clicks"] {
        let out = Command::new(&python)
            .arg(script)
            .args([lake_url, "delta", topic])
            .envs(s3.env())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {python} (run `make test`, which installs it): {e}"));
        assert!(out.status.success(), "independent reader failed: {}", String::from_utf8_lossy(&out.stderr));
        let tables: Value = serde_json::from_slice(&out.stdout).expect("reader prints JSON");
        for row in tables["silver"].as_array().expect("silver rows") {
            rows.push((row["item_id"].as_str().unwrap().to_owned(), row["event_time"].as_i64().unwrap()));
        }
    }
    rows.sort();
    rows
}

#[tokio::test(flavor = "multi_thread")]
async fn reco_up_on_s3_end_to_end() {
    let s3 = S3Server::start().await;
    let lake_url = s3.lake_url("e2e");
    let broker_data = tempfile::tempdir().unwrap();
    let mut env: Vec<(String, String)> = s3.env();
    env.extend(
        [
            ("RECO_BROKER_DATA", broker_data.path().to_str().unwrap()),
            ("RECO_SILVER_MAX_BATCH_AGE_MS", "300"),
            ("RECO_GOLD_POLL_INTERVAL_MS", "200"),
            ("RECO_GOLD_IDLE_TIMEOUT_MS", "3000"),
            ("RECO_GOLD_CHECKPOINT_INTERVAL_SECS", "1"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let up = RecoUp::start(env!("CARGO_BIN_EXE_reco"), std::path::Path::new(&lake_url), &env_refs);
    let api = up.api();

    // Fast and uneven: batches of 1 to 250 events, back to back.
    let all = events(3000);
    let mut sizes = [250usize, 1, 97, 180, 3, 250, 40].into_iter().cycle();
    let mut rest = &all[..];
    while !rest.is_empty() {
        let (batch, tail) = rest.split_at(sizes.next().unwrap().min(rest.len()));
        let response = http::post_json(&api, "/events", &Value::Array(batch.to_vec())).await.unwrap();
        assert_eq!(response.status, 202, "{}", response.text());
        rest = tail;
    }

    let lake = s3.lake("e2e");
    let drained =
        wait_until(Duration::from_secs(120), || async { silver_events(&lake).await.len() == all.len() }).await;
    assert!(drained, "every posted event reaches silver on S3: {} of {}", silver_events(&lake).await.len(), all.len());
    let posted: Vec<Input> = all
        .iter()
        .map(|e| {
            (e["item_id"].as_str().unwrap().to_owned(), e["type"] == "click", e["timestamp"].as_i64().unwrap() * 1000)
        })
        .collect();
    let expected = recount(&posted, 100);
    let settled = wait_until(Duration::from_secs(90), || async { published(&lake).await == expected }).await;
    assert!(settled, "the gold tables on S3 equal a recount of the posted events");

    // GET /trending serves from the S3 gold tables.
    let served = wait_until(Duration::from_secs(10), || async {
        let r = http::get(&api, "/trending?window=1h&limit=5&provisional=true").await.unwrap();
        r.status == 200 && !r.json()["items"].as_array().is_none_or(Vec::is_empty)
    })
    .await;
    assert!(served, "GET /trending answers from the S3 lake");
    assert_eq!(http::get(&api, "/health/ready").await.unwrap().status, 200);

    // The independent reader sees exactly the posted events in the bucket.
    let mut theirs_expected: Vec<(String, i64)> = posted.iter().map(|(item, _, t)| (item.clone(), *t)).collect();
    theirs_expected.sort();
    assert_eq!(independent_rows(&s3, &lake_url), theirs_expected);
    assert!(up.stop().success(), "clean exit");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_that_does_not_exist_or_an_unknown_scheme_stops_the_service_naming_the_variable() {
    let s3 = S3Server::start().await;
    // `reco gold` with `env`: it must stop with an error; what it said.
    let refused = |env: &[(String, String)]| {
        let out = reco().args(["gold", "--metrics-addr", "127.0.0.1:0"]).envs(env.iter().cloned()).output().unwrap();
        assert!(!out.status.success(), "{env:?} is refused");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let var = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let with_s3 = |mut env: Vec<(String, String)>| {
        env.extend(s3.env());
        env
    };
    let stderr = refused(&with_s3(vec![var("LAKEHOUSE_PATH", "s3://no-such-bucket/lake")]));
    assert!(
        stderr.contains("LAKEHOUSE_PATH=s3://no-such-bucket/lake") && stderr.contains("AWS_ACCESS_KEY_ID"),
        "{stderr}"
    );
    let stderr = refused(&[var("LAKEHOUSE_PATH", "hdfs://nn/lake")]);
    assert!(stderr.contains("hdfs://") && stderr.contains("LAKEHOUSE_PATH"), "{stderr}");
    let stderr = refused(&with_s3(vec![var("LAKEHOUSE_PATH", &s3.lake_url("p")), var("STORAGE_FORMAT", "parquet")]));
    assert!(stderr.contains("STORAGE_FORMAT=parquet needs a local lakehouse folder"), "{stderr}");
}

fn row(id: usize, partition: i32, offset: i64) -> SilverRow {
    SilverRow {
        event_id: format!("e{id}"),
        user_id: "u".into(),
        item_id: "m".into(),
        event_time_us: BASE_MS * 1000 + id as i64,
        session_id: None,
        rating: None,
        kafka_partition: partition,
        kafka_offset: offset,
        ingested_at_us: BASE_MS * 1000,
    }
}

/// Two silver writers of one S3 lake, as two workers on two hosts: each commits its own
/// partitions, and a writer whose view of a partition's offsets is stale is refused (a
/// conflict, nothing of its batch visible), never allowed to overwrite.
#[tokio::test(flavor = "multi_thread")]
async fn two_writers_on_one_s3_lake_commit_their_partitions_and_a_stale_writer_is_refused() {
    let s3 = S3Server::start().await;
    let (lake_a, lake_b) = (s3.lake("workers"), s3.lake("workers"));
    let mut a = TopicTables::open(&lake_a, "events_views", false).await.unwrap();
    let mut b = TopicTables::open(&lake_b, "events_views", false).await.unwrap();
    let batch = |rows: Vec<SilverRow>, partition: i32, from: Option<i64>, to: i64| StreamBatch {
        silver: rows,
        offsets: [(partition, (from, to))].into(),
        ..StreamBatch::default()
    };
    // Interleaved commits of partitions 0 (A) and 1 (B).
    for round in 0..4i64 {
        let from = (round > 0).then_some(round * 10);
        let rows_a = (0..10).map(|i| row(round as usize * 10 + i, 0, round * 10 + i as i64)).collect();
        let rows_b = (0..10).map(|i| row(1000 + round as usize * 10 + i, 1, round * 10 + i as i64)).collect();
        assert!(matches!(
            a.commit(batch(rows_a, 0, from, (round + 1) * 10)).await.unwrap(),
            CommitOutcome::Committed(_)
        ));
        assert!(matches!(
            b.commit(batch(rows_b, 1, from, (round + 1) * 10)).await.unwrap(),
            CommitOutcome::Committed(_)
        ));
    }
    // B takes partition 0 over (a rebalance) and commits it from the stored offset 40.
    let rows = (0..5).map(|i| row(2000 + i, 0, 40 + i as i64)).collect();
    assert!(matches!(b.commit(batch(rows, 0, Some(40), 45)).await.unwrap(), CommitOutcome::Committed(_)));
    // A still believes partition 0 is at 40: refused, not written.
    let stale = (0..5).map(|i| row(3000 + i, 0, 40 + i as i64)).collect();
    assert_eq!(a.commit(batch(stale, 0, Some(40), 45)).await.unwrap(), CommitOutcome::Conflict { partition: 0 });

    let rows = reco_lake::read::read_silver(&a.silver_files().await.unwrap()).unwrap();
    let mut ids: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    ids.sort_unstable();
    let mut expected: Vec<String> = (0..40).chain(1000..1040).chain(2000..2005).map(|i| format!("e{i}")).collect();
    expected.sort_unstable();
    assert_eq!(ids, expected.iter().map(String::as_str).collect::<Vec<_>>());
    let offsets = a.stored_offsets(&[0, 1]).await.unwrap().silver;
    assert_eq!(offsets, HashMap::from([(0, 45), (1, 40)]));
}

fn gold(s3: &S3Server, lake_url: &str) -> Logged {
    let mut cmd = reco();
    cmd.args(["gold", "--metrics-addr", "127.0.0.1:0"])
        .env("LAKEHOUSE_PATH", lake_url)
        .envs(s3.env())
        .env("RECO_GOLD_POLL_INTERVAL_MS", "100")
        .env("RECO_GOLD_IDLE_TIMEOUT_MS", "1500")
        .env("RECO_GOLD_CHECKPOINT_INTERVAL_SECS", "0")
        .env("RECO_GOLD_TOP_N", "10")
        .env("RECO_GOLD_LEASE_TTL_SECS", "4")
        .env("RUST_LOG", "warn,reco_gold::lease=info");
    Logged::spawn(cmd)
}

/// One gold writer per lake: a second `reco gold` on the same S3 lake waits while the first
/// holds the lease, takes over once the first stops renewing it (paused with SIGSTOP, so its
/// process still exists: only the lease's expiry frees it), and the first, resumed, finds its
/// lease taken and stops without writing. The tables then equal a recount of silver.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_gold_waits_for_the_lease_and_takes_over_when_it_expires() {
    let s3 = S3Server::start().await;
    let lake_url = s3.lake_url("lease");
    let lake = s3.lake("lease");
    let mut silver = SilverWriter::open(&lake).await;
    let events = history(BASE_MS * 1000, 7);
    let (first, second) = events.split_at(events.len() / 2);
    for chunk in first.chunks(200) {
        silver.commit(chunk).await;
    }

    let a = gold(&s3, &lake_url);
    let some = wait_until(Duration::from_secs(60), || async { !published(&lake).await.is_empty() }).await;
    assert!(some, "the first gold job publishes");
    let b = gold(&s3, &lake_url);
    let waiting = wait_until(Duration::from_secs(20), || {
        let w = b.logged("holds this lake's lease; waiting");
        async move { w }
    })
    .await;
    assert!(waiting, "the second gold job waits for the lease");

    a.signal("-STOP");
    for chunk in second.chunks(200) {
        silver.commit(chunk).await;
    }
    let expected = recount(&silver_events(&lake).await, 10);
    let settled = wait_until(Duration::from_secs(90), || async { published(&lake).await == expected }).await;
    let took = wait_until(Duration::from_secs(5), || {
        let w = b.logged("gold lease taken");
        async move { w }
    })
    .await;
    assert!(took, "the second job took the lease");
    assert!(settled, "the job that took over publishes everything, equal to the recount");

    a.signal("-CONT");
    let mut a = a;
    let stopped = wait_until(Duration::from_secs(30), || {
        let exited = a.child.try_wait().unwrap().is_some();
        async move { exited }
    })
    .await;
    assert!(stopped, "the resumed first job stops");
    assert!(!a.child.wait().unwrap().success(), "it stops with an error");
    // Its last line may still be on its way from the pipe to the reader thread. Whichever
    // write it tries first on resuming is refused: a gold commit (the lease moved on) or its
    // checkpoint (the successor wrote that one already).
    let says_why = wait_until(Duration::from_secs(5), || {
        let w = a.logged("was taken by") || a.logged("another gold job runs on this lake");
        async move { w }
    })
    .await;
    assert!(says_why, "and says why");
    assert_eq!(published(&lake).await, expected, "its resumption changed nothing");

    b.signal("-TERM");
    let mut b = b;
    assert!(b.child.wait().unwrap().success(), "clean stop on SIGTERM");
}
