//! Item neighbours from co-visitation, streamed. Pure: no I/O, no clock of its own.
//!
//! The rules, exactly (docs/ARCHITECTURE.md, "Gold: item neighbours"):
//!
//! 1. **Positive interactions.** A view weighs `view_weight` (1), a click `click_weight` (2), a
//!    rating at or above `rating_threshold` (4) `rating_weight` (3). Lower ratings count for
//!    nothing here (they still end or continue a session).
//! 2. **Order.** Events are applied once the watermark passes them, in `(event time, user,
//!    item, kind, rating)` order, so the result does not depend on how they arrived. An event
//!    already behind the watermark (late) is applied when it arrives.
//! 3. **Sessions.** Per user: the event's `session_id` when it has one, else a session goes on
//!    while the gap since the user's previous event is at most `session_gap` (30 min). A named
//!    session idle for `named_session_idle` (a day) is over too. A new session starts empty.
//! 4. **Co-visits.** A positive interaction with `j` pairs `j` with each item of the session's
//!    last `history` (20) distinct positive items. If `j` is among them already, it only moves
//!    to the front (a repeat is no new co-visit, and its weight becomes the larger of the two).
//!    With `n` positive items earlier in the session, the interaction adds `d·w_j` to the mass
//!    `m_j` and `d·√(w_i·w_j)` to `c_ij` and `c_ji`, where `d = 1/ln(e + n)` damps long sessions
//!    (a session's 100th item adds 0.22 of what its second adds), and counts one co-visit of
//!    the pair (its **support**).
//! 5. **Decay.** What was added at event time `t` counts `2^(−(T−t)/half_life)` at time `T`
//!    (`half_life` 30 days; 0: never). Values are kept forward-decayed (multiplied by
//!    `2^((t−epoch)/half_life)`), so adding needs no sweep and scores, being ratios, do not
//!    depend on `T`.
//! 6. **Score.** `score(i, j) = c_ij / √(m_i·m_j)` (cosine over damped, decayed co-visits).
//! 7. **Caps.** An item keeps at most `candidates` (200) candidate pairs: when a new pair makes
//!    it one more, its weakest pair (smallest `c`, then the greatest id), the new one included,
//!    is dropped, from both items (pairs are symmetric: `c_ij = c_ji`). A list is an item's top
//!    `top_k` (50) candidates by score (ties by id) with support ≥ `min_support`.
//! 8. **Forgetting.** Each time the watermark passes a multiple of `half_life / 4`, pairs whose
//!    value at that time is below `forget_below` (0.01) are dropped. Users are dropped once their
//!    session cannot go on (idle beyond both session limits).

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    sync::Arc,
};

use serde::{Deserialize, Serialize};

#[path = "covisit_config.rs"]
mod config;

pub use config::Config;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Action {
    View,
    Click,
    Rating(f64),
}

impl Action {
    /// Part of the application order: views, then clicks, then ratings by value.
    fn order(self) -> (u8, u64) {
        match self {
            Action::View => (0, 0),
            Action::Click => (1, 0),
            Action::Rating(r) => (2, r.to_bits()),
        }
    }
}

/// One interaction as silver holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    pub user: String,
    pub item: String,
    pub session: Option<String>,
    pub action: Action,
    pub time_us: i64,
}

/// [`CoVisits`] as plain values (items by id).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// `(item, mass)` by id.
    pub items: Vec<(String, f64)>,
    /// `(a, b, value, support)` with `a < b`.
    pub pairs: Vec<(u32, u32, f64, u32)>,
    /// `(user, named session, last event, history, positives)`.
    #[allow(clippy::type_complexity)]
    pub users: Vec<(String, Option<String>, i64, Vec<(u32, f64)>, u32)>,
    pub pending: Vec<Interaction>,
    /// Items whose list changed since it was last taken for publication.
    #[serde(default)]
    pub changed: Vec<u32>,
    pub epoch_us: i64,
    pub forgot_at: Option<i64>,
}

/// One neighbour in a published list.
#[derive(Clone, Debug, PartialEq)]
pub struct Neighbor {
    pub item: Arc<str>,
    pub score: f64,
    pub support: u32,
}

