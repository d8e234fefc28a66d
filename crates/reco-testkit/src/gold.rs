//! An independent check of the gold tables: a brute-force recount of silver by the CONTRACTS §5
//! definition (every window `[s, s+L)` on the slide grid that holds an event), and a reader
//! of the published tables that lists their data files itself and fails if any window has
//! more than one row set.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use reco_lake::{CommitOutcome, Format, Lake, SilverRow, StreamBatch, TopicTables, gold::read_gold, read::read_silver};

const MIN_US: i64 = 60_000_000;

/// `(name, length, slide)` of the default windows, in microseconds.
pub const WINDOWS: [(&str, i64, i64); 2] = [("1h", 3_600_000_000, 300_000_000), ("24h", 86_400_000_000, 900_000_000)];

/// Per `(window, start)`: `(item, views, clicks, score, rank)` in rank order.
pub type Windows = BTreeMap<(String, i64), Vec<(String, i64, i64, f64, i32)>>;

/// `(item_id, is_click, event_time_us)`.
pub type Input = (String, bool, i64);

/// Every window holding any of `events`, top `n` by `1·views + 3·clicks`, ties by item.
pub fn recount(events: &[Input], n: usize) -> Windows {
    let mut out = Windows::new();
    for (name, length, slide) in WINDOWS {
        let mut per_window: BTreeMap<i64, HashMap<&str, (i64, i64)>> = BTreeMap::new();
        for (item, click, t) in events {
            let mut s = t.div_euclid(slide) * slide;
            while s > t - length {
                let c = per_window.entry(s).or_default().entry(item.as_str()).or_default();
                if *click {
                    c.1 += 1
                } else {
                    c.0 += 1
                }
                s -= slide;
            }
        }
        for (start, counts) in per_window {
            let mut rows: Vec<_> =
                counts.into_iter().map(|(i, (v, c))| (i.to_owned(), v, c, v as f64 + 3.0 * c as f64, 0)).collect();
            rows.sort_by(|a, b| b.3.total_cmp(&a.3).then_with(|| a.0.cmp(&b.0)));
            rows.truncate(n);
            for (r, row) in rows.iter_mut().enumerate() {
                row.4 = r as i32 + 1;
            }
            out.insert((name.to_owned(), start), rows);
        }
    }
    out
}

/// The view and click events in the silver tables of `lake`.
pub async fn silver_events(lake: &Lake) -> Vec<Input> {
    let mut out = Vec::new();
    for (topic, click) in [("events_views", false), ("events_clicks", true)] {
        let mut tables = TopicTables::open(lake, topic, false).await.expect("open silver");
        let rows = read_silver(&tables.silver_files().await.expect("silver files")).expect("read silver");
        out.extend(rows.into_iter().map(|r| (r.item_id, click, r.event_time_us)));
    }
    out
}

/// What the gold tables of `lake` hold now. Panics if a window has two row sets.
pub async fn published(lake: &Lake) -> Windows {
    published_with_state(lake).await.0
}

/// [`published`], and the windows among them that are provisional (`complete = false`).
/// Panics if a window's rows disagree on `complete`.
pub async fn published_with_state(lake: &Lake) -> (Windows, BTreeSet<(String, i64)>) {
    let mut out = Windows::new();
    let mut provisional = BTreeSet::new();
    for (name, _, _) in WINDOWS {
        let key = format!("gold/trending_now_{name}");
        let files: Vec<reco_lake::DataFile> = match lake.format {
            Format::Delta => {
                if !reco_lake::exists(lake, &format!("{key}/_delta_log")).await.expect("list the lake") {
                    continue;
                }
                let table = lake.open_delta(lake.table_url(&key)).await.expect("open gold");
                let snapshot = table.snapshot().expect("gold snapshot");
                snapshot.log_data().iter().map(|f| lake.data_file(&format!("{key}/{}", f.path()))).collect()
            }
            Format::Parquet => std::fs::read_dir(lake.local_root().expect("a local lake").join(&key))
                .map(|d| {
                    d.flatten()
                        .map(|e| e.path())
                        .filter(|p| {
                            let n = p.file_name().unwrap().to_string_lossy();
                            n.ends_with(".parquet") && !n.starts_with('.')
                        })
                        .map(|p| reco_lake::DataFile::local(p, None))
                        .collect()
                })
                .unwrap_or_default(),
        };
        for file in files {
            let rows = read_gold(&file).expect("read gold file");
            let mut by_start: BTreeMap<i64, Vec<_>> = BTreeMap::new();
            let mut complete = BTreeMap::new();
            for r in rows {
                let c = *complete.entry(r.window_start_us).or_insert(r.complete);
                assert_eq!(c, r.complete, "window {name} {} mixes complete and provisional rows", r.window_start_us);
                by_start.entry(r.window_start_us).or_default().push((r.item_id, r.views, r.clicks, r.score, r.rank));
            }
            for (start, mut rows) in by_start {
                if !complete[&start] {
                    provisional.insert((name.to_owned(), start));
                }
                rows.sort_by_key(|r| r.4);
                let previous = out.insert((name.to_owned(), start), rows);
                assert!(previous.is_none(), "window {name} {start} has more than one row set");
            }
        }
    }
    (out, provisional)
}

