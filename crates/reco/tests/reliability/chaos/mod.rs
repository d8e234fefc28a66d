//! Chaos: the production topology as separate processes (`reco broker` on SQLite, two `reco
//! serve`, two `reco silver` in one consumer group, two `reco gold` contending for the lease),
//! every Kafka client behind a TCP proxy, while the driver posts bursty, uneven traffic and the
//! nemesis kills, pauses and cuts off any of them at random, one fault at a time. Afterwards
//! the checker compares silver, the dead-letter tables, the trending windows and the item
//! neighbours with recounts of the driver's history, and prints a table. One variant on a
//! local lake (on a tmpfs that the nemesis fills), one on S3 (moto).
//!
//! `RECO_CHAOS_SEED=n` replays a run's choices (traffic and faults; timing still varies).

mod check;
mod driver;
mod faults;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, atomic::AtomicBool},
    time::Duration,
};

use reco_lake::{Format, Lake};
use reco_testkit::{
    neighbors::{self, Lists},
    proxy::Proxy,
    s3::S3Server,
};
use tokio::time::Instant;

use crate::common::{TOP_N, api, pseudo_random, scale, service, verdict};
use check::{Observed, check_deadletters, check_silver, differences, expected_lists, expected_windows, observe};
use driver::{Plan, drive};
use faults::{Cluster, Dice, Tmpfs};

/// Gold's idle timeout here: longer than any fault keeps one silver worker's partitions
/// silent (a 10 s pause, then the group's rebalance and the worker's recovery), so a paused
/// worker's events are not made late by the other worker's progress (an input idle past the
/// timeout that comes back behind the watermark is late by design, CONTRACTS §5); the lulls
/// are longer still.
const IDLE_TIMEOUT_MS: u64 = 60_000;

