//! An independent recount of the item neighbour lists from the rules in docs/ARCHITECTURE.md
//! ("Gold: item neighbours"), for tests: no code shared with the gold job.

use std::collections::{BTreeMap, HashMap, HashSet};

/// The rules' settings.
#[derive(Clone, Debug)]
pub struct Rules {
    pub view_weight: f64,
    pub click_weight: f64,
    pub rating_weight: f64,
    pub rating_threshold: f64,
    pub session_gap_us: i64,
    pub named_session_idle_us: i64,
    pub history: usize,
    pub half_life_us: i64,
    pub candidates: usize,
    pub top_k: usize,
    pub min_support: u32,
    pub forget_below: f64,
}

impl Default for Rules {
    /// The documented defaults.
    fn default() -> Self {
        Rules {
            view_weight: 1.0,
            click_weight: 2.0,
            rating_weight: 3.0,
            rating_threshold: 4.0,
            session_gap_us: 30 * 60_000_000,
            named_session_idle_us: 24 * 3_600_000_000,
            history: 20,
            half_life_us: 30 * 24 * 3_600_000_000,
            candidates: 200,
            top_k: 50,
            min_support: 1,
            forget_below: 0.01,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    View,
    Click,
    Rating(f64),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub user: String,
    pub item: String,
    pub session: Option<String>,
    pub kind: Kind,
    pub time_us: i64,
}

#[derive(Clone, Debug)]
pub enum Step {
    Event(Event),
    /// The watermark moved here.
    Advance(i64),
}

/// The trending inputs among `events` (views and clicks; ratings do not trend), for
/// [`crate::gold::recount`] over the same events the neighbour recount reads.
pub fn trending_inputs(events: &[Event]) -> Vec<crate::gold::Input> {
    events
        .iter()
        .filter_map(|e| match e.kind {
            Kind::View => Some((e.item.clone(), false, e.time_us)),
            Kind::Click => Some((e.item.clone(), true, e.time_us)),
            Kind::Rating(_) => None,
        })
        .collect()
}

/// Item → `(neighbour, score, support)` in rank order.
pub type Lists = BTreeMap<String, Vec<(String, f64, u32)>>;

fn weight(rules: &Rules, kind: Kind) -> Option<f64> {
    match kind {
        Kind::View => Some(rules.view_weight),
        Kind::Click => Some(rules.click_weight),
        Kind::Rating(r) if r >= rules.rating_threshold => Some(rules.rating_weight),
        Kind::Rating(_) => None,
    }
    .filter(|w| *w > 0.0)
}

fn order(kind: Kind) -> (u8, u64) {
    match kind {
        Kind::View => (0, 0),
        Kind::Click => (1, 0),
        Kind::Rating(r) => (2, r.to_bits()),
    }
}

/// Every item's list under [`Rules`], recomputed naively from `steps`: at each advance, the
/// events it passed sorted by the application order, sessions and histories as plain lists,
/// pairs in one map, caps and forgetting as the rules say. Events must not be late (each
/// recorded after the last advance before its time).
pub fn recount(config: &Rules, steps: &[Step]) -> Lists {
    let mut naive = Naive::new(config);
    let mut recorded: Vec<Event> = Vec::new();
    for step in steps {
        let watermark = match step {
            Step::Event(e) => {
                recorded.push(e.clone());
                continue;
            }
            Step::Advance(w) => *w,
        };
        let (mut due, rest): (Vec<_>, Vec<_>) = recorded.drain(..).partition(|e| e.time_us <= watermark);
        recorded = rest;
        due.sort_by(|x, y| {
            (x.time_us, &x.user, &x.item, order(x.kind)).cmp(&(y.time_us, &y.user, &y.item, order(y.kind)))
        });
        for e in due {
            naive.apply(&e);
        }
        naive.forget(watermark);
    }
    naive.lists()
}

type Pairs = HashMap<(String, String), (f64, u32)>;
/// A user's named session, last event, history newest first, and positives in the session.
type Session = (Option<String>, i64, Vec<(String, f64)>, u32);

fn pair_key(a: &str, b: &str) -> (String, String) {
    if a < b { (a.to_owned(), b.to_owned()) } else { (b.to_owned(), a.to_owned()) }
}

fn growth(config: &Rules, t: i64, epoch: i64) -> f64 {
    if config.half_life_us == 0 { 1.0 } else { ((t - epoch) as f64 / config.half_life_us as f64).exp2() }
}

/// The recount's state, kept as plainly as the rules read.
struct Naive<'a> {
    config: &'a Rules,
    users: HashMap<String, Session>,
    mass: HashMap<String, f64>,
    pairs: Pairs,
    /// The partners of each item, kept beside the pair map (a scan of every pair per eviction
    /// made runs past the candidate cap quadratic).
    partners: HashMap<String, HashSet<String>>,
    epoch: Option<i64>,
    forgot: Option<i64>,
}

impl<'a> Naive<'a> {
    fn new(config: &'a Rules) -> Self {
        Naive {
            config,
            users: HashMap::new(),
            mass: HashMap::new(),
            pairs: HashMap::new(),
            partners: HashMap::new(),
            epoch: None,
            forgot: None,
        }
    }