/// `(item, is_click, event_time_us)`, as [`SilverWriter`] commits it.
pub type Event = (String, bool, i64);

/// Commits events straight into the silver tables, as the silver job would.
#[derive(Debug)]
pub struct SilverWriter {
    views: TopicTables,
    clicks: TopicTables,
    /// Next offset per (is_click, partition).
    next: BTreeMap<(bool, i32), i64>,
    /// The partition count of both topics each commit names, as silver's do (`None`: none).
    pub partitions: Option<i32>,
}

impl SilverWriter {
    pub async fn open(lake: &Lake) -> SilverWriter {
        SilverWriter {
            views: TopicTables::open(lake, "events_views", false).await.unwrap(),
            clicks: TopicTables::open(lake, "events_clicks", false).await.unwrap(),
            next: BTreeMap::new(),
            partitions: None,
        }
    }

    /// Commits `(item, is_click, time)` events as silver rows of Kafka partition 0, one
    /// commit per table.
    pub async fn commit(&mut self, events: &[(String, bool, i64)]) {
        self.commit_partition(0, events).await;
    }

    /// Commits `events` only to the views (`click = false`) or clicks table.
    pub async fn commit_table(&mut self, click: bool, partition: i32, events: &[(String, bool, i64)]) {
        let mine: Vec<_> = events.iter().filter(|e| e.1 == click).cloned().collect();
        self.commit_partition(partition, &mine).await;
    }

    /// Commits `events` as silver rows of Kafka `partition`, one commit per table.
    pub async fn commit_partition(&mut self, partition: i32, events: &[(String, bool, i64)]) {
        self.commit_partitions(&[(partition, events)]).await;
    }

    /// One commit per table holding the events of several partitions, as a silver batch does.
    pub async fn commit_partitions(&mut self, parts: &[(i32, &[Event])]) {
        for click in [false, true] {
            let mut rows = Vec::new();
            let mut offsets = BTreeMap::new();
            for (partition, events) in parts {
                let start = self.next.get(&(click, *partition)).copied();
                let mut offset = start.unwrap_or(0);
                for (item, _, t) in events.iter().filter(|e| e.1 == click) {
                    offset += 1;
                    rows.push(SilverRow {
                        event_id: format!("{click}-{partition}-{offset}"),
                        user_id: "u".into(),
                        item_id: item.clone(),
                        event_time_us: *t,
                        session_id: None,
                        rating: None,
                        kafka_partition: *partition,
                        kafka_offset: offset - 1,
                        ingested_at_us: 0,
                    });
                }
                if Some(offset) != start && offset > 0 {
                    offsets.insert(*partition, (start, offset));
                    self.next.insert((click, *partition), offset);
                }
            }
            if rows.is_empty() {
                continue;
            }
            let table = if click { &mut self.clicks } else { &mut self.views };
            let upstream = self.partitions.map(|n| reco_lake::Upstream {
                partitions: [("events_views".to_owned(), n), ("events_clicks".to_owned(), n)].into(),
                ..Default::default()
            });
            let batch = StreamBatch { silver: rows, deadletter: vec![], offsets, upstream };
            assert!(matches!(table.commit(batch).await.unwrap(), CommitOutcome::Committed(_)));
        }
    }
}

/// 3000 events over six hours from `base`, mostly in order: items with different
/// popularity, every fifth a click.
pub fn history(base: i64, seed: u64) -> Vec<(String, bool, i64)> {
    let mut next = crate::xorshift(seed);
    let mut events: Vec<_> = (0..3000)
        .map(|_| {
            let item = format!("m{}", (next() % 40).min(next() % 40));
            (item, next().is_multiple_of(5), base + (next() % (6 * 60 * MIN_US as u64)) as i64)
        })
        .collect();
    // Mostly in order with up to ~4 minutes of jitter (within the allowed lateness).
    let mut keyed: Vec<_> = events.drain(..).map(|e| (e.2 + (next() % (4 * MIN_US as u64)) as i64, e)).collect();
    keyed.sort_by_key(|k| k.0);
    keyed.into_iter().map(|(_, e)| e).collect()
}
