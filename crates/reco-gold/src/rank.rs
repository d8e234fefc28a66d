//! Ranking a window's counts: score, ties by `item_id`, top N (CONTRACTS §5). Pure.

use std::collections::HashMap;

use crate::window::RankedRow;

/// Ranks counts by score, ties by `item_id` ascending, and keeps the top `n`.
pub fn rank(totals: HashMap<&str, (u64, u64)>, view_weight: f64, click_weight: f64, n: usize) -> Vec<RankedRow> {
    top_n(totals.into_iter().map(|(i, (v, c))| (i, v, c)), view_weight, click_weight, n)
}

/// [`rank`] over `(item, views, clicks)`: selects the top `n` before sorting them, and
/// allocates only the rows it returns.
pub fn top_n<'a>(
    counts: impl Iterator<Item = (&'a str, u64, u64)>,
    view_weight: f64,
    click_weight: f64,
    n: usize,
) -> Vec<RankedRow> {
    let mut scored: Vec<(f64, &str, u64, u64)> =
        counts.map(|(item, v, c)| (view_weight * v as f64 + click_weight * c as f64, item, v, c)).collect();
    // Items are unique, so this is a total order.
    let order = |a: &(f64, &str, u64, u64), b: &(f64, &str, u64, u64)| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1));
    if n == 0 {
        return Vec::new();
    }
    if scored.len() > n {
        scored.select_nth_unstable_by(n - 1, order);
        scored.truncate(n);
    }
    scored.sort_unstable_by(order);
    scored
        .into_iter()
        .enumerate()
        .map(|(i, (score, item, views, clicks))| RankedRow {
            rank: i as u32 + 1,
            item_id: item.to_owned(),
            views,
            clicks,
            score,
        })
        .collect()
}