    /// One event, in application order.
    fn apply(&mut self, e: &Event) {
        let config = self.config;
        let u = self.users.entry(e.user.clone()).or_insert((e.session.clone(), e.time_us, Vec::new(), 0));
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
        let Some(w) = weight(config, e.kind) else { return };
        let epoch = *self.epoch.get_or_insert(e.time_us);
        let g = growth(config, e.time_us, epoch);
        if let Some(at) = u.2.iter().position(|(i, _)| *i == e.item) {
            let (_, before) = u.2.remove(at);
            u.2.insert(0, (e.item.clone(), before.max(w)));
            return;
        }
        let d = 1.0 / (std::f64::consts::E + f64::from(u.3)).ln();
        let history = u.2.clone();
        u.2.insert(0, (e.item.clone(), w));
        u.2.truncate(config.history);
        u.3 += 1;
        *self.mass.entry(e.item.clone()).or_default() += d * w * g;
        for (i, wi) in history {
            let k = pair_key(&i, &e.item);
            self.partners.entry(k.0.clone()).or_default().insert(k.1.clone());
            self.partners.entry(k.1.clone()).or_default().insert(k.0.clone());
            let p = self.pairs.entry(k).or_default();
            p.0 += d * (wi * w).sqrt() * g;
            p.1 += 1;
            self.evict(&i);
            self.evict(&e.item);
        }
    }

    /// Drops `a`'s weakest pairs (the smallest value, then the greatest partner name) until it
    /// has at most the candidate cap.
    fn evict(&mut self, a: &str) {
        while self.partners[a].len() > self.config.candidates {
            let weakest = self.partners[a]
                .iter()
                .map(|b| (b, self.pairs[&pair_key(a, b)].0))
                .min_by(|p, q| p.1.total_cmp(&q.1).then_with(|| q.0.cmp(p.0)))
                .map(|(b, _)| pair_key(a, b));
            let k = weakest.unwrap();
            self.pairs.remove(&k);
            self.partners.get_mut(&k.0).unwrap().remove(&k.1);
            self.partners.get_mut(&k.1).unwrap().remove(&k.0);
        }
    }

    /// Forgets pairs below the floor, once per quarter half-life of watermark.
    fn forget(&mut self, watermark: i64) {
        let step = self.config.half_life_us / 4;
        if step <= 0 {
            return;
        }
        let at = watermark.div_euclid(step) * step;
        if self.forgot.is_some_and(|f| f >= at) {
            return;
        }
        self.forgot = Some(at);
        let floor = self.config.forget_below * growth(self.config, at, self.epoch.unwrap_or(0));
        let partners = &mut self.partners;
        self.pairs.retain(|k, p| {
            let keep = p.0 >= floor;
            if !keep {
                partners.get_mut(&k.0).unwrap().remove(&k.1);
                partners.get_mut(&k.1).unwrap().remove(&k.0);
            }
            keep
        });
    }

