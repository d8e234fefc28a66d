//! The gold job against real silver tables (Delta and Parquet): published windows equal a
//! brute-force recount of silver, late events re-publish, events beyond the horizon change
//! nothing, idle input closes the last windows, and a restart resumes from the checkpoint.

use std::{sync::Arc, time::Duration};

use reco_gold::GoldConfig;
use reco_lake::{Format, Lake};
use reco_telemetry::Telemetry;
use reco_testkit::{
    Samples,
    gold::{SilverWriter, Windows, history, published, recount, silver_events},
    wait_until,
};
use tokio_util::sync::CancellationToken;

const MIN: i64 = 60_000_000;
/// 2019-03-01T00:00:00Z.
const BASE: i64 = 1_551_398_400_000_000;

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
    let mut silver = SilverWriter::open(&lake).await;
    let events = history(BASE, 7);
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
    let next: Vec<_> = history(BASE, 11).into_iter().map(|(i, c, t)| (i, c, t + 6 * 60 * MIN)).collect();
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
    let mut silver = SilverWriter::open(&lake).await;
    silver.commit(&history(BASE, 3)).await;
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

/// A backfill beside a running gold job is refused (the two would publish the same windows);
/// once the job stopped, it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_refuses_to_run_beside_a_gold_job() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path(), Format::Delta).unwrap();
    let mut silver = SilverWriter::open(&lake).await;
    silver.commit(&history(BASE, 3)).await;
    let config = config(&lake);
    let job = start(config.clone());
    let leased = wait_until(Duration::from_secs(30), || async {
        lake.list_objects(reco_gold::lease::DIR).await.is_ok_and(|l| !l.is_empty())
    });
    assert!(leased.await, "the job took the lease");
    let refused = reco_gold::backfill(&config, BASE, BASE + 60 * MIN, &mut |_, _| {}).await.unwrap_err().to_string();
    assert!(refused.contains("holds the lease") && refused.contains("stop it"), "{refused}");

    job.stop().await;
    let report =
        reco_gold::backfill(&config, BASE, BASE + 60 * MIN, &mut |_, _| {}).await.expect("backfill once stopped");
    assert_eq!(report.windows["1h"], 12);
}

/// With a retention, windows that ended more than it before the watermark leave the gold
/// tables; the rest still equal the recount. 36 hours of events, 26 h kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_old_windows() {
    const HOUR: i64 = 60 * MIN;
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path(), Format::Delta).unwrap();

    let mut too_short = config(&lake);
    too_short.retention = Some(Duration::from_secs(3600));
    let refused = reco_gold::run(too_short, Arc::new(Telemetry::new()), CancellationToken::new()).await;
    assert!(refused.is_err_and(|e| e.to_string().contains("horizon")), "a retention under the horizon is refused");

    let mut config = config(&lake);
    config.retention = Some(Duration::from_secs(26 * 3600));
    let job = start(config);
    // Six hours at a time, each read before the next arrives: the job reads each topic's table
    // on its own, so a backlog of 36 hours would put one topic's events beyond the horizon.
    let mut silver = SilverWriter::open(&lake).await;
    for k in 0..6 {
        silver.commit(&history(BASE + k * 6 * HOUR, 20 + k as u64)).await;
        let reached = (BASE + (k + 1) * 6 * HOUR - 10 * MIN) as f64 / 1e6;
        let telemetry = job.telemetry.clone();
        let caught_up = wait_until(Duration::from_secs(30), || async {
            Samples::parse(&telemetry.render()).value("reco_gold_watermark_seconds", &[]) >= reached
        });
        assert!(caught_up.await, "the job read hours {} to {}", 6 * k, 6 * k + 6);
    }
    let metrics = Samples::parse(&job.telemetry.render());
    let beyond: f64 = metrics.matching("reco_gold_beyond_horizon_events_total", &[]).map(|s| s.value).sum();
    assert_eq!(beyond, 0.0, "every event within the horizon");

    let events = silver_events(&lake).await;
    let watermark = events.iter().map(|e| e.2).max().unwrap() - 5 * MIN;
    let all = recount(&events, 10);
    let length = |name: &str| if name == "1h" { HOUR } else { 24 * HOUR };
    let expected: Windows = all
        .iter()
        .filter(|((name, start), _)| start + length(name) >= watermark - 26 * HOUR)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert!(expected.len() < all.len(), "the retention must remove something: {} windows", all.len());
    assert!(settles_to(&lake, &expected).await, "gold holds exactly the windows within the retention");
    job.stop().await;
}
