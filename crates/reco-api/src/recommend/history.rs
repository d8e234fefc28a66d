//! What the API knows of each user: their recent positive items (what recommendations start
//! from) and the items they touched (what recommendations leave out). Pure: fed one event at a
//! time by the follower of the event topics (`follow.rs`), read by the handlers.
//!
//! Memory is bounded per user by [`HistoryConfig::positives`] and [`HistoryConfig::seen`], and
//! in users by the horizon: users none of whose events arrived within it are dropped at each
//! sweep. Arrival (the Kafka timestamp), not event time: a replay of a years-old log keeps its
//! users, and the horizon is the same one the follower starts reading the log from. Item
//! ids are interned once (a `u32` per mention), so a user with a full history of 20 positives
//! and 100 seen items holds about 0.6 KB (measured in `make bench`, "user histories").

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use reco_core::EventType;

/// How a user's history is kept. `Default` gives the documented defaults, the same weights as
/// gold's item neighbours (docs/ARCHITECTURE.md, "Gold: item neighbours").
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryConfig {
    pub view_weight: f64,
    pub click_weight: f64,
    pub rating_weight: f64,
    /// A rating at or above this is positive; below, the item is only seen.
    pub rating_threshold: f64,
    /// Recent distinct positive items kept per user: what recommendations are combined from.
    pub positives: usize,
    /// Recent distinct items kept per user as seen (never recommended back to them).
    pub seen: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            view_weight: 1.0,
            click_weight: 2.0,
            rating_weight: 3.0,
            rating_threshold: 4.0,
            positives: 20,
            seen: 1000,
        }
    }
}

impl HistoryConfig {
    fn weight(&self, kind: EventType, rating: Option<f64>) -> Option<f64> {
        match kind {
            EventType::View => Some(self.view_weight),
            EventType::Click => Some(self.click_weight),
            EventType::Rating => rating.filter(|r| *r >= self.rating_threshold).map(|_| self.rating_weight),
        }
        .filter(|w| *w > 0.0)
    }
}

#[derive(Clone, Debug, Default)]
struct User {
    /// `(item, weight, event time)`, newest event first, distinct items.
    positives: Vec<(u32, f32, i64)>,
    /// Distinct items in the order last touched (arrival order), most recent last.
    seen: Vec<u32>,
    /// When the user's latest event arrived (Kafka timestamp).
    arrived_us: i64,
}

/// One user's history as the handlers use it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserHistory {
    /// `(item, weight)`, most recent first.
    pub positives: Vec<(Arc<str>, f64)>,
    pub seen: HashSet<Arc<str>>,
}

#[derive(Debug, Default)]
pub struct Histories {
    config: HistoryConfig,
    names: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, u32>,
    users: HashMap<Box<str>, User>,
}

impl Histories {
    pub fn new(config: HistoryConfig) -> Histories {
        Histories { config, ..Histories::default() }
    }

    fn intern(&mut self, item: &str) -> u32 {
        if let Some(id) = self.ids.get(item) {
            return *id;
        }
        let name: Arc<str> = Arc::from(item);
        let id = self.names.len() as u32;
        self.names.push(name.clone());
        self.ids.insert(name, id);
        id
    }

    /// Takes one valid event into its user's history. Events may come in any order: positives
    /// stay ordered by event time, and a repeat only refreshes the item (the larger weight,
    /// the later time).
    pub fn apply(
        &mut self,
        user: &str,
        item: &str,
        kind: EventType,
        rating: Option<f64>,
        time_us: i64,
        arrived_us: i64,
    ) {
        let weight = self.config.weight(kind, rating);
        let id = self.intern(item);
        let (max_positives, max_seen) = (self.config.positives, self.config.seen);
        let u = match self.users.get_mut(user) {
            Some(u) => u,
            None => self.users.entry(Box::from(user)).or_default(),
        };
        u.arrived_us = u.arrived_us.max(arrived_us);
        if let Some(at) = u.seen.iter().rposition(|s| *s == id) {
            u.seen.remove(at);
        }
        u.seen.push(id);
        if u.seen.len() > max_seen {
            let extra = u.seen.len() - max_seen;
            u.seen.drain(..extra);
        }
        let Some(weight) = weight else { return };
        let weight = weight as f32;
        if let Some(at) = u.positives.iter().position(|p| p.0 == id) {
            if u.positives[at].2 > time_us {
                // An older repeat: the item keeps its place, with the larger weight.
                u.positives[at].1 = u.positives[at].1.max(weight);
                return;
            }
            let (_, w, _) = u.positives.remove(at);
            let at = u.positives.partition_point(|p| p.2 > time_us);
            u.positives.insert(at, (id, weight.max(w), time_us));
            return;
        }
        // Newest first; of equal times the latest arrival first (it is the most recent).
        let at = u.positives.partition_point(|p| p.2 > time_us);
        if at < max_positives {
            u.positives.insert(at, (id, weight, time_us));
            u.positives.truncate(max_positives);
        }
    }

