//! The README's traffic examples (`reco gen`, `reco replay`), read from README.md and run in the
//! order written against a fresh `reco up` with its default settings: the historic day whose
//! trending windows appear while it runs, live traffic stopped with Ctrl-C, malformed records
//! straight into Kafka (dead-lettered by silver) and a MovieLens-style log replayed twice
//! (stored once). Every figure the tools report is checked against the lake.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use reco_lake::{Format, Lake, TopicTables, read};
use reco_testkit::{
    Samples, http,
    readme::{block_after, commands, readme},
    up::RecoUp,
    wait_until,
};

/// A README command as the reader's shell runs it: `reco` on the PATH, the platform's ports in
/// the environment, `dir` the working folder. `exec`, so a signal reaches `reco` itself.
fn shell(command: &str, dir: &Path, http_port: u16, broker_port: u16) -> Command {
    let bin = Path::new(env!("CARGO_BIN_EXE_reco")).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut c = Command::new("bash");
    c.args(["-c", &format!("exec {command}")])
        .current_dir(dir)
        .env("PATH", path)
        .env("RECO_GEN_API_URL", format!("http://127.0.0.1:{http_port}"))
        .env("KAFKA_BOOTSTRAP_SERVERS", format!("127.0.0.1:{broker_port}"))
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Waits for `child`; its success and its stdout and stderr.
fn finish(child: Child) -> (bool, String, String) {
    let out = child.wait_with_output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// The number before `label` in the summary line.
fn figure(summary: &str, before: &str) -> u64 {
    let at = summary.find(before).unwrap_or_else(|| panic!("{before:?} in {summary}"));
    summary[..at].split_whitespace().last().unwrap().trim_start_matches('(').parse().unwrap()
}

/// Rows in silver and in dead-letter, over the three topics.
async fn silver_rows(lake: &Lake) -> (u64, u64) {
    let (mut rows, mut dead) = (0, 0);
    for (topic, rating) in [("events_views", false), ("events_clicks", false), ("events_ratings", true)] {
        let mut t = TopicTables::open(lake, topic, rating).await.unwrap();
        rows += read::read_silver(&t.silver_files().await.unwrap()).unwrap().len() as u64;
        dead += read::read_deadletter(&t.deadletter_files().await.unwrap()).unwrap().len() as u64;
    }
    (rows, dead)
}

async fn settles(lake: &Lake, expected: (u64, u64), what: &str) {
    let ok = wait_until(Duration::from_secs(90), || async { silver_rows(lake).await == expected }).await;
    assert!(ok, "{what}: silver and dead-letter rows {:?}, expected {expected:?}", silver_rows(lake).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_traffic_examples_run_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let up = RecoUp::start(env!("CARGO_BIN_EXE_reco"), dir.path(), &[]);
    let (http_port, broker_port, api) = (up.http_port, up.broker_port, up.api());
    let lake = Lake::new(dir.path(), Format::Delta).unwrap();
    let readme = readme();
    let examples = commands(&block_after(&readme, "### Traffic"));
    let [historic, live, kafka, replay] = &examples[..] else { panic!("four traffic commands: {examples:?}") };
    assert!(historic.contains("--historic-start") && live == "reco gen --rate 2000", "{examples:?}");

    // A day of 2019 through the API; trending windows appear while it runs.
    let mut child = shell(historic, dir.path(), http_port, broker_port).spawn().unwrap();
    let appeared = loop {
        if http::get(&api, "/trending?window=1h").await.unwrap().status == 200 {
            break child.try_wait().unwrap().is_none();
        }
        if child.try_wait().unwrap().is_some() {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(appeared, "a complete 1 h window is served before the historic run ends");
    let (ok, summary, stderr) = finish(child);
    assert!(ok, "{summary}{stderr}");
    assert!(stderr.starts_with("seed "), "a fresh seed, printed: {stderr}");
    let (accepted, refused) = (figure(&summary, "valid accepted"), figure(&summary, "refused as expected"));
    assert!(accepted > 20_000 && refused > 0 && figure(&summary, "failed") == 0, "{summary}");
    let metrics = Samples::parse(&http::get(&api, "/metrics").await.unwrap().text());
    let rejected: f64 = metrics.matching("reco_api_events_rejected_total", &[]).map(|s| s.value).sum();
    assert_eq!(rejected as u64, refused, "every malformed event was refused by validation");
    settles(&lake, (accepted, 0), "the historic day").await;

    // Live traffic until Ctrl-C: a summary, exit 0, every accepted event in silver.
    let child = shell(live, dir.path(), http_port, broker_port).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(4));
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let (ok, summary, stderr) = finish(child);
    assert!(ok, "Ctrl-C ends live traffic cleanly: {summary}{stderr}");
    let live_accepted = figure(&summary, "valid accepted");
    assert!(live_accepted > 1_000, "{summary}");
    let accepted = accepted + live_accepted;
    settles(&lake, (accepted, 0), "live traffic").await;

    // Straight into Kafka: malformed records bypass the API and are dead-lettered by silver.
    let (ok, summary, stderr) = finish(shell(kafka, dir.path(), http_port, broker_port).spawn().unwrap());
    assert!(ok, "{summary}{stderr}");
    let (valid, malformed) = (figure(&summary, "valid accepted"), figure(&summary, "malformed ("));
    assert_eq!(valid + malformed, 10_000, "{summary}");
    assert!(malformed > 500, "{summary}");
    let accepted = accepted + valid;
    settles(&lake, (accepted, malformed), "records straight into Kafka").await;

    // A MovieLens-style log (`ratings.csv` in the working folder): ratings, each also a view;
    // bad rows reported by line and skipped; replaying it again sends the same ids, stored once.
    let mut csv = String::from("userId,movieId,rating,timestamp\n");
    for i in 0..200 {
        csv.push_str(&format!("{},{},{}.5,{}\n", i % 17, i % 23, i % 5, 1_260_759_144 + i * 60));
    }
    csv.push_str("5,,4.0,1260759144\n5,9,oops,1260759144\n");
    std::fs::write(dir.path().join("ratings.csv"), csv).unwrap();
    let (ok, stdout, stderr) = finish(shell(replay, dir.path(), http_port, broker_port).spawn().unwrap());
    assert!(ok, "{stdout}{stderr}");
    assert!(stderr.contains("line 202:") && stderr.contains("line 203:"), "bad rows by line: {stderr}");
    assert_eq!(figure(&stdout, "valid accepted"), 400, "{stdout}");
    settles(&lake, (accepted + 400, malformed), "the replayed log").await;
    let (ok, stdout, stderr) = finish(shell(replay, dir.path(), http_port, broker_port).spawn().unwrap());
    assert!(ok, "{stdout}{stderr}");
    settles(&lake, (accepted + 400, malformed + 400), "the log replayed again (duplicates)").await;

    // A rating out of range sinks its batch (validated all or nothing): the run fails and says
    // why, by field, with the API's message. Without a terminal, progress comes as lines.
    std::fs::write(
        dir.path().join("bad.csv"),
        "userId,movieId,rating,timestamp\n1,2,4.0,1260759144\n1,3,7.5,1260759145\n",
    )
    .unwrap();
    let bad = replay.replace("ratings.csv", "bad.csv");
    let (ok, _, stderr) = finish(shell(&bad, dir.path(), http_port, broker_port).spawn().unwrap());
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("why events failed") && stderr.contains("HTTP 422 validation_failed, field rating"),
        "{stderr}"
    );
    assert!(stderr.contains("of the batch, field rating:"), "the API's own message: {stderr}");

    assert!(up.stop().success());
}
