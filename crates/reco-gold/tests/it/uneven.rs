//! Gold stays exact when its inputs run unevenly (issue 15): a backlog of silver versions in
//! which one Kafka partition runs a day and more ahead of another inside single commits, read
//! with the default versions per cycle and one at a time, and a clicks table lagging the views
//! table by more than the state horizon. After the input is drained, every published window
//! equals a recount of the events this test wrote; nothing on time is late or beyond the
//! horizon; the windows the watermark passed are complete and only the others provisional.

use std::{sync::Arc, time::Duration};

use reco_gold::GoldConfig;
use reco_lake::{Format, Lake};
use reco_telemetry::Telemetry;
use reco_testkit::{
    Samples,
    gold::{Input, SilverWriter, published, published_with_state, recount},
    wait_until,
};
use tokio_util::sync::CancellationToken;

const MIN: i64 = 60_000_000;
const HOUR: i64 = 60 * MIN;
/// 2019-03-01T00:00:00Z.
const BASE: i64 = 1_551_398_400_000_000;
const PARTITIONS: i32 = 3;

/// `hours` of traffic per partition, in event-time order with up to 4 minutes of jitter (within
/// the allowed lateness): about 40 events an hour per partition, a fifth of them clicks.
fn stream(partition: i32, hours: i64) -> Vec<Input> {
    let mut x = 0x9E37_79B9_7F4A_7C15_u64 ^ partition as u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let n = (hours * 40) as u64;
    let mut events: Vec<(i64, Input)> = (0..n)
        .map(|k| {
            let t = BASE + (k as i64) * hours * HOUR / n as i64;
            let item = format!("m{}", (next() % 30).min(next() % 30));
            let jitter = (next() % (4 * MIN as u64)) as i64;
            (t + jitter, (item, next() % 5 == 0, t))
        })
        .collect();
    events.sort_by_key(|e| e.0);
    events.into_iter().map(|(_, e)| e).collect()
}

fn config(lake: &Lake, versions_per_cycle: usize) -> GoldConfig {
    let mut c = GoldConfig::new(lake.clone());
    c.poll_interval = Duration::from_millis(50);
    c.window.idle_timeout_us = 1_000_000;
    c.checkpoint_interval = Duration::from_secs(1);
    c.window.top_n = 10;
    c.max_versions_per_cycle = versions_per_cycle;
    c.retention = None;
    c
}

/// Starts gold on the backlog in `lake`, waits until it published the recount of `events`,
/// and checks the metrics and which windows are complete.
async fn gold_catches_up(lake: &Lake, events: &[Input], slowest_input: i64, versions_per_cycle: usize) {
    let (shutdown, telemetry) = (CancellationToken::new(), Arc::new(Telemetry::new()));
    let job = tokio::spawn(reco_gold::run(config(lake, versions_per_cycle), telemetry.clone(), shutdown.clone()));
    let expected = recount(events, 10);
    let settled = wait_until(Duration::from_secs(120), || async { published(lake).await == expected }).await;
    let metrics = Samples::parse(&telemetry.render());
    let sum = |name: &str| metrics.matching(name, &[]).map(|s| s.value).sum::<f64>();
    assert_eq!(sum("reco_gold_beyond_horizon_events_total"), 0.0, "on-time events dropped as beyond the horizon");
    assert_eq!(sum("reco_gold_late_events_total"), 0.0, "on-time events counted as late");
    if !settled {
        let got = published(lake).await;
        let wrong = expected.iter().filter(|(k, v)| got.get(*k) != Some(v)).count();
        panic!("{wrong} of {} windows differ from the recount ({} published)", expected.len(), got.len());
    }
    // Every input (table × partition) read to its end: the watermark is at least the smallest
    // newest event − 5 min, and at most the newest event − 5 min.
    let watermark = (metrics.value("reco_gold_watermark_seconds", &[]) * 1e6).round() as i64;
    let newest = events.iter().map(|e| e.2).max().unwrap();
    assert!(
        (slowest_input - 5 * MIN..=newest - 5 * MIN).contains(&watermark),
        "watermark {watermark}: slowest input {slowest_input}, newest event {newest}"
    );
    let (_, provisional) = published_with_state(lake).await;
    let length = |name: &str| if name == "1h" { HOUR } else { 24 * HOUR };
    for (name, start) in expected.keys() {
        let is_provisional = provisional.contains(&(name.clone(), *start));
        let ended = start + length(name) <= watermark;
        assert_eq!(is_provisional, !ended, "window {name} {start}: provisional {is_provisional}, ended {ended}");
    }
    assert!(!provisional.is_empty(), "the windows after the watermark are published provisionally");
    shutdown.cancel();
    job.await.unwrap().unwrap();
}

