//! Recommendations from a history and the item neighbour lists. Pure.
//!
//! The rule (docs/ARCHITECTURE.md, "Serving: recommendations"): with the user's recent
//! positive items `h_0, h_1, …` (most recent first) of weights `w_p`, a candidate `j` scores
//!
//! ```text
//! score(j) = Σ_p  w_p · γ^p · s(h_p, j)
//! ```
//!
//! where `s(h_p, j)` is `j`'s score in `h_p`'s published neighbour list (0 when absent) and
//! `γ` ([`RECENCY`]) favours what the user did last: the next interaction is more like the
//! last ones than like the first ones. Items the user has touched are never candidates. Ties
//! go by item id. `because` names the history items that contributed most, largest first.

use std::{collections::HashMap, sync::Arc};

/// Recency factor `γ` per step back in the history (measured on MovieLens-100K in
/// `make bench`: docs/BENCHMARKS.md, "Recommendation quality").
pub const RECENCY: f64 = 0.8;
/// History items named in `because`, at most.
pub const BECAUSE: usize = 3;

/// A candidate's total and its contributions as `(amount, history position)`.
type Tally = (f64, Vec<(f64, usize)>);

#[derive(Clone, Debug, PartialEq)]
pub struct Scored {
    pub item: Arc<str>,
    pub score: f64,
    pub because: Vec<Arc<str>>,
}

/// The top `limit` candidates for `history` (`(item, weight)`, most recent first).
/// `neighbors(item)` gives an item's published list as `(neighbour, score)` pairs;
/// `excluded(item)` says whether the user touched it.
pub fn combine<N, L>(
    history: &[(Arc<str>, f64)],
    neighbors: N,
    excluded: impl Fn(&str) -> bool,
    recency: f64,
    limit: usize,
) -> Vec<Scored>
where
    N: Fn(&str) -> Option<L>,
    L: AsRef<[(String, f64, i64)]>,
{
    let mut scores: HashMap<Arc<str>, Tally> = HashMap::new();
    let mut factor = 1.0;
    for (p, (item, weight)) in history.iter().enumerate() {
        if let Some(list) = neighbors(item) {
            for (neighbor, s, _) in list.as_ref() {
                if excluded(neighbor) {
                    continue;
                }
                let amount = weight * factor * s;
                let entry = scores.entry(Arc::from(neighbor.as_str())).or_default();
                entry.0 += amount;
                entry.1.push((amount, p));
            }
        }
        factor *= recency;
    }
    let mut ranked: Vec<(Arc<str>, Tally)> = scores.into_iter().filter(|(_, (total, _))| *total > 0.0).collect();
    ranked.sort_by(|a, b| b.1.0.total_cmp(&a.1.0).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(limit);
    ranked
        .into_iter()
        .map(|(item, (score, mut parts))| {
            parts.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let because = parts.iter().take(BECAUSE).map(|(_, p)| history[*p].0.clone()).collect();
            Scored { item, score, because }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists(of: &[(&str, &[(&str, f64)])]) -> HashMap<String, Vec<(String, f64, i64)>> {
        of.iter().map(|(i, l)| (i.to_string(), l.iter().map(|(n, s)| (n.to_string(), *s, 1)).collect())).collect()
    }

    fn history(items: &[&str]) -> Vec<(Arc<str>, f64)> {
        items.iter().map(|i| (Arc::from(*i), 1.0)).collect()
    }

    #[test]
    fn recent_items_weigh_more_and_because_names_the_largest_contributions() {
        let l = lists(&[("a", &[("x", 0.5), ("y", 0.4)]), ("b", &[("y", 0.5), ("z", 0.9)])]);
        let h = history(&["a", "b"]);
        let got = combine(&h, |i| l.get(i), |_| false, 0.5, 10);
        // x = 0.5, y = 0.4 + 0.5·0.5 = 0.65, z = 0.5·0.9 = 0.45.
        let names: Vec<&str> = got.iter().map(|s| &*s.item).collect();
        assert_eq!(names, ["y", "x", "z"]);
        assert!((got[0].score - 0.65).abs() < 1e-12);
        assert_eq!(got[0].because, [Arc::from("a"), Arc::from("b")]);
        assert_eq!(got[2].because, [Arc::from("b")]);
    }

    #[test]
    fn excluded_items_never_appear_and_ties_go_by_id() {
        let l = lists(&[("a", &[("b", 0.9), ("q", 0.3), ("p", 0.3)])]);
        let h = history(&["a"]);
        let got = combine(&h, |i| l.get(i), |i| i == "b", 0.8, 10);
        let names: Vec<&str> = got.iter().map(|s| &*s.item).collect();
        assert_eq!(names, ["p", "q"]);
        assert_eq!(combine(&h, |i| l.get(i), |_| false, 0.8, 1).len(), 1);
    }

    #[test]
    fn no_history_or_no_lists_give_nothing() {
        let l = lists(&[]);
        assert!(combine(&history(&["a"]), |i| l.get(i), |_| false, 0.8, 10).is_empty());
        assert!(combine(&[], |i| l.get(i), |_| false, 0.8, 10).is_empty());
    }
}
