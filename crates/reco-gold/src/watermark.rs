//! The job's event-time watermark, combined from one watermark per input (DESIGN §5). Pure.
//!
//! An input is one Kafka partition of one silver table, as silver recorded it
//! (`kafka_partition`). Its watermark is the newest event time read from it minus the allowed
//! lateness. The job's watermark is the **minimum** over the inputs that are not idle, the way
//! Flink and Spark combine the watermarks of several partitions: in a fast replay or a backlog
//! one partition (or one table) runs hours or days ahead of another inside a single silver
//! commit, and a maximum would judge the slower inputs' on-time events as late, or drop them as
//! beyond the horizon. Three further rules:
//!
//! - **Idleness.** An input without data for the idle timeout (processing time) stops holding
//!   the others back, and holds them again as soon as it has data. An input known to have data
//!   waiting is not idle: a table with silver versions still unread ([`Watermarks::hold_table`]),
//!   or a partition silver says it has not read to the end ([`Watermarks::hold_input`]); and an
//!   input silver names before its first row exists holds the watermark until it has rows or
//!   idles. While catching up, "no data yet" means "not read yet".
//! - **Clamp.** The watermark is never later than wall-clock time minus the lateness, so one
//!   client whose clock runs fast cannot close the current windows early. Historic replays are
//!   far behind the clock and unaffected.
//! - **Monotonic.** It never moves back: an input that comes back from idleness behind it has
//!   late events (re-published windows), as in Flink.

use serde::{Deserialize, Serialize};

/// An input's position in a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputMark {
    pub table: String,
    pub partition: i32,
    pub max_event_us: Option<i64>,
}

#[derive(Clone, Debug)]
struct Input {
    mark: InputMark,
    /// Processing time of the last data (or of the last hold).
    last_data_at_us: i64,
}

/// Index of an input, from [`Watermarks::input`].
pub type InputId = usize;

#[derive(Clone, Debug)]
pub struct Watermarks {
    lateness_us: i64,
    idle_timeout_us: i64,
    /// A few per table (one per Kafka partition): found by a scan, no key to allocate.
    inputs: Vec<Input>,
    watermark: Option<i64>,
    /// A bound from outside (a backfill stays behind the running job's watermark).
    limit: Option<i64>,
}

impl Watermarks {
    pub fn new(lateness_us: i64, idle_timeout_us: i64) -> Watermarks {
        Watermarks { lateness_us, idle_timeout_us, inputs: Vec::new(), watermark: None, limit: None }
    }

    /// Rebuilds from a checkpoint; every input that had data counts as active from `now_us`, so
    /// a restart skips no input it knew; one that never had data counts as idle, so it does not
    /// hold the watermark for an idle timeout after every restart.
    pub fn restore(
        lateness_us: i64,
        idle_timeout_us: i64,
        watermark: Option<i64>,
        marks: Vec<InputMark>,
        now_us: i64,
    ) -> Watermarks {
        let mut w = Watermarks::new(lateness_us, idle_timeout_us);
        w.watermark = watermark;
        for mark in marks {
            let at = if mark.max_event_us.is_some() { now_us } else { now_us.saturating_sub(idle_timeout_us) };
            let id = w.input(&mark.table, mark.partition, at);
            w.inputs[id].mark.max_event_us = mark.max_event_us;
        }
        w
    }

    /// The id of `table`'s `partition`, registered (active from `now_us`) when new.
    pub fn input(&mut self, table: &str, partition: i32, now_us: i64) -> InputId {
        if let Some(id) = self.inputs.iter().position(|i| i.mark.partition == partition && i.mark.table == table) {
            return id;
        }
        let mark = InputMark { table: table.to_owned(), partition, max_event_us: None };
        self.inputs.push(Input { mark, last_data_at_us: now_us });
        self.inputs.len() - 1
    }

    /// An event at `event_us` was read from `input` at processing time `now_us`.
    pub fn observe(&mut self, input: InputId, event_us: i64, now_us: i64) {
        let i = &mut self.inputs[input];
        i.mark.max_event_us = Some(i.mark.max_event_us.map_or(event_us, |m| m.max(event_us)));
        i.last_data_at_us = i.last_data_at_us.max(now_us);
    }

    /// `input` has data waiting upstream: it is not idle.
    pub fn hold_input(&mut self, input: InputId, now_us: i64) {
        let i = &mut self.inputs[input];
        i.last_data_at_us = i.last_data_at_us.max(now_us);
    }

    /// `table` has data waiting to be read: its inputs are not idle.
    pub fn hold_table(&mut self, table: &str, now_us: i64) {
        for i in self.inputs.iter_mut().filter(|i| i.mark.table == table) {
            i.last_data_at_us = i.last_data_at_us.max(now_us);
        }
    }

    fn idle(&self, input: &Input, now_us: i64) -> bool {
        now_us.saturating_sub(input.last_data_at_us) >= self.idle_timeout_us
    }

