use std::collections::HashMap;

use reco_core::{Mode, Rules, decode_json, validate_event};

use super::*;

const NOW: i64 = 1_795_000_000_000_000;
const HOUR: i64 = 3_600_000_000;

fn stream(config: GenConfig, n: usize, step_us: i64) -> Vec<(i64, Generated)> {
    let mut g = Generator::new(config);
    (0..n).map(|i| (NOW + i as i64 * step_us, g.next(NOW + i as i64 * step_us))).collect()
}

/// Validates like the API does, returning the first error kind.
fn check(body: &[u8], now: i64) -> Result<(), &'static str> {
    let value = decode_json(body).map_err(|e| e.kind.as_str())?;
    let mut assign = || "assigned".to_owned();
    let event = validate_event(&value, &Rules::default(), now, Mode::Ingest { assign_id: &mut assign })
        .map_err(|e| e[0].kind.as_str())?;
    assert_eq!(Some(event.event_id.as_str()), value["event_id"].as_str(), "valid events carry their own id");
    Ok(())
}

#[test]
fn valid_events_pass_validation_and_malformed_ones_fail_as_labelled() {
    let config = GenConfig { malformed_ratio: 0.2, ..GenConfig::default() };
    let (mut valid, mut kinds) = (0, HashMap::new());
    for (now, g) in stream(config, 5_000, 1_000) {
        match g {
            Generated::Valid(v) => {
                check(v.to_string().as_bytes(), now).unwrap_or_else(|k| panic!("{v} rejected: {k}"));
                valid += 1;
            }
            Generated::Malformed { kind, body } => {
                assert_eq!(check(body.as_bytes(), now), Err(kind), "{body}");
                *kinds.entry(kind).or_insert(0) += 1;
            }
        }
    }
    assert!(valid > 3_500, "{valid}");
    assert_eq!(kinds.len(), 5, "every kind of mistake appears: {kinds:?}");
}

#[test]
fn popularity_is_zipf_and_funnel_ratios_hold() {
    let config = GenConfig { drift_items_per_hour: 0.0, ..GenConfig::default() };
    let (mut views, mut by_type) = (HashMap::new(), HashMap::new());
    for (_, g) in stream(config.clone(), 100_000, 1_000) {
        let Generated::Valid(v) = g else { unreachable!() };
        *by_type.entry(v["type"].as_str().unwrap().to_owned()).or_insert(0.0) += 1.0;
        if v["type"] == "view" {
            *views.entry(v["item_id"].as_str().unwrap().to_owned()).or_insert(0.0) += 1.0;
        }
    }
    let g = Generator::new(config.clone());
    let (top, tenth, hundredth) = (views[&g.item_at(0, 0)], views[&g.item_at(9, 0)], views[&g.item_at(99, 0)]);
    // Zipf with s = 1.1: rank 1 / rank 10 ≈ 12.6, rank 1 / rank 100 ≈ 158.
    assert!((8.0..20.0).contains(&(top / tenth)), "{top} / {tenth}");
    assert!(top / hundredth > 60.0, "{top} / {hundredth}");
    let clicks = by_type["click"] / by_type["view"];
    let ratings = by_type["rating"] / by_type["click"];
    assert!((clicks - config.click_ratio).abs() < 0.01, "clicks per view {clicks}");
    assert!((ratings - config.rating_ratio).abs() < 0.03, "ratings per click {ratings}");
}

#[test]
fn trending_drifts_with_event_time() {
    let config = GenConfig {
        clock: Clock::Historic { start_us: 1_551_398_400_000_000, speedup: 3600.0 },
        drift_items_per_hour: 5.0,
        ..GenConfig::default()
    };
    // One wall second = one hour of event time: compare the top item of hour 0 and hour 10.
    let mut top_per_hour: HashMap<i64, HashMap<String, u32>> = HashMap::new();
    let mut g = Generator::new(config);
    for i in 0..40_000 {
        let now = NOW + i * 300; // 40,000 events over 12 wall seconds
        if let Generated::Valid(v) = g.next(now) {
            let hour = (now - NOW) * 3600 / HOUR;
            *top_per_hour.entry(hour).or_default().entry(v["item_id"].as_str().unwrap().into()).or_default() += 1;
        }
    }
    let top = |h: i64| top_per_hour[&h].iter().max_by_key(|(_, n)| **n).map(|(i, _)| i.clone()).unwrap();
    assert_ne!(top(0), top(10), "the most popular item changes over ten hours");
}

#[test]
fn same_seed_same_stream_and_sessions_expire() {
    let a = stream(GenConfig::default(), 2_000, 1_000);
    let b = stream(GenConfig::default(), 2_000, 1_000);
    assert_eq!(a, b);
    let other = stream(GenConfig { seed: 7, ..GenConfig::default() }, 2_000, 1_000);
    assert_ne!(a, other);

    // One user: consecutive events share a session until it ends or 30 minutes pass.
    let mut g = Generator::new(GenConfig { users: 1, click_ratio: 0.0, session_events: 1000, ..GenConfig::default() });
    let session = |g: &mut Generator, t: i64| match g.next(t) {
        Generated::Valid(v) => v["session_id"].as_str().unwrap().to_owned(),
        Generated::Malformed { .. } => unreachable!(),
    };
    let first = session(&mut g, NOW);
    let same = session(&mut g, NOW + 60_000_000);
    let later = session(&mut g, NOW + 60_000_000 + 31 * 60_000_000);
    assert_eq!(first, same);
    assert_ne!(same, later, "a 31-minute gap starts a new session");
}
