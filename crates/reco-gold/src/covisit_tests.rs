use std::collections::HashMap;

use proptest::prelude::*;

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

/// The DESIGN of `covisit.rs`, recomputed naively: events sorted by the application order at
/// each advance, sessions and histories as plain lists, pairs in one map.
fn recount(config: &Config, steps: &[Step]) -> BTreeMap<String, Vec<(String, f64, u32)>> {
    type Pairs = HashMap<(String, String), (f64, u32)>;
    // User → (named session, last event, history newest first, positives in the session).
    type Session = (Option<String>, i64, Vec<(String, f64)>, u32);
    let mut users: HashMap<String, Session> = HashMap::new();
    let mut mass: HashMap<String, f64> = HashMap::new();
    let mut pairs: Pairs = HashMap::new();
    let mut epoch: Option<i64> = None;
    let mut forgot: Option<i64> = None;
    let key = |a: &str, b: &str| if a < b { (a.to_owned(), b.to_owned()) } else { (b.to_owned(), a.to_owned()) };
    let growth = |t: i64, epoch: i64| {
        if config.half_life_us == 0 { 1.0 } else { ((t - epoch) as f64 / config.half_life_us as f64).exp2() }
    };
    // Pairs of `a`, weakest first (smallest value, then the greatest name).
    fn weakest(pairs: &Pairs, a: &str) -> Option<(String, String)> {
        pairs
            .iter()
            .filter(|((x, y), _)| x == a || y == a)
            .min_by(|p, q| {
                let other = |k: &(String, String)| if k.0 == a { k.1.clone() } else { k.0.clone() };
                p.1.0.total_cmp(&q.1.0).then_with(|| other(q.0).cmp(&other(p.0)))
            })
            .map(|(k, _)| k.clone())
    }
    let degree = |pairs: &Pairs, a: &str| pairs.keys().filter(|(x, y)| x == a || y == a).count();
    let mut recorded: Vec<Interaction> = Vec::new();
    for step in steps {
        let watermark = match step {
            Step::Record(e) => {
                recorded.push(e.clone());
                continue;
            }
            Step::Advance(w) => *w,
        };
        let (mut due, rest): (Vec<_>, Vec<_>) = recorded.drain(..).partition(|e| e.time_us <= watermark);
        recorded = rest;
        due.sort_by(|x, y| {
            (x.time_us, &x.user, &x.item, x.action.order()).cmp(&(y.time_us, &y.user, &y.item, y.action.order()))
        });
        for e in due {
            let u = users.entry(e.user.clone()).or_insert((e.session.clone(), e.time_us, Vec::new(), 0));
            let idle = e.time_us - u.1;
            let same = match (&e.session, &u.0) {
                (Some(s), Some(c)) => s == c && idle <= config.named_session_idle_us,
                (None, None) => idle <= config.session_gap_us,
                _ => false,
            };
            if !same {
                *u = (e.session.clone(), u.1, Vec::new(), 0);
            }
            u.1 = u.1.max(e.time_us);
            let Some(w) = config.weight(e.action) else { continue };
            let epoch = *epoch.get_or_insert(e.time_us);
            let g = growth(e.time_us, epoch);
            if let Some(at) = u.2.iter().position(|(i, _)| *i == e.item) {
                let (_, before) = u.2.remove(at);
                u.2.insert(0, (e.item.clone(), before.max(w)));
                continue;
            }
            let d = 1.0 / (std::f64::consts::E + f64::from(u.3)).ln();
            let partners = u.2.clone();
            u.2.insert(0, (e.item.clone(), w));
            u.2.truncate(config.history);
            u.3 += 1;
            *mass.entry(e.item.clone()).or_default() += d * w * g;
            for (i, wi) in partners {
                let p = pairs.entry(key(&i, &e.item)).or_default();
                p.0 += d * (wi * w).sqrt() * g;
                p.1 += 1;
                for a in [&i, &e.item] {
                    while degree(&pairs, a) > config.candidates {
                        let k = weakest(&pairs, a).unwrap();
                        pairs.remove(&k);
                    }
                }
            }
        }
        let step = config.half_life_us / 4;
        if step > 0 {
            let at = watermark.div_euclid(step) * step;
            if forgot.is_none_or(|f| f < at) {
                forgot = Some(at);
                let floor = config.forget_below * growth(at, epoch.unwrap_or(0));
                pairs.retain(|_, p| p.0 >= floor);
            }
        }
    }
    let mut lists: BTreeMap<String, Vec<(String, f64, u32)>> = BTreeMap::new();
    for ((a, b), (v, support)) in &pairs {
        if *support < config.min_support {
            continue;
        }
        let score = v / (mass[a] * mass[b]).sqrt();
        lists.entry(a.clone()).or_default().push((b.clone(), score, *support));
        lists.entry(b.clone()).or_default().push((a.clone(), score, *support));
    }
    for list in lists.values_mut() {
        list.sort_by(|x, y| y.1.total_cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
        list.truncate(config.top_k);
    }
    lists
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

fn check(config: Config, steps: &[Step]) -> Result<(), TestCaseError> {
    let expected = recount(&config, steps);
    let mut c = CoVisits::new(config);
    let mut watermark = None;
    let mut published: BTreeMap<String, Vec<(String, f64, u32)>> = BTreeMap::new();
    for step in steps {
        match step {
            Step::Record(e) => c.record(e.clone(), watermark),
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
        check(small(0), &steps)?;
    }

    #[test]
    fn published_lists_equal_a_recount_with_decay_and_forgetting(steps in arb_steps()) {
        check(small(3 * 60 * MIN), &steps)?;
    }
}
