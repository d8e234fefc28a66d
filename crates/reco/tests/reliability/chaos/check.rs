//! The chaos checker. It trusts the driver's history only: what silver, gold and the dead-letter
//! tables hold is compared with recounts of the events the driver got a 202 for, never with
//! what the pipeline says it accepted.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use reco_lake::{Lake, TopicTables, read::read_deadletter};
use reco_testkit::{
    gold::{self, Windows, published_with_state},
    neighbors::{self, Lists, Step},
};

use super::driver::{History, Sent};
use crate::common::{TOP_N, silver_ids};

/// Watches the gold tables while the run goes on: each complete window's rows as first seen,
/// and every later sight of it with other rows (a complete window may change only through late
/// events, and the driver sends none).
#[derive(Debug, Default)]
pub struct Observed {
    pub reads: usize,
    pub complete: Windows,
    /// Complete windows seen later with other rows, with the first such sight.
    pub changed: BTreeMap<(String, i64), String>,
    /// Late and beyond-horizon events the gold jobs counted (`reco_gold_late_events_total` plus
    /// `reco_gold_neighbors_late_events_total`, `reco_gold_beyond_horizon_events_total`, summed
    /// over restarts), per job.
    pub late: BTreeMap<String, (Counted, Counted)>,
}

/// A counter summed across the restarts of the process exposing it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counted {
    last: f64,
    pub total: f64,
}

impl Counted {
    fn update(&mut self, value: f64) {
        // A smaller value is a restarted process counting from zero.
        self.total += if value < self.last { value } else { value - self.last };
        self.last = value;
    }
}

impl Observed {
    /// Late and beyond-horizon events counted by all gold jobs.
    pub fn late_events(&self) -> (f64, f64) {
        self.late.values().fold((0.0, 0.0), |(l, b), (x, y)| (l + x.total, b + y.total))
    }
}

/// Reads the gold jobs' late-event counters (`golds`: name → metrics address).
async fn scrape_late(golds: &[(String, String)], into: &Mutex<Observed>) {
    for (name, addr) in golds {
        let Ok(r) = reco_testkit::http::get(addr, "/metrics").await else { continue };
        let samples = reco_testkit::Samples::parse(&r.text());
        let sum = |metric: &str| samples.matching(metric, &[]).map(|s| s.value).sum::<f64>();
        let late = sum("reco_gold_late_events_total") + sum("reco_gold_neighbors_late_events_total");
        let beyond = sum("reco_gold_beyond_horizon_events_total");
        let mut observed = into.lock().unwrap();
        let entry = observed.late.entry(name.clone()).or_default();
        entry.0.update(late);
        entry.1.update(beyond);
    }
}

