use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::watermark::InputId;

const MIN: i64 = 60_000_000;
const HOUR: i64 = 60 * MIN;

type Event = (String, EventType, i64);
type Published = BTreeMap<(&'static str, i64), Vec<RankedRow>>;

/// Ranks by sorting everything (independent of the job's top-N selection).
fn brute_rank(totals: HashMap<&str, (u64, u64)>, config: &Config) -> Vec<RankedRow> {
    let mut all: Vec<(f64, &str, u64, u64)> = totals
        .into_iter()
        .map(|(i, (v, c))| (config.view_weight * v as f64 + config.click_weight * c as f64, i, v, c))
        .collect();
    all.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap().then(a.1.cmp(b.1)));
    all.into_iter()
        .take(config.top_n)
        .enumerate()
        .map(|(r, (score, item, views, clicks))| RankedRow {
            rank: r as u32 + 1,
            item_id: item.into(),
            views,
            clicks,
            score,
        })
        .collect()
}

/// Brute force: every window (by the CONTRACTS §5 definition) holding any view or click of
/// `events`, ranked.
fn recount(config: &Config, events: &[Event]) -> Published {
    let mut out = BTreeMap::new();
    for spec in &config.windows {
        let mut starts = BTreeSet::new();
        for (_, _, t) in events.iter().filter(|(_, kind, _)| *kind != EventType::Rating) {
            let mut s = t.div_euclid(spec.slide_us) * spec.slide_us;
            while s > t - spec.length_us {
                starts.insert(s);
                s -= spec.slide_us;
            }
        }
        for s in starts {
            let mut totals: HashMap<&str, (u64, u64)> = HashMap::new();
            for (item, kind, t) in events {
                if s <= *t && *t < s + spec.length_us {
                    let (views, clicks) = match kind {
                        EventType::View => (1, 0),
                        EventType::Click => (0, 1),
                        EventType::Rating => continue, // not in a trending score
                    };
                    let e = totals.entry(item.as_str()).or_default();
                    e.0 += views;
                    e.1 += clicks;
                }
            }
            out.insert((spec.name, s), brute_rank(totals, config));
        }
    }
    out
}

/// Wall-clock time of the tests (2027): far after their event times, so the clamp of the
/// watermark to the clock does not bind unless a test means it to.
const NOW: i64 = 1_800_000_000_000_000;

