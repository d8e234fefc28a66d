//! Trending as a gold aggregate: views and clicks into the sliding-window core
//! (`window.rs`), due windows into the `trending_now_<window>` tables, its checkpoint (the
//! manifest fields and pane file the gold job has always written, so existing lakes resume).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use reco_core::EventType;
use reco_lake::{
    deltalake::{
        arrow::{
            array::{ArrayRef, AsArray, Int64Builder, RecordBatch, StringBuilder},
            datatypes::{DataType, Field, Int64Type, Schema},
        },
        parquet::{arrow::ArrowWriter, basic::Compression, file::properties::WriterProperties},
    },
    gold::{RowSet, TrendingRow, WindowRows, table_name},
    read::SilverEvent,
};
use reco_telemetry::Telemetry;
use serde_json::{Map, Value, json};
use tracing::info;

use crate::{
    Error, GoldConfig, Result,
    aggregate::{Aggregate, Mode, Publication, Recorded, Saved},
    watermark::Watermarks,
    window::{Config, RankedWindow, Snapshot, Trending},
};

const SOURCES: [EventType; 2] = [EventType::View, EventType::Click];

pub(crate) struct TrendingAggregate {
    core: Trending,
    /// Windows that ended this long before the watermark leave the tables.
    retention: Option<Duration>,
    telemetry: Arc<Telemetry>,
    mode: Mode,
}

impl TrendingAggregate {
    pub(crate) fn new(config: &GoldConfig, telemetry: &Arc<Telemetry>, mode: Mode) -> TrendingAggregate {
        let mut window = config.window.clone();
        if matches!(mode, Mode::Backfill { .. }) {
            // A backfill counts everything in range, however far behind silver's newest event.
            window.horizon_us = i64::MAX / 4;
        }
        TrendingAggregate {
            core: Trending::new(window),
            retention: config.retention,
            telemetry: telemetry.clone(),
            mode,
        }
    }

    fn longest(&self) -> i64 {
        self.core.config().windows.iter().map(|w| w.length_us).max().unwrap_or(0)
    }

    /// One publication per window length that has results (`every`: per window length), each
    /// window's rows stamped with one `computed_at`.
    fn publications(
        &self,
        due: Vec<RankedWindow>,
        every: bool,
        clear: impl Fn(i64) -> Option<(i64, i64)>,
    ) -> Result<Vec<Publication>> {
        let computed_at = crate::job::now_us();
        let mut by_window: BTreeMap<&'static str, Vec<RankedWindow>> = BTreeMap::new();
        for r in due {
            by_window.entry(r.window).or_default().push(r);
        }
        let mut out = Vec::new();
        for spec in &self.core.config().windows {
            let results = by_window.remove(spec.name).unwrap_or_default();
            if results.is_empty() && !every {
                continue;
            }
            let clear = clear(spec.length_us);
            let sets =
                gold_windows(&results, computed_at).into_iter().map(RowSet::try_from).collect::<Result<_, _>>()?;
            let (window, table) = (spec.name, table_name(spec.name));
            let notes: Vec<(i64, bool, bool)> = results.iter().map(|r| (r.end_us, r.republished, r.complete)).collect();
            let report_table = table.clone();
            out.push(Publication {
                table,
                label: window.to_owned(),
                sets,
                clear,
                report: Box::new(move |telemetry: &Telemetry| {
                    for (end, republished, complete) in &notes {
                        telemetry.gold.published(window, &report_table, *end, *republished, *complete);
                    }
                    info!(
                        table = report_table,
                        windows = notes.len(),
                        republished = notes.iter().filter(|n| n.1).count(),
                        provisional = notes.iter().filter(|n| !n.2).count(),
                        "gold windows published"
                    );
                }),
            });
        }
        Ok(out)
    }
}