    /// True when no input had data for the idle timeout (or none is known).
    pub fn all_idle(&self, now_us: i64) -> bool {
        self.inputs.iter().all(|i| self.idle(i, now_us))
    }

    /// Moves the watermark to the minimum over active inputs, clamped to `now_us − lateness`,
    /// never backwards; returns it.
    pub fn update(&mut self, now_us: i64) -> Option<i64> {
        let candidate = self
            .inputs
            .iter()
            .filter(|i| !self.idle(i, now_us))
            .map(|i| i.mark.max_event_us.map(|m| m - self.lateness_us))
            // An active input that has no event yet holds the watermark where it is.
            .try_fold(None::<i64>, |acc, w| w.map(|w| Some(acc.map_or(w, |a| a.min(w)))))
            .flatten();
        if let Some(c) = candidate {
            let c = c.min(now_us.saturating_sub(self.lateness_us)).min(self.limit.unwrap_or(i64::MAX));
            self.watermark = Some(self.watermark.map_or(c, |w| w.max(c)));
        }
        self.watermark
    }

    /// Keeps the watermark at or before `limit`.
    pub fn limit(&mut self, limit: i64) {
        self.limit = Some(limit);
    }

    /// The watermark as of the last [`Watermarks::update`].
    pub fn current(&self) -> Option<i64> {
        self.watermark
    }

    /// The newest event time read from any input.
    pub fn max_event(&self) -> Option<i64> {
        self.inputs.iter().filter_map(|i| i.mark.max_event_us).max()
    }

    /// Every input's position, to checkpoint.
    pub fn marks(&self) -> Vec<InputMark> {
        self.inputs.iter().map(|i| i.mark.clone()).collect()
    }

    /// `(input, watermark)` of every input, for metrics.
    pub fn per_input(&self) -> impl Iterator<Item = (&InputMark, Option<i64>)> {
        self.inputs.iter().map(|i| (&i.mark, i.mark.max_event_us.map(|m| m - self.lateness_us)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;
    const NOW: i64 = 1_800_000_000 * S;

    #[test]
    fn the_slowest_active_input_sets_the_watermark() {
        let mut w = Watermarks::new(10 * S, 60 * S);
        let (a, b) = (w.input("views", 0, NOW), w.input("clicks", 0, NOW));
        w.observe(a, 1000 * S, NOW);
        w.observe(b, 100 * S, NOW);
        assert_eq!(w.update(NOW), Some(90 * S));
        // b idles for the timeout while a runs on: b stops holding a back.
        w.observe(a, 2000 * S, NOW + 60 * S);
        assert_eq!(w.update(NOW + 60 * S), Some(1990 * S));
        // b has data again, behind: it holds the watermark, which does not move back.
        w.observe(b, 500 * S, NOW + 61 * S);
        w.observe(a, 3000 * S, NOW + 61 * S);
        assert_eq!(w.update(NOW + 61 * S), Some(1990 * S));
    }

    #[test]
    fn a_table_with_pending_versions_is_not_idle() {
        let mut w = Watermarks::new(0, 60 * S);
        let (a, b) = (w.input("views", 0, NOW), w.input("clicks", 0, NOW));
        w.observe(a, 1000 * S, NOW);
        w.observe(b, 100 * S, NOW);
        w.hold_table("clicks", NOW + 100 * S);
        w.observe(a, 1001 * S, NOW + 100 * S);
        assert_eq!(w.update(NOW + 100 * S), Some(100 * S));
        assert!(!w.all_idle(NOW + 100 * S));
        assert!(w.all_idle(NOW + 160 * S));
    }

    #[test]
    fn the_watermark_never_passes_the_wall_clock() {
        let mut w = Watermarks::new(300 * S, 60 * S);
        let a = w.input("views", 0, NOW);
        w.observe(a, NOW + 600 * S, NOW);
        assert_eq!(w.update(NOW), Some(NOW - 300 * S));
    }

    #[test]
    fn a_new_input_without_events_holds_the_watermark() {
        let mut w = Watermarks::new(0, 60 * S);
        let a = w.input("views", 0, NOW);
        w.observe(a, 1000 * S, NOW);
        assert_eq!(w.update(NOW), Some(1000 * S));
        w.input("views", 1, NOW);
        w.observe(a, 2000 * S, NOW);
        assert_eq!(w.update(NOW), Some(1000 * S));
    }

    #[test]
    fn restore_keeps_positions_and_the_watermark() {
        let mut w = Watermarks::new(0, 60 * S);
        let a = w.input("views", 2, NOW);
        w.observe(a, 1000 * S, NOW);
        w.update(NOW);
        let r = Watermarks::restore(0, 60 * S, w.current(), w.marks(), NOW + 1000 * S);
        assert_eq!((r.current(), r.marks()), (w.current(), w.marks()));
        assert!(!r.all_idle(NOW + 1000 * S), "restored inputs are active");
    }
}
