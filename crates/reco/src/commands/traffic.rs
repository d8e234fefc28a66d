//! `reco gen` (and later `reco replay`): synthetic traffic to the API or straight to Kafka, with a progress bar and a
//! summary. The shape (Zipf with drift, sessions, funnel, malformed share) is reco-traffic's.

use std::{
    process::ExitCode,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use reco_kafka::{EventProducer, ProducerSettings};
use reco_traffic::{
    replay::{Mapping, Replay, TimeUnitArg as Unit},
    send::{RunConfig, Source, Tally, Target},
    synthetic::{Clock, GenConfig, Generator},
};

use crate::cli::{GenArgs, GenTarget, ReplayArgs, TimeUnitArg, TrafficTarget};

pub async fn gen_traffic(args: GenArgs) -> anyhow::Result<ExitCode> {
    let target = target(&args.to)?;
    for (name, v) in [
        ("--click-ratio", args.click_ratio),
        ("--rating-ratio", args.rating_ratio),
        ("--malformed-ratio", args.malformed_ratio),
    ] {
        anyhow::ensure!((0.0..=1.0).contains(&v), "{name} must be between 0 and 1, got {v}");
    }
    anyhow::ensure!(args.items > 0 && args.users > 0, "--items and --users must be at least 1");
    let clock = match args.historic_start {
        Some(start_us) => Clock::Historic { start_us, speedup: args.speedup },
        None => Clock::Now,
    };
    let seed = args.seed.unwrap_or_else(fresh_seed);
    if args.seed.is_none() {
        eprintln!("seed {seed} (--seed {seed} repeats this stream, event ids included)");
    }
    let generator = Generator::new(GenConfig {
        seed,
        items: args.items,
        users: args.users,
        zipf_s: args.zipf_s,
        drift_items_per_hour: args.drift_items_per_hour,
        click_ratio: args.click_ratio,
        rating_ratio: args.rating_ratio,
        malformed_ratio: args.malformed_ratio,
        session_events: args.session_events,
        clock,
    });
    let config = RunConfig {
        rate: (args.rate > 0.0).then_some(args.rate),
        events: (args.events > 0).then_some(args.events),
        duration: (args.duration_secs > 0).then(|| Duration::from_secs(args.duration_secs)),
        batch: args.batch.max(1),
        concurrency: args.concurrency.max(1),
    };
    drive(generator, target, config).await
}

/// A seed of its own for each run, so two runs' event ids differ.
fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    (nanos as u64) ^ (u64::from(std::process::id()) << 32)
}

pub async fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let target = target(&args.to)?;
    anyhow::ensure!(
        ["view", "click", "rating"].contains(&args.event_type.as_str()),
        "--type must be view, click or rating"
    );
    let mapping = Mapping {
        user_col: args.user_col,
        item_col: args.item_col,
        time_col: args.time_col,
        time_unit: match args.time_unit {
            TimeUnitArg::S => Unit::Seconds,
            TimeUnitArg::Ms => Unit::Millis,
            TimeUnitArg::Us => Unit::Micros,
            TimeUnitArg::Rfc3339 => Unit::Rfc3339,
        },
        rating_col: args.rating_col,
        event_type: args.event_type,
        type_col: args.type_col,
        rating_as_view: args.rating_as_view,
    };
    let file = args.file.clone();
    let loaded = tokio::task::spawn_blocking(move || reco_traffic::replay::load(&file, &mapping)).await??;
    eprintln!(
        "reco replay: {} rows read from {}, {} events, {} rows skipped",
        loaded.rows,
        args.file.display(),
        loaded.events.len(),
        loaded.bad.len()
    );
    for bad in loaded.bad.iter().take(20) {
        eprintln!("  line {}: {}", bad.line, bad.reason);
    }
    if loaded.bad.len() > 20 {
        eprintln!("  … and {} more", loaded.bad.len() - 20);
    }
    let config = RunConfig {
        rate: (args.rate > 0.0).then_some(args.rate),
        events: Some(loaded.events.len() as u64),
        duration: None,
        batch: args.batch.max(1),
        concurrency: args.concurrency.max(1),
    };
    drive(Replay::new(loaded.events), target, config).await
}

fn target(to: &TrafficTarget) -> anyhow::Result<(Target, String)> {
    let (api_url, bootstrap) = (to.api_url.as_str(), to.kafka.kafka_bootstrap_servers.as_str());
    Ok(match to.target {
        GenTarget::Http => {
            let url = url::Url::parse(api_url).with_context(|| format!("--api-url {api_url}"))?;
            let host = url.host_str().context("--api-url needs a host")?;
            let addr = format!("{host}:{}", url.port_or_known_default().unwrap_or(80));
            (Target::Http { addr }, api_url.to_owned())
        }
        GenTarget::Kafka => {
            let producer = EventProducer::new(ProducerSettings {
                bootstrap_servers: bootstrap.to_owned(),
                ..ProducerSettings::default()
            })
            .context("cannot create the Kafka producer")?;
            (Target::Kafka(producer), format!("Kafka at {bootstrap}"))
        }
    })
}

/// Sends `source` with a progress bar, prints the summary; exit 1 when anything failed.
async fn drive(
    source: impl Source,
    (target, where_to): (Target, String),
    config: RunConfig,
) -> anyhow::Result<ExitCode> {
    let rate = config.rate.map_or("as fast as possible".to_owned(), |r| format!("{r} events/s"));
    eprintln!("reco: sending to {where_to}, {rate}; Ctrl-C stops");

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let bar = match config.events {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} [{bar:30}] {pos} events {per_sec}  {msg}")
            .context("progress template")?
            .progress_chars("=> "),
    );
    let ticker = tokio::spawn(show_progress(bar.clone(), tally.clone(), stop.clone()));
    let ctrl_c = tokio::spawn({
        let stop = stop.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    let elapsed = reco_traffic::send::run(source, target, config, tally.clone(), stop.clone()).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    ctrl_c.abort();
    let _ = ticker.await;
    bar.finish_and_clear();
    let [sent, accepted, malformed, refused, failed] = tally.get();
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!(
        "reco: {} events in {secs:.1} s ({:.0}/s): {accepted} of {sent} valid accepted, {malformed} malformed \
         ({refused} refused as expected), {failed} failed",
        sent + malformed,
        (sent + malformed) as f64 / secs
    );
    if failed > 0 {
        let (reasons, examples) = tally.failures();
        eprintln!("reco: why events failed:");
        for (reason, events) in reasons {
            eprintln!("  {events} × {reason}");
        }
        for example in examples {
            eprintln!("  e.g. {example}");
        }
    }
    Ok(if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Updates the progress bar every 200 ms until `stop`. Not at a terminal (a log file, CI) the
/// bar draws nothing: a line every few seconds instead.
async fn show_progress(bar: ProgressBar, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    let lines = !std::io::IsTerminal::is_terminal(&std::io::stderr());
    let started = std::time::Instant::now();
    let mut last_line = started;
    loop {
        let [sent, accepted, malformed, refused, failed] = tally.get();
        let counts = format!("accepted {accepted}  malformed {malformed} (refused {refused})  failed {failed}");
        bar.set_position(sent + malformed);
        if lines && last_line.elapsed() >= Duration::from_secs(5) {
            last_line = std::time::Instant::now();
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "reco: {:.0} s, {} events ({:.0}/s): {counts}",
                secs,
                sent + malformed,
                (sent + malformed) as f64 / secs
            );
        }
        bar.set_message(counts);
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