impl Aggregate for TrendingAggregate {
    fn name(&self) -> &'static str {
        "trending"
    }

    fn sources(&self) -> &'static [EventType] {
        &SOURCES
    }

    fn needs_users(&self) -> bool {
        false
    }

    fn tables(&self) -> Vec<String> {
        self.core.config().windows.iter().map(|w| table_name(w.name)).collect()
    }

    fn watermarks(&mut self) -> &mut Watermarks {
        self.core.watermarks_mut()
    }

    fn record(&mut self, source: EventType, input: usize, event: &SilverEvent<'_>, now_us: i64) -> Recorded {
        let t = event.event_time_us;
        if let Mode::Backfill { from_us, to_us } = self.mode {
            // Every event moves its input's watermark, in range or not: the range's windows are
            // complete when all of silver is past them. Windows starting in [from, to) hold
            // events in [from, to + longest).
            if !(from_us..to_us + self.longest()).contains(&t) {
                self.core.watermarks_mut().observe(input, t, now_us);
                return Recorded::OutOfRange;
            }
        }
        self.core.record(input, event.item_id, source, t, now_us)
    }

    fn counted(&self, telemetry: &Telemetry, table: &str, rows: u64, late: u64, beyond: u64) {
        telemetry.gold.events(table, rows.saturating_sub(beyond), late, beyond);
    }

    fn advance(&mut self, now_us: i64) -> Result<Vec<Publication>> {
        let due = self.core.advance(now_us);
        let watermark = self.core.watermark_us();
        self.telemetry.gold.state(watermark, self.core.state_size());
        for (input, w) in self.core.watermarks().per_input() {
            self.telemetry.gold.input_watermark(&reco_lake::silver_key(&input.table), input.partition, w);
        }
        if due.is_empty() {
            return Ok(Vec::new());
        }
        // Windows ending before `expire_before` leave in the same commit that publishes new ones;
        // the table is cleared by window start, and all its windows have one length.
        let expire_before = self.retention.zip(watermark).map(|(r, w)| w.saturating_sub(r.as_micros() as i64));
        self.publications(due, false, |length| expire_before.map(|end| (i64::MIN, end.saturating_sub(length))))
    }

    fn stopping(&mut self) -> Result<Vec<Publication>> {
        // What the input holds beyond the watermark stays readable (`?provisional=true`) while
        // the job is down; the next run publishes those windows again as they complete.
        let open = self.core.take_provisional();
        self.publications(open, false, |_| None)
    }

    fn finish_backfill(&mut self, now_us: i64) -> Result<Vec<Publication>> {
        let Mode::Backfill { from_us, to_us } = self.mode else { return self.advance(now_us) };
        for source in SOURCES {
            self.core.watermarks_mut().hold_table(source.topic(), now_us);
        }
        let mut results = self.core.advance(now_us);
        results.extend(self.core.provisional());
        results.retain(|r| (from_us..to_us).contains(&r.start_us));
        // Windows in range that the recomputation does not produce are removed.
        self.publications(results, true, |_| Some((from_us, to_us)))
    }

    fn backfill_reads(&self) -> Option<(i64, i64)> {
        match self.mode {
            Mode::Backfill { from_us, to_us } => Some((from_us, to_us + self.longest())),
            Mode::Job => None,
        }
    }

    fn follow_job(&mut self, job: &Map<String, Value>) {
        let state: Option<Snapshot> = job.get("state").and_then(|s| serde_json::from_value(s.clone()).ok());
        let lateness = self.core.config().lateness_us;
        if let Some(w) = state.and_then(|s| s.watermark_us.or(s.max_event_us.map(|m| m - lateness))) {
            self.core.watermarks_mut().limit(w);
        }
    }

    fn checkpoint_dir(&self) -> &'static str {
        // Where the gold job kept its checkpoints before it hosted several aggregates.
        "gold"
    }

    fn files(&self) -> &'static [(&'static str, &'static str, &'static str)] {
        &[("panes_file", "panes", "parquet")]
    }

    fn save(&self) -> Result<Saved> {
        let mut body = Map::new();
        body.insert("pane_us".into(), json!(self.core.config().pane_us));
        body.insert("windows".into(), json!(scheme(self.core.config())));
        body.insert("state".into(), serde_json::to_value(self.core.snapshot()).map_err(checkpoint)?);
        Ok(Saved { body, files: vec![("panes_file", write_panes(&self.core)?)] })
    }

    fn restore(&mut self, saved: Saved, now_us: i64) -> Result<()> {
        let config = self.core.config().clone();
        let pane_us = saved.body.get("pane_us").and_then(Value::as_i64);
        let windows: Option<Vec<(String, i64, i64)>> =
            saved.body.get("windows").and_then(|w| serde_json::from_value(w.clone()).ok());
        if pane_us != Some(config.pane_us) || windows.as_ref() != Some(&scheme(&config)) {
            return Err(Error::Checkpoint(format!(
                "it was made with panes of {pane_us:?} µs and windows {windows:?}; the configuration now has {} µs \
                 and {:?}. Move the checkpoint folder away and run `reco gold backfill` to recompute with the new scheme",
                config.pane_us,
                scheme(&config)
            )));
        }
        let snapshot: Snapshot =
            serde_json::from_value(saved.body.get("state").cloned().unwrap_or_default()).map_err(checkpoint)?;
        let bytes = saved.files.into_iter().find(|(f, _)| *f == "panes_file").map(|(_, b)| b).unwrap_or_default();
        let panes = read_panes(bytes.into())?;
        self.core = Trending::restore(config, snapshot, panes, now_us).map_err(Error::Checkpoint)?;
        Ok(())
    }

    fn state_size(&self) -> usize {
        self.core.state_size()
    }
}

