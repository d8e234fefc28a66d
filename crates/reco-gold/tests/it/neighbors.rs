//! The item neighbours aggregate in the gold job, beside trending: views, clicks and ratings of
//! many users with sessions (named and by gaps), uneven across partitions and commits, become
//! an `item_neighbors` table equal to an independent recount of the events this test wrote
//! (`reco_testkit::neighbors`), also across a restart from the checkpoint; trending's windows
//! stay the recount of the views and clicks.

use std::{sync::Arc, time::Duration};

use reco_gold::GoldConfig;
use reco_lake::{Format, Lake};
use reco_telemetry::Telemetry;
use reco_testkit::{
    gold::{published as trending_published, recount as trending_recount},
    neighbors::{Event, InteractionWriter, Kind, Lists, Rules, Step, published, recount, same_lists, trending_inputs},
    wait_until, xorshift,
};
use tokio_util::sync::CancellationToken;

const MIN: i64 = 60_000_000;
/// 2019-03-01T00:00:00Z.
const BASE: i64 = 1_551_398_400_000_000;

/// `n` events from `start`, in event-time order: 40 users of very different activity, Zipf-ish
/// items with a few "taste groups" so co-visits mean something, sessions that end by gaps or
/// by a new session id, a tenth of them named; views, clicks and ratings (some low).
fn interactions(seed: u64, start: i64, n: usize) -> Vec<Event> {
    let mut next = xorshift(seed);
    let mut t = start;
    (0..n)
        .map(|_| {
            // Bursts with pauses: mostly seconds apart, sometimes beyond the session gap.
            t += if next().is_multiple_of(25) { 40 * MIN } else { (next() % 90) as i64 * 1_000_000 };
            let user = (next() % 40).min(next() % 40);
            let group = user % 4;
            let item = group * 10 + (next() % 10).min(next() % 10);
            let kind = match next() % 10 {
                0..=5 => Kind::View,
                6 | 7 => Kind::Click,
                _ => Kind::Rating(1.0 + (next() % 9) as f64 / 2.0),
            };
            let session = user.is_multiple_of(10).then(|| format!("s{user}-{}", (t - BASE) / (3 * 3_600_000_000)));
            Event { user: format!("u{user}"), item: format!("m{item}"), session, kind, time_us: t }
        })
        .collect()
}

fn config(lake: &Lake) -> GoldConfig {
    let mut c = GoldConfig::new(lake.clone());
    c.poll_interval = Duration::from_millis(50);
    c.window.idle_timeout_us = 1_000_000;
    c.checkpoint_interval = Duration::ZERO;
    c.window.top_n = 10;
    c.neighbor_buckets = 8;
    c.retention = None;
    c
}

async fn run_until(lake: &Lake, expected: &Lists, trending: &reco_testkit::gold::Windows) {
    let (shutdown, telemetry) = (CancellationToken::new(), Arc::new(Telemetry::new()));
    let job = tokio::spawn(reco_gold::run(config(lake), telemetry, shutdown.clone()));
    let settled = wait_until(Duration::from_secs(60), || async { same_lists(&published(lake).await, expected) }).await;
    if !settled {
        let got = published(lake).await;
        let differ: Vec<_> = expected.iter().filter(|(k, v)| got.get(*k) != Some(v)).take(2).collect();
        panic!(
            "item_neighbors != recount: {} items expected, {} published; e.g. {differ:?}",
            expected.len(),
            got.len()
        );
    }
    let windows = wait_until(Duration::from_secs(30), || async { &trending_published(lake).await == trending }).await;
    assert!(windows, "trending windows equal their recount beside the neighbours");
    shutdown.cancel();
    job.await.unwrap().unwrap();
}

/// Everything applied (the job applies what is left beyond its watermark once its inputs
/// idle), forgetting as of the newest event.
fn expected(events: &[Event]) -> Lists {
    let mut steps: Vec<Step> = events.iter().cloned().map(Step::Event).collect();
    steps.push(Step::Advance(events.iter().map(|e| e.time_us).max().unwrap_or(0)));
    recount(&Rules::default(), &steps)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neighbours_equal_a_recount_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path(), Format::Delta).unwrap();
    let mut silver = InteractionWriter::open(&lake, 3).await;
    let first = interactions(11, BASE, 3000);
    // Uneven commits: sizes from 1 to 400 events.
    let mut rest = &first[..];
    let mut next = xorshift(5);
    while !rest.is_empty() {
        let n = (1 + next() % 400) as usize;
        let (chunk, tail) = rest.split_at(n.min(rest.len()));
        silver.commit(chunk).await;
        rest = tail;
    }
    let expected_first = expected(&first);
    assert!(expected_first.len() >= 30, "the test data makes lists: {}", expected_first.len());
    run_until(&lake, &expected_first, &trending_recount(&trending_inputs(&first), 10)).await;

    // More traffic while the job is down; the restarted job resumes from its checkpoint.
    let start = first.last().unwrap().time_us + MIN;
    let second = interactions(12, start, 1500);
    for chunk in second.chunks(250) {
        silver.commit(chunk).await;
    }
    let all: Vec<Event> = first.iter().chain(&second).cloned().collect();
    run_until(&lake, &expected(&all), &trending_recount(&trending_inputs(&all), 10)).await;
}
