//! Event-time sliding windows over shared panes. Pure: no I/O, no clock of its own.
//!
//! Semantics (CONTRACTS §5): windows are aligned to the Unix epoch; an event at `t` is in window
//! `[s, s+L)` iff `s ≤ t < s+L`. The watermark is combined from one watermark per input (see
//! `watermark.rs`: the minimum over active inputs, clamped to the wall clock); a window is
//! **complete** and published once the watermark reaches its end. An event for a window that
//! was already published complete, but within the state horizon, marks the window dirty and it
//! is published again. Events older than `watermark − horizon` are refused and counted. When
//! every input has been idle for `idle_timeout` (processing time, from the injected `now`), the
//! open windows holding data are published as **provisional**, so the last windows of a
//! finished replay become visible; that moves neither the watermark nor the point from which
//! events count as late, and each window is published again as complete when the watermark
//! passes its end.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    sync::Arc,
};

use reco_core::{EventType, TRENDING_WINDOWS};
use serde::{Deserialize, Serialize};

mod panes;

use panes::{Counts, Running, add_str, first_start_after, slide};

use crate::watermark::{InputId, InputMark, Watermarks};
pub use crate::{
    aggregate::Recorded,
    rank::{rank, top_n},
};
pub use reco_core::WindowSpec;

const MINUTE_US: i64 = 60_000_000;

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub windows: Vec<WindowSpec>,
    /// Pane width; must divide every window's slide and length.
    pub pane_us: i64,
    pub lateness_us: i64,
    /// How far behind the watermark an event may be and still update gold.
    pub horizon_us: i64,
    /// Processing time without data after which an input no longer holds the watermark back;
    /// when every input is idle, the open windows holding data are published as provisional.
    pub idle_timeout_us: i64,
    pub top_n: usize,
    pub view_weight: f64,
    pub click_weight: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            windows: TRENDING_WINDOWS.to_vec(),
            pane_us: 5 * MINUTE_US,
            lateness_us: 5 * MINUTE_US,
            horizon_us: 24 * 60 * MINUTE_US + 5 * MINUTE_US,
            idle_timeout_us: MINUTE_US,
            top_n: 100,
            view_weight: 1.0,
            click_weight: 3.0,
        }
    }
}

impl Config {
    /// Checks the relations the pane scheme relies on.
    pub fn validate(&self) -> Result<(), String> {
        if self.pane_us <= 0 || self.windows.is_empty() {
            return Err("pane width must be positive and at least one window configured".into());
        }
        for w in &self.windows {
            if w.slide_us <= 0 || w.slide_us % self.pane_us != 0 || w.length_us % w.slide_us != 0 {
                return Err(format!("window {}: slide must be a multiple of the pane, length of the slide", w.name));
            }
        }
        if self.horizon_us < self.lateness_us {
            return Err("the state horizon must be at least the allowed lateness".into());
        }
        Ok(())
    }

    fn max_length(&self) -> i64 {
        self.windows.iter().map(|w| w.length_us).max().unwrap_or(0)
    }