fn checkpoint(e: impl std::fmt::Display) -> Error {
    Error::Checkpoint(e.to_string())
}

/// `(name, length, slide)` of each window: a checkpoint of another scheme cannot resume.
fn scheme(config: &Config) -> Vec<(String, i64, i64)> {
    config.windows.iter().map(|w| (w.name.to_owned(), w.length_us, w.slide_us)).collect()
}

/// Converts window results to gold rows, stamped with one `computed_at`.
pub(crate) fn gold_windows(results: &[RankedWindow], computed_at_us: i64) -> Vec<WindowRows> {
    results
        .iter()
        .map(|r| WindowRows {
            start_us: r.start_us,
            rows: r
                .rows
                .iter()
                .map(|row| TrendingRow {
                    window_start_us: r.start_us,
                    window_end_us: r.end_us,
                    item_id: row.item_id.clone(),
                    views: row.views as i64,
                    clicks: row.clicks as i64,
                    score: row.score,
                    rank: row.rank as i32,
                    complete: r.complete,
                    computed_at_us,
                })
                .collect(),
        })
        .collect()
}

fn panes_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("pane_start", DataType::Int64, false),
        Field::new("item_id", DataType::Utf8, false),
        Field::new("views", DataType::Int64, false),
        Field::new("clicks", DataType::Int64, false),
    ]))
}

fn write_panes(trending: &Trending) -> Result<Vec<u8>> {
    let props = WriterProperties::builder().set_compression(Compression::ZSTD(Default::default())).build();
    let mut writer = ArrowWriter::try_new(Vec::new(), panes_schema(), Some(props)).map_err(Error::arrow)?;
    let mut panes = trending.panes().peekable();
    while panes.peek().is_some() {
        let (mut p, mut i, mut v, mut c) =
            (Int64Builder::new(), StringBuilder::new(), Int64Builder::new(), Int64Builder::new());
        for (pane, item, views, clicks) in panes.by_ref().take(64 * 1024) {
            p.append_value(pane);
            i.append_value(item);
            v.append_value(views as i64);
            c.append_value(clicks as i64);
        }
        let columns: Vec<ArrayRef> =
            vec![Arc::new(p.finish()), Arc::new(i.finish()), Arc::new(v.finish()), Arc::new(c.finish())];
        let batch = RecordBatch::try_new(panes_schema(), columns).map_err(Error::arrow)?;
        writer.write(&batch).map_err(Error::arrow)?;
    }
    writer.into_inner().map_err(Error::arrow)
}

fn read_panes(bytes: reco_lake::bytes::Bytes) -> Result<Vec<(i64, String, u64, u64)>> {
    if bytes.is_empty() {
        return Err(Error::Checkpoint("its pane file is missing".into()));
    }
    let batches = reco_lake::read::read_parquet_bytes(bytes, &[])?;
    let mut out = Vec::new();
    for b in batches {
        let col = |i: usize| b.column(i).clone();
        let (p, item, v, c) = (col(0), col(1), col(2), col(3));
        let (p, item) = (p.as_primitive::<Int64Type>(), item.as_string::<i32>());
        let (v, c) = (v.as_primitive::<Int64Type>(), c.as_primitive::<Int64Type>());
        for r in 0..b.num_rows() {
            out.push((p.value(r), item.value(r).to_owned(), v.value(r) as u64, c.value(r) as u64));
        }
    }
    Ok(out)
}
