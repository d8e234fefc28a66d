//! Soak: `reco up` (embedded broker on SQLite, API, silver, gold in one process) under steady
//! load at half the maximum rate measured in the same run. No request may fail, silver must
//! end with every acknowledged event once, and the process's resident memory must stay flat.
//!
//! Event time runs fast: the state with the longest event-time span (the gold tables with a
//! 25 h retention: 49 h; gold's panes: 48 h 10 min; silver's de-duplication set: 24 h) is full
//! by the end of the first fifth of the run, where the baseline is taken, so "flat" means
//! bounded state, not "not full yet".
//!
//! `RECO_SOAK_MINUTES` sets the full run's length (30 by default), e.g. for an overnight soak.

use std::{sync::atomic::Ordering, time::Duration};

use reco_lake::{Format, Lake};
use reco_testkit::up::RecoUp;

use crate::common::{audit_when_drained, full, lake_dir, load, rss_of, scale, verdict};

/// `reco_heap_allocated_bytes` from the process's `/metrics`, in KiB (0 when absent).
async fn heap_allocated_kib(addr: &str) -> u64 {
    gauge_sum(addr, "reco_heap_allocated_bytes").await as u64 / 1024
}

/// The sum of every sample of `name` on the process's `/metrics` (0 when absent).
async fn gauge_sum(addr: &str, name: &str) -> f64 {
    let Ok(response) = reco_testkit::http::get(addr, "/metrics").await else { return 0.0 };
    reco_testkit::Samples::parse(&response.text()).matching(name, &[]).map(|s| s.value).sum()
}

/// Medians of the samples just after the warm-up (the second tenth after the first fifth) and
/// of the last tenth.
fn after_warm_up_and_at_end(samples: &[u64]) -> (u64, u64) {
    let n = samples.len();
    let baseline = median(samples[n / 5..(n * 3 / 10).max(n / 5 + 1).min(n)].to_vec());
    (baseline, median(samples[n - (n / 10).max(1)..].to_vec()))
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn soak() {
    let probe = Duration::from_secs(scale(4, 20));
    let minutes = std::env::var("RECO_SOAK_MINUTES").ok().and_then(|m| m.parse::<u64>().ok()).unwrap_or(30);
    let duration = Duration::from_secs(scale(20, minutes * 60));
    let tick = Duration::from_secs(scale(1, 10));
    let dir = tempfile::tempdir().unwrap();
    let lake_path = lake_dir(&dir);
    // Gold keeps 25 h of windows (the least the 24 h 5 min horizon allows), so the gold tables
    // also reach their steady size during the warm-up; with the default week they would grow
    // for the whole run, as they do in production during a table's first week.
    let retention_hours = 25;
    let up = RecoUp::start(
        env!("CARGO_BIN_EXE_reco"),
        &lake_path,
        &[("RECO_BROKER_STORAGE", "sqlite"), ("RECO_GOLD_RETENTION_HOURS", &retention_hours.to_string())],
    );
    let addr = up.api();
    let pid = up.pid();
    // Every state full by the end of the warm-up (the first fifth of the soak).
    let gold_span = Duration::from_micros(reco_gold::window::Config::default().state_span_us() as u64);
    let silver_span = reco_silver::SilverConfig::new("", Lake::new(&lake_path, Format::Delta).unwrap()).dedupe_horizon;
    // A gold table is full once its oldest kept window (25 h) is a whole 24 h window old.
    let gold_tables = Duration::from_secs((retention_hours + 24) * 3600);
    let speedup = gold_span.max(silver_span).max(gold_tables).as_secs_f64() / (duration.as_secs_f64() / 5.0);

    // The maximum rate, as fast as the load generator gets acknowledgments.
    let fastest = load(&addr, 21, None, None, speedup);
    tokio::time::sleep(probe).await;
    fastest.stop.store(true, Ordering::Relaxed);
    let took = fastest.task.await.unwrap();
    let max_rate = fastest.tally.get()[1] as f64 / took.as_secs_f64();
    let mut acked = fastest.tally.take_acked_ids();

    let rate = max_rate / 2.0;
    let steady = load(&addr, 22, Some(rate), Some((rate * duration.as_secs_f64()) as u64), speedup);
    let (mut samples, mut heap) = (Vec::new(), Vec::new());
    let started = tokio::time::Instant::now();
    // Once a minute, where the memory is, for whoever has to explain a failed verdict.
    let mut series = Vec::new();
    while !steady.task.is_finished() {
        tokio::time::sleep(tick).await;
        samples.push(rss_of(pid).0);
        heap.push(heap_allocated_kib(&addr).await);
        if samples.len() % 6 == 1 {
            let gold_state = gauge_sum(&addr, "reco_gold_state_entries").await;
            let minute = started.elapsed().as_secs() / 60;
            series.push(format!(
                "{minute}: RSS {} MiB, heap {} MiB, gold state {gold_state:.0}",
                samples[samples.len() - 1] / 1024,
                heap[heap.len() - 1] / 1024
            ));
        }
    }
    println!("soak memory by minute:\n  {}", series.join("\n  "));
    let soaked = started.elapsed();
    let [sent, accepted, _, _, failed] = steady.tally.get();
    acked.extend(steady.tally.take_acked_ids());

    let lake = Lake::new(&lake_path, Format::Delta).unwrap();
    let audit = audit_when_drained(&lake, &acked, Duration::from_secs(scale(60, 600))).await;
    let peak = rss_of(pid).1;
    let clean = up.stop().success();

    let (baseline, end) = after_warm_up_and_at_end(&samples);
    // The same two spans of the allocator's live bytes: growth in resident memory with a flat
    // live heap is fragmentation, growth in both is state.
    let (heap_baseline, heap_end) = after_warm_up_and_at_end(&heap);
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
             peak {} MiB; live heap {} → {} MiB",
            soaked.as_secs_f64(),
            audit.missing,
            audit.duplicated,
            baseline / 1024,
            end / 1024,
            growth * 100.0,
            if full() { ", limit +10 %" } else { ", not judged at quick scale" },
            peak / 1024,
            heap_baseline / 1024,
            heap_end / 1024,
        ),
    );
}