    fn lists(&self) -> Lists {
        let mut lists = Lists::new();
        for ((a, b), (v, support)) in &self.pairs {
            if *support < self.config.min_support {
                continue;
            }
            let score = v / (self.mass[a] * self.mass[b]).sqrt();
            lists.entry(a.clone()).or_default().push((b.clone(), score, *support));
            lists.entry(b.clone()).or_default().push((a.clone(), score, *support));
        }
        for list in lists.values_mut() {
            list.sort_by(|x, y| y.1.total_cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
            list.truncate(self.config.top_k);
        }
        lists
    }
}

/// Commits `events` into the silver tables of `lake` (views, clicks, ratings), as the silver
/// job would: each user's events in its Kafka partition (`partitions` of them, by user), one
/// commit per table per call.
#[derive(Debug)]
pub struct InteractionWriter {
    tables: Vec<(Kind, reco_lake::TopicTables)>,
    next: BTreeMap<(&'static str, i32), i64>,
    partitions: i32,
    ids: u64,
}

fn partition_of(user: &str, partitions: i32) -> i32 {
    (user.bytes().map(u64::from).sum::<u64>() % partitions.max(1) as u64) as i32
}

fn topic(kind: Kind) -> &'static str {
    match kind {
        Kind::View => "events_views",
        Kind::Click => "events_clicks",
        Kind::Rating(_) => "events_ratings",
    }
}

impl InteractionWriter {
    pub async fn open(lake: &reco_lake::Lake, partitions: i32) -> InteractionWriter {
        let mut tables = Vec::new();
        for kind in [Kind::View, Kind::Click, Kind::Rating(0.0)] {
            let with_rating = matches!(kind, Kind::Rating(_));
            tables.push((kind, reco_lake::TopicTables::open(lake, topic(kind), with_rating).await.unwrap()));
        }
        InteractionWriter { tables, next: BTreeMap::new(), partitions, ids: 0 }
    }

    /// The partition of `user`'s events.
    pub fn partition(&self, user: &str) -> i32 {
        partition_of(user, self.partitions)
    }

