//! The API's per-user histories (what `GET /users/{id}/recommendations` starts from):
//! resident memory per million users, and events applied per second.
//!
//! 1,000,000 users (by default) with 30 interactions each over 20,000 items: a full history
//! of 20 positives and about 30 seen items per user, the documented caps.
//!
//! `cargo run --release -p reco-api --example history_bench -- [USERS]`

use std::time::Instant;

use reco_api::recommend::history::{Histories, HistoryConfig};
use reco_core::EventType;

/// Resident memory in bytes. The state only grows during the run, so the growth of resident
/// memory is its size (plus allocator slack, which a service pays too); a counting allocator
/// would be more exact, but the workspace forbids unsafe code.
fn resident() -> usize {
    reco_testkit::proc::rss_of(std::process::id()).0 as usize * 1024
}

const PER_USER: u64 = 30;

fn main() {
    let users: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let names: Vec<String> = (0..users).map(|u| format!("user-{u:08}")).collect();
    let items: Vec<String> = (0..20_000).map(|i| format!("item-{i:06}")).collect();
    let before = resident();
    let mut h = Histories::new(HistoryConfig::default());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let started = Instant::now();
    for round in 0..PER_USER {
        for (u, user) in names.iter().enumerate() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let item = &items[((x % 20_000) as usize + u) % 20_000];
            let (kind, rating) = match x % 10 {
                0..=6 => (EventType::View, None),
                7 | 8 => (EventType::Click, None),
                _ => (EventType::Rating, Some((x % 5 + 1) as f64)),
            };
            let t = (round * 60_000_000 + u as u64) as i64;
            h.apply(user, item, kind, rating, t, t);
        }
    }
    let rate = (users * PER_USER) as f64 / started.elapsed().as_secs_f64();
    let bytes = resident().saturating_sub(before) as f64;
    let per_m = bytes / (users as f64 / 1e6);
    println!("user histories: {users} users x {PER_USER} events, 20,000 items");
    println!("| measure | result |\n|---|---:|");
    println!("| events applied/s (one thread) | {rate:.0} |");
    println!("| bytes per million users | {:.0} MiB |", per_m / 1_048_576.0);
    if let Ok(path) = std::env::var("RECO_BENCH_REPORT") {
        use std::io::Write;
        let row = format!(
            "| API user histories | bytes per M users (20 positives, 30 seen each) | {:.0} MiB, {rate:.0} events/s | | |\n",
            per_m / 1_048_576.0
        );
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open the bench report");
        f.write_all(row.as_bytes()).expect("write the bench report");
    }
}
