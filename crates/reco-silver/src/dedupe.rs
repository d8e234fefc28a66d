//! De-duplication by `event_id` within an event-time horizon, per partition. Pure.
//!
//! A retried event carries the same key (`user_id`), so it lands on the same partition: the
//! state is per partition and moves with it on a rebalance. It is rebuilt from the silver
//! table itself when a partition is (re)assigned, so it always equals what was committed,
//! whatever crashed.

use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct Dedupe {
    horizon_us: i64,
    seen: HashMap<String, i64>,
    newest_us: i64,
    evicted_up_to: i64,
}

impl Dedupe {
    pub fn new(horizon_us: i64) -> Dedupe {
        Dedupe { horizon_us, seen: HashMap::new(), newest_us: i64::MIN, evicted_up_to: i64::MIN }
    }

    /// Records `id` at `event_time_us`; returns false when it was already seen (a duplicate).
    pub fn insert(&mut self, id: &str, event_time_us: i64) -> bool {
        if self.seen.contains_key(id) {
            return false;
        }
        self.seen.insert(id.to_owned(), event_time_us);
        if event_time_us > self.newest_us {
            self.newest_us = event_time_us;
            self.evict();
        }
        true
    }

    /// Number of ids held.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Forgets ids older than the horizon, amortised: only when the cut-off moved by a tenth
    /// of the horizon, so the sweep costs O(1) per insert on average.
    fn evict(&mut self) {
        let cutoff = self.newest_us.saturating_sub(self.horizon_us);
        if cutoff.saturating_sub(self.evicted_up_to) > self.horizon_us / 10 {
            self.seen.retain(|_, t| *t >= cutoff);
            self.evicted_up_to = cutoff;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 24 * 3_600_000_000;

    #[test]
    fn second_sighting_is_a_duplicate() {
        let mut d = Dedupe::new(H);
        assert!(d.insert("a", 0));
        assert!(!d.insert("a", 0));
        assert!(d.insert("b", 5));
    }

    #[test]
    fn ids_older_than_the_horizon_are_forgotten() {
        let mut d = Dedupe::new(H);
        assert!(d.insert("old", 0));
        assert!(d.insert("new", 2 * H));
        assert_eq!(d.len(), 1, "old id evicted once the newest event is two horizons ahead");
        assert!(d.insert("old", 0), "beyond the horizon an id is accepted again");
    }

    #[test]
    fn within_the_horizon_ids_are_kept() {
        let mut d = Dedupe::new(H);
        assert!(d.insert("x", H / 2));
        assert!(d.insert("y", H));
        assert!(!d.insert("x", H / 2));
    }
}