    pub async fn commit(&mut self, events: &[Event]) {
        let partitions = self.partitions;
        for (kind, table) in &mut self.tables {
            let name = topic(*kind);
            let mut rows = Vec::new();
            let mut offsets: BTreeMap<i32, (Option<i64>, i64)> = BTreeMap::new();
            for e in events.iter().filter(|e| topic(e.kind) == name) {
                let partition = partition_of(&e.user, partitions);
                let next = self.next.entry((name, partition)).or_insert(0);
                offsets.entry(partition).or_insert((Some(*next).filter(|n| *n > 0), 0)).1 = *next + 1;
                self.ids += 1;
                rows.push(reco_lake::SilverRow {
                    event_id: format!("e{}", self.ids),
                    user_id: e.user.clone(),
                    item_id: e.item.clone(),
                    event_time_us: e.time_us,
                    session_id: e.session.clone(),
                    rating: match e.kind {
                        Kind::Rating(r) => Some(r),
                        _ => None,
                    },
                    kafka_partition: partition,
                    kafka_offset: *next,
                    ingested_at_us: 0,
                });
                *next += 1;
            }
            if rows.is_empty() {
                continue;
            }
            let upstream = reco_lake::Upstream {
                partitions: ["events_views", "events_clicks", "events_ratings"]
                    .into_iter()
                    .map(|t| (t.to_owned(), partitions))
                    .collect(),
                ..Default::default()
            };
            let batch = reco_lake::StreamBatch { silver: rows, deadletter: vec![], offsets, upstream: Some(upstream) };
            let outcome = table.commit(batch).await.unwrap();
            assert!(matches!(outcome, reco_lake::CommitOutcome::Committed(_)), "{outcome:?}");
        }
    }
}

/// What the `item_neighbors` table of `lake` holds, as [`Lists`].
pub async fn published(lake: &reco_lake::Lake) -> Lists {
    let mut ranked: BTreeMap<String, Vec<(i32, String, f64, u32)>> = BTreeMap::new();
    if let Some(table) = reco_lake::GoldTable::open_existing(lake, "item_neighbors").await.unwrap() {
        for file in table.row_sets().values() {
            for r in reco_lake::gold::neighbors::read_neighbors(file).unwrap() {
                ranked.entry(r.item_id).or_default().push((r.rank, r.neighbor_id, r.score, r.support as u32));
            }
        }
    }
    ranked
        .into_iter()
        .map(|(item, mut rows)| {
            rows.sort_by_key(|r| r.0);
            (item, rows.into_iter().map(|(_, n, s, c)| (n, s, c)).collect())
        })
        .collect()
}

/// Whether two [`Lists`] agree: the same items, neighbours and supports in the same order,
/// scores within 1e-9 (relative).
pub fn same_lists(a: &Lists, b: &Lists) -> bool {
    a.len() == b.len()
        && a.iter().all(|(item, list)| {
            b.get(item).is_some_and(|other| {
                list.len() == other.len()
                    && list
                        .iter()
                        .zip(other)
                        .all(|(x, y)| x.0 == y.0 && x.2 == y.2 && (x.1 - y.1).abs() <= 1e-9 * y.1.abs().max(1.0))
            })
        })
}

/// A user's history as the rules of docs/ARCHITECTURE.md ("Serving: recommendations") keep
/// it, recomputed from the events a test posted, in the order it posted them: `(positives as
/// (item, weight) most recent first, every item touched)`.
pub fn user_history(rules: &Rules, events: &[Event], user: &str, cap: usize) -> (Vec<(String, f64)>, Vec<String>) {
    // (item, weight, time), newest first.
    let mut positives: Vec<(String, f64, i64)> = Vec::new();
    let mut seen = Vec::new();
    for e in events.iter().filter(|e| e.user == user) {
        if !seen.contains(&e.item) {
            seen.push(e.item.clone());
        }
        let mut weight = match e.kind {
            Kind::View => rules.view_weight,
            Kind::Click => rules.click_weight,
            Kind::Rating(r) if r >= rules.rating_threshold => rules.rating_weight,
            Kind::Rating(_) => continue,
        };
        let mut time = e.time_us;
        if let Some(at) = positives.iter().position(|p| p.0 == e.item) {
            let (_, w, t) = positives.remove(at);
            if t > time {
                // An older repeat changes the weight only.
                positives.insert(at, (e.item.clone(), w.max(weight), t));
                continue;
            }
            weight = weight.max(w);
            time = time.max(t);
        }
        // Before every item of the same or an older time: the latest arrival is the most recent.
        let at = positives.iter().take_while(|p| p.2 > time).count();
        positives.insert(at, (e.item.clone(), weight, time));
        positives.truncate(cap);
    }
    (positives.into_iter().map(|(i, w, _)| (i, w)).collect(), seen)
}

/// The documented recency factor `γ` of the recommendations.
pub const RECENCY: f64 = 0.8;
/// The documented number of positive items a user's history keeps.
pub const HISTORY: usize = 20;

/// Recommendations by the documented rule: `score(j) = Σ_p w_p·γ^p·s(h_p, j)` over the
/// history, seen items left out, best first (ties by id), with the `because` items (the three
/// largest contributions, largest first).
pub fn recommend(
    lists: &Lists,
    history: &[(String, f64)],
    seen: &[String],
    gamma: f64,
    limit: usize,
) -> Vec<(String, f64, Vec<String>)> {
    let mut scores: BTreeMap<&str, Vec<(f64, usize)>> = BTreeMap::new();
    for (p, (item, weight)) in history.iter().enumerate() {
        for (neighbor, score, _) in lists.get(item).into_iter().flatten() {
            if !seen.contains(neighbor) {
                scores.entry(neighbor).or_default().push((weight * gamma.powi(p as i32) * score, p));
            }
        }
    }
    let mut ranked: Vec<(String, f64, Vec<String>)> = scores
        .into_iter()
        .map(|(item, mut parts)| {
            let total = parts.iter().map(|(a, _)| a).sum::<f64>();
            parts.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            (item.to_owned(), total, parts.iter().take(3).map(|(_, p)| history[*p].0.clone()).collect())
        })
        .filter(|(_, total, _)| *total > 0.0)
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(limit);
    ranked
}
