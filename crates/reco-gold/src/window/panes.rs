//! Pane arithmetic: per-item `(views, clicks)` counts keyed by interned item names, and the
//! running totals that slide from one window to the next.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

/// Item → (views, clicks). Keys are shared with [`Trending::items`]: an item seen in many
/// panes is stored once, and a pane entry is a pointer and two counters, with no allocation
/// of its own. As owned strings, every pane entry was a small heap allocation, half a million
/// of them at soak rates, freed pane by pane in scattered bulk; the holes kept resident memory
/// climbing after the state itself had stopped growing (docs/RELIABILITY.md, "Soak").
pub(super) type Counts = HashMap<Arc<str>, (u64, u64)>;

/// Per window length: the totals of the window starting at `start`, kept equal to the sum of
/// its panes (events recorded into it are added here too). Publishing consecutive windows
/// then costs the panes that leave and enter per slide, not all L/pane panes of each window.
#[derive(Clone, Debug)]
pub(super) struct Running {
    pub(super) start: i64,
    pub(super) counts: Counts,
}

/// Moves running totals to the window starting at `start`: by the panes that leave and enter
/// when the windows overlap, else summed afresh.
pub(super) fn slide(panes: &BTreeMap<i64, Counts>, running: Option<Running>, start: i64, length: i64) -> Running {
    match running {
        Some(r) if r.start == start => r,
        Some(mut r) if r.start < start && start - r.start < length => {
            for (_, pane) in panes.range(r.start..start) {
                for (item, &(v, c)) in pane {
                    if let Some(t) = r.counts.get_mut(item) {
                        t.0 -= v;
                        t.1 -= c;
                        if *t == (0, 0) {
                            r.counts.remove(item);
                        }
                    }
                }
            }
            for (_, pane) in panes.range(r.start + length..start + length) {
                for (item, &counts) in pane {
                    add(&mut r.counts, item, counts);
                }
            }
            Running { start, counts: r.counts }
        }
        _ => {
            let mut counts = Counts::new();
            for (_, pane) in panes.range(start..start + length) {
                for (item, &c) in pane {
                    add(&mut counts, item, c);
                }
            }
            Running { start, counts }
        }
    }
}

/// [`add`] by name: the item is interned only when `counts` does not hold it yet, so an event
/// for a known item costs one lookup.
pub(super) fn add_str(counts: &mut Counts, items: &mut HashSet<Arc<str>>, item: &str, (v, c): (u64, u64)) {
    match counts.get_mut(item) {
        Some(t) => {
            t.0 += v;
            t.1 += c;
        }
        None => {
            let key = match items.get(item) {
                Some(known) => Arc::clone(known),
                None => {
                    let new: Arc<str> = Arc::from(item);
                    items.insert(Arc::clone(&new));
                    new
                }
            };
            counts.insert(key, (v, c));
        }
    }
}

/// Adds `(views, clicks)` to `item`, sharing its interned key when it is new.
pub(super) fn add(counts: &mut Counts, item: &Arc<str>, (v, c): (u64, u64)) {
    match counts.get_mut(item) {
        Some(t) => {
            t.0 += v;
            t.1 += c;
        }
        None => {
            counts.insert(Arc::clone(item), (v, c));
        }
    }
}

/// The smallest multiple of `slide` strictly greater than `x`.
pub(super) fn first_start_after(x: i64, slide: i64) -> i64 {
    (x.div_euclid(slide) + 1) * slide
}
