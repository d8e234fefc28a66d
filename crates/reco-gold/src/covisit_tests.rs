use std::collections::BTreeMap;

use proptest::prelude::*;
use reco_testkit::neighbors::{self, Rules};

use super::*;

const MIN: i64 = 60_000_000;
/// 2019-03-01T00:00:00Z.
const BASE: i64 = 1_551_398_400_000_000;

fn view(user: &str, item: &str, minute: i64) -> Interaction {
    Interaction {
        user: user.into(),
        item: item.into(),
        session: None,
        action: Action::View,
        time_us: BASE + minute * MIN,
    }
}

fn names(list: &[Neighbor]) -> Vec<&str> {
    list.iter().map(|n| n.item.as_ref()).collect()
}

#[test]
fn items_seen_together_in_a_session_become_neighbours() {
    let mut c = CoVisits::new(Config { half_life_us: 0, ..Config::default() });
    for (user, items) in [("u1", ["a", "b", "c"]), ("u2", ["a", "b", "d"]), ("u3", ["x", "b", "a"])] {
        for (k, item) in items.iter().enumerate() {
            c.record(view(user, item, k as i64), None);
        }
    }
    assert!(c.neighbors("a").is_empty(), "nothing applied before the watermark passes");
    c.advance(BASE + 10 * MIN);
    let a = c.neighbors("a");
    assert_eq!(names(&a)[0], "b", "{a:?}");
    assert_eq!(a[0].support, 3);
    assert!(a.iter().all(|n| n.score > 0.0 && n.score <= 1.0 + 1e-12));
    assert!(c.neighbors("unknown").is_empty());
}

#[test]
fn a_gap_ends_the_session_and_repeats_pair_nothing() {
    let mut c = CoVisits::new(Config { half_life_us: 0, ..Config::default() });
    c.record(view("u", "a", 0), None);
    c.record(view("u", "a", 1), None); // a repeat: no co-visit with itself
    c.record(view("u", "b", 31 + 1), None); // 31 minutes after the last event: a new session
    c.record(view("u", "c", 40), None);
    c.advance(BASE + 60 * MIN);
    assert!(c.neighbors("a").is_empty());
    assert_eq!(names(&c.neighbors("b")), vec!["c"]);
    // Named sessions: the same id goes on across a gap, another id starts afresh.
    let mut named = CoVisits::new(Config { half_life_us: 0, ..Config::default() });
    let mut e = view("u", "a", 0);
    e.session = Some("s1".into());
    named.record(e.clone(), None);
    named.record(Interaction { item: "b".into(), time_us: BASE + 90 * MIN, ..e.clone() }, None);
    named.record(Interaction { item: "c".into(), time_us: BASE + 91 * MIN, session: Some("s2".into()), ..e }, None);
    named.advance(BASE + 100 * MIN);
    assert_eq!(names(&named.neighbors("a")), vec!["b"]);
    assert!(named.neighbors("c").is_empty());
}

#[test]
fn low_ratings_are_not_positive_and_weights_apply() {
    let config = Config { half_life_us: 0, ..Config::default() };
    assert_eq!(config.weight(Action::Rating(3.5)), None);
    assert_eq!(config.weight(Action::Rating(4.0)), Some(3.0));
    let mut c = CoVisits::new(config);
    let rating = |item: &str, r: f64, minute: i64| Interaction { action: Action::Rating(r), ..view("u", item, minute) };
    c.record(rating("a", 5.0, 0), None);
    c.record(rating("b", 2.0, 1), None);
    c.record(rating("c", 4.5, 2), None);
    c.advance(BASE + 10 * MIN);
    assert_eq!(names(&c.neighbors("a")), vec!["c"]);
    assert!(c.neighbors("b").is_empty());
}

// ---- The property: published lists equal a brute-force recount of the same inputs. ----

/// A test's configuration: small caps and a short half-life, so every rule binds.
fn small(half_life_us: i64) -> Config {
    Config { history: 3, candidates: 4, top_k: 3, min_support: 1, half_life_us, forget_below: 0.2, ..Config::default() }
}

/// The same settings for the independent recount (`reco_testkit::neighbors`).
fn rules(c: &Config) -> Rules {
    Rules {
        view_weight: c.view_weight,
        click_weight: c.click_weight,
        rating_weight: c.rating_weight,
        rating_threshold: c.rating_threshold,
        session_gap_us: c.session_gap_us,
        named_session_idle_us: c.named_session_idle_us,
        history: c.history,
        half_life_us: c.half_life_us,
        candidates: c.candidates,
        top_k: c.top_k,
        min_support: c.min_support,
        forget_below: c.forget_below,
    }
}

