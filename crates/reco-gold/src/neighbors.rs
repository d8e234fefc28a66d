//! Item neighbours as a gold aggregate: silver views, clicks and ratings into the co-visitation
//! core (`covisit.rs`), the lists that changed into the `item_neighbors` table, a bucket of
//! items per data file.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use reco_core::EventType;
use reco_lake::{
    gold::{
        RowSet,
        neighbors::{NeighborRow, TABLE, batch, bucket_of},
    },
    read::SilverEvent,
};
use reco_telemetry::Telemetry;
use serde_json::{Map, Value};
use tracing::info;

use crate::{
    Error, GoldConfig, Result,
    aggregate::{Aggregate, Publication, Recorded, Saved},
    covisit::{Action, CoVisits, Config, Interaction, State},
    watermark::{InputMark, Watermarks},
};

const SOURCES: [EventType; 3] = [EventType::View, EventType::Click, EventType::Rating];

/// Least processing time between two publications: a busy cycle every 200 ms would otherwise
/// rewrite the same buckets five times a second.
const PUBLISH_EVERY_US: i64 = 1_000_000;

pub(crate) struct NeighborsAggregate {
    core: CoVisits,
    marks: Watermarks,
    lateness_us: i64,
    idle_timeout_us: i64,
    buckets: u32,
    /// Per bucket, the items that have a list in the table.
    listed: BTreeMap<i32, BTreeSet<Arc<str>>>,
    /// Processing time of the last publication.
    published_at_us: Option<i64>,
    /// The events held beyond the watermark were published provisionally (every input idle)
    /// and nothing has changed since.
    provisional: bool,
}

impl NeighborsAggregate {
    pub(crate) fn new(config: &GoldConfig, neighbors: &Config) -> NeighborsAggregate {
        let (lateness_us, idle_timeout_us) = (config.window.lateness_us, config.window.idle_timeout_us);
        NeighborsAggregate {
            core: CoVisits::new(neighbors.clone()),
            marks: Watermarks::new(lateness_us, idle_timeout_us),
            lateness_us,
            idle_timeout_us,
            buckets: config.neighbor_buckets,
            listed: BTreeMap::new(),
            published_at_us: None,
            provisional: false,
        }
    }

    /// The buckets of the items whose list changed, rewritten whole: every listed item of each.
    fn publish_changed(&mut self, now_us: i64) -> Result<Vec<Publication>> {
        self.published_at_us = Some(now_us);
        let changed = self.core.take_changed().into_iter().map(|(item, list)| (item, list.len())).collect();
        publication(&mut self.listed, self.buckets, &self.core, changed)
    }

    /// Every input is idle with events held beyond the watermark: publishes the lists as if
    /// the watermark had passed them, from a copy of the state. The state itself applies them
    /// only when the watermark does, so what it holds never depends on when inputs went idle
    /// (nor on a restart in between), and the lists published once the input is drained are
    /// the recount of every event in order.
    fn publish_provisional(&mut self, now_us: i64) -> Result<Vec<Publication>> {
        self.published_at_us = Some(now_us);
        self.provisional = true;
        let mut view = self.core.clone();
        view.flush();
        let changed = view.take_changed().into_iter().map(|(item, list)| (item, list.len())).collect();
        publication(&mut self.listed, self.buckets, &view, changed)
    }
}

/// The publication of the buckets holding `changed` items (`(item, list length)`), every listed
/// item of each bucket read from `core`.
fn publication(
    listed: &mut BTreeMap<i32, BTreeSet<Arc<str>>>,
    buckets: u32,
    core: &CoVisits,
    changed: Vec<(Arc<str>, usize)>,
) -> Result<Vec<Publication>> {
    let mut dirty = BTreeSet::new();
    for (item, len) in changed {
        let bucket = bucket_of(&item, buckets);
        let listed = listed.entry(bucket).or_default();
        if len == 0 {
            listed.remove(&item);
        } else {
            listed.insert(item);
        }
        dirty.insert(bucket);
    }
    if dirty.is_empty() {
        return Ok(Vec::new());
    }
    let computed_at_us = crate::job::now_us();
    let (mut sets, mut items) = (Vec::new(), 0);
    for bucket in dirty {
        let mut rows = Vec::new();
        for item in listed.get(&bucket).into_iter().flatten() {
            items += 1;
            rows.extend(core.neighbors(item).into_iter().enumerate().map(|(rank, n)| NeighborRow {
                item_id: item.to_string(),
                neighbor_id: n.item.to_string(),
                score: n.score,
                support: i64::from(n.support),
                rank: rank as i32 + 1,
                computed_at_us,
                bucket,
            }));
        }
        sets.push(RowSet { key: i64::from(bucket), batch: batch(&rows).map_err(Error::arrow)? });
    }
    let (buckets, held) = (sets.len(), core.state_size());
    Ok(vec![Publication {
        table: TABLE.to_owned(),
        label: TABLE.to_owned(),
        sets,
        clear: None,
        report: Box::new(move |_| {
            info!(
                table = TABLE,
                buckets,
                items,
                held_items = held.items,
                held_pairs = held.pairs,
                "item neighbours published"
            );
        }),
    }])
}

