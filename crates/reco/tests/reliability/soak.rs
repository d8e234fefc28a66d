//! Soak: `reco up` (embedded broker on SQLite, API, silver, gold in one process) under steady
//! load at half the maximum rate measured in the same run. No request may fail, silver must
//! end with every acknowledged event once, and the process's resident memory must stay flat.
//!
//! Event time runs fast (the 24 h de-duplication and window horizons fill during the first
//! fifth of the run), so "flat" means bounded state, not merely "not there yet".

use std::{sync::atomic::Ordering, time::Duration};

use reco_lake::{Format, Lake};
use reco_testkit::up::RecoUp;

use crate::common::{audit_when_drained, full, lake_dir, load, rss_of, scale, verdict};

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn soak() {
    let probe = Duration::from_secs(scale(4, 20));
    let duration = Duration::from_secs(scale(20, 30 * 60));
    let tick = Duration::from_secs(scale(1, 10));
    let dir = tempfile::tempdir().unwrap();
    let lake_path = lake_dir(&dir);
    let up = RecoUp::start(env!("CARGO_BIN_EXE_reco"), &lake_path, &[("RECO_BROKER_STORAGE", "sqlite")]);
    let addr = up.api();
    let pid = up.pid();
    // 24 h of event time by the end of the warm-up (the first fifth of the soak).
    let speedup = 24.0 * 3600.0 / (duration.as_secs_f64() / 5.0);

    // The maximum rate, as fast as the load generator gets acknowledgments.
    let fastest = load(&addr, 21, None, None, speedup);
    tokio::time::sleep(probe).await;
    fastest.stop.store(true, Ordering::Relaxed);
    let took = fastest.task.await.unwrap();
    let max_rate = fastest.tally.get()[1] as f64 / took.as_secs_f64();
    let mut acked = fastest.tally.take_acked_ids();

    let rate = max_rate / 2.0;
    let steady = load(&addr, 22, Some(rate), Some((rate * duration.as_secs_f64()) as u64), speedup);
    let mut samples = Vec::new();
    let started = tokio::time::Instant::now();
    while !steady.task.is_finished() {
        tokio::time::sleep(tick).await;
        samples.push(rss_of(pid).0);
    }
    let soaked = started.elapsed();
    let [sent, accepted, _, _, failed] = steady.tally.get();
    acked.extend(steady.tally.take_acked_ids());

    let lake = Lake::new(&lake_path, Format::Delta).unwrap();
    let audit = audit_when_drained(&lake, &acked, Duration::from_secs(scale(60, 600))).await;
    let peak = rss_of(pid).1;
    let clean = up.stop().success();

    // Baseline: just after the warm-up; end: the last tenth.
    let n = samples.len();
    let baseline = median(samples[n / 5..(n * 3 / 10).max(n / 5 + 1).min(n)].to_vec());
    let end = median(samples[n - (n / 10).max(1)..].to_vec());
    let growth = end as f64 / baseline.max(1) as f64 - 1.0;
    // Twenty seconds say nothing about memory: the quick run reports growth, judges the rest.
    let flat = !full() || growth <= 0.10;
    let pass = failed == 0 && accepted == sent && audit.exactly_once() && flat && clean;
    verdict(
        "soak",
        pass,
        &format!(
            "{:.0} s at {rate:.0} ev/s (half of the {max_rate:.0} ev/s measured): {accepted} of {sent} acknowledged, \
             {failed} errors; silver {} missing {} duplicated; RSS {} MiB after warm-up → {} MiB at the end ({:+.1} %{}), \
             peak {} MiB",
            soaked.as_secs_f64(),
            audit.missing,
            audit.duplicated,
            baseline / 1024,
            end / 1024,
            growth * 100.0,
            if full() { ", limit +10 %" } else { ", not judged at quick scale" },
            peak / 1024,
        ),
    );
}
