//! Silver benchmark: the job's rate against a bare rdkafka consumer over the same topics, in
//! the same run (the ratio is what we steer by; absolute numbers depend on the machine).
//!
//! `cargo run --release -p reco-silver --example silver_bench -- [EVENTS] [delta|parquet] [s3]`
//! (`make bench` runs it with 1,000,000 events and `s3`: the job also runs on a local S3
//! server, moto, in the same run, so the cost of object storage is a ratio.)

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    producer::{FutureProducer, FutureRecord},
};
use reco_kafka::{BrokerStorage, EmbeddedBroker, client_config, topics};
use reco_lake::{Format, Lake};
use reco_telemetry::Telemetry;

const TOPICS: [&str; 2] = ["events_views", "events_clicks"];

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().trim_end_matches(" kB").parse::<f64>().ok()))
        })
        .flatten()
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let events: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let format = match args.get(2).map(String::as_str) {
        Some("parquet") => Format::Parquet,
        _ => Format::Delta,
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap();
    let broker = EmbeddedBroker::start(([127, 0, 0, 1], port).into(), BrokerStorage::Memory).await.unwrap();
    let bootstrap = broker.bootstrap();
    let mut specs = topics::default_topics();
    specs.iter_mut().for_each(|s| s.replication_factor = Some(1));
    topics::ensure_topics(&bootstrap, &specs, false).await.unwrap();

    // 1. Produce.
    let started = Instant::now();
    let producer: FutureProducer =
        client_config(&bootstrap).set("linger.ms", "20").set("compression.type", "lz4").create().unwrap();
    for chunk in 0..events.div_ceil(10_000) {
        let mut pending = Vec::new();
        for i in chunk * 10_000..((chunk + 1) * 10_000).min(events) {
            let (topic, t) = if i % 3 == 0 { ("events_clicks", "click") } else { ("events_views", "view") };
            let payload = format!(
                r#"{{"type":"{t}","event_id":"{i:016x}-bench","user_id":"u{}","item_id":"m{}","timestamp":"2019-03-01T{:02}:{:02}:{:02}.000000Z","session_id":"s{}"}}"#,
                i % 5003,
                i % 997,
                (i / 3600) % 24,
                (i / 60) % 60,
                i % 60,
                i % 7919
            );
            let key = format!("u{}", i % 5003);
            pending.push(producer.send_result(FutureRecord::to(topic).key(&key).payload(&payload)).unwrap());
        }
        for p in pending {
            p.await.unwrap().map_err(|(e, _)| e).unwrap();
        }
    }
    let produce_secs = started.elapsed().as_secs_f64();

    // 2. Baseline: a bare rdkafka consumer reading the same records.
    let raw_secs = tokio::task::spawn_blocking({
        let bootstrap = bootstrap.clone();
        move || {
            let consumer: BaseConsumer = client_config(&bootstrap).set("group.id", "bench-raw").create().unwrap();
            let mut tpl = TopicPartitionList::new();
            for t in TOPICS {
                for p in 0..3 {
                    tpl.add_partition_offset(t, p, Offset::Beginning).unwrap();
                }
            }
            consumer.assign(&tpl).unwrap();
            let started = Instant::now();
            let (mut n, mut bytes) = (0usize, 0usize);
            while n < events {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                    n += 1;
                    bytes += m.payload().map_or(0, <[u8]>::len);
                }
            }
            assert!(bytes > 0);
            started.elapsed().as_secs_f64()
        }
    })
    .await
    .unwrap();

    // 3. The silver job, from start to the commit of the last record.
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path(), format).unwrap();
    let (silver_secs, fs_p50, fs_p95) = run_silver(&bootstrap, lake, events, "bench-silver").await;
    // 4. The same on a local S3 server (a separate process speaking S3 over loopback HTTP).
    let s3_run = if args.get(3).is_some_and(|a| a == "s3") {
        let server = reco_testkit::s3::S3Server::start().await;
        Some(run_silver(&bootstrap, server.lake("bench"), events, "bench-silver-s3").await)
    } else {
        None
    };
    broker.stop().await;

    let rate = |secs: f64| events as f64 / secs;
    println!(
        "silver benchmark: {events} events, format {format:?}, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| measure | events/s | seconds |");
    println!("|---|---:|---:|");
    println!("| produce (embedded broker, for reference) | {:.0} | {produce_secs:.1} |", rate(produce_secs));
    println!("| raw rdkafka consume (baseline) | {:.0} | {raw_secs:.1} |", rate(raw_secs));
    println!("| silver job, start to last commit | {:.0} | {silver_secs:.1} |", rate(silver_secs));
    println!("| ratio silver / raw | {:.2} | |", raw_secs / silver_secs);
    println!("| commit latency p50 / p95, local folder | {:.0} / {:.0} ms | |", fs_p50 * 1e3, fs_p95 * 1e3);
    if let Some((s3_secs, p50, p95)) = s3_run {
        println!("| silver job on S3 (moto on loopback) | {:.0} | {s3_secs:.1} |", rate(s3_secs));
        println!("| ratio S3 / local folder | {:.2} | |", silver_secs / s3_secs);
        println!("| commit latency p50 / p95, S3 | {:.0} / {:.0} ms | |", p50 * 1e3, p95 * 1e3);
        let part = format!("silver on S3 ({events} events)");
        let (s3, fs) =
            (format!("{:.0} ev/s", rate(s3_secs)), format!("{:.0} ev/s on a local folder", rate(silver_secs)));
        reco_testkit::bench::report(
            &part,
            "job rate, S3 (moto) vs local folder",
            &s3,
            &fs,
            Some(silver_secs / s3_secs),
        );
        let latency = format!("p50 {:.0} ms, p95 {:.0} ms", p50 * 1e3, p95 * 1e3);
        let local = format!("p50 {:.0} ms, p95 {:.0} ms on a local folder", fs_p50 * 1e3, fs_p95 * 1e3);
        reco_testkit::bench::report(&part, "commit latency (batch write + commit)", &latency, &local, None);
    }
    println!("| peak RSS of the process (broker + consumers + job) | {:.0} MiB | |", peak_rss_mib());
    let part = format!("silver ({format:?}, {events} events)");
    let (job, raw) = (rate(silver_secs), rate(raw_secs));
    let (job_s, raw_s) = (format!("{job:.0} ev/s"), format!("{raw:.0} ev/s raw rdkafka consume"));
    reco_testkit::bench::report(&part, "job rate, start to last commit", &job_s, &raw_s, Some(job / raw));
    let rss = format!("{:.0} MiB", peak_rss_mib());
    reco_testkit::bench::report(&part, "peak RSS, broker + consumers + job", &rss, "", None);
}

