//! What the gold job hosts: **aggregates** of silver rows in event-time order.
//!
//! The job (`job.rs`) reads what silver committed, hands each row to the aggregates that read
//! its table, moves their watermarks, writes what they say to publish and checkpoints their
//! state; an aggregate does no I/O. Trending (`trending.rs`) is one; adding another is
//! implementing [`Aggregate`] and listing it in [`hosted`] (docs/ARCHITECTURE.md, "Gold: adding
//! an aggregate").

use std::sync::Arc;

use reco_core::EventType;
use reco_lake::{gold::RowSet, read::SilverEvent};
use reco_telemetry::Telemetry;
use serde_json::{Map, Value};

use crate::{GoldConfig, Result, watermark::Watermarks};

/// What recording an event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    OnTime,
    /// Counted, and what was already published from it will be published again.
    Late,
    /// Older than the state horizon: not counted.
    BeyondHorizon,
    /// Outside the range a backfill recomputes: it moved the watermark only.
    OutOfRange,
}

/// Row sets for one gold table, written in one commit.
pub struct Publication {
    pub table: String,
    /// What the row sets are, for reports (`1h` for trending's hourly windows).
    pub label: String,
    pub sets: Vec<RowSet>,
    /// Row sets whose key is in this range leave the table in the same commit.
    pub clear: Option<(i64, i64)>,
    /// Run once the commit succeeded: the aggregate's metrics and log line.
    pub report: Box<dyn FnOnce(&Telemetry) + Send>,
}

impl std::fmt::Debug for Publication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publication").field("table", &self.table).field("sets", &self.sets.len()).finish()
    }
}

/// An aggregate's state in a checkpoint: a JSON body (merged into the manifest) and large
/// parts as separate files, named in the body under their field.
#[derive(Debug, Default)]
pub struct Saved {
    pub body: Map<String, Value>,
    /// `(field, bytes)`: the file's name goes into `body[field]`; see [`Aggregate::files`].
    pub files: Vec<(&'static str, Vec<u8>)>,
}

/// One kind of gold state built from silver rows. Rows arrive per silver commit, each table's
/// in commit order; [`Aggregate::advance`] follows every cycle's reads, so decisions that
/// depend on event-time progress (a window is complete, a co-visit can be applied) are taken
/// against the watermark the aggregate's own inputs agree on (`watermark.rs`), never against
/// another input's progress within the cycle.
pub trait Aggregate: Send + Sync {
    /// Names it in logs and metrics.
    fn name(&self) -> &'static str;

    /// The silver tables it reads: each partition of each is an input of its watermark.
    fn sources(&self) -> &'static [EventType];

    /// Whether it needs `user_id`, `session_id` and `rating` (read only when some aggregate does).
    fn needs_users(&self) -> bool;

    /// The gold tables it writes (their shapes are the lake's: `reco_lake::gold::shape`); the
    /// job opens them and fences them.
    fn tables(&self) -> Vec<String>;

    /// Its inputs' watermarks: the job registers inputs and tells it which are behind, empty
    /// or catching up.
    fn watermarks(&mut self) -> &mut Watermarks;

    /// One silver row of `source`, read from `input` at processing time `now_us`.
    fn record(&mut self, source: EventType, input: usize, event: &SilverEvent<'_>, now_us: i64) -> Recorded;

    /// The job handed it `rows` rows of silver `table` this cycle, of which it judged `late` late
    /// and `beyond` beyond its horizon: its metrics of what it counted.
    fn counted(&self, _telemetry: &Telemetry, _table: &str, _rows: u64, _late: u64, _beyond: u64) {}

    /// Moves the watermark; what to publish now. Also sets its metrics of state.
    fn advance(&mut self, now_us: i64) -> Result<Vec<Publication>>;

    /// The job is stopping: what should stay readable until it runs again.
    fn stopping(&mut self) -> Result<Vec<Publication>> {
        Ok(Vec::new())
    }

    /// A backfill read everything in range: what to publish, replacing what the range held
    /// (see `backfill.rs`).
    fn finish_backfill(&mut self, now_us: i64) -> Result<Vec<Publication>> {
        self.advance(now_us)
    }

    /// The event times a backfill must read for what it recomputes (`None`: all of silver).
    fn backfill_reads(&self) -> Option<(i64, i64)> {
        None
    }

    /// A backfill beside a running job: `job` is the body of the job's newest checkpoint of
    /// this aggregate; keep what it publishes behind the job's progress.
    fn follow_job(&mut self, _job: &Map<String, Value>) {}

    /// The folder of its checkpoints under `_checkpoints/`.
    fn checkpoint_dir(&self) -> &'static str;

    /// `(field, file name prefix, extension)` of each file its checkpoints hold besides the
    /// manifest.
    fn files(&self) -> &'static [(&'static str, &'static str, &'static str)];

    /// Its state, to checkpoint.
    fn save(&self) -> Result<Saved>;

    /// Restores a [`Aggregate::save`]d state; `now_us` counts as the last data of every input
    /// that had data, so a restart neither skips an input nor publishes early.
    fn restore(&mut self, saved: Saved, now_us: i64) -> Result<()>;

    /// Entries held: the size of its state, for metrics.
    fn state_size(&self) -> usize;
}

/// What the job runs for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The streaming job.
    Job,
    /// `reco gold backfill`: recompute what `[from, to)` (event time) publishes.
    Backfill { from_us: i64, to_us: i64 },
}

/// Every aggregate the gold job hosts, configured.
pub fn hosted(config: &GoldConfig, telemetry: &Arc<Telemetry>, mode: Mode) -> Vec<Box<dyn Aggregate>> {
    let mut out: Vec<Box<dyn Aggregate>> =
        vec![Box::new(crate::trending::TrendingAggregate::new(config, telemetry, mode))];
    // A time range means nothing to neighbour lists built from all of history: a backfill
    // recomputes windows only.
    if let (Some(neighbors), Mode::Job) = (&config.neighbors, mode) {
        out.push(Box::new(crate::neighbors::NeighborsAggregate::new(config, neighbors)));
    }
    out
}
