//! The job's event-time watermark, combined from one watermark per input (CONTRACTS §5). Pure.
//!
//! An input is one Kafka partition of one silver table, as silver recorded it
//! (`kafka_partition`). Its watermark is the newest event time read from it minus the allowed
//! lateness. The job's watermark is the **minimum** over the inputs that are not idle, the way
//! Flink and Spark combine the watermarks of several partitions: in a fast replay or a backlog
//! one partition (or one table) runs hours or days ahead of another inside a single silver
//! commit, and a maximum would judge the slower inputs' on-time events as late, or drop them as
//! beyond the horizon. Further rules:
//!
//! - **Idleness.** An input without data for the idle timeout (processing time) stops holding
//!   the others back, and holds them again as soon as it has data. An input known to have data
//!   waiting is not idle: a table with silver versions still unread ([`Watermarks::hold_table`]),
//!   or a partition silver says it has not read to the end ([`Watermarks::hold_input`]); and an
//!   input silver names before its first row exists holds the watermark until it has rows or
//!   idles. While catching up, "no data yet" means "not read yet". A restart counts every
//!   input of its checkpoint as active from then on ([`Watermarks::restore`]).
//! - **Unread records.** A partition whose Kafka log ends past the offset its silver writer last
//!   committed ([`Watermarks::read`], [`Watermarks::log_end`]) has records no one has read: its
//!   writer died or stopped, and the consumer group has not handed its partitions to another
//!   yet. Any writer's commit can say so (each reports every partition's log end), so the input
//!   is not idle however long its own writer is silent, for up to [`UNREAD_HOLD_US`]. Without
//!   this, traffic resuming after a lull while one writer is down lets the others' partitions
//!   move the watermark past the down writer's records (seen in the chaos test).
//! - **Empty inputs.** An input without rows whose Kafka log silver reported empty
//!   ([`Watermarks::empty`]) counts as if it had data up to the newest event read from any
//!   input when the report came (its *frontier*): a record produced to it after silver looked
//!   carries a time near what everyone else was sending then, so it is on time as long as it
//!   comes within the lateness. A topic's partitions that no client writes to (a few users
//!   post, the rest of the key space is quiet) then hold nothing the others do not, instead of
//!   every window for an idle timeout. Not "holds nothing at all": a partition found empty
//!   just before its first records, whose silver worker then dies, would let the others move
//!   the watermark past those records (seen in the chaos test, where a network stall at start
//!   delayed the first records).
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
    /// Silver last reported its Kafka log empty when the newest event read from any input was
    /// this (nothing since said it has data). Checkpointed: a restart must know which inputs
    /// without rows are empty and which are only unread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_frontier_us: Option<i64>,
    /// The next offset silver's writer of this partition reads, past its last commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<i64>,
}

/// Longest an input counts as active only because its log holds records silver has not read:
/// longer than a consumer group takes to give a dead or stopped member's partitions to another
/// (its session timeout, 10 s by default in silver) or a live one that stopped polling
/// (`max.poll.interval.ms`, 5 min by default), so a writer that does not come back holds the
/// watermark for a bounded time. Bounded also because a log may end in transaction markers
/// read after the writer's last commit, which look like unread records until its next one.
pub const UNREAD_HOLD_US: i64 = 300_000_000;

#[derive(Clone, Debug)]
struct Input {
    mark: InputMark,
    /// Processing time of the last data (or of the last hold).
    last_data_at_us: i64,
    /// Processing time since which reports have said its log holds records silver has not read
    /// (since [`InputMark::read`] last moved).
    unread_since_us: Option<i64>,
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