    /// The event time the pane state spans once full, behind the newest event: lateness,
    /// horizon and the longest window (48 h 10 min by default). The state grows until this
    /// much event time has passed, then stays at its size.
    pub fn state_span_us(&self) -> i64 {
        self.lateness_us + self.horizon_us + self.max_length()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct RankedRow {
    /// 1 = top. Ties on score rank by `item_id` ascending.
    pub rank: u32,
    pub item_id: String,
    pub views: u64,
    pub clicks: u64,
    pub score: f64,
}

/// One window's ranked rows, to be written (replacing any earlier row set of that window).
#[derive(Clone, Debug, PartialEq)]
pub struct RankedWindow {
    pub window: &'static str,
    pub start_us: i64,
    pub end_us: i64,
    pub rows: Vec<RankedRow>,
    /// Written again after it was published complete (late events changed it).
    pub republished: bool,
    /// The watermark passed its end; false for a provisional publication.
    pub complete: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Every window ending at or before this was handled.
    handled_until: Option<i64>,
    /// Starts of handled windows that received late events.
    dirty: BTreeSet<i64>,
    /// Starts of windows published at least once (within the horizon), so a window handled
    /// while empty and filled by a late event is reported as a first publication.
    published: BTreeSet<i64>,
}

/// The state besides pane counts: small, serialisable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The newest event time of any input (checkpoints of earlier versions hold only this).
    pub max_event_us: Option<i64>,
    #[serde(default)]
    pub watermark_us: Option<i64>,
    #[serde(default)]
    pub inputs: Vec<InputMark>,
    /// One per configured window, in order.
    pub progress: Vec<Progress>,
}

#[derive(Clone, Debug)]
pub struct Trending {
    config: Config,
    panes: BTreeMap<i64, Counts>,
    /// Every item some pane or running total holds, interned; swept when panes are evicted.
    items: HashSet<Arc<str>>,
    running: Vec<Option<Running>>,
    marks: Watermarks,
    /// Data arrived since the open windows were last published as provisional.
    provisional_stale: bool,
    progress: Vec<Progress>,
}

impl Trending {
    pub fn new(config: Config) -> Trending {
        let progress = vec![Progress::default(); config.windows.len()];
        let running = vec![None; config.windows.len()];
        let marks = Watermarks::new(config.lateness_us, config.idle_timeout_us);
        Trending {
            config,
            panes: BTreeMap::new(),
            items: HashSet::new(),
            running,
            marks,
            provisional_stale: false,
            progress,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Everything but the pane counts, to checkpoint next to [`Trending::panes`].
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            max_event_us: self.marks.max_event(),
            watermark_us: self.marks.current(),
            inputs: self.marks.marks(),
            progress: self.progress.clone(),
        }
    }

    /// `(pane start, item, views, clicks)` of every pane held.
    pub fn panes(&self) -> impl Iterator<Item = (i64, &str, u64, u64)> {
        self.panes.iter().flat_map(|(p, items)| items.iter().map(move |(i, (v, c))| (*p, i.as_ref(), *v, *c)))
    }

    /// Rebuilds the state from a [`Trending::snapshot`] and its panes. `now_us` counts as the
    /// last data of every input, so a restart neither skips an input nor publishes early.
    pub fn restore(
        config: Config,
        snapshot: Snapshot,
        panes: impl IntoIterator<Item = (i64, String, u64, u64)>,
        now_us: i64,
    ) -> Result<Trending, String> {
        if snapshot.progress.len() != config.windows.len() {
            return Err(format!(
                "checkpoint has {} windows, configuration {}",
                snapshot.progress.len(),
                config.windows.len()
            ));
        }
        let mut t = Trending::new(config);
        for (pane, item, v, c) in panes {
            add_str(t.panes.entry(pane).or_default(), &mut t.items, &item, (v, c));
        }
        // A checkpoint of an earlier version has one maximum over everything: its watermark.
        let watermark = snapshot.watermark_us.or(snapshot.max_event_us.map(|m| m - t.config.lateness_us));
        let (lateness, idle) = (t.config.lateness_us, t.config.idle_timeout_us);
        t.marks = Watermarks::restore(lateness, idle, watermark, snapshot.inputs, now_us);
        t.progress = snapshot.progress;
        // Whether the open windows were published since their last change is not kept: publish
        // them again at the next lull (a replace with the same rows at worst).
        t.provisional_stale = true;
        Ok(t)
    }

    /// The job's watermark (minimum over active inputs, clamped to the clock) as of the last
    /// [`Trending::advance`].
    pub fn watermark_us(&self) -> Option<i64> {
        self.marks.current()
    }

    /// The inputs and their watermarks.
    pub fn watermarks(&self) -> &Watermarks {
        &self.marks
    }

    /// The inputs, to register one (an input per Kafka partition of each silver table) or say
    /// what is known of it upstream (behind, empty), or to bound the watermark (a backfill
    /// behind the running job).
    pub fn watermarks_mut(&mut self) -> &mut Watermarks {
        &mut self.marks
    }

    /// Items × panes held: the size of the state.
    pub fn state_size(&self) -> usize {
        self.panes.values().map(HashMap::len).sum()
    }