/// The application order: event time, user, item, kind and rating.
fn order(e: &Interaction) -> (i64, &str, &str, (u8, u64)) {
    (e.time_us, &e.user, &e.item, e.action.order())
}

#[derive(Clone, Debug, Default)]
struct Pair {
    value: f64,
    support: u32,
}

#[derive(Clone, Debug, Default)]
struct Item {
    mass: f64,
    candidates: HashMap<u32, Pair>,
}

#[derive(Clone, Debug)]
struct User {
    /// The named session, `None` for one delimited by gaps.
    session: Option<String>,
    last_us: i64,
    /// Distinct positive items of the session, newest first, with their weights.
    history: VecDeque<(u32, f64)>,
    positives: u32,
}

#[derive(Clone, Debug)]
pub struct CoVisits {
    config: Config,
    names: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, u32>,
    items: Vec<Item>,
    users: HashMap<String, User>,
    /// Held until the watermark passes them, in arrival order (sorted when applied).
    pending: Vec<Interaction>,
    /// Reference time of the forward-decayed values.
    epoch_us: i64,
    /// The last multiple of the forgetting step the watermark passed.
    forgot_at: Option<i64>,
    /// Items whose list may have changed since [`CoVisits::take_changed`].
    dirty: BTreeSet<u32>,
}

