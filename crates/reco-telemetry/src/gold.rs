//! Metrics of the gold job (CONTRACTS §7).

use std::{
    sync::atomic::AtomicU64,
    time::{SystemTime, UNIX_EPOCH},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::silver::Freshness;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Table {
    table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Input {
    table: String,
    partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Window {
    window: String,
}

#[derive(Debug)]
pub struct GoldMetrics {
    events_in: Family<Table, Counter>,
    late_events: Family<Table, Counter>,
    neighbors_late_events: Family<Table, Counter>,
    beyond_horizon: Family<Table, Counter>,
    versions_consumed: Family<Table, Counter>,
    silver_version: Family<Table, Gauge>,
    windows_published: Family<Window, Counter>,
    windows_republished: Family<Window, Counter>,
    windows_provisional: Family<Window, Counter>,
    last_publish: Family<Window, Gauge<f64, AtomicU64>>,
    watermark: Gauge<f64, AtomicU64>,
    input_watermark: Family<Input, Gauge<f64, AtomicU64>>,
    state_entries: Gauge,
    cycle_duration: Histogram,
    checkpoint_duration: Histogram,
    freshness: Freshness,
}

fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

impl GoldMetrics {
    pub(crate) fn register(r: &mut Registry) -> Self {
        let m = Self::new();
        m.register_inputs(r);
        m.register_publishing(r);
        r.register_collector(Box::new(m.freshness.clone()));
        m
    }

    fn new() -> Self {
        let buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
        GoldMetrics {
            events_in: Family::default(),
            late_events: Family::default(),
            neighbors_late_events: Family::default(),
            beyond_horizon: Family::default(),
            versions_consumed: Family::default(),
            silver_version: Family::default(),
            windows_published: Family::default(),
            windows_republished: Family::default(),
            windows_provisional: Family::default(),
            last_publish: Family::default(),
            watermark: Gauge::default(),
            input_watermark: Family::default(),
            state_entries: Gauge::default(),
            cycle_duration: Histogram::new(buckets),
            checkpoint_duration: Histogram::new(buckets),
            freshness: Freshness::new(
                "reco_gold_freshness_seconds",
                "Now minus the end of the newest window published, per gold table",
            ),
        }
    }

    /// What gold reads: events counted, late and beyond the horizon, silver versions.
    fn register_inputs(&self, r: &mut Registry) {
        r.register(
            "reco_gold_events_in",
            "Silver rows counted by the gold job, by silver table",
            self.events_in.clone(),
        );
        r.register(
            "reco_gold_late_events",
            "Events that arrived after a window they belong to was published (it is published again), by table",
            self.late_events.clone(),
        );
        r.register(
            "reco_gold_neighbors_late_events",
            "Events that reached the item-neighbour counts after the watermark had passed them (applied in arrival order), by table",
            self.neighbors_late_events.clone(),
        );
        r.register(
            "reco_gold_beyond_horizon_events",
            "Events older than the state horizon, not counted, by table",
            self.beyond_horizon.clone(),
        );
        r.register(
            "reco_gold_silver_versions_consumed",
            "Silver table versions (Delta commits or batch-log entries) read, by table",
            self.versions_consumed.clone(),
        );
        r.register(
            "reco_gold_silver_version",
            "Newest silver table version read, by table",
            self.silver_version.clone(),
        );
    }

    /// What gold publishes and how: windows, watermarks, state, cycle and checkpoint times.
    fn register_publishing(&self, r: &mut Registry) {
        r.register(
            "reco_gold_windows_published",
            "Window row sets written (first publications and re-publications), by window length",
            self.windows_published.clone(),
        );
        r.register(
            "reco_gold_windows_republished",
            "Windows written again because late events changed them, by window length",
            self.windows_republished.clone(),
        );
        r.register(
            "reco_gold_windows_provisional",
            "Windows published before the watermark passed their end (all input idle, or shutdown), by window length",
            self.windows_provisional.clone(),
        );
        r.register(
            "reco_gold_last_publish_timestamp_seconds",
            "Wall-clock time of the last window publication, by window length",
            self.last_publish.clone(),
        );
        r.register(
            "reco_gold_watermark_seconds",
            "Event-time watermark of the job (minimum over active inputs), seconds since the epoch",
            self.watermark.clone(),
        );
        r.register(
            "reco_gold_input_watermark_seconds",
            "Event-time watermark of one input (a silver table's Kafka partition), seconds since the epoch",
            self.input_watermark.clone(),
        );
        r.register("reco_gold_state_entries", "Window state size: items × panes held", self.state_entries.clone());
        r.register(
            "reco_gold_cycle_duration_seconds",
            "Time of one read → count → publish cycle",
            self.cycle_duration.clone(),
        );
        r.register(
            "reco_gold_checkpoint_duration_seconds",
            "Time to write one state checkpoint",
            self.checkpoint_duration.clone(),
        );
    }

    /// Creates the per-window and per-table series at 0 before anything happens, so dashboards
    /// and alerts see "none yet" rather than "no data".
    pub fn known(&self, windows: &[&str], tables: &[&str]) {
        for window in windows {
            let label = Window { window: (*window).to_owned() };
            let _ = self.windows_published.get_or_create(&label);
            let _ = self.windows_republished.get_or_create(&label);
            let _ = self.windows_provisional.get_or_create(&label);
        }
        for table in tables {
            let label = Table { table: (*table).to_owned() };
            let _ = self.events_in.get_or_create(&label);
            let _ = self.late_events.get_or_create(&label);
            let _ = self.beyond_horizon.get_or_create(&label);
        }
    }

    /// Events read from `table`: counted, late (re-opening windows) and beyond the horizon.
    pub fn events(&self, table: &str, counted: u64, late: u64, beyond_horizon: u64) {
        let label = Table { table: table.to_owned() };
        self.events_in.get_or_create(&label).inc_by(counted);
        self.late_events.get_or_create(&label).inc_by(late);
        self.beyond_horizon.get_or_create(&label).inc_by(beyond_horizon);
    }

    /// Events of `table` the item-neighbour counts applied after the watermark had passed them.
    pub fn neighbors_late(&self, table: &str, late: u64) {
        self.neighbors_late_events.get_or_create(&Table { table: table.to_owned() }).inc_by(late);
    }

    pub fn silver_versions(&self, table: &str, consumed: u64, latest: i64) {
        let label = Table { table: table.to_owned() };
        self.versions_consumed.get_or_create(&label).inc_by(consumed);
        self.silver_version.get_or_create(&label).set(latest);
    }

    /// A window of `window` length ending at `end_us` was written to `table`: complete, or
    /// provisional (before the watermark passed its end).
    pub fn published(&self, window: &str, table: &str, end_us: i64, republished: bool, complete: bool) {
        let label = Window { window: window.to_owned() };
        self.windows_published.get_or_create(&label).inc();
        // Created at zero with the first publication, so "none of these" is a series.
        let republications = self.windows_republished.get_or_create(&label);
        if republished {
            republications.inc();
        }
        let provisional = self.windows_provisional.get_or_create(&label);
        if !complete {
            provisional.inc();
            return;
        }
        self.last_publish.get_or_create(&label).set(now_secs());
        self.freshness.observe(table, end_us as f64 / 1e6);
    }

    /// The watermark of one input; `None` before it has an event.
    pub fn input_watermark(&self, table: &str, partition: i32, watermark_us: Option<i64>) {
        if let Some(w) = watermark_us {
            self.input_watermark.get_or_create(&Input { table: table.to_owned(), partition }).set(w as f64 / 1e6);
        }
    }

    pub fn state(&self, watermark_us: Option<i64>, entries: usize) {
        if let Some(w) = watermark_us {
            self.watermark.set(w as f64 / 1e6);
        }
        self.state_entries.set(entries as i64);
    }

    pub fn cycle(&self, seconds: f64) {
        self.cycle_duration.observe(seconds);
    }

    pub fn checkpoint(&self, seconds: f64) {
        self.checkpoint_duration.observe(seconds);
    }
}
