//! The job's event-time watermark, combined from one watermark per input (CONTRACTS §5). Pure.
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
//! - **Empty inputs.** An input without rows whose Kafka log silver reported empty
//!   ([`Watermarks::empty`]) holds nothing: there is nothing of it to wait for. A topic's
//!   partitions that no client wrote to (a few users post, the rest of the key space is quiet)
//!   would otherwise hold every window open for an idle timeout, by which time the inputs with
//!   data have idled too.
//! - **All idle.** When no input holds the watermark, it stands at the minimum over the inputs
//!   that have data, where it would be had they stayed active: after a burst the windows it
//!   passed complete, instead of waiting for traffic that may never come.
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
    /// Silver reported its Kafka log empty (and nothing since said it has data).
    empty: bool,
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
        self.inputs.push(Input { mark, last_data_at_us: now_us, empty: false });
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
        i.empty = false;
    }

    /// Silver found `input`'s Kafka log empty: until its first rows (or a report that it has
    /// data waiting), it holds nothing.
    pub fn empty(&mut self, input: InputId) {
        self.inputs[input].empty = true;
    }

    /// `table` has data waiting to be read: its inputs are not idle.
    pub fn hold_table(&mut self, table: &str, now_us: i64) {
        for i in self.inputs.iter_mut().filter(|i| i.mark.table == table) {
            i.last_data_at_us = i.last_data_at_us.max(now_us);
        }
    }

    /// Whether `input` holds the watermark: not idle, and not an empty log without rows.
    fn holds(&self, input: &Input, now_us: i64) -> bool {
        let idle = now_us.saturating_sub(input.last_data_at_us) >= self.idle_timeout_us;
        let empty = input.empty && input.mark.max_event_us.is_none();
        !(idle || empty)
    }

    /// True when no input holds the watermark (none had data for the idle timeout, or none is
    /// known).
    pub fn all_idle(&self, now_us: i64) -> bool {
        !self.inputs.iter().any(|i| self.holds(i, now_us))
    }

    /// Moves the watermark to the minimum over the inputs that hold it (all idle: over those
    /// with data), clamped to `now_us − lateness`, never backwards; returns it.
    pub fn update(&mut self, now_us: i64) -> Option<i64> {
        let candidate = if self.all_idle(now_us) {
            self.inputs.iter().filter_map(|i| i.mark.max_event_us).min().map(|m| m - self.lateness_us)
        } else {
            self.inputs
                .iter()
                .filter(|i| self.holds(i, now_us))
                .map(|i| i.mark.max_event_us.map(|m| m - self.lateness_us))
                // An active input that has no event yet holds the watermark where it is.
                .try_fold(None::<i64>, |acc, w| w.map(|w| Some(acc.map_or(w, |a| a.min(w)))))
                .flatten()
        };
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
    fn an_empty_log_without_rows_holds_nothing_until_it_has_data() {
        let mut w = Watermarks::new(0, 60 * S);
        let a = w.input("views", 0, NOW);
        let (b, c) = (w.input("views", 1, NOW), w.input("clicks", 2, NOW));
        w.observe(a, 1000 * S, NOW);
        assert_eq!(w.update(NOW), None, "b and c may still have rows");
        w.empty(b);
        w.empty(c);
        assert_eq!(w.update(NOW), Some(1000 * S));
        // c's first rows: it holds from now on (its event is late), empty or not.
        w.observe(c, 900 * S, NOW + S);
        w.observe(a, 2000 * S, NOW + S);
        assert_eq!(w.update(NOW + S), Some(1000 * S));
        // b has data waiting: it holds again.
        w.hold_input(b, NOW + 2 * S);
        w.observe(c, 3000 * S, NOW + 2 * S);
        assert_eq!(w.update(NOW + 2 * S), Some(1000 * S));
        assert!(!w.all_idle(NOW + 2 * S));
    }

    #[test]
    fn when_every_input_idles_the_watermark_stands_at_the_slowest_with_data() {
        let mut w = Watermarks::new(0, 60 * S);
        let (a, b) = (w.input("views", 0, NOW), w.input("clicks", 0, NOW));
        w.input("views", 1, NOW); // never has data, never reported empty
        w.observe(a, 1000 * S, NOW);
        w.observe(b, 900 * S, NOW);
        assert_eq!(w.update(NOW + 59 * S), None, "held by the input without data");
        assert!(w.all_idle(NOW + 60 * S));
        assert_eq!(w.update(NOW + 60 * S), Some(900 * S));
        // Never backwards: b idle long ago behind, a ahead and active, then a idles too.
        w.observe(a, 5000 * S, NOW + 100 * S);
        assert_eq!(w.update(NOW + 100 * S), Some(5000 * S));
        assert_eq!(w.update(NOW + 200 * S), Some(5000 * S));
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