fn as_recount_steps(steps: &[Step]) -> Vec<neighbors::Step> {
    steps
        .iter()
        .map(|s| match s {
            Step::Advance(w) => neighbors::Step::Advance(*w),
            Step::Record(e) => neighbors::Step::Event(neighbors::Event {
                user: e.user.clone(),
                item: e.item.clone(),
                session: e.session.clone(),
                kind: match e.action {
                    Action::View => neighbors::Kind::View,
                    Action::Click => neighbors::Kind::Click,
                    Action::Rating(r) => neighbors::Kind::Rating(r),
                },
                time_us: e.time_us,
            }),
        })
        .collect()
}

#[derive(Clone, Debug)]
enum Step {
    Record(Interaction),
    Advance(i64),
}

/// Users and sessions interleaved, bursts and pauses (some beyond the session gap), views,
/// clicks and ratings, delivered out of order within each chunk; the watermark moves between
/// chunks to just before the earliest event still to come, so no event is late.
fn arb_steps() -> impl Strategy<Value = Vec<Step>> {
    let event = (0..5u8, 0..12u8, prop::option::weighted(0.3, 0..3u8), 0..4u8, 1..=5u8, 0..(45 * MIN));
    (prop::collection::vec(event, 1..120), prop::collection::vec((1..12usize, any::<bool>()), 1..40)).prop_map(
        |(raw, chunks)| {
            let mut t = BASE;
            let mut events: Vec<Interaction> = raw
                .into_iter()
                .map(|(user, item, session, kind, rating, step)| {
                    t += step / 4 + if step > 40 * MIN { step } else { 0 };
                    let action = match kind {
                        0 | 1 => Action::View,
                        2 => Action::Click,
                        _ => Action::Rating(f64::from(rating)),
                    };
                    Interaction {
                        user: format!("u{user}"),
                        item: format!("i{item}"),
                        session: session.map(|s| format!("s{user}-{s}")),
                        action,
                        time_us: t,
                    }
                })
                .collect();
            let mut steps = Vec::new();
            let mut chunk_sizes = chunks.into_iter().cycle();
            while !events.is_empty() {
                let (n, advance) = chunk_sizes.next().unwrap_or((1, true));
                let mut chunk: Vec<Interaction> = events.drain(..n.min(events.len())).collect();
                chunk.reverse(); // out of order within the chunk
                steps.extend(chunk.into_iter().map(Step::Record));
                if advance || events.is_empty() {
                    let w = events.iter().map(|e| e.time_us - 1).min().unwrap_or(t);
                    steps.push(Step::Advance(w));
                }
            }
            steps
        },
    )
}

/// Runs `steps` through the core (restoring it from a JSON round trip of its state after the
/// `restore_at`-th advance) and compares what it published with [`recount`].
fn check(config: Config, steps: &[Step], restore_at: Option<usize>) -> Result<(), TestCaseError> {
    let expected = neighbors::recount(&rules(&config), &as_recount_steps(steps));
    let mut c = CoVisits::new(config.clone());
    let mut advances = 0;
    let mut watermark = None;
    let mut published: BTreeMap<String, Vec<(String, f64, u32)>> = BTreeMap::new();
    for step in steps {
        match step {
            Step::Record(e) => prop_assert!(!c.record(e.clone(), watermark), "the generator makes no event late"),
            Step::Advance(w) => {
                watermark = Some(*w);
                c.advance(*w);
                for (item, list) in c.take_changed() {
                    let rows: Vec<_> = list.into_iter().map(|n| (n.item.to_string(), n.score, n.support)).collect();
                    if rows.is_empty() {
                        published.remove(item.as_ref());
                    } else {
                        published.insert(item.to_string(), rows);
                    }
                }
                advances += 1;
                if restore_at == Some(advances) {
                    let json = serde_json::to_string(&c.state()).unwrap();
                    c = CoVisits::restore(config.clone(), serde_json::from_str(&json).unwrap()).unwrap();
                }
            }
        }
    }
    prop_assert_eq!(published.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    for (item, list) in &expected {
        let got = &published[item];
        let ids = |l: &[(String, f64, u32)]| l.iter().map(|(i, _, s)| (i.clone(), *s)).collect::<Vec<_>>();
        prop_assert_eq!(ids(got), ids(list), "neighbours of {}", item);
        for ((_, a, _), (_, b, _)) in got.iter().zip(list) {
            prop_assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "score of a neighbour of {item}: {a} vs {b}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn published_lists_equal_a_recount_without_decay(steps in arb_steps()) {
        check(small(0), &steps, None)?;
    }

    #[test]
    fn published_lists_equal_a_recount_with_decay_and_forgetting(steps in arb_steps()) {
        check(small(3 * 60 * MIN), &steps, None)?;
    }

    #[test]
    fn a_restored_state_continues_exactly(steps in arb_steps(), at in 1..6usize) {
        check(small(3 * 60 * MIN), &steps, Some(at))?;
    }
}