    /// Counts one event of `input`. Constant work per event, whatever the number of windows it
    /// is in, except for late events, which mark the published windows they fall in. Lateness
    /// is judged against the watermark of the last [`Trending::advance`], never against the
    /// progress of events recorded since: within a cycle, one input running ahead cannot make
    /// another's on-time events late. A rating counts for nothing in a trending score: it moves
    /// the watermark only.
    pub fn record(
        &mut self,
        input: InputId,
        item_id: &str,
        kind: EventType,
        event_time_us: i64,
        now_us: i64,
    ) -> Recorded {
        self.marks.observe(input, event_time_us, now_us);
        if self.watermark_us().is_some_and(|wm| event_time_us < wm - self.config.horizon_us) {
            return Recorded::BeyondHorizon;
        }
        let pane = event_time_us.div_euclid(self.config.pane_us) * self.config.pane_us;
        let one = match kind {
            EventType::View => (1, 0),
            EventType::Click => (0, 1),
            EventType::Rating => return Recorded::OnTime,
        };
        add_str(self.panes.entry(pane).or_default(), &mut self.items, item_id, one);
        for (spec, running) in self.config.windows.iter().zip(&mut self.running) {
            if let Some(r) = running
                && r.start <= event_time_us
                && event_time_us < r.start + spec.length_us
            {
                add_str(&mut r.counts, &mut self.items, item_id, one);
            }
        }
        let mut late = false;
        for (spec, progress) in self.config.windows.iter().zip(&mut self.progress) {
            let Some(handled) = progress.handled_until else {
                self.provisional_stale = true;
                continue;
            };
            // The newest window holding t is still open: the provisional results changed.
            if event_time_us.div_euclid(spec.slide_us) * spec.slide_us + spec.length_us > handled {
                self.provisional_stale = true;
            }
            // Windows containing t: starts in (t − L, t], on the slide grid.
            let mut s = first_start_after(event_time_us - spec.length_us, spec.slide_us);
            while s <= event_time_us && s + spec.length_us <= handled {
                progress.dirty.insert(s);
                late = true;
                s += spec.slide_us;
            }
        }
        if late { Recorded::Late } else { Recorded::OnTime }
    }

    /// Moves the watermark and returns the windows due at processing time `now_us`: newly
    /// complete ones, re-opened (dirty) ones, and, once every input is idle, the open windows
    /// holding data as provisional. Forgets panes no acceptable event can reach any more.
    pub fn advance(&mut self, now_us: i64) -> Vec<RankedWindow> {
        let Some(watermark) = self.marks.update(now_us) else {
            return if self.marks.all_idle(now_us) { self.take_provisional() } else { Vec::new() };
        };
        let mut out = self.close_until(watermark);
        if self.marks.all_idle(now_us) {
            out.extend(self.take_provisional());
        }
        self.evict(watermark);
        out
    }

    /// [`Trending::provisional`] when data arrived since the last provisional publication
    /// (at shutdown: the windows the next run will complete stay readable meanwhile).
    pub fn take_provisional(&mut self) -> Vec<RankedWindow> {
        if !std::mem::take(&mut self.provisional_stale) {
            return Vec::new();
        }
        self.provisional()
    }

    /// Every open window (not yet complete) that holds data, as provisional results: for the
    /// idle timeout, a shutdown, or a backfill. Changes no state.
    pub fn provisional(&self) -> Vec<RankedWindow> {
        let Some(max_event) = self.marks.max_event() else { return Vec::new() };
        let mut out = Vec::new();
        for (i, spec) in self.config.windows.iter().enumerate() {
            let mut s = match self.progress[i].handled_until {
                Some(h) => first_start_after(h - spec.length_us, spec.slide_us),
                None => self.next_start_with_data(spec, i64::MIN),
            };
            let mut running = None;
            while s <= max_event {
                if self.panes.range(s..s + spec.length_us).next().is_none() {
                    s = self.next_start_with_data(spec, s + spec.length_us);
                    running = None;
                    continue;
                }
                let r = slide(&self.panes, running.take(), s, spec.length_us);
                if !r.counts.is_empty() {
                    out.push(self.result(spec, s, &r.counts, false, false));
                }
                running = Some(r);
                s += spec.slide_us;
            }
        }
        out
    }