    /// Rebuilds from a checkpoint; every input counts as active from `now_us`, so a restart
    /// skips no input it knew. That includes inputs without rows: one may be a partition whose
    /// silver worker has not committed yet (its records wait in Kafka), and judging it idle
    /// would let the others' progress make its events late (seen in the chaos test: a gold
    /// restart while one silver worker was still joining its group). Only an input silver
    /// reported empty stands at its frontier, as before the restart.
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
            let id = w.input(&mark.table, mark.partition, now_us);
            w.inputs[id].mark = mark;
        }
        w
    }

    /// The id of `table`'s `partition`, registered (active from `now_us`) when new.
    pub fn input(&mut self, table: &str, partition: i32, now_us: i64) -> InputId {
        if let Some(id) = self.inputs.iter().position(|i| i.mark.partition == partition && i.mark.table == table) {
            return id;
        }
        let mark =
            InputMark { table: table.to_owned(), partition, max_event_us: None, empty_frontier_us: None, read: None };
        self.inputs.push(Input { mark, last_data_at_us: now_us, unread_since_us: None });
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
        i.mark.empty_frontier_us = None;
    }

    /// Silver found `input`'s Kafka log empty: until its first rows (or a report that it has
    /// data waiting), it stands at the newest event read so far from any input. Call after
    /// observing the rows of the commit that said so.
    pub fn empty(&mut self, input: InputId) {
        let newest = self.max_event();
        let frontier = &mut self.inputs[input].mark.empty_frontier_us;
        *frontier = (*frontier).max(newest);
    }

    /// Silver's writer of `input` committed it up to `next` (the next offset it reads). The
    /// newest report wins: commits of one partition come in offset order (a log reset may
    /// start it lower).
    pub fn read(&mut self, input: InputId, next: i64) {
        let i = &mut self.inputs[input];
        if i.mark.read != Some(next) {
            i.mark.read = Some(next);
            i.unread_since_us = None;
        }
    }

    /// A silver writer found `input`'s Kafka log ending at `end` (records in it) at processing
    /// time `now_us`: records past what its writer last committed are waiting, and hold the
    /// input for up to [`UNREAD_HOLD_US`].
    pub fn log_end(&mut self, input: InputId, end: i64, now_us: i64) {
        let i = &mut self.inputs[input];
        if end <= i.mark.read.unwrap_or(0) {
            i.unread_since_us = None;
            return;
        }
        let since = *i.unread_since_us.get_or_insert(now_us);
        if now_us.saturating_sub(since) < UNREAD_HOLD_US {
            self.hold_input(input, now_us);
        }
    }

    /// `table` has data waiting to be read: its inputs are not idle.
    pub fn hold_table(&mut self, table: &str, now_us: i64) {
        for i in self.inputs.iter_mut().filter(|i| i.mark.table == table) {
            i.last_data_at_us = i.last_data_at_us.max(now_us);
        }
    }

    /// Whether `input` holds the watermark: it had data (or a hold) within the idle timeout.
    fn holds(&self, input: &Input, now_us: i64) -> bool {
        now_us.saturating_sub(input.last_data_at_us) < self.idle_timeout_us
    }

    /// Where `input` stands: its newest event, or for an empty log its frontier.
    fn position(input: &Input) -> Option<i64> {
        input.mark.max_event_us.or(input.mark.empty_frontier_us)
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
                .map(|i| Watermarks::position(i).map(|m| m - self.lateness_us))
                // An active input that has no event yet (and is not known empty) holds the
                // watermark where it is.
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

    /// Every input as one line for a log: newest event, seconds since its last data, whether
    /// it holds the watermark (what an operator asks when events turn out late).
    pub fn describe(&self, now_us: i64) -> String {
        let line = |i: &Input| {
            let quiet = now_us.saturating_sub(i.last_data_at_us) as f64 / 1e6;
            let holds = if self.holds(i, now_us) { "holds" } else { "idle" };
            let empty = i.mark.empty_frontier_us.map(|f| format!(" empty_frontier_us={f}")).unwrap_or_default();
            let unread = (i.unread_since_us.map(|t| format!(" unread_s={:.1}", now_us.saturating_sub(t) as f64 / 1e6)))
                .unwrap_or_default();
            let (table, partition, max) = (&i.mark.table, i.mark.partition, i.mark.max_event_us);
            format!("{table}/{partition} max_event_us={max:?}{empty}{unread} quiet_s={quiet:.1} {holds}")
        };
        self.inputs.iter().map(line).collect::<Vec<_>>().join("; ")
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
    fn an_empty_log_stands_at_the_newest_event_read_when_silver_found_it_empty() {
        let mut w = Watermarks::new(0, 60 * S);
        let a = w.input("views", 0, NOW);
        let (b, c) = (w.input("views", 1, NOW), w.input("clicks", 2, NOW));
        w.observe(a, 1000 * S, NOW);
        assert_eq!(w.update(NOW), None, "b and c may still have rows");
        w.empty(b);
        w.empty(c);
        assert_eq!(w.update(NOW), Some(1000 * S), "b and c hold nothing a does not");
        // a runs on; b and c stay where they were found empty, so records produced to them
        // since (times near 1000) are not late.
        w.observe(a, 5000 * S, NOW + S);
        assert_eq!(w.update(NOW + S), Some(1000 * S));
        // c's first rows: it stands at its own events from now on.
        w.observe(c, 1200 * S, NOW + 2 * S);
        assert_eq!(w.update(NOW + 2 * S), Some(1000 * S), "b still at 1000");
        // A later report that b is still empty moves it to the newest event then.
        w.empty(b);
        assert_eq!(w.update(NOW + 2 * S), Some(1200 * S), "now c, the slowest with data");
        // b has data waiting: it holds where its rows will say.
        w.hold_input(b, NOW + 3 * S);
        w.observe(c, 9000 * S, NOW + 3 * S);
        assert_eq!(w.update(NOW + 3 * S), Some(1200 * S));
        assert!(!w.all_idle(NOW + 3 * S));
    }

    #[test]
    fn a_partition_found_empty_before_its_first_records_does_not_make_them_late() {
        // The chaos test's start: a network stall delays the first records; silver-1 finds
        // views 1 empty, commits its other partitions and dies before reading views 1.
        let mut w = Watermarks::new(300 * S, 60 * S);
        let (a, b) = (w.input("views", 0, NOW), w.input("views", 1, NOW));
        w.observe(a, 10_000 * S, NOW);
        w.empty(b);
        // Silver-2 keeps committing views 0 while silver-1 restarts.
        for k in 1..=20 {
            w.observe(a, (10_000 + 60 * k) * S, NOW + k * S);
            w.update(NOW + k * S);
        }
        // Views 1's records, sent while views 0's were at 10,000, come 20 s later: on time.
        assert!(w.current().is_some_and(|wm| wm <= 9_900 * S), "{:?}", w.current());
        // Unless it never comes back: after the idle timeout it holds nothing.
        w.observe(a, 20_000 * S, NOW + 61 * S);
        assert_eq!(w.update(NOW + 61 * S), Some(19_700 * S));
    }

    #[test]
    fn records_no_writer_has_read_hold_their_input_past_the_idle_timeout_for_a_bounded_time() {
        // The chaos finding: views 0's writer stops during a lull; traffic resumes; the other
        // writer's commits report views 0's log growing while its own writer stays silent.
        let mut w = Watermarks::new(0, 60 * S);
        let (mine, theirs) = (w.input("views", 0, NOW), w.input("views", 1, NOW));
        w.observe(mine, 1000 * S, NOW);
        w.read(mine, 500);
        w.observe(theirs, 1000 * S, NOW);
        w.read(theirs, 700);
        // A lull longer than the idle timeout: the log ends where the writers read.
        w.log_end(mine, 500, NOW + 90 * S);
        assert!(w.all_idle(NOW + 90 * S), "nothing unread: idle");
        // Traffic resumes; only views 1's writer reads and commits; views 0's log grows.
        for k in 0..10 {
            let now = NOW + (100 + k * 30) * S;
            w.observe(theirs, (5000 + k * 100) * S, now);
            w.read(theirs, 800 + k);
            w.log_end(mine, 600 + k, now);
            w.update(now);
        }
        assert_eq!(w.current(), Some(1000 * S), "views 0's unread records hold the watermark");
        // Its writer comes back and commits them: on time.
        let now = NOW + 400 * S;
        w.observe(mine, 5100 * S, now);
        w.read(mine, 610);
        w.observe(theirs, 5900 * S, now);
        assert_eq!(w.update(now), Some(5100 * S));
        // A writer that never comes back holds for UNREAD_HOLD_US, then idles as before.
        let start = NOW + 500 * S;
        let mut now = start;
        while now - start < UNREAD_HOLD_US + 60 * S {
            w.observe(theirs, 6000 * S + (now - start), now);
            w.log_end(mine, 700, now);
            w.update(now);
            now += 10 * S;
        }
        assert!(w.current().is_some_and(|wm| wm > 5100 * S), "released after the bound: {:?}", w.current());
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

    #[test]
    fn a_restored_input_without_rows_holds_and_an_empty_one_keeps_its_frontier() {
        let mut w = Watermarks::new(0, 60 * S);
        let a = w.input("views", 0, NOW);
        let (unread, empty) = (w.input("views", 1, NOW), w.input("views", 2, NOW));
        w.observe(a, 1000 * S, NOW);
        w.hold_input(unread, NOW);
        w.empty(empty);
        assert_eq!(w.update(NOW), None, "views 1 holds: its records are not read yet");
        // Restarted: views 1 still holds (its worker may not have committed yet), views 2
        // stands where it was found empty.
        let mut r = Watermarks::restore(0, 60 * S, w.current(), w.marks(), NOW + 30 * S);
        r.observe(a, 2000 * S, NOW + 31 * S);
        assert_eq!(r.update(NOW + 31 * S), None);
        assert_eq!(r.marks()[2].empty_frontier_us, Some(1000 * S));
        // Views 1's rows arrive: views 2's frontier is now the slowest.
        r.observe(unread, 1500 * S, NOW + 32 * S);
        assert_eq!(r.update(NOW + 32 * S), Some(1000 * S));
        // Checkpoints written before `empty` was recorded still read.
        let old: InputMark = serde_json::from_str(r#"{"table":"views","partition":3,"max_event_us":null}"#).unwrap();
        assert_eq!(old.empty_frontier_us, None);
    }
}