/// Runs the silver job on `lake` until it has committed `events` rows: seconds, and the p50 and
/// p95 of its batch flush time (write + commit), interpolated in the histogram's buckets as
/// Prometheus' `histogram_quantile` does.
async fn run_silver(bootstrap: &str, lake: Lake, events: usize, group: &str) -> (f64, f64, f64) {
    let mut config = reco_silver::SilverConfig::new(bootstrap, lake);
    config.topics = TOPICS.map(String::from).to_vec();
    config.group_id = group.into();
    let telemetry = Arc::new(Telemetry::new());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let started = Instant::now();
    let job = tokio::spawn(reco_silver::run(config, telemetry.clone(), shutdown.clone()));
    loop {
        let text = telemetry.render();
        let written: f64 = text
            .lines()
            .filter(|l| l.starts_with("reco_silver_rows_written_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if written as usize >= events {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let text = telemetry.render();
    shutdown.cancel();
    job.await.unwrap().unwrap();
    let samples = reco_testkit::Samples::parse(&text);
    let mut buckets: Vec<(f64, f64)> = samples
        .matching("reco_silver_batch_flush_duration_seconds_bucket", &[])
        .filter_map(|s| Some((s.labels.get("le")?.parse::<f64>().ok()?, s.value)))
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let quantile = |q: f64| {
        let total = buckets.last().map_or(0.0, |b| b.1);
        let rank = q * total;
        let mut previous = (0.0, 0.0);
        for &(le, count) in &buckets {
            if count >= rank {
                if le.is_infinite() {
                    return previous.0;
                }
                let within = if count > previous.1 { (rank - previous.1) / (count - previous.1) } else { 0.0 };
                return previous.0 + (le - previous.0) * within;
            }
            previous = (le, count);
        }
        previous.0
    };
    (secs, quantile(0.5), quantile(0.95))
}