    fn result(
        &self,
        spec: &WindowSpec,
        start: i64,
        counts: &Counts,
        republished: bool,
        complete: bool,
    ) -> RankedWindow {
        let rows = top_n(
            counts.iter().map(|(item, &(v, c))| (item.as_ref(), v, c)),
            self.config.view_weight,
            self.config.click_weight,
            self.config.top_n,
        );
        RankedWindow { window: spec.name, start_us: start, end_us: start + spec.length_us, rows, republished, complete }
    }

    /// Publishes (as complete) the dirty windows and every window ending by `watermark`.
    fn close_until(&mut self, watermark: i64) -> Vec<RankedWindow> {
        let mut out = Vec::new();
        for i in 0..self.config.windows.len() {
            let spec = self.config.windows[i];
            let target = watermark;
            let dirty = std::mem::take(&mut self.progress[i].dirty);
            for s in dirty {
                if let Some(result) = self.compute(&spec, s, self.progress[i].published.contains(&s)) {
                    self.progress[i].published.insert(s);
                    out.push(result);
                }
            }
            let handled = self.progress[i].handled_until;
            if handled.is_some_and(|h| h >= target) {
                continue;
            }
            let mut s = match handled {
                Some(h) => first_start_after(h - spec.length_us, spec.slide_us),
                None => self.next_start_with_data(&spec, i64::MIN),
            };
            while s + spec.length_us <= target {
                if self.panes.range(s..s + spec.length_us).next().is_none() {
                    // Skip a gap in one step instead of window by window.
                    s = self.next_start_with_data(&spec, s + spec.length_us);
                    self.running[i] = None;
                    continue;
                }
                let r = slide(&self.panes, self.running[i].take(), s, spec.length_us);
                if !r.counts.is_empty() {
                    let result = self.result(&spec, s, &r.counts, false, true);
                    self.progress[i].published.insert(s);
                    out.push(result);
                }
                self.running[i] = Some(r);
                s += spec.slide_us;
            }
            self.progress[i].handled_until = Some(handled.map_or(target, |h| h.max(target)));
        }
        out
    }

    /// Distinct items held (interned keys).
    pub fn items_held(&self) -> usize {
        self.items.len()
    }

    /// The first window start whose window contains a pane at or after `from`.
    fn next_start_with_data(&self, spec: &WindowSpec, from: i64) -> i64 {
        match self.panes.range(from..).next() {
            Some((&pane, _)) => first_start_after(pane - spec.length_us, spec.slide_us),
            None => i64::MAX / 2,
        }
    }

    fn compute(&self, spec: &WindowSpec, start: i64, republished: bool) -> Option<RankedWindow> {
        let mut totals: HashMap<&str, (u64, u64)> = HashMap::new();
        for counts in self.panes.range(start..start + spec.length_us).map(|(_, c)| c) {
            for (item, (v, c)) in counts {
                let t = totals.entry(item.as_ref()).or_default();
                t.0 += v;
                t.1 += c;
            }
        }
        if totals.is_empty() {
            return None;
        }
        let rows = top_n(
            totals.into_iter().map(|(i, (v, c))| (i, v, c)),
            self.config.view_weight,
            self.config.click_weight,
            self.config.top_n,
        );
        Some(RankedWindow {
            window: spec.name,
            start_us: start,
            end_us: start + spec.length_us,
            rows,
            republished,
            complete: true,
        })
    }

    /// Drops panes that no window reachable by an acceptable event can contain.
    fn evict(&mut self, watermark: i64) {
        let keep_from = watermark - self.config.horizon_us - self.config.max_length();
        let keep = self.panes.split_off(&(keep_from.div_euclid(self.config.pane_us) * self.config.pane_us));
        let evicted = std::mem::replace(&mut self.panes, keep);
        for r in &mut self.running {
            if r.as_ref().is_some_and(|r| r.start < keep_from) {
                *r = None;
            }
        }
        if !evicted.is_empty() {
            drop(evicted);
            // Items no pane or running total refers to any more: only the interner holds them.
            self.items.retain(|item| Arc::strong_count(item) > 1);
        }
        for p in &mut self.progress {
            p.published = p.published.split_off(&keep_from);
        }
    }
}

#[cfg(test)]
mod tests;
