//! Kill loop: while synthetic traffic flows through `reco serve`, the silver and gold jobs are
//! SIGKILLed at random moments and restarted (as an orchestrator would). Afterwards silver
//! holds every acknowledged event exactly once (by `event_id`) and every gold window equals a
//! brute-force recount of silver.

use std::{sync::atomic::Ordering, time::Duration};

use reco_lake::{Format, Lake};
use reco_testkit::gold::{published, recount, silver_events};

use crate::common::{TOP_N, api, audit_when_drained, gold, lake_dir, load, pseudo_random, scale, silver, verdict};

#[tokio::test(flavor = "multi_thread")]
async fn kill_loop() {
    let events: u64 = scale(20_000, 1_000_000);
    let rate: f64 = scale(2_000.0, 8_000.0);
    let (silver_kills, gold_kills): (usize, usize) = scale((3, 2), (20, 10));
    let dir = tempfile::tempdir().unwrap();
    let lake_path = lake_dir(&dir);
    let broker = reco_testkit::broker_with_topics().await;
    let bootstrap = broker.bootstrap();
    let (serve, addr) = api(&bootstrap, &[]).await;
    let mut silver_job = silver(&bootstrap, &lake_path, "delta");
    let mut gold_job = gold(&lake_path, "delta");

    // Twelve hours of event time over the run, so many windows close while jobs die.
    let duration = events as f64 / rate;
    let traffic = load(&addr, 7, Some(rate), Some(events), 12.0 * 3600.0 / duration);
    // Kill moments: one random point in each of `kills` equal slices of the run.
    let mut schedule: Vec<(Duration, bool)> = Vec::new();
    for (kills, is_silver) in [(silver_kills, true), (gold_kills, false)] {
        let slice = duration * 1000.0 / kills as f64;
        for k in 0..kills {
            let at = slice * k as f64 + pseudo_random(slice as u64) as f64;
            schedule.push((Duration::from_millis(at as u64), is_silver));
        }
    }
    schedule.sort();
    let started = tokio::time::Instant::now();
    for (at, is_silver) in schedule {
        tokio::time::sleep_until(started + at).await;
        if is_silver { silver_job.kill_and_restart() } else { gold_job.kill_and_restart() }
    }
    let took = traffic.task.await.unwrap();
    let [sent, accepted, _, _, failed] = traffic.tally.get();
    traffic.stop.store(true, Ordering::Relaxed);
    let acked = traffic.tally.take_acked_ids();

    let lake = Lake::new(&lake_path, Format::Delta).unwrap();
    let audit = audit_when_drained(&lake, &acked, Duration::from_secs(scale(120, 600))).await;
    let expected = recount(&silver_events(&lake).await, TOP_N);
    let settled =
        reco_testkit::wait_until(Duration::from_secs(scale(90, 300)), || async { published(&lake).await == expected })
            .await;
    let jobs_alive = silver_job.alive() && gold_job.alive();
    let (silver_restarts, gold_restarts) = (silver_job.restarts, gold_job.restarts);
    let stopped = silver_job.stop() & gold_job.stop() & serve.stop();
    broker.stop().await;

    let pass = failed == 0
        && accepted == sent
        && audit.exactly_once()
        && settled
        && jobs_alive
        && stopped
        && silver_restarts >= silver_kills
        && gold_restarts >= gold_kills;
    verdict(
        "kill-loop",
        pass,
        &format!(
            "{accepted} of {sent} events acknowledged in {:.0} s ({failed} failed); {silver_restarts} silver + \
             {gold_restarts} gold SIGKILLs; silver: {} rows, {} missing, {} duplicated; gold: {} windows {} recount",
            took.as_secs_f64(),
            audit.rows,
            audit.missing,
            audit.duplicated,
            expected.len(),
            if settled { "=" } else { "!=" },
        ),
    );
}