impl Aggregate for NeighborsAggregate {
    fn name(&self) -> &'static str {
        "item_neighbors"
    }

    fn sources(&self) -> &'static [EventType] {
        &SOURCES
    }

    fn needs_users(&self) -> bool {
        true
    }

    fn tables(&self) -> Vec<String> {
        vec![TABLE.to_owned()]
    }

    fn watermarks(&mut self) -> &mut Watermarks {
        &mut self.marks
    }

    fn record(&mut self, source: EventType, input: usize, event: &SilverEvent<'_>, now_us: i64) -> Recorded {
        let action = match source {
            EventType::View => Action::View,
            EventType::Click => Action::Click,
            EventType::Rating => Action::Rating(event.rating.unwrap_or(f64::NEG_INFINITY)),
        };
        let watermark = self.marks.current();
        self.marks.observe(input, event.event_time_us, now_us);
        let interaction = Interaction {
            user: event.user_id.to_owned(),
            item: event.item_id.to_owned(),
            session: event.session_id.map(str::to_owned),
            action,
            time_us: event.event_time_us,
        };
        self.provisional = false;
        if self.core.record(interaction, watermark) { Recorded::Late } else { Recorded::OnTime }
    }

    fn counted(&self, telemetry: &Telemetry, table: &str, _rows: u64, late: u64, _beyond: u64) {
        // Created at zero with the first rows read: "none late" is a series.
        telemetry.gold.neighbors_late(table, late);
    }

    fn advance(&mut self, now_us: i64) -> Result<Vec<Publication>> {
        if let Some(w) = self.marks.update(now_us) {
            let held = self.core.pending();
            self.core.advance(w);
            self.provisional &= self.core.pending() == held;
        }
        let idle = self.marks.all_idle(now_us);
        if idle && self.core.pending() > 0 {
            // Nothing more is coming for now: what was posted last shows now (as trending
            // publishes its open windows provisional), not when traffic resumes.
            if self.provisional {
                return Ok(Vec::new());
            }
            return self.publish_provisional(now_us);
        }
        if !idle && self.published_at_us.is_some_and(|at| now_us - at < PUBLISH_EVERY_US) {
            return Ok(Vec::new());
        }
        self.provisional = false;
        self.publish_changed(now_us)
    }

    fn stopping(&mut self) -> Result<Vec<Publication>> {
        if self.provisional {
            // The table shows more than the state has applied; the checkpoint keeps the
            // rest, and the next job publishes it again once its inputs idle.
            return Ok(Vec::new());
        }
        self.publish_changed(crate::job::now_us())
    }

    fn checkpoint_dir(&self) -> &'static str {
        "gold_item_neighbors"
    }

    fn files(&self) -> &'static [(&'static str, &'static str, &'static str)] {
        &[("state_file", "state", "json")]
    }

    fn save(&self) -> Result<Saved> {
        let mut body = Map::new();
        body.insert("config".into(), serde_json::to_value(self.core.config()).map_err(checkpoint)?);
        body.insert("buckets".into(), self.buckets.into());
        body.insert("watermark_us".into(), serde_json::to_value(self.marks.current()).map_err(checkpoint)?);
        body.insert("inputs".into(), serde_json::to_value(self.marks.marks()).map_err(checkpoint)?);
        let state = serde_json::to_vec(&self.core.state()).map_err(checkpoint)?;
        Ok(Saved { body, files: vec![("state_file", state)] })
    }

    fn restore(&mut self, saved: Saved, now_us: i64) -> Result<()> {
        let config = self.core.config().clone();
        let saved_config: Option<Config> =
            saved.body.get("config").and_then(|c| serde_json::from_value(c.clone()).ok());
        let buckets = saved.body.get("buckets").and_then(Value::as_u64);
        if saved_config.as_ref() != Some(&config) || buckets != Some(u64::from(self.buckets)) {
            return Err(Error::Checkpoint(format!(
                "it was made with neighbour settings {saved_config:?} and {buckets:?} buckets; they are now {config:?} \
                 and {} buckets. Move the checkpoint folder and the item_neighbors table away to recompute",
                self.buckets
            )));
        }
        let watermark = saved.body.get("watermark_us").and_then(Value::as_i64);
        let inputs: Vec<InputMark> =
            serde_json::from_value(saved.body.get("inputs").cloned().unwrap_or_default()).map_err(checkpoint)?;
        self.marks = Watermarks::restore(self.lateness_us, self.idle_timeout_us, watermark, inputs, now_us);
        let bytes = saved.files.into_iter().find(|(f, _)| *f == "state_file").map(|(_, b)| b).unwrap_or_default();
        let state: State = serde_json::from_slice(&bytes).map_err(checkpoint)?;
        self.core = CoVisits::restore(config, state).map_err(Error::Checkpoint)?;
        self.listed.clear();
        for item in self.core.items().filter(|i| !self.core.neighbors(i).is_empty()).cloned().collect::<Vec<_>>() {
            self.listed.entry(bucket_of(&item, self.buckets)).or_default().insert(item);
        }
        Ok(())
    }

    fn state_size(&self) -> usize {
        let held = self.core.state_size();
        held.pairs + held.users
    }
}

fn checkpoint(e: impl std::fmt::Display) -> Error {
    Error::Checkpoint(e.to_string())
}