/// Partition 0 is read three times as fast as partition 2: in one silver commit, partition 0's
/// events run up to 36 hours ahead of partition 2's (beyond the 24 h 5 min horizon).
async fn skewed_partitions(versions_per_cycle: Option<usize>) {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path(), Format::Delta).unwrap();
    let versions_per_cycle = versions_per_cycle.unwrap_or(GoldConfig::new(lake.clone()).max_versions_per_cycle);
    let mut silver = SilverWriter::open(&lake).await;
    let hours = 54;
    silver.partitions = Some(PARTITIONS);
    let streams: Vec<Vec<Input>> = (0..PARTITIONS).map(|p| stream(p, hours)).collect();
    // Partition p is spread over 80·(p+1) commits: more than the default versions per cycle.
    let commits = 240;
    let chunk = |p: usize, k: usize| -> &[Input] {
        let n = 80 * (p + 1);
        let len = streams[p].len();
        if k >= n { &[] } else { &streams[p][k * len / n..(k + 1) * len / n] }
    };
    for k in 0..commits {
        let parts: Vec<(i32, &[Input])> = (0..PARTITIONS as usize).map(|p| (p as i32, chunk(p, k))).collect();
        silver.commit_partitions(&parts).await;
    }
    let all: Vec<Input> = streams.concat();
    let newest_per_input =
        streams.iter().flat_map(|s| [false, true].map(|c| s.iter().filter(|e| e.1 == c).map(|e| e.2).max()));
    let slowest = newest_per_input.flatten().min().unwrap();
    gold_catches_up(&lake, &all, slowest, versions_per_cycle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_with_partitions_days_apart_default_versions_per_cycle() {
    skewed_partitions(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_with_partitions_days_apart_one_version_per_cycle() {
    skewed_partitions(Some(1)).await;
}

/// The clicks table's commit k holds the events 26 hours older than the views table's commit
/// k: read one version of each per cycle, views run more than the horizon ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clicks_table_lagging_the_views_table_beyond_the_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path(), Format::Delta).unwrap();
    let mut silver = SilverWriter::open(&lake).await;
    let hours = 54;
    silver.partitions = Some(PARTITIONS);
    let all: Vec<Input> = (0..PARTITIONS).flat_map(|p| stream(p, hours)).collect();
    let hour_of = |e: &Input| (e.2 - BASE).div_euclid(HOUR);
    let lag = 26;
    let mut newest = std::collections::BTreeMap::new();
    for k in 0..(hours + lag) {
        let views: Vec<Input> = all.iter().filter(|e| !e.1 && hour_of(e) == k).cloned().collect();
        let clicks: Vec<Input> = all.iter().filter(|e| e.1 && hour_of(e) == k - lag).cloned().collect();
        for (click, mine) in [(false, &views), (true, &clicks)] {
            if let Some(t) = mine.iter().map(|e| e.2).max() {
                silver.commit_table(click, (k % 3) as i32, mine).await;
                let n = newest.entry((click, k % 3)).or_insert(t);
                *n = (*n).max(t);
            }
        }
    }
    let slowest = newest.values().copied().min().unwrap();
    gold_catches_up(&lake, &all, slowest, 1).await;
}