#[tokio::test(flavor = "multi_thread")]
async fn chaos_local() {
    scenario("chaos", None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn chaos_s3() {
    let s3 = S3Server::start().await;
    scenario("chaos-s3", Some(&s3)).await;
}

fn seed() -> u64 {
    std::env::var("RECO_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| 1 + pseudo_random(1 << 40))
}

/// Where the lake is and what a process needs to reach it.
struct Place {
    location: String,
    env: Vec<(String, String)>,
    lake: Lake,
}

async fn scenario(name: &str, s3: Option<&S3Server>) {
    let seed = seed();
    // `RECO_CHAOS_SECS` shortens a run while chasing a finding.
    let secs = std::env::var("RECO_CHAOS_SECS").ok().and_then(|s| s.parse().ok());
    let duration = Duration::from_secs(secs.unwrap_or(scale(300, 1_900)));
    println!("{name}: seed {seed} (replay with RECO_CHAOS_SEED={seed}), {} s of traffic", duration.as_secs());
    let dir = tempfile::tempdir().unwrap();
    let (place, disk, disk_note) = match s3 {
        Some(s3) => {
            let env = s3.env();
            (Place { location: s3.lake_url(name), env, lake: s3.lake(name) }, None, "not on S3".to_owned())
        }
        None => {
            let path = dir.path().join("lake");
            let (disk, note) = match Tmpfs::mount(path.clone(), scale(1024, 6144)) {
                Ok(disk) => (Some(disk), "tmpfs filled with fallocate".to_owned()),
                Err(e) => (None, format!("not injected: {e}")),
            };
            std::fs::create_dir_all(&path).unwrap();
            let lake = Lake::new(&path, Format::Delta).unwrap();
            (Place { location: path.display().to_string(), env: Vec::new(), lake }, disk, note)
        }
    };

    // Clients reach the broker only through the proxy: the broker advertises its address.
    let broker_addr = reco_testkit::free_addr();
    let proxy = Proxy::start(reco_testkit::free_addr(), broker_addr).await;
    let bootstrap = proxy.addr.to_string();
    let mut cluster =
        Cluster { services: BTreeMap::new(), proxy, disk, exits: BTreeMap::new(), down_since: BTreeMap::new() };
    let broker_data = dir.path().join("broker");
    cluster.services.insert(
        "broker".into(),
        service(
            &["broker"],
            &[
                ("RECO_BROKER_ADDR", &broker_addr.to_string()),
                ("RECO_BROKER_ADVERTISED_ADDR", &bootstrap),
                ("RECO_BROKER_STORAGE", "sqlite"),
                ("RECO_BROKER_DATA", &broker_data.to_string_lossy()),
                ("LAKEHOUSE_PATH", &broker_data.to_string_lossy()),
                // Faults make every client and tansu log errors by the thousand; panics and
                // reco's own errors still show.
                ("RUST_LOG", "error,tansu_broker=off,tansu_service=off,tansu_storage=off"),
            ],
        ),
    );
    let topics_ready = reco_testkit::wait_until(Duration::from_secs(60), || async {
        reco_kafka::topics::partition_counts(&bootstrap).await.is_ok_and(|t| t.len() >= 3)
    })
    .await;
    assert!(topics_ready, "reco broker did not come up behind the proxy at {bootstrap}");

    let lake_env: Vec<(&str, &str)> = place.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut apis = Vec::new();
    for i in 1..=2 {
        let mut env = vec![
            ("LAKEHOUSE_PATH", place.location.as_str()),
            ("RECO_ACK_TIMEOUT_MS", "3000"),
            ("RECO_REQUEST_TIMEOUT_MS", "6000"),
            ("RUST_LOG", "error,rdkafka=off,librdkafka=off"),
        ];
        env.extend_from_slice(&lake_env);
        let (serve, addr) = api(&bootstrap, &env).await;
        cluster.services.insert(format!("serve-{i}"), serve);
        apis.push(addr);
    }
    // `RECO_CHAOS_SILVER_LOG=info` shows each assignment and commit conflict.
    let silver_log =
        std::env::var("RECO_CHAOS_SILVER_LOG").unwrap_or_else(|_| "error,rdkafka=off,librdkafka=off".into());
    for i in 1..=2 {
        // Dynamic members: with two static ones (`RECO_SILVER_INSTANCE_ID`) tansu 0.6 never
        // assigned either of them a partition (seen here; one static member works).
        let mut env = vec![
            ("KAFKA_BOOTSTRAP_SERVERS", bootstrap.as_str()),
            ("LAKEHOUSE_PATH", place.location.as_str()),
            ("RECO_SILVER_SESSION_TIMEOUT_MS", "6000"),
            ("RUST_LOG", silver_log.as_str()),
        ];
        env.extend_from_slice(&lake_env);
        let args = ["silver", "--metrics-addr", "127.0.0.1:0", "--max-batch-age-ms", "500"];
        cluster.services.insert(format!("silver-{i}"), service(&args, &env));
    }
    let mut golds = Vec::new();
    // `RECO_CHAOS_GOLD_LOG=info` shows each publication and takeover while chasing a finding.
    let gold_log = std::env::var("RECO_CHAOS_GOLD_LOG").unwrap_or_else(|_| "error".into());
    for i in 1..=2 {
        let idle = IDLE_TIMEOUT_MS.to_string();
        // A fixed metrics port, kept across restarts, so the checker can read the late-event
        // counters.
        let metrics = reco_testkit::free_addr().to_string();
        golds.push((format!("gold-{i}"), metrics.clone()));
        let top = TOP_N.to_string();
        let mut env = vec![
            ("LAKEHOUSE_PATH", place.location.as_str()),
            ("RECO_GOLD_POLL_INTERVAL_MS", "200"),
            ("RECO_GOLD_IDLE_TIMEOUT_MS", idle.as_str()),
            ("RECO_GOLD_CHECKPOINT_INTERVAL_SECS", "1"),
            ("RECO_GOLD_LEASE_TTL_SECS", "5"),
            ("RECO_GOLD_TOP_N", top.as_str()),
            ("RUST_LOG", gold_log.as_str()),
        ];
        env.extend_from_slice(&lake_env);
        cluster.services.insert(format!("gold-{i}"), service(&["gold", "--metrics-addr", &metrics], &env));
    }

    let lull = Duration::from_millis(IDLE_TIMEOUT_MS + 5_000);
    let plan = Plan {
        seed,
        duration,
        historic: 0.6,
        historic_span_us: scale(3, 20) * 3_600_000_000,
        rate: scale(300.0, 400.0),
        lulls: vec![(duration.mul_f64(0.3), lull), (duration.mul_f64(0.75), lull)],
        senders: 4,
    };
    let stop_observing = Arc::new(AtomicBool::new(false));
    let observed = Arc::new(Mutex::new(Observed::default()));
    let observer = tokio::spawn(observe(place.lake.clone(), golds, stop_observing.clone(), observed.clone()));
    let started = Instant::now();
    let traffic = tokio::spawn(drive(plan, apis.clone(), bootstrap.clone()));
    let mut dice = Dice::new(seed);
    let injected = cluster.rampage(&mut dice, started + duration, started).await;
    cluster.heal();
    // Retries still in flight finish once the last fault is healed.
    let mut traffic = traffic;
    let (history, counts) = loop {
        tokio::select! {
            done = &mut traffic => break done.expect("driver"),
            _ = cluster.supervise(Duration::from_secs(1)) => {}
        }
    };
    let traffic_secs = started.elapsed().as_secs_f64();

    // Settle: silver holds every acknowledged event, gold and the neighbours their recounts.
    let expected = expected_windows(&history.acked);
    let lists = expected_lists(&history.acked);
    let acked_ids: Vec<String> = history.acked.iter().map(|e| e.id.clone()).collect();
    let settle = Duration::from_secs(scale(240, 600));
    // The orchestrator keeps working while the pipeline settles: a gold job paused near the end
    // exits when it finds its lease taken, and only a restarted job publishes what is left.
    let deadline = Instant::now() + settle;
    let settled = loop {
        let done = crate::common::audit(&acked_ids, &crate::common::silver_ids(&place.lake).await).missing == 0
            && reco_testkit::gold::published(&place.lake).await == expected
            && neighbors::same_lists(&neighbors::published(&place.lake).await, &lists);
        if done || Instant::now() >= deadline {
            break done;
        }
        cluster.supervise(Duration::from_secs(1)).await;
    };
    // A process that exited in the last second is restarted before the final checks.
    cluster.supervise(Duration::from_secs(2)).await;
    stop_observing.store(true, std::sync::atomic::Ordering::Relaxed);
    observer.await.unwrap();
    let observed = std::mem::take(&mut *observed.lock().unwrap());

    let silver = check_silver(&place.lake, &history).await;
    let ((dl_missing, dl_duplicated, dl_unexpected), dl_examples) = check_deadletters(&place.lake, &history).await;
    let got = reco_testkit::gold::published(&place.lake).await;
    let (wrong_windows, window_examples) = differences(&expected, &got, |a, b| a == b);
    let got_lists = neighbors::published(&place.lake).await;
    let (wrong_lists, list_examples) = differences(&lists, &got_lists, |a, b| same_list(a, b));
    let mut alive = true;
    for (name, service) in cluster.services.iter_mut() {
        if !service.alive() {
            println!("{name} is not running at the end");
            alive = false;
        }
    }
    let restarts: usize = cluster.services.values().map(|s| s.restarts).sum();
    let exits: usize = cluster.exits.values().sum();
    let faults: usize = injected.values().sum();
    let min_faults = scale(40, 200);

    println!(
        "\n{name}: seed {seed}, {traffic_secs:.0} s of traffic and faults, settled {}",
        if settled { "yes" } else { "NO" }
    );
    println!("| fault | injected |\n|---|---:|");
    for (kind, n) in &injected {
        println!("| {kind} | {n} |");
    }
    println!("| disk full | {disk_note} |");
    println!("| total | {faults} |");
    println!("processes restarted {restarts} times, of which {exits} after exiting on their own {:?}", cluster.exits);
    let requests = counts.requests.load(std::sync::atomic::Ordering::Relaxed);
    let (r503, rio) = (
        counts.retried_503.load(std::sync::atomic::Ordering::Relaxed),
        counts.retried_io.load(std::sync::atomic::Ordering::Relaxed),
    );
    println!("| check | result |\n|---|---:|");
    println!("| requests (retried after 503 / no answer) | {requests} ({r503} / {rio}) |");
    println!("| events acknowledged | {} |", history.acked.len());
    println!("| events refused (422) / found in silver | {} / {} |", history.refused.len(), silver.refused_present);
    println!(
        "| silver rows / lost / duplicated / unknown | {} / {} / {} / {} |",
        silver.rows, silver.lost, silver.duplicated, silver.unknown
    );
    println!(
        "| bad records into Kafka / dead letters missing, duplicated, unexpected | {} / {dl_missing}, {dl_duplicated}, {dl_unexpected} |",
        history.bad_records.len()
    );
    for example in &dl_examples {
        println!("dead letters: {example}");
    }
    let (late, beyond) = observed.late_events();
    println!("| late / beyond-horizon events counted by gold | {late} / {beyond} |");
    println!("| windows checked / wrong | {} / {wrong_windows} {window_examples:?} |", expected.len());
    println!(
        "| complete windows watched / changed after publication | {} in {} reads / {} |",
        observed.complete.len(),
        observed.reads,
        observed.changed.len()
    );
    println!("| neighbour lists checked / wrong | {} / {wrong_lists} {list_examples:?} |", lists.len());
    println!(
        "| unexpected answers | {} {:?} |",
        history.unexpected.len(),
        history.unexpected.iter().take(3).collect::<Vec<_>>()
    );
    for item in list_examples.iter().take(2) {
        let show = |l: Option<&Vec<(String, f64, u32)>>| {
            l.map(|l| format!("{} long: {:?}", l.len(), &l[..l.len().min(4)])).unwrap_or_else(|| "none".into())
        };
        println!("neighbours of {item}: expected {}; got {}", show(lists.get(item)), show(got_lists.get(item)));
    }
    for (key, line) in observed.changed.iter().take(5) {
        println!("complete window {key:?} changed: {line}");
    }

    // A gold job may exit on its own during the checks above (its commit refused by the
    // lease fence, as during the run): restarted first, as the run did, so what is judged
    // here is how each process answers SIGTERM.
    cluster.supervise(Duration::from_secs(2)).await;
    let mut stopped = true;
    for (name, service) in cluster.services {
        if !service.stop() {
            println!("{name} did not stop cleanly on SIGTERM");
            stopped = false;
        }
    }
    let pass = settled
        && silver.lost == 0
        && silver.duplicated == 0
        && silver.refused_present == 0
        && silver.unknown == 0
        && dl_missing + dl_duplicated + dl_unexpected == 0
        && wrong_windows == 0
        && observed.changed.is_empty()
        && late == 0.0
        && beyond == 0.0
        && wrong_lists == 0
        && history.unexpected.is_empty()
        && alive
        && stopped
        && faults >= min_faults
        && !history.acked.is_empty();
    verdict(
        name,
        pass,
        &format!(
            "seed {seed}: {faults} faults in {traffic_secs:.0} s ({}); {} events acknowledged, {} lost, {} duplicated; \
             {} windows checked, {wrong_windows} wrong, {} complete windows changed; {} neighbour lists, {wrong_lists} wrong; \
             dead letters {} of {}; processes stopped cleanly: {stopped}",
            injected.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", "),
            history.acked.len(),
            silver.lost,
            silver.duplicated,
            expected.len(),
            observed.changed.len(),
            lists.len(),
            history.bad_records.len() - dl_missing,
            history.bad_records.len(),
        ),
    );
}

fn same_list(a: &[(String, f64, u32)], b: &[(String, f64, u32)]) -> bool {
    let one = |l: &[(String, f64, u32)]| Lists::from([(String::new(), l.to_vec())]);
    neighbors::same_lists(&one(a), &one(b))
}
