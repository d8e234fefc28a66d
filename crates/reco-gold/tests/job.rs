//! The gold job against real silver tables (Delta and Parquet): published windows equal a
//! brute-force recount of silver, late events re-publish, events beyond the horizon change
//! nothing, idle input closes the last windows, and a restart resumes from the checkpoint.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use reco_gold::GoldConfig;
use reco_lake::{CommitOutcome, Format, Lake, SilverRow, StreamBatch, TopicTables};
use reco_telemetry::Telemetry;
use reco_testkit::{
    Samples,
    gold::{Windows, published, recount, silver_events},
    wait_until,
};
use tokio_util::sync::CancellationToken;

const MIN: i64 = 60_000_000;
/// 2019-03-01T00:00:00Z.
const BASE: i64 = 1_551_398_400_000_000;

struct Silver {
    views: TopicTables,
    clicks: TopicTables,
    next: BTreeMap<bool, i64>,
}

impl Silver {
    async fn open(lake: &Lake) -> Silver {
        Silver {
            views: TopicTables::open(lake, "events_views", false).await.unwrap(),
            clicks: TopicTables::open(lake, "events_clicks", false).await.unwrap(),
            next: BTreeMap::new(),
        }
    }

    /// Commits `(item, is_click, time)` events as silver rows, one commit per table.
    async fn commit(&mut self, events: &[(String, bool, i64)]) {
        for click in [false, true] {
            let start = self.next.get(&click).copied();
            let mut offset = start.unwrap_or(0);
            let rows: Vec<SilverRow> = events
                .iter()
                .filter(|e| e.1 == click)
                .map(|(item, _, t)| {
                    offset += 1;
                    SilverRow {
                        event_id: format!("{click}-{offset}"),
                        user_id: "u".into(),
                        item_id: item.clone(),
                        event_time_us: *t,
                        session_id: None,
                        rating: None,
                        kafka_partition: 0,
                        kafka_offset: offset - 1,
                        ingested_at_us: 0,
                    }
                })
                .collect();
            if rows.is_empty() {
                continue;
            }
            let table = if click { &mut self.clicks } else { &mut self.views };
            let batch = StreamBatch { silver: rows, deadletter: vec![], offsets: [(0, (start, offset))].into() };
            assert!(matches!(table.commit(batch).await.unwrap(), CommitOutcome::Committed(_)));
            self.next.insert(click, offset);
        }
    }
}

/// Six hours of 2019 in a scrambled order: items with different popularity, a few clicks.
fn history(seed: u64) -> Vec<(String, bool, i64)> {
    let mut x = seed;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut events: Vec<_> = (0..3000)
        .map(|_| {
            let item = format!("m{}", (next() % 40).min(next() % 40));
            (item, next() % 5 == 0, BASE + (next() % (6 * 60 * MIN as u64)) as i64)
        })
        .collect();
    // Mostly in order with up to ~4 minutes of jitter (within the allowed lateness).
    let mut keyed: Vec<_> = events.drain(..).map(|e| (e.2 + (next() % (4 * MIN as u64)) as i64, e)).collect();
    keyed.sort_by_key(|k| k.0);
    keyed.into_iter().map(|(_, e)| e).collect()
}

fn config(lake: &Lake) -> GoldConfig {
    let mut c = GoldConfig::new(lake.clone());
    c.poll_interval = Duration::from_millis(50);
    c.window.idle_timeout_us = 1_000_000;
    c.checkpoint_interval = Duration::ZERO;
    c.window.top_n = 10;
    c
}

struct Running {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<reco_gold::Result<()>>,
    telemetry: Arc<Telemetry>,
}

fn start(config: GoldConfig) -> Running {
    let (shutdown, telemetry) = (CancellationToken::new(), Arc::new(Telemetry::new()));
    let task = tokio::spawn(reco_gold::run(config, telemetry.clone(), shutdown.clone()));
    Running { shutdown, task, telemetry }
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

async fn settles_to(lake: &Lake, expected: &Windows) -> bool {
    wait_until(Duration::from_secs(30), || async { &published(lake).await == expected }).await
}

async fn gold_job(format: Format) {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path(), format).unwrap();
    let mut silver = Silver::open(&lake).await;
    let events = history(7);
    for chunk in events.chunks(700) {
        silver.commit(chunk).await;
    }

    let job = start(config(&lake));
    let expected = recount(&silver_events(&lake).await, 10);
    assert!(expected.len() > 2 * 72, "six hours hold many windows: {}", expected.len());
    assert!(settles_to(&lake, &expected).await, "published windows differ from the recount of silver");

    // A late event within the horizon re-publishes the windows holding it.
    let late: Vec<_> = (0..30).map(|_| ("late-hit".to_owned(), true, BASE + 2 * 60 * MIN + 30_000_000)).collect();
    silver.commit(&late).await;
    let expected = recount(&silver_events(&lake).await, 10);
    assert!(settles_to(&lake, &expected).await, "late events were not re-published");
    let top = &expected[&("1h".to_owned(), BASE + 90 * MIN)];
    assert_eq!(top[0].0, "late-hit", "the late item tops the windows it falls in");
    let metrics = Samples::parse(&job.telemetry.render());
    assert!(metrics.value("reco_gold_late_events_total", &[("table", "silver/events_clicks")]) >= 30.0);
    assert!(metrics.value("reco_gold_windows_republished_total", &[("window", "1h")]) >= 12.0);

    // Beyond the horizon (watermark − 24 h 5 min): counted in a metric, gold unchanged.
    silver.commit(&[("ancient".to_owned(), false, BASE - 3 * 24 * 60 * MIN)]).await;
    let telemetry = job.telemetry.clone();
    assert!(
        wait_until(Duration::from_secs(10), || async {
            Samples::parse(&telemetry.render())
                .value("reco_gold_beyond_horizon_events_total", &[("table", "silver/events_views")])
                == 1.0
        })
        .await
    );
    assert_eq!(published(&lake).await, expected);
    job.stop().await;

    // Restarted, it resumes from its checkpoint: new events of the next hours are counted on
    // top of the old state (the recount sees the old events too, minus the ancient one).
    let job = start(config(&lake));
    let next: Vec<_> = history(11).into_iter().map(|(i, c, t)| (i, c, t + 6 * 60 * MIN)).collect();
    silver.commit(&next).await;
    let mut all = silver_events(&lake).await;
    all.retain(|e| e.0 != "ancient");
    assert!(settles_to(&lake, &recount(&all, 10)).await, "after a restart the windows differ from the recount");
    let metrics = Samples::parse(&job.telemetry.render());
    assert!(metrics.value("reco_gold_watermark_seconds", &[]) > (BASE / 1_000_000) as f64);
    job.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gold_job_delta() {
    gold_job(Format::Delta).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gold_job_parquet() {
    gold_job(Format::Parquet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_recomputes_a_range() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path(), Format::Delta).unwrap();
    let mut silver = Silver::open(&lake).await;
    silver.commit(&history(3)).await;
    let config = config(&lake);
    let mut calls = Vec::new();
    let report = reco_gold::backfill(&config, BASE, BASE + 3 * 60 * MIN, &mut |done, total| calls.push((done, total)))
        .await
        .unwrap();
    assert_eq!(calls.last(), Some(&(report.files as u64, report.files as u64)));
    let expected: Windows = recount(&silver_events(&lake).await, 10)
        .into_iter()
        .filter(|((_, start), _)| (BASE..BASE + 3 * 60 * MIN).contains(start))
        .collect();
    assert_eq!(report.windows["1h"], 36);
    assert_eq!(published(&lake).await, expected);
}
