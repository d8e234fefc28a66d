//! The item neighbour core under a synthetic stream: events per second, beside the trending
//! window core on the same events (the baseline, same run), and the state it holds in bytes
//! (growth of resident memory) per million events and per million users.
//!
//! 200,000 users of skewed activity in sessions of 2 to 12 interactions, 20,000 items of Zipf-like
//! popularity, views, clicks and ratings over 30 days of event time, the watermark following
//! 5 minutes behind.
//!
//! `cargo run --release -p reco-gold --example neighbors_bench -- [EVENTS]`

use std::time::Instant;

use reco_core::EventType;
use reco_gold::{
    covisit::{Action, CoVisits, Config, Interaction},
    window::{self, Trending},
};

/// Resident memory in bytes. The state only grows during the run, so the growth of resident
/// memory is its size (plus allocator slack, which a service pays too); a counting allocator
/// would be more exact, but the workspace forbids unsafe code.
fn resident() -> usize {
    reco_testkit::proc::rss_of(std::process::id()).0 as usize * 1024
}

const MIN: i64 = 60_000_000;
const USERS: u64 = 200_000;
const ITEMS: u64 = 20_000;

fn stream(events: usize) -> Vec<Interaction> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let span = 30 * 24 * 60 * MIN;
    let mut out = Vec::with_capacity(events);
    while out.len() < events {
        // A session: a user of skewed activity, 2 to 12 interactions a few seconds apart.
        let u = (next() % 1_000_000) as f64 / 1e6;
        let user = (u * u * USERS as f64) as u64;
        let burst = 2 + next() % 11;
        let start = out.len() as i64 * span / events as i64;
        for k in 0..burst {
            let v = (next() % 10_000) as f64 / 10_000.0;
            let item = ((v * v * ITEMS as f64) as u64 + user % 50) % ITEMS;
            let action = match next() % 10 {
                0..=6 => Action::View,
                7 | 8 => Action::Click,
                _ => Action::Rating(1.0 + (next() % 5) as f64),
            };
            let time_us = start + k as i64 * 20_000_000 - (next() % 60) as i64 * 1_000_000;
            out.push(Interaction {
                user: format!("u{user}"),
                item: format!("m{item}"),
                session: None,
                action,
                time_us,
            });
        }
    }
    out.truncate(events);
    out
}

fn main() {
    let events: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2_000_000);
    let input = stream(events);
    let users = input.iter().map(|e| &e.user).collect::<std::collections::HashSet<_>>().len();

    // Baseline: the trending window core on the same events.
    let mut trending = Trending::new(window::Config::default());
    let now = 1_800_000_000_000_000;
    let mark = trending.watermarks_mut().input("events_views", 0, now);
    let started = Instant::now();
    for (i, e) in input.iter().enumerate() {
        let kind = if matches!(e.action, Action::Click) { EventType::Click } else { EventType::View };
        trending.record(mark, &e.item, kind, e.time_us, now);
        if i % 10_000 == 0 {
            trending.advance(now);
        }
    }
    let trending_rate = events as f64 / started.elapsed().as_secs_f64();
    drop(trending);

    let before = resident();
    let mut core = CoVisits::new(Config::default());
    let started = Instant::now();
    let mut watermark = i64::MIN;
    for (i, e) in input.iter().enumerate() {
        watermark = watermark.max(e.time_us - 5 * MIN);
        core.record(e.clone(), Some(watermark));
        if i % 10_000 == 0 {
            core.advance(watermark);
            core.take_changed();
        }
    }
    core.advance(watermark);
    let rate = events as f64 / started.elapsed().as_secs_f64();
    let bytes = resident().saturating_sub(before) as f64;
    let held = core.state_size();
    let (items, pairs, held_users) = (held.items, held.pairs, held.users);
    let per_m_events = bytes / (events as f64 / 1e6);
    let per_m_users = bytes / (users as f64 / 1e6);
    println!("item neighbour core: {events} events, {users} users, {ITEMS} items, 30 days of event time");
    println!("| measure | result |\n|---|---:|");
    println!("| events/s (record + apply + take lists) | {rate:.0} |");
    println!("| trending window core, same events (baseline) | {trending_rate:.0} |");
    println!("| state: items / pairs / users held | {items} / {pairs} / {held_users} |");
    println!("| state bytes (resident growth) | {:.1} MiB |", bytes / 1_048_576.0);
    println!("| bytes per million events | {:.1} MiB |", per_m_events / 1_048_576.0);
    println!("| bytes per million users | {:.1} MiB |", per_m_users / 1_048_576.0);
    if let Ok(path) = std::env::var("RECO_BENCH_REPORT") {
        use std::io::Write;
        let ratio = rate / trending_rate;
        let rows = format!(
            "| gold neighbours core | events/s | {rate:.0} | {trending_rate:.0} (trending core, same events) | \
             {ratio:.2} |\n| gold neighbours state | bytes per M events / per M users | {:.0} MiB / {:.0} MiB \
             ({pairs} pairs, {items} items) | | |\n",
            per_m_events / 1_048_576.0,
            per_m_users / 1_048_576.0
        );
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open the bench report");
        f.write_all(rows.as_bytes()).expect("write the bench report");
    }
}
