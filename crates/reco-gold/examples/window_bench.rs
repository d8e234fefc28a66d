//! Events per second through the pure window core: 10,000 items over 48 h of event time, for
//! 1 h windows sliding every 5 min and every 1 min. Cost per event must not grow with the
//! number of windows an event belongs to (12 vs 60 here); publishing cost does.
//!
//! `cargo run --release -p reco-gold --example window_bench -- [EVENTS]`

use std::time::Instant;

use reco_core::EventType;
use reco_gold::window::{Config, Trending, WindowSpec};

const MIN: i64 = 60_000_000;

fn run(slide_min: i64, events: usize) -> (f64, f64, usize) {
    let config = Config {
        windows: vec![
            WindowSpec { name: "1h", length_us: 60 * MIN, slide_us: slide_min * MIN },
            WindowSpec { name: "24h", length_us: 24 * 60 * MIN, slide_us: 15 * MIN },
        ],
        pane_us: slide_min * MIN,
        ..Config::default()
    };
    let mut t = Trending::new(config);
    // Wall-clock time for the core: far after these 1970 event times, so only they decide.
    let now = 1_800_000_000_000_000;
    let input = t.watermarks_mut().input("events_views", 0, now);
    let span = 48 * 60 * MIN;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let items: Vec<String> = (0..10_000).map(|i| format!("m{i}")).collect();
    let (mut record_secs, mut published) = (0.0, 0);
    let started = Instant::now();
    for i in 0..events {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Zipf-ish popularity: squaring a uniform draw favours small item numbers.
        let u = (x % 10_000) as f64 / 10_000.0;
        let item = &items[(u * u * 10_000.0) as usize];
        let time = i as i64 * span / events as i64 - (x % 120) as i64 * 1_000_000;
        let kind = if x.is_multiple_of(4) { EventType::Click } else { EventType::View };
        let r = Instant::now();
        t.record(input, item, kind, time, now);
        record_secs += r.elapsed().as_secs_f64();
        if i % 10_000 == 0 {
            published += t.advance(now).len();
        }
    }
    let total = started.elapsed().as_secs_f64();
    (events as f64 / record_secs, events as f64 / total, published)
}

fn main() {
    let events: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2_000_000);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("window core: {events} events, 10,000 items, 48 h of event time, {cores} cores");
    println!("| 1h slide | record only (events/s) | record + publish (events/s) | windows published |");
    println!("|---|---:|---:|---:|");
    let mut five_minutes = None;
    for slide in [5, 1] {
        let (record, total, windows) = run(slide, events);
        println!("| {slide} min | {record:.0} | {total:.0} | {windows} |");
        let part = format!("gold core ({events} events, 1h window)");
        let measure = format!("{slide}-min slide: record + publish ({windows} windows)");
        let baseline = format!("{record:.0} ev/s record only");
        reco_testkit::bench::report(&part, &measure, &format!("{total:.0} ev/s"), &baseline, Some(total / record));
        if let Some(base) = five_minutes {
            let measure = "1-min slide: record only (5× the windows)";
            let baseline = format!("{base:.0} ev/s with the 5-min slide");
            reco_testkit::bench::report(&part, measure, &format!("{record:.0} ev/s"), &baseline, Some(record / base));
        }
        five_minutes = Some(record);
    }
}
