//! End-to-end latency of the gold job: from a silver commit whose events move the watermark
//! past a window's end to that window being readable in the gold table, on real tables.
//! Baseline in the same run: the job's poll interval, which bounds the wait for new commits.
//!
//! `cargo run --release -p reco-gold --example gold_latency -- [ROUNDS] [delta|parquet]`

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use reco_gold::GoldConfig;
use reco_lake::{Format, GoldTable, Lake};
use reco_testkit::gold::SilverWriter;

const MIN: i64 = 60_000_000;
const BASE: i64 = 1_551_398_400_000_000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    let format = match std::env::args().nth(2).as_deref() {
        Some("parquet") => Format::Parquet,
        _ => Format::Delta,
    };
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path(), format).unwrap();
    let mut silver = SilverWriter::open(&lake).await;
    let config = GoldConfig::new(lake.clone());
    // A commit every round: silver is active, so the job polls at its active interval.
    let poll = config.active_poll_interval;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let job = tokio::spawn(reco_gold::run(config, Arc::new(reco_telemetry::Telemetry::new()), shutdown.clone()));

    // 1,000 events per 5-minute slide over 500 items; each round's commit closes one 1h window.
    let mut latencies = Vec::new();
    for round in 0..rounds as i64 + 12 {
        let slide_start = BASE + round * 5 * MIN;
        let events: Vec<_> =
            (0..1000).map(|i| (format!("m{}", (i * 7919) % 500), i % 4 == 0, slide_start + i * 300_000)).collect();
        // Commit at a random phase of the job's poll cycle, as real traffic would.
        let phase = (round as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) % poll.as_millis().max(1) as u64;
        tokio::time::sleep(Duration::from_millis(phase)).await;
        let committed = Instant::now();
        silver.commit(&events).await;
        // The watermark (newest − 5 min) now passes the end of the window that ended at
        // slide_start − 5 min, which the previous round's watermark had not reached.
        let window_start = slide_start - 65 * MIN;
        if round < 13 {
            continue;
        }
        let mut table = loop {
            if let Some(t) = GoldTable::open_existing(&lake, "trending_now_1h").await.unwrap() {
                break t;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        while !table.row_sets().contains_key(&window_start) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            table.refresh().await.unwrap();
        }
        latencies.push(committed.elapsed().as_secs_f64());
    }
    shutdown.cancel();
    job.await.unwrap().unwrap();
    latencies.sort_by(f64::total_cmp);
    let q = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize] * 1000.0;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("gold latency, {format:?}, {} rounds, {cores} cores", latencies.len());
    println!("| measure | ms |\n|---|---:|");
    println!("| job active poll interval (baseline: expected wait ≈ half of it) | {} |", poll.as_millis());
    println!("| silver commit → window readable, p50 | {:.0} |", q(0.5));
    println!("| silver commit → window readable, p95 | {:.0} |", q(0.95));
    println!("| silver commit → window readable, max | {:.0} |", q(1.0));
    let part = format!("gold latency ({format:?})");
    let baseline = format!("{} ms active poll interval", poll.as_millis());
    let result = format!("p50 {:.0} / p95 {:.0} / max {:.0} ms", q(0.5), q(0.95), q(1.0));
    reco_testkit::bench::report(&part, "silver commit → window readable", &result, &baseline, None);
}