impl CoVisits {
    pub fn new(config: Config) -> CoVisits {
        CoVisits {
            config,
            names: Vec::new(),
            ids: HashMap::new(),
            items: Vec::new(),
            users: HashMap::new(),
            pending: Vec::new(),
            epoch_us: 0,
            forgot_at: None,
            dirty: BTreeSet::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Takes an interaction: applied at once when `watermark` has passed it (late: returns
    /// true), else held until [`CoVisits::advance`] passes it.
    pub fn record(&mut self, interaction: Interaction, watermark: Option<i64>) -> bool {
        if watermark.is_some_and(|w| interaction.time_us <= w) {
            self.apply(&interaction);
            return true;
        }
        self.pending.push(interaction);
        false
    }

    /// The watermark moved to `watermark`: applies what it passed, in order, and forgets what
    /// faded.
    pub fn advance(&mut self, watermark: i64) {
        let (due, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.pending).into_iter().partition(|e| e.time_us <= watermark);
        self.pending = later;
        self.apply_in_order(due);
        self.forget(watermark);
    }

    /// Events held until the watermark passes them.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Applies everything held, in order, as if the watermark had passed it. The aggregate does
    /// this to a copy, for the lists it publishes provisionally while every input is idle.
    pub fn flush(&mut self) {
        let all = std::mem::take(&mut self.pending);
        self.apply_in_order(all);
    }

    fn apply_in_order(&mut self, mut due: Vec<Interaction>) {
        // Stable: exact duplicates keep their arrival order (they are identical anyway).
        due.sort_by(|a, b| order(a).cmp(&order(b)));
        for interaction in &due {
            self.apply(interaction);
        }
    }

    /// Marks items as changed since the last publication (a restored state's unpublished ones).
    pub fn mark_changed(&mut self, items: impl IntoIterator<Item = u32>) {
        let n = self.names.len() as u32;
        self.dirty.extend(items.into_iter().filter(|i| *i < n));
    }

    /// The state as plain values, to checkpoint.
    pub fn state(&self) -> State {
        let mut pairs = Vec::new();
        for (a, item) in self.items.iter().enumerate() {
            pairs.extend(
                item.candidates.iter().filter(|(b, _)| **b > a as u32).map(|(b, p)| (a as u32, *b, p.value, p.support)),
            );
        }
        State {
            items: self.names.iter().zip(&self.items).map(|(n, i)| (n.to_string(), i.mass)).collect(),
            pairs,
            users: self
                .users
                .iter()
                .map(|(id, u)| {
                    (id.clone(), u.session.clone(), u.last_us, u.history.iter().copied().collect(), u.positives)
                })
                .collect(),
            pending: self.pending.clone(),
            changed: self.dirty.iter().copied().collect(),
            epoch_us: self.epoch_us,
            forgot_at: self.forgot_at,
        }
    }

    /// Rebuilds from a [`CoVisits::state`].
    pub fn restore(config: Config, state: State) -> Result<CoVisits, String> {
        let mut c = CoVisits::new(config);
        for (name, mass) in state.items {
            let id = c.intern(&name);
            c.items[id as usize].mass = mass;
        }
        let n = c.items.len() as u32;
        for (a, b, value, support) in state.pairs {
            if a >= n || b >= n {
                return Err(format!("pair ({a}, {b}) names an item beyond the {n} held"));
            }
            c.items[a as usize].candidates.insert(b, Pair { value, support });
            c.items[b as usize].candidates.insert(a, Pair { value, support });
        }
        for (id, session, last_us, history, positives) in state.users {
            c.users.insert(id, User { session, last_us, history: history.into(), positives });
        }
        c.pending = state.pending;
        c.mark_changed(state.changed);
        c.epoch_us = state.epoch_us;
        c.forgot_at = state.forgot_at;
        Ok(c)
    }

    fn intern(&mut self, item: &str) -> u32 {
        if let Some(id) = self.ids.get(item) {
            return *id;
        }
        let id = self.names.len() as u32;
        let name: Arc<str> = Arc::from(item);
        self.names.push(name.clone());
        self.ids.insert(name, id);
        self.items.push(Item::default());
        id
    }

    /// `2^((t − epoch)/half_life)`: what a contribution at `t` weighs against the epoch.
    fn growth(&self, t: i64) -> f64 {
        if self.config.half_life_us == 0 {
            return 1.0;
        }
        ((t - self.epoch_us) as f64 / self.config.half_life_us as f64).exp2()
    }

    fn apply(&mut self, e: &Interaction) {
        let config = &self.config;
        let (gap, named_idle) = (config.session_gap_us, config.named_session_idle_us);
        let weight = config.weight(e.action);
        let user = self.users.entry(e.user.clone()).or_insert_with(|| User {
            session: e.session.clone(),
            last_us: e.time_us,
            history: VecDeque::new(),
            positives: 0,
        });
        let idle = e.time_us - user.last_us;
        let same = match (&e.session, &user.session) {
            (Some(s), Some(current)) => s == current && idle <= named_idle,
            (None, None) => idle <= gap,
            _ => false,
        };
        if !same {
            user.session = e.session.clone();
            user.history.clear();
            user.positives = 0;
        }
        user.last_us = user.last_us.max(e.time_us);
        let Some(w) = weight else { return };
        self.rebase(e.time_us);
        let j = self.intern(&e.item);
        let growth = self.growth(e.time_us);
        let history_cap = self.config.history;
        let Some(user) = self.users.get_mut(&e.user) else { return };
        if let Some(at) = user.history.iter().position(|(i, _)| *i == j) {
            let (_, before) = user.history.remove(at).unwrap_or((j, w));
            user.history.push_front((j, before.max(w)));
            return;
        }
        let d = 1.0 / (std::f64::consts::E + f64::from(user.positives)).ln();
        let partners: Vec<(u32, f64)> = user.history.iter().copied().collect();
        user.history.push_front((j, w));
        user.history.truncate(history_cap);
        user.positives += 1;
        self.items[j as usize].mass += d * w * growth;
        self.touched(j);
        for (i, wi) in partners {
            self.add_pair(i, j, d * (wi * w).sqrt() * growth);
        }
    }

    /// `a`'s list and every list `a` is in may change when `a`'s mass does.
    fn touched(&mut self, a: u32) {
        self.dirty.insert(a);
        self.dirty.extend(self.items[a as usize].candidates.keys().copied());
    }

    /// Adds `v` to the pair `(a, b)`, one co-visit, in both items' candidates; then each keeps
    /// its cap.
    fn add_pair(&mut self, a: u32, b: u32, v: f64) {
        for (x, y) in [(a, b), (b, a)] {
            let pair = self.items[x as usize].candidates.entry(y).or_default();
            pair.value += v;
            pair.support += 1;
        }
        self.dirty.insert(a);
        self.dirty.insert(b);
        self.cap(a);
        self.cap(b);
    }

    /// Drops `a`'s weakest pair (from both items) while `a` holds more than the cap.
    fn cap(&mut self, a: u32) {
        while self.items[a as usize].candidates.len() > self.config.candidates {
            let names = &self.names;
            let weakest = self.items[a as usize]
                .candidates
                .iter()
                .min_by(|x, y| {
                    x.1.value.total_cmp(&y.1.value).then_with(|| names[*y.0 as usize].cmp(&names[*x.0 as usize]))
                })
                .map(|(id, _)| *id);
            let Some(b) = weakest else { return };
            self.items[a as usize].candidates.remove(&b);
            self.items[b as usize].candidates.remove(&a);
            self.dirty.insert(b);
        }
    }

    /// Moves the epoch to `t` when values would otherwise grow past what a float holds well
    /// (64 half-lives on): every value is scaled alike, so no order or score changes.
    fn rebase(&mut self, t: i64) {
        let h = self.config.half_life_us;
        if h == 0 || t - self.epoch_us < 64 * h {
            return;
        }
        let scale = self.growth(t).recip();
        for item in &mut self.items {
            item.mass *= scale;
            item.candidates.values_mut().for_each(|p| p.value *= scale);
        }
        self.epoch_us = t;
    }

    /// Drops faded pairs at each multiple of `half_life / 4` the watermark passed, and users
    /// whose session cannot go on.
    fn forget(&mut self, watermark: i64) {
        let idle = self.config.session_gap_us.max(self.config.named_session_idle_us);
        self.users.retain(|_, u| watermark - u.last_us <= idle);
        let step = self.config.half_life_us / 4;
        if step == 0 {
            return;
        }
        let at = watermark.div_euclid(step) * step;
        if self.forgot_at.is_some_and(|f| f >= at) {
            return;
        }
        self.forgot_at = Some(at);
        let floor = self.config.forget_below * self.growth(at);
        for (id, item) in self.items.iter_mut().enumerate() {
            let before = item.candidates.len();
            item.candidates.retain(|_, p| p.value >= floor);
            if item.candidates.len() != before {
                self.dirty.insert(id as u32);
            }
        }
    }

    /// Every item seen, in the order first seen.
    pub fn items(&self) -> impl Iterator<Item = &Arc<str>> {
        self.names.iter()
    }

    /// The list of `item`: its top K neighbours by score with enough support.
    pub fn neighbors(&self, item: &str) -> Vec<Neighbor> {
        self.ids.get(item).map_or_else(Vec::new, |id| self.list(*id))
    }

    fn list(&self, a: u32) -> Vec<Neighbor> {
        let item = &self.items[a as usize];
        let mut out: Vec<Neighbor> = item
            .candidates
            .iter()
            .filter(|(_, p)| p.support >= self.config.min_support)
            .map(|(b, p)| {
                let mass = (item.mass * self.items[*b as usize].mass).sqrt();
                let score = if mass > 0.0 { p.value / mass } else { 0.0 };
                Neighbor { item: self.names[*b as usize].clone(), score, support: p.support }
            })
            .collect();
        out.sort_by(|x, y| y.score.total_cmp(&x.score).then_with(|| x.item.cmp(&y.item)));
        out.truncate(self.config.top_k);
        out
    }

    /// The items whose list may have changed since the last call, with their lists (empty:
    /// the item has no neighbours any more).
    pub fn take_changed(&mut self) -> Vec<(Arc<str>, Vec<Neighbor>)> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty.into_iter().map(|id| (self.names[id as usize].clone(), self.list(id))).collect()
    }

    /// The size of the state.
    pub fn state_size(&self) -> StateSize {
        StateSize {
            items: self.names.len(),
            pairs: self.items.iter().map(|i| i.candidates.len()).sum(),
            users: self.users.len(),
        }
    }
}

/// What [`CoVisits`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateSize {
    pub items: usize,
    /// Candidate pairs (an item and a neighbour it may list).
    pub pairs: usize,
    pub users: usize,
}

#[cfg(test)]
#[path = "covisit_tests.rs"]
mod tests;
