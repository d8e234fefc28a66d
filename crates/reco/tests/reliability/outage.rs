//! Broker outage: the broker (`reco broker`, the embedded broker on SQLite storage as `reco up`
//! runs it, in its own process) is SIGKILLed under steady load and started again on the same
//! address after a while. During the outage the API answers 503 and never 202 for an event the
//! broker did not take; the silver and gold jobs ride it out in the same processes; afterwards
//! silver holds every acknowledged event once and gold equals the recount.
//!
//! A process, not an in-process stop: a crash is what an outage is, and the operating system
//! then releases every socket and file lock the old broker held, as it would in production.

use std::{path::Path, sync::atomic::Ordering, time::Duration};

use reco_lake::{Format, Lake};
use reco_testkit::gold::{published, recount, silver_events};
use serde_json::json;

use crate::common::{Service, TOP_N, api, audit_when_drained, gold, lake_dir, load, scale, service, silver, verdict};

/// `reco broker` on `addr` with its data under `data`.
fn broker(addr: &str, data: &Path) -> Service {
    let data = data.to_string_lossy();
    service(&["broker"], &[("RECO_BROKER_ADDR", addr), ("RECO_BROKER_STORAGE", "sqlite"), ("LAKEHOUSE_PATH", &data)])
}

/// True once the broker answers metadata requests with the platform's three topics.
async fn broker_ready(bootstrap: &str, timeout: Duration) -> bool {
    reco_testkit::wait_until(timeout, || async {
        reco_kafka::topics::partition_counts(bootstrap).await.is_ok_and(|topics| {
            ["events_views", "events_clicks", "events_ratings"].iter().all(|t| topics.get(*t).is_some_and(|p| *p > 0))
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_outage() {
    let outage = Duration::from_secs(scale(5, 30));
    let (before, after) = (Duration::from_secs(scale(5, 15)), Duration::from_secs(scale(8, 20)));
    let dir = tempfile::tempdir().unwrap();
    let lake_path = lake_dir(&dir);
    let bootstrap = reco_testkit::free_addr().to_string();
    let mut broker = broker(&bootstrap, &dir.path().join("broker"));
    assert!(broker_ready(&bootstrap, Duration::from_secs(60)).await, "reco broker did not come up on {bootstrap}");
    let (serve, http) = api(&bootstrap, &[("RECO_ACK_TIMEOUT_MS", "2000"), ("RECO_REQUEST_TIMEOUT_MS", "4000")]).await;
    let mut silver_job = silver(&bootstrap, &lake_path, "delta");
    let mut gold_job = gold(&lake_path, "delta");

    let rate = 1_000.0;
    let span = (before + outage + after).as_secs_f64();
    let traffic = load(&http, 11, Some(rate), None, 6.0 * 3600.0 / span);
    tokio::time::sleep(before).await;
    let accepted_before = traffic.tally.get()[1];

    broker.kill();
    let down_at = tokio::time::Instant::now();
    // A probe of our own, to see the answer itself rather than a count.
    let probe = json!({"type": "view", "event_id": "outage-probe", "user_id": "u", "item_id": "i"});
    let answer = reco_testkit::http::post_json(&http, "/events", &probe).await.expect("API answers");
    let probe_ok = answer.status == 503 && answer.json()["error"]["code"] == "broker_unavailable";
    let accepted_at_stop = traffic.tally.get()[1];
    tokio::time::sleep_until(down_at + outage).await;
    // Requests already in flight when the broker went away may have been acknowledged just
    // before; everything later must not be.
    let accepted_during = traffic.tally.get()[1] - accepted_at_stop;
    broker.restart();
    let up_at = tokio::time::Instant::now();
    let [_, accepted_up, ..] = traffic.tally.get();
    let broker_back = broker_ready(&bootstrap, Duration::from_secs(60)).await;
    let broker_back_after = up_at.elapsed();
    let recovered =
        reco_testkit::wait_until(Duration::from_secs(60), || async { traffic.tally.get()[1] > accepted_up + 100 })
            .await;
    let recovery = up_at.elapsed();
    tokio::time::sleep(after).await;
    traffic.stop.store(true, Ordering::Relaxed);
    traffic.task.await.unwrap();
    let [sent, accepted, _, _, failed] = traffic.tally.get();
    let acked = traffic.tally.take_acked_ids();

    let lake = Lake::new(&lake_path, Format::Delta).unwrap();
    let audit = audit_when_drained(&lake, &acked, Duration::from_secs(120)).await;
    // Where missing events are, if any: still in the broker's log (silver did not take them) or
    // not there at all (the broker acknowledged what it did not keep). Asked before the broker
    // stops; only on failure, so a passing run costs nothing.
    let whereabouts =
        if audit.missing > 0 { missing_in_broker(&bootstrap, &lake, &acked).await } else { String::new() };
    let expected = recount(&silver_events(&lake).await, TOP_N);
    let settled =
        reco_testkit::wait_until(Duration::from_secs(120), || async { published(&lake).await == expected }).await;
    // Same processes throughout: they reconnected, nobody restarted them.
    let jobs_alive = silver_job.alive() && gold_job.alive();
    let stopped = silver_job.stop() & gold_job.stop() & serve.stop() & broker.stop();

    let pass = probe_ok
        && broker_back
        && accepted_during == 0
        && failed > 0
        && recovered
        && audit.exactly_once()
        && settled
        && jobs_alive
        && stopped
        && accepted_before > 0;
    verdict(
        "outage",
        pass,
        &format!(
            "broker down {} s: probe {} ({}), {failed} events refused with 503, {accepted_during} acknowledged while down; \
             broker {} {:.1} s after restart, posting again {:.1} s after restart, jobs {}; {accepted} of {sent} acknowledged, silver {} missing {} duplicated; \
             gold {} windows {} recount{whereabouts}",
            outage.as_secs(),
            answer.status,
            answer.json()["error"]["code"],
            if broker_back { "answering" } else { "NOT answering" },
            broker_back_after.as_secs_f64(),
            recovery.as_secs_f64(),
            if jobs_alive { "reconnected" } else { "DIED" },
            audit.missing,
            audit.duplicated,
            expected.len(),
            if settled { "=" } else { "!=" },
        ),
    );
}

/// For acknowledged events missing from silver: how many the broker's log holds, per topic and
/// partition with their offset range, and how many it does not hold at all.
async fn missing_in_broker(bootstrap: &str, lake: &Lake, acked: &[String]) -> String {
    let in_silver = crate::common::silver_ids(lake).await;
    let mut missing: std::collections::HashSet<&str> =
        acked.iter().filter(|id| !in_silver.contains_key(*id)).map(String::as_str).collect();
    let mut found = std::collections::BTreeMap::<(String, i32), (usize, i64, i64)>::new();
    for topic in reco_core::EventType::ALL.map(|t| t.topic()) {
        for record in reco_testkit::read_topic(bootstrap, topic).await {
            let event = record.payload.as_deref().and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok());
            if event.as_ref().and_then(|e| e["event_id"].as_str()).is_some_and(|id| missing.remove(id)) {
                let entry = found.entry((topic.to_owned(), record.partition)).or_insert((0, i64::MAX, i64::MIN));
                *entry = (entry.0 + 1, entry.1.min(record.offset), entry.2.max(record.offset));
            }
        }
    }
    let held: Vec<String> =
        found.iter().map(|((t, p), (n, lo, hi))| format!("{t}[{p}] {n} at offsets {lo}..={hi}")).collect();
    format!(
        "; of the missing, in the broker's log: {} ({}), not in it: {}",
        found.values().map(|f| f.0).sum::<usize>(),
        held.join(", "),
        missing.len()
    )
}