pub async fn observe(lake: Lake, golds: Vec<(String, String)>, stop: Arc<AtomicBool>, into: Arc<Mutex<Observed>>) {
    while !stop.load(Ordering::Relaxed) {
        scrape_late(&golds, &into).await;
        // A read can fail while a fault holds the lake (a full disk does not stop reads, but a
        // table being created can be half there): skip that sight, the next one counts.
        let seen = tokio::spawn({
            let lake = lake.clone();
            async move { published_with_state(&lake).await }
        })
        .await;
        if let Ok((windows, provisional)) = seen {
            let mut observed = into.lock().unwrap();
            observed.reads += 1;
            for (key, rows) in windows {
                if provisional.contains(&key) {
                    continue;
                }
                match observed.complete.get(&key) {
                    None => {
                        observed.complete.insert(key, rows);
                    }
                    Some(first) if *first != rows && !observed.changed.contains_key(&key) => {
                        let differ =
                            first.iter().zip(&rows).find(|(a, b)| a != b).map(|(a, b)| format!("{a:?} then {b:?}"));
                        let line = format!("{} rows then {}, first difference {differ:?}", first.len(), rows.len());
                        observed.changed.insert(key, line);
                    }
                    Some(_) => {}
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The acknowledged events as the recounts take them.
fn interactions(acked: &[Sent]) -> Vec<neighbors::Event> {
    acked
        .iter()
        .map(|e| neighbors::Event {
            user: e.user.clone(),
            item: e.item.clone(),
            session: None,
            kind: e.kind,
            time_us: e.time_us,
        })
        .collect()
}

/// The trending recount of the acknowledged views and clicks.
pub fn expected_windows(acked: &[Sent]) -> Windows {
    gold::recount(&neighbors::trending_inputs(&interactions(acked)), TOP_N)
}

/// The neighbour recount of every acknowledged event (none is late: see the driver).
pub fn expected_lists(acked: &[Sent]) -> Lists {
    let mut steps: Vec<Step> = interactions(acked).into_iter().map(Step::Event).collect();
    steps.push(Step::Advance(acked.iter().map(|e| e.time_us).max().unwrap_or(0)));
    neighbors::recount(&neighbors::Rules::default(), &steps)
}

/// Silver against the history.
#[derive(Debug, Default)]
pub struct SilverCheck {
    pub rows: usize,
    pub lost: usize,
    pub duplicated: usize,
    /// Refused events found in silver.
    pub refused_present: usize,
    /// Rows whose id the driver never had acknowledged (nor sent at all).
    pub unknown: usize,
}

pub async fn check_silver(lake: &Lake, history: &History) -> SilverCheck {
    let ids = silver_ids(lake).await;
    let acked: std::collections::HashSet<&str> = history.acked.iter().map(|e| e.id.as_str()).collect();
    SilverCheck {
        rows: ids.values().map(|n| *n as usize).sum(),
        lost: acked.iter().filter(|id| !ids.contains_key(**id)).count(),
        duplicated: ids.values().filter(|n| **n > 1).count(),
        refused_present: history.refused.iter().filter(|id| ids.contains_key(id.as_str())).count(),
        unknown: ids.keys().filter(|id| !acked.contains(id.as_str())).count(),
    }
}

/// Dead letters against the bad records the driver wrote: `(missing, duplicated, unexpected)`
/// and a few of the unexpected ones (reason, payload).
pub async fn check_deadletters(lake: &Lake, history: &History) -> ((usize, usize, usize), Vec<String>) {
    let mut found: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut examples = Vec::new();
    let acked: std::collections::HashSet<&str> = history.acked.iter().map(|e| e.id.as_str()).collect();
    let mut duplicates = 0;
    for (topic, rating) in [("events_views", false), ("events_clicks", false), ("events_ratings", true)] {
        if let Ok(mut t) = TopicTables::open(lake, topic, rating).await
            && let Ok(files) = t.deadletter_files().await
        {
            for row in read_deadletter(&files).expect("read dead letters") {
                let payload = row.payload.unwrap_or_default();
                // A retried request is written to Kafka again; silver keeps the first copy and
                // dead-letters the others as `duplicate` (CONTRACTS §4): expected for an
                // acknowledged event, whatever the number of copies.
                if row.error_kind == "duplicate" && acked_id(&payload).is_some_and(|id| acked.contains(id.as_str())) {
                    duplicates += 1;
                    continue;
                }
                if !history.bad_records.contains(&payload) && examples.len() < 3 {
                    let shown = String::from_utf8_lossy(&payload[..payload.len().min(160)]).into_owned();
                    examples.push(format!("{}: {} ({shown})", row.error_kind, row.error_message));
                }
                *found.entry(payload).or_default() += 1;
            }
        }
    }
    let missing = history.bad_records.iter().filter(|p| !found.contains_key(*p)).count();
    let duplicated = found.values().filter(|n| **n > 1).count();
    let unexpected = found.keys().filter(|p| !history.bad_records.contains(p)).count();
    examples.push(format!("{duplicates} copies of acknowledged events dead-lettered as duplicates"));
    ((missing, duplicated, unexpected), examples)
}

fn acked_id(payload: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    value["event_id"].as_str().map(str::to_owned)
}

/// Windows (or lists) that differ between `expected` and `got`, with a few examples.
pub fn differences<K: Ord + std::fmt::Debug + Clone, V: PartialEq>(
    expected: &BTreeMap<K, V>,
    got: &BTreeMap<K, V>,
    same: impl Fn(&V, &V) -> bool,
) -> (usize, Vec<K>) {
    let mut wrong: Vec<K> =
        expected.iter().filter(|(k, v)| !got.get(*k).is_some_and(|g| same(v, g))).map(|(k, _)| k.clone()).collect();
    wrong.extend(got.keys().filter(|k| !expected.contains_key(*k)).cloned());
    let examples = wrong.iter().take(3).cloned().collect();
    (wrong.len(), examples)
}
