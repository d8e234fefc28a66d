//! De-duplication by `event_id` within an event-time horizon, per partition. Pure.
//!
//! A retried event carries the same key (`user_id`), so it lands on the same partition: the
//! state is per partition and moves with it on a rebalance. It is rebuilt from the silver
//! table itself when a partition is (re)assigned, so it always equals what was committed,
//! whatever crashed.
//!
//! An id is held as a 128-bit keyed hash, not as its string. The set holds a day of ids (about
//! a million per partition at a few thousand events a second) and turns a tenth of them over
//! at every sweep: as strings, that was a small heap allocation per id, freed in scattered
//! bulk, and the holes they left kept the process's resident memory climbing long after the
//! set itself had stopped growing (docs/RELIABILITY.md, "Soak"). A fixed-size key lives inside
//! the table, so the set is a few large allocations and a third of the size. The key is
//! SipHash-1-3 with 128-bit output under a per-process random key: two different ids share a
//! hash with probability about 2⁻¹²⁸ per pair (for a million ids, under 10⁻²⁶), and no client
//! can craft a collision without the key. The key only has to agree within one process, since
//! the state is rebuilt from the table whenever a partition is assigned.

use std::{
    collections::HashMap,
    hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState},
};

use siphasher::sip128::{Hasher128, SipHasher13};

#[derive(Debug, Clone)]
pub struct Dedupe {
    horizon_us: i64,
    /// Keyed hash of the id → event time.
    seen: HashMap<u128, i64, BuildHasherDefault<PreHashed>>,
    keys: (u64, u64),
    newest_us: i64,
    evicted_up_to: i64,
}

impl Dedupe {
    pub fn new(horizon_us: i64) -> Dedupe {
        // Two independent 64-bit values from std's randomly seeded SipHash keys.
        let random = RandomState::new();
        let keys = (random.hash_one(0u8), random.hash_one(1u8));
        Dedupe { horizon_us, seen: HashMap::default(), keys, newest_us: i64::MIN, evicted_up_to: i64::MIN }
    }

    /// Records `id` at `event_time_us`; returns false when it was already seen (a duplicate).
    pub fn insert(&mut self, id: &str, event_time_us: i64) -> bool {
        let mut hasher = SipHasher13::new_with_keys(self.keys.0, self.keys.1);
        hasher.write(id.as_bytes());
        let key = hasher.finish128().as_u128();
        if self.seen.contains_key(&key) {
            return false;
        }
        self.seen.insert(key, event_time_us);
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
    ///
    /// The kept ids move to a new table sized for them plus a quarter, instead of `retain` in
    /// place. `retain` leaves tombstones, and the std table doubles when it runs out of room
    /// while more than half its capacity is live, so a set that had long stopped growing
    /// doubled its memory about nine horizons in (in the 30-minute soak, silver's sets went
    /// from 79 to 139 MiB after the warm-up; in production that is a step days after a start).
    /// A fresh table has no tombstones: its size follows what it holds.
    fn evict(&mut self) {
        let cutoff = self.newest_us.saturating_sub(self.horizon_us);
        if cutoff.saturating_sub(self.evicted_up_to) > self.horizon_us / 10 {
            let kept = self.seen.values().filter(|t| **t >= cutoff).count();
            let mut fresh = HashMap::with_capacity_and_hasher(kept + kept / 4, BuildHasherDefault::default());
            fresh.extend(self.seen.drain().filter(|(_, t)| *t >= cutoff));
            self.seen = fresh;
            self.evicted_up_to = cutoff;
        }
    }
}

/// The table's hasher: the keys are already keyed SipHash outputs, uniformly distributed and
/// unpredictable without the key, so their low bits serve as the bucket hash as they are.
#[derive(Debug, Default, Clone, Copy)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached if a key type other than u128 were hashed; fold the bytes in.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u128(&mut self, key: u128) {
        self.0 = key as u64;
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

    /// Steady traffic for many horizons: the set's table must stay the size it had once a
    /// horizon was full, not double later (what `retain` in place did, at about 9 horizons).
    #[test]
    fn memory_follows_the_content_under_steady_traffic() {
        const PER_HORIZON: i64 = 100_000;
        let mut d = Dedupe::new(H);
        let mut capacity_when_full = 0;
        for i in 0..PER_HORIZON * 14 {
            assert!(d.insert(&format!("{i:x}"), i * (H / PER_HORIZON)));
            if i == PER_HORIZON * 3 / 2 {
                capacity_when_full = d.seen.capacity();
            }
        }
        let held = d.len() as i64;
        assert!((PER_HORIZON..=PER_HORIZON * 11 / 10 + 1).contains(&held), "holds one horizon of ids: {held}");
        assert_eq!(d.seen.capacity(), capacity_when_full, "table size after 14 horizons = after 1.5");
    }

    #[test]
    fn many_distinct_ids_are_all_new_and_all_seen_again() {
        let mut d = Dedupe::new(H);
        let ids: Vec<String> = (0..200_000).map(|i| format!("{i:08x}-id")).collect();
        assert!(ids.iter().all(|id| d.insert(id, 1)), "no two distinct ids collide");
        assert_eq!(d.len(), ids.len());
        assert!(ids.iter().all(|id| !d.insert(id, 1)), "every id is recognised again");
    }
}