    pub fn get(&self, user: &str) -> Option<UserHistory> {
        let u = self.users.get(user)?;
        let name = |id: u32| self.names[id as usize].clone();
        Some(UserHistory {
            positives: u.positives.iter().map(|(id, w, _)| (name(*id), f64::from(*w))).collect(),
            seen: u.seen.iter().map(|id| name(*id)).collect(),
        })
    }

    /// Drops the users whose latest event arrived before `before_us`.
    pub fn forget_before(&mut self, before_us: i64) -> usize {
        let n = self.users.len();
        self.users.retain(|_, u| u.arrived_us >= before_us);
        n - self.users.len()
    }

    /// Users held; test-only, like its caller.
    #[cfg(test)]
    fn users_held(&self) -> usize {
        self.users.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(h: &UserHistory) -> Vec<&str> {
        h.positives.iter().map(|(i, _)| &**i).collect()
    }

    #[test]
    fn positives_are_newest_first_by_event_time_whatever_the_arrival_order() {
        let mut h = Histories::new(HistoryConfig::default());
        h.apply("u", "b", EventType::View, None, 20, 20);
        h.apply("u", "a", EventType::View, None, 10, 10);
        h.apply("u", "c", EventType::Click, None, 30, 30);
        let got = h.get("u").unwrap();
        assert_eq!(items(&got), ["c", "b", "a"]);
        assert_eq!(got.positives[0].1, 2.0);
    }

    #[test]
    fn low_ratings_are_seen_but_not_positive_and_repeats_keep_the_larger_weight() {
        let mut h = Histories::new(HistoryConfig::default());
        h.apply("u", "a", EventType::Rating, Some(2.0), 10, 10);
        h.apply("u", "b", EventType::Click, None, 11, 11);
        h.apply("u", "b", EventType::View, None, 12, 12);
        let got = h.get("u").unwrap();
        assert_eq!(got.positives, vec![(Arc::from("b"), 2.0)]);
        assert!(got.seen.contains("a") && got.seen.contains("b"));
    }

    #[test]
    fn caps_keep_the_most_recent() {
        let config = HistoryConfig { positives: 3, seen: 4, ..HistoryConfig::default() };
        let mut h = Histories::new(config);
        for (t, item) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            h.apply("u", item, EventType::View, None, t as i64, t as i64);
        }
        // An old event does not push out newer positives.
        h.apply("u", "z", EventType::View, None, -1, -1);
        let got = h.get("u").unwrap();
        assert_eq!(items(&got), ["e", "d", "c"]);
        let seen: HashSet<&str> = got.seen.iter().map(|s| &**s).collect();
        assert_eq!(seen, HashSet::from(["c", "d", "e", "z"]));
    }

    #[test]
    fn idle_users_are_forgotten() {
        let mut h = Histories::new(HistoryConfig::default());
        // Forgetting goes by arrival: an old event that arrived late stays.
        h.apply("old", "a", EventType::View, None, 10, 10);
        h.apply("new", "a", EventType::View, None, 1, 100);
        assert_eq!(h.forget_before(50), 1);
        assert!(h.get("old").is_none() && h.get("new").is_some());
        assert_eq!(h.users_held(), 1);
    }
}