/// Every published window's last row set; checks that a window is only ever re-published as
/// complete when dirty, and that no complete window ends after the watermark.
#[derive(Default)]
struct Sink {
    published: Published,
    complete: BTreeSet<(&'static str, i64)>,
}

impl Sink {
    fn take(&mut self, t: &Trending, results: Vec<RankedWindow>) {
        for r in results {
            let spec = t.config().windows.iter().find(|w| w.name == r.window).unwrap();
            assert_eq!(r.end_us - r.start_us, spec.length_us);
            if r.complete {
                assert!(t.watermark_us().is_some_and(|w| r.end_us <= w), "complete before the watermark");
                let before = !self.complete.insert((r.window, r.start_us));
                assert_eq!(before, r.republished, "republished flag of {} {}", r.window, r.start_us);
            } else {
                assert!(!self.complete.contains(&(r.window, r.start_us)), "a complete window went provisional");
            }
            self.published.insert((r.window, r.start_us), r.rows);
        }
    }
}

/// Feeds `events` from one input (advancing at the given points), then idles; returns the
/// last row set published per window and the events counted.
fn run(config: &Config, events: &[Event], advance_every: usize) -> (Published, Vec<Event>) {
    run_restoring(config, events, advance_every, None)
}

/// [`run`], replacing the state by a restored snapshot of itself after event `restore_at`.
fn run_restoring(
    config: &Config,
    events: &[Event],
    advance_every: usize,
    restore_at: Option<usize>,
) -> (Published, Vec<Event>) {
    let mut t = Trending::new(config.clone());
    let mut sink = Sink::default();
    let mut counted = Vec::new();
    let mut input = t.watermarks_mut().input("views", 0, NOW);
    for (i, (item, kind, time)) in events.iter().enumerate() {
        if t.record(input, item, *kind, *time, NOW) != Recorded::BeyondHorizon {
            counted.push((item.clone(), *kind, *time));
        }
        if advance_every > 0 && i % advance_every == 0 {
            let due = t.advance(NOW);
            sink.take(&t, due);
        }
        if restore_at == Some(i) {
            let panes: Vec<_> = t.panes().map(|(p, item, v, c)| (p, item.to_owned(), v, c)).collect();
            let snapshot = serde_json::to_string(&t.snapshot()).unwrap();
            t = Trending::restore(config.clone(), serde_json::from_str(&snapshot).unwrap(), panes, NOW).unwrap();
            input = t.watermarks_mut().input("views", 0, NOW);
        }
    }
    let due = t.advance(NOW + config.idle_timeout_us);
    sink.take(&t, due);
    (sink.published, counted)
}

const IN: InputId = 0;

/// A core with one input, `IN`.
fn trending(config: Config) -> Trending {
    let mut t = Trending::new(config);
    assert_eq!(t.watermarks_mut().input("events_views", 0, NOW), IN);
    t
}

fn small_config() -> Config {
    Config { top_n: 3, horizon_us: 2 * HOUR, lateness_us: 5 * MIN, ..Config::default() }
}

#[test]
fn scores_and_ties() {
    let mut totals = HashMap::new();
    totals.insert("b", (3, 0));
    totals.insert("a", (0, 1));
    totals.insert("c", (1, 1));
    let rows = rank(totals, 1.0, 3.0, 2);
    let got: Vec<(&str, f64, u32)> = rows.iter().map(|r| (r.item_id.as_str(), r.score, r.rank)).collect();
    assert_eq!(got, vec![("c", 4.0, 1), ("a", 3.0, 2)], "a ties b at 3 and wins on item_id; top 2 kept");
}

#[test]
fn windows_close_when_the_watermark_passes_their_end() {
    let mut t = trending(Config::default());
    let hourly = |due: &[RankedWindow]| -> Vec<i64> {
        due.iter().filter(|w| w.window == "1h").map(|w| w.start_us / MIN).collect()
    };
    t.record(IN, "m", EventType::View, 10 * MIN, NOW);
    assert!(t.advance(NOW).is_empty(), "watermark at 5 min: nothing closed");
    t.record(IN, "m", EventType::View, HOUR + 4 * MIN, NOW); // watermark = 59 min
    // Windows holding 10 min that end by 59 min: [-45, 15) .. [-5, 55).
    assert_eq!(hourly(&t.advance(NOW)), vec![-45, -40, -35, -30, -25, -20, -15, -10, -5]);
    t.record(IN, "m", EventType::View, HOUR + 5 * MIN, NOW); // watermark = 60 min
    let due = t.advance(NOW);
    assert_eq!(hourly(&due), vec![0], "[0, 1h) closes exactly when the watermark reaches 60 min");
    assert_eq!(due[0].rows[0].views, 1);
}

#[test]
fn late_event_republishes_and_beyond_horizon_is_refused() {
    let config = small_config();
    let mut t = trending(config.clone());
    t.record(IN, "m", EventType::View, 0, NOW);
    t.record(IN, "m", EventType::View, 90 * MIN, NOW);
    t.record(IN, "m", EventType::View, 3 * HOUR, NOW);
    let first = t.advance(NOW);
    assert!(first.iter().any(|w| w.start_us == 0 && w.window == "1h"));
    assert_eq!(t.record(IN, "m", EventType::Click, 2 * HOUR, NOW), Recorded::Late);
    let again: Vec<_> = t.advance(NOW).into_iter().filter(|w| w.window == "1h").collect();
    // 1h windows holding 2h start at 1h05..2h. Those ending by the watermark (2h55) are due:
    // 1h05..1h30 also hold 1h30, were published and come again; 1h35..1h55 held nothing and
    // are published for the first time; [2h, 3h) is still open.
    let starts = |republished: bool| -> Vec<i64> {
        again.iter().filter(|w| w.republished == republished).map(|w| w.start_us / MIN).collect()
    };
    assert_eq!(starts(true), vec![65, 70, 75, 80, 85, 90]);
    assert_eq!(starts(false), vec![95, 100, 105, 110, 115]);
    assert!(again.iter().all(|w| w.rows[0].clicks == 1));
    assert_eq!(
        t.record(IN, "m", EventType::Click, 10 * MIN, NOW),
        Recorded::BeyondHorizon,
        "older than watermark − horizon"
    );
}

#[test]
fn idle_input_publishes_the_open_windows_as_provisional() {
    let mut t = trending(Config::default());
    t.record(IN, "m", EventType::View, 30 * MIN, NOW);
    assert!(t.advance(NOW + 1).iter().all(|w| w.complete), "active input: nothing provisional");
    let due = t.advance(NOW + Config::default().idle_timeout_us);
    assert_eq!(due.iter().filter(|w| w.window == "1h").count(), 12);
    assert_eq!(due.iter().filter(|w| w.window == "24h").count(), 96);
    assert!(due.iter().all(|w| !w.complete), "the watermark (25 min) passed none of them");
    assert!(t.advance(NOW + 10 * Config::default().idle_timeout_us).is_empty(), "published once per lull");
}

/// CONTRACTS §5: a lull publishes provisional windows and moves neither the watermark nor the
/// point from which events are late; the windows come again as complete when it passes them.
#[test]
fn a_lull_changes_no_lateness() {
    let config = Config::default();
    let mut t = trending(config.clone());
    let mut now = NOW;
    for m in 0..50 {
        t.record(IN, "m", EventType::View, m * MIN, now);
        t.advance(now);
        now += 1_000_000;
    }
    let watermark = t.watermark_us().unwrap();
    assert_eq!(watermark, 44 * MIN);
    now += config.idle_timeout_us;
    let lull = t.advance(now);
    assert!(!lull.is_empty() && lull.iter().all(|w| !w.complete && w.end_us > watermark));
    assert_eq!(t.watermark_us(), Some(watermark), "idleness does not move the watermark");
    // Traffic again, on time: nothing is late, and the provisional windows complete in turn.
    let mut completed = Vec::new();
    for m in 50..130 {
        assert_eq!(t.record(IN, "m", EventType::Click, m * MIN, now), Recorded::OnTime, "minute {m}");
        completed.extend(t.advance(now).into_iter().filter(|w| w.window == "1h"));
        now += 1_000_000;
    }
    assert!(completed.iter().all(|w| w.complete && !w.republished));
    let hour = completed.iter().find(|w| w.start_us == 0).expect("[0, 1h) completed");
    assert_eq!((hour.rows[0].views, hour.rows[0].clicks), (50, 10));
}

/// One event dated ten minutes ahead (a client clock running fast) among on-time traffic does
/// not close the current windows: the watermark stays at the wall clock minus the lateness.
#[test]
fn a_future_event_closes_nothing_early() {
    let config = Config::default();
    let mut t = trending(config.clone());
    let now = 1_800_000_000 * 1_000_000 + 2 * MIN; // 2 min after a 5-min mark (1.8e9 s is one)
    for k in 0..100 {
        t.record(IN, "m", EventType::View, now - 60 * MIN + k * 36_000_000, now);
    }
    t.record(IN, "skewed", EventType::View, now + 10 * MIN, now);
    let due = t.advance(now);
    assert_eq!(t.watermark_us(), Some(now - config.lateness_us));
    assert!(due.iter().all(|w| w.end_us <= now - config.lateness_us), "a window closed after the clock");
    assert!(due.iter().all(|w| w.rows.iter().all(|r| r.item_id != "skewed")));
}

/// Two inputs: one runs a day ahead inside one cycle (a fast replay, a backlog). The slower
/// one's on-time events are neither late nor beyond the horizon.
#[test]
fn an_input_running_ahead_does_not_make_another_late() {
    let mut t = Trending::new(small_config());
    let (fast, slow) =
        (t.watermarks_mut().input("events_views", 0, NOW), t.watermarks_mut().input("events_clicks", 1, NOW));
    for m in 0..(24 * 60) {
        assert_eq!(t.record(fast, "f", EventType::View, m * MIN, NOW), Recorded::OnTime);
    }
    t.record(slow, "s", EventType::Click, 0, NOW);
    let mut due = t.advance(NOW);
    assert_eq!(t.watermark_us(), Some(-5 * MIN), "the slow input holds the watermark");
    for m in 1..(24 * 60) {
        assert_eq!(t.record(slow, "s", EventType::Click, m * MIN, NOW), Recorded::OnTime, "minute {m}");
        if m % 10 == 0 {
            due.extend(t.advance(NOW));
        }
    }
    let noon = due.iter().find(|w| w.window == "1h" && w.start_us == 12 * HOUR).expect("noon window");
    assert_eq!(noon.rows.iter().map(|r| (r.views, r.clicks)).collect::<Vec<_>>(), vec![(0, 60), (60, 0)]);
}

#[test]
fn state_is_bounded_by_the_horizon() {
    let config = small_config();
    let mut t = trending(config.clone());
    for i in 0..2000 {
        t.record(IN, &format!("m{}", i % 50), EventType::View, i * MIN, NOW);
        t.advance(NOW);
    }
    let panes = (config.horizon_us + config.max_length() + config.lateness_us) / config.pane_us + 2;
    assert!(t.state_size() <= 50 * panes as usize, "state {} exceeds the horizon's panes", t.state_size());
}

#[test]
fn items_that_left_every_pane_are_forgotten() {
    // The catalogue drifts: a new item every minute, none seen again.
    let config = small_config();
    let mut t = trending(config.clone());
    for i in 0..2000 {
        t.record(IN, &format!("m{i}"), EventType::View, i * MIN, NOW);
        t.advance(NOW);
    }
    let reachable = (config.horizon_us + config.max_length() + config.lateness_us + 2 * config.pane_us) / MIN;
    assert!(t.items_held() as i64 <= reachable, "{} items held, {reachable} reachable", t.items_held());
    assert_eq!(t.items_held(), t.state_size(), "one pane entry per item here, and each interned once");
}

fn arb_events() -> impl Strategy<Value = Vec<(String, EventType, i64)>> {
    // A few hours of event time in 2019, mostly in order with jitter, some far out of order.
    let base = 1_551_398_400_000_000_i64;
    // Ratings too: they move the watermark and count for nothing.
    prop::collection::vec((0..8u8, 0..3usize, 0..(6 * HOUR), prop::option::weighted(0.1, 0..(4 * HOUR))), 1..300)
        .prop_map(move |raw| {
            let mut events: Vec<(String, EventType, i64)> = raw
                .into_iter()
                .map(|(item, kind, t, back)| (format!("m{item}"), EventType::ALL[kind], base + t - back.unwrap_or(0)))
                .collect();
            // Roughly time-ordered, as a stream would be, leaving the jitter above.
            events.sort_by_key(|e| e.2 / (20 * MIN));
            events
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn published_windows_equal_a_brute_force_recount(events in arb_events(), advance_every in 0usize..20) {
        let config = small_config();
        let (published, counted) = run(&config, &events, advance_every);
        let expected = recount(&config, &counted);
        prop_assert_eq!(published, expected);
    }

    #[test]
    fn a_restored_snapshot_continues_exactly(events in arb_events(), advance_every in 1usize..20, cut in any::<prop::sample::Index>()) {
        let config = small_config();
        let uninterrupted = run(&config, &events, advance_every);
        let restored = run_restoring(&config, &events, advance_every, Some(cut.index(events.len())));
        prop_assert_eq!(restored, uninterrupted);
    }

    #[test]
    fn several_inputs_equal_a_recount_of_everything_within_the_true_horizon(script in arb_script()) {
        let config = small_config();
        let (published, expected_counted, fates) = run_script(&config, &script);
        prop_assert_eq!(fates.0, fates.1, "beyond-horizon verdicts, core vs the CONTRACTS §5 model");
        prop_assert_eq!(published, recount(&config, &expected_counted));
    }
}

/// One delivery of a multi-input stream: after `pause_us` of processing time, `events` of
/// input `input` are recorded; the watermark moves when `advance`.
#[derive(Clone, Debug)]
struct Step {
    input: usize,
    events: Vec<Event>,
    pause_us: i64,
    advance: bool,
}

/// Up to four inputs, each hours behind or ahead of the others (a partition or table lagging),
/// mostly in order with jitter within the lateness, some events far out of order; delivered in
/// uneven chunks with pauses, some longer than the idle timeout (one input quiet while others
/// go on, or a lull of all).
fn arb_script() -> impl Strategy<Value = Vec<Step>> {
    let base = 1_551_398_400_000_000_i64;
    let input = (
        0..(3 * HOUR),
        prop::collection::vec(
            (0..8u8, any::<bool>(), 0..(3 * MIN), 0..(4 * MIN), prop::option::weighted(0.05, 0..(5 * HOUR))),
            1..120,
        ),
    );
    (
        prop::collection::vec(input, 1..5),
        prop::collection::vec(
            (any::<prop::sample::Index>(), 1..25usize, prop::option::weighted(0.15, 0..(3 * MIN)), any::<bool>()),
            1..60,
        ),
    )
        .prop_map(move |(inputs, schedule)| {
            // Each input's stream: `offset` behind the base, steps forward, jitter, rare stragglers.
            let mut streams: Vec<std::collections::VecDeque<Event>> = inputs
                .into_iter()
                .map(|(offset, raw)| {
                    let mut t = base + 3 * HOUR - offset;
                    raw.into_iter()
                        .map(|(item, click, step, jitter, back)| {
                            t += step;
                            let kind = if click { EventType::Click } else { EventType::View };
                            (format!("m{item}"), kind, t - jitter - back.unwrap_or(0))
                        })
                        .collect()
                })
                .collect();
            let mut steps = Vec::new();
            for (pick, n, pause, advance) in schedule {
                let live: Vec<usize> = (0..streams.len()).filter(|i| !streams[*i].is_empty()).collect();
                if live.is_empty() {
                    break;
                }
                let input = live[pick.index(live.len())];
                let take = n.min(streams[input].len());
                let events = streams[input].drain(..take).collect();
                // Mostly about a second apart; sometimes minutes (idle inputs, lulls).
                steps.push(Step { input, events, pause_us: pause.unwrap_or(1_000_000), advance });
            }
            // Whatever the schedule left: delivered in order at the end.
            for (input, rest) in streams.into_iter().enumerate() {
                if !rest.is_empty() {
                    steps.push(Step { input, events: rest.into(), pause_us: 1_000_000, advance: true });
                }
            }
            steps
        })
}

type Fates = (Vec<bool>, Vec<bool>);

/// Runs `script` through the core and, beside it, through the CONTRACTS §5 model of the watermark
/// (per input: newest event − lateness; the minimum over inputs with data within the idle
/// timeout, over all inputs with data when every one is idle; never backwards). Returns what
/// was published, the events the model says count (all but those older than its watermark −
/// horizon), and per event the beyond-horizon verdict of the core and of the model.
fn run_script(config: &Config, script: &[Step]) -> (Published, Vec<Event>, Fates) {
    let mut t = Trending::new(config.clone());
    let mut sink = Sink::default();
    let (mut counted, mut core_fates, mut model_fates) = (Vec::new(), Vec::new(), Vec::new());
    // Model: per input (newest event, last data at); the watermark.
    let mut model: BTreeMap<usize, (Option<i64>, i64)> = BTreeMap::new();
    let mut model_wm: Option<i64> = None;
    let mut now = NOW;
    for step in script {
        now += step.pause_us;
        let id = t.watermarks_mut().input("events", step.input as i32, now);
        for (item, kind, time) in &step.events {
            let beyond = model_wm.is_some_and(|w| *time < w - config.horizon_us);
            let m = model.entry(step.input).or_insert((None, now));
            m.0 = Some(m.0.map_or(*time, |x| x.max(*time)));
            m.1 = now;
            model_fates.push(beyond);
            if !beyond {
                counted.push((item.clone(), *kind, *time));
            }
            core_fates.push(t.record(id, item, *kind, *time, now) == Recorded::BeyondHorizon);
        }
        if step.advance {
            let active: Vec<_> = model.values().filter(|(_, at)| now - at < config.idle_timeout_us).collect();
            // All idle: the minimum over the inputs with data, as if they were still active.
            let holding = if active.is_empty() { model.values().collect() } else { active };
            let candidate = holding.iter().map(|(max, _)| max.map(|m| m - config.lateness_us)).min().flatten();
            if let Some(c) = candidate {
                model_wm = Some(model_wm.map_or(c, |w| w.max(c)));
            }
            let due = t.advance(now);
            assert_eq!(t.watermark_us(), model_wm, "watermark, core vs model");
            sink.take(&t, due);
        }
    }
    let due = t.advance(now + config.idle_timeout_us);
    sink.take(&t, due);
    (sink.published, counted, (core_fates, model_fates))
}
