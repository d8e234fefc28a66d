//! Gold catching up a backlog of silver versions (a restart after an outage, a fast replay):
//! events per second from the job's first read to the publication of the last window the
//! watermark passed, beside the bare read rate of the same silver files in the same run
//! (`read_events` over every data file, the job's own input path, without counting).
//!
//! The backlog: EVENTS views and clicks over DAYS days of 2019, three Kafka partitions that
//! run unevenly (partition 0 spread over a third of the commits, partition 2 over all), in
//! COMMITS silver commits per table, as a fast replay leaves them.
//!
//! `cargo run --release -p reco-gold --example gold_backlog -- [EVENTS=1000000] [DAYS=7] [COMMITS=120]`

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use reco_gold::GoldConfig;
use reco_lake::{Format, Lake, SilverFeed};
use reco_telemetry::Telemetry;
use reco_testkit::{Samples, gold::SilverWriter};

const HOUR: i64 = 3_600_000_000;
const BASE: i64 = 1_551_398_400_000_000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let events: i64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let days: i64 = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(7);
    // 120 commits per table: at 100 versions per cycle the job needs two cycles per table.
    let commits: usize = std::env::args().nth(3).and_then(|a| a.parse().ok()).unwrap_or(120);
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path(), Format::Delta).unwrap();

    // Per partition, a stream in event-time order; partition p spread over (p+1)/3 of the commits.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let per_partition = events / 3;
    let streams: Vec<Vec<(String, bool, i64)>> = (0..3)
        .map(|_| {
            (0..per_partition)
                .map(|k| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let u = (x % 10_000) as f64 / 10_000.0;
                    let t = BASE + k * days * 24 * HOUR / per_partition;
                    (format!("m{}", (u * u * 5_000.0) as u64), x.is_multiple_of(4), t)
                })
                .collect()
        })
        .collect();
    let mut silver = SilverWriter::open(&lake).await;
    let built = Instant::now();
    for k in 0..commits {
        let parts: Vec<(i32, &[reco_testkit::gold::Event])> = (0..3)
            .map(|p| {
                let n = commits / 3 * (p + 1);
                let s = &streams[p];
                let chunk: &[(String, bool, i64)] =
                    if k >= n { &[] } else { &s[k * s.len() / n..(k + 1) * s.len() / n] };
                (p as i32, chunk)
            })
            .collect();
        silver.commit_partitions(&parts).await;
    }
    println!("backlog: {events} events, {days} days, {commits} commits per table, built in {:.0?}", built.elapsed());

    // Baseline: read every data file of both tables, as the job reads them.
    let read_started = Instant::now();
    let mut read = 0;
    for topic in ["events_views", "events_clicks"] {
        let mut feed = SilverFeed::new(&lake, topic);
        let latest = feed.latest().await.unwrap().unwrap();
        let files = feed.files_between(None, latest).await.unwrap();
        read += reco_lake::read::read_events(&files, false).unwrap().iter().map(|b| b.len()).sum::<usize>();
    }
    let read_secs = read_started.elapsed().as_secs_f64();
    let read_rate = read as f64 / read_secs;

    // The job, default settings but a short idle timeout; done when every event is counted and
    // the watermark (slowest input's newest event − 5 min) is published.
    // Each input (table × partition) has its own newest event; the slowest sets the watermark.
    let newest = |s: &[(String, bool, i64)], click: bool| s.iter().filter(|e| e.1 == click).map(|e| e.2).max();
    let slowest = streams.iter().flat_map(|s| [newest(s, false), newest(s, true)]).flatten().min().unwrap();
    let expected_watermark = (slowest - 300_000_000) as f64 / 1e6;
    let mut config = GoldConfig::new(lake.clone());
    config.retention = None;
    let (shutdown, telemetry) = (tokio_util::sync::CancellationToken::new(), Arc::new(Telemetry::new()));
    let started = Instant::now();
    let job = tokio::spawn(reco_gold::run(config, telemetry.clone(), shutdown.clone()));
    loop {
        let m = Samples::parse(&telemetry.render());
        let counted: f64 = m.matching("reco_gold_events_in_total", &[]).map(|s| s.value).sum();
        if counted >= read as f64 && m.value("reco_gold_watermark_seconds", &[]) >= expected_watermark {
            break;
        }
        assert!(!job.is_finished(), "the gold job stopped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let gold_secs = started.elapsed().as_secs_f64();
    let gold_rate = read as f64 / gold_secs;
    let m = Samples::parse(&telemetry.render());
    let windows: f64 = m.matching("reco_gold_windows_published_total", &[]).map(|s| s.value).sum();
    let beyond: f64 = m.matching("reco_gold_beyond_horizon_events_total", &[]).map(|s| s.value).sum();
    shutdown.cancel();
    job.await.unwrap().unwrap();

    println!("| measure | events/s | time |");
    println!("|---|---:|---:|");
    println!("| bare read of the silver files (read_events) | {read_rate:.0} | {read_secs:.1} s |");
    println!("| gold: first read → last window published ({windows} windows) | {gold_rate:.0} | {gold_secs:.1} s |");
    println!("beyond the horizon: {beyond} (must be 0)");
    let part = format!("gold backlog ({read} events, {days} days, {commits} versions/table)");
    let measure = format!("catch-up, first read → last publication ({windows} windows)");
    let baseline = format!("{read_rate:.0} ev/s bare read of the same files");
    reco_testkit::bench::report(
        &part,
        &measure,
        &format!("{gold_rate:.0} ev/s"),
        &baseline,
        Some(gold_rate / read_rate),
    );
}
