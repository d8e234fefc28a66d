//! Restarts of `reco up` on one lake folder: broker storage {SQLite, memory} × stop {SIGTERM,
//! SIGKILL} × 3 runs, synthetic traffic through the API in each run. Afterwards silver holds
//! every acknowledged event exactly once, checked with the independent (Python) reader; with
//! memory storage the runs after the first find the broker's log reset and count it.
//!
//! SQLite keeps the broker's log, so those runs are stopped as soon as the traffic ends and the
//! next run reads what the last one had not. A memory broker's log dies with the process: on
//! SIGTERM `reco up` reads it to its end before stopping (what these runs check); on SIGKILL
//! nothing can save records silver had not committed, so that run waits for silver first and
//! checks the next runs are not lost to the reset.
//!
//! And the broker killed *during* ingest: SIGKILL of `reco up` (which runs the broker) while
//! 100-event batches come in at full speed; every batch the API acknowledged is in silver after
//! the restart.

use std::time::Duration;

use reco_lake::{Format, Lake};
use reco_testkit::{Samples, http, up::RecoUp};

use crate::common::{audit, audit_when_drained, independent_ids, lake_dir, load, scale, silver_ids, verdict};

const RUNS: usize = 3;

#[tokio::test(flavor = "multi_thread")]
async fn restarts_sqlite_sigterm() {
    restarts("sqlite", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restarts_sqlite_sigkill() {
    restarts("sqlite", true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restarts_memory_sigterm() {
    restarts("memory", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restarts_memory_sigkill() {
    restarts("memory", true).await;
}

/// SQLite, the default: a 202 means the broker wrote the batch to its log (WAL,
/// `synchronous=NORMAL`: a process crash loses nothing, docs/OPERATIONS.md). The kill comes in
/// the middle of the stream, so requests are cut; those were never acknowledged (a client
/// retries them with the same ids) and the check is on the acknowledged ones.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_full_speed_ingest_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let lake_path = lake_dir(&dir);
    let lake = Lake::new(&lake_path, Format::Delta).unwrap();
    let broker_addr = reco_testkit::free_addr().to_string();
    let env = [("RECO_BROKER_STORAGE", "sqlite"), ("RECO_BROKER_ADDR", broker_addr.as_str())];
    let bin = env!("CARGO_BIN_EXE_reco");
    let up = RecoUp::start(bin, &lake_path, &env);
    // As fast as the API takes it, until stopped.
    let traffic = load(&up.api(), 7, None, None, 3600.0);
    let before_kill = scale(5_000, 50_000);
    let tally = traffic.tally.clone();
    let streaming =
        reco_testkit::wait_until(Duration::from_secs(120), || async { tally.get()[1] >= before_kill }).await;
    up.kill();
    // The senders meet the dead API for a moment: requests in flight were cut.
    tokio::time::sleep(Duration::from_millis(300)).await;
    traffic.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    traffic.task.await.unwrap();
    let [sent, _, _, _, failed] = traffic.tally.get();
    let acked = traffic.tally.take_acked_ids();

    let up = RecoUp::start(bin, &lake_path, &env);
    let ours = audit_when_drained(&lake, &acked, Duration::from_secs(scale(60, 300))).await;
    let clean_stop = up.stop().success();
    let theirs = audit(&acked, &independent_ids(&lake_path, "delta"));
    let pass = streaming && failed > 0 && ours.exactly_once() && theirs.exactly_once() && clean_stop;
    verdict(
        "restarts sqlite/SIGKILL during ingest",
        pass,
        &format!(
            "sent {sent}, acknowledged {} before the kill (wanted {before_kill}), failed after the kill (cut or refused) {failed}; \
             silver rows {} (independent reader {}), missing {}, duplicated {}; clean stop after {clean_stop}",
            acked.len(),
            ours.rows,
            theirs.rows,
            theirs.missing,
            theirs.duplicated
        ),
    );
}

async fn restarts(storage: &str, kill: bool) {
    // Few events per run at full speed, then the stop at once: a run can end before silver
    // has its first assignment (how `reco up` with memory storage lost whole runs on SIGTERM).
    let events: u64 = scale(600, 50_000);
    let dir = tempfile::tempdir().unwrap();
    let lake_path = lake_dir(&dir);
    let lake = Lake::new(&lake_path, Format::Delta).unwrap();
    let broker_addr = reco_testkit::free_addr().to_string();
    let env = [
        ("RECO_BROKER_STORAGE", storage),
        ("RECO_BROKER_ADDR", broker_addr.as_str()),
        ("RECO_SILVER_MAX_BATCH_AGE_MS", "300"),
    ];
    let bin = env!("CARGO_BIN_EXE_reco");
    let mut acked: Vec<String> = Vec::new();
    let mut resets = Vec::new();
    let mut clean_stops = true;
    for run in 0..RUNS {
        let up = RecoUp::start(bin, &lake_path, &env);
        // Fast and bursty: as fast as the API takes it, 100-event batches from 4 connections.
        let traffic = load(&up.api(), run as u64 + 1, None, Some(events), 3600.0);
        traffic.task.await.unwrap();
        let [_, _, _, _, failed] = traffic.tally.get();
        assert_eq!(failed, 0, "run {run}: requests failed");
        acked.extend(traffic.tally.take_acked_ids());
        // On SIGKILL silver must have caught up anyway (below), so the reset it found first is
        // checked here; on SIGTERM the stop comes at once and the final audit is the check.
        if storage == "memory" && run > 0 && kill {
            let api = up.api();
            let counted =
                reco_testkit::wait_until(Duration::from_secs(30), || async { offset_resets(&api).await >= 1.0 }).await;
            assert!(counted, "run {run}: the memory broker's new log was not counted as a reset");
        }
        // Sampled after the run's traffic: every partition that got records was reset by then.
        resets.push(offset_resets(&up.api()).await);
        if kill {
            if storage == "memory" {
                let audit = audit_when_drained(&lake, &acked, Duration::from_secs(60)).await;
                assert_eq!(audit.missing, 0, "run {run}: silver did not catch up before the kill");
            }
            up.kill();
        } else {
            clean_stops &= up.stop().success();
        }
    }
    // One more run with no traffic: it reads what the SQLite log kept from the last run.
    let up = RecoUp::start(bin, &lake_path, &env);
    let ours = audit_when_drained(&lake, &acked, Duration::from_secs(scale(60, 300))).await;
    clean_stops &= up.stop().success();
    let theirs = audit(&acked, &independent_ids(&lake_path, "delta"));
    let rows = silver_ids(&lake).await.values().map(|n| *n as usize).sum::<usize>();

    let stop = if kill { "SIGKILL" } else { "SIGTERM" };
    let pass = theirs.exactly_once() && ours.exactly_once() && theirs.rows == acked.len() && clean_stops;
    verdict(
        &format!("restarts {storage}/{stop}"),
        pass,
        &format!(
            "{RUNS} runs, acknowledged {}, silver rows {rows} (independent reader {}), missing {}, duplicated {}, \
             resets counted per run {resets:?}, clean stops {clean_stops}",
            acked.len(),
            theirs.rows,
            theirs.missing,
            theirs.duplicated
        ),
    );
}

/// `reco_silver_offset_resets_total` summed over topics, from the API port's /metrics.
async fn offset_resets(api: &str) -> f64 {
    let Ok(response) = http::get(api, "/metrics").await else { return 0.0 };
    Samples::parse(&response.text()).matching("reco_silver_offset_resets_total", &[]).map(|s| s.value).sum()
}
