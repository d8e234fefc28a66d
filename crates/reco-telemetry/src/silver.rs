//! Metrics of the silver job (CONTRACTS §7).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{SystemTime, UNIX_EPOCH},
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{counter::Counter, family::Family, gauge::ConstGauge, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Topic {
    topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Table {
    table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicReason {
    topic: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicResult {
    topic: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicPartition {
    topic: String,
    partition: i32,
}

/// Why the silver job passed Kafka offsets without a record (`reco_silver_offsets_skipped`).
pub const SKIP_REASONS: [&str; 2] = ["retention", "gap"];

/// Newest event time written per table, for freshness computed at scrape time (so a stalled
/// job shows growing staleness rather than a frozen number).
#[derive(Debug, Clone)]
pub(crate) struct Freshness {
    name: &'static str,
    help: &'static str,
    newest: Arc<Mutex<HashMap<String, f64>>>,
}

impl Freshness {
    pub(crate) fn new(name: &'static str, help: &'static str) -> Self {
        Freshness { name, help, newest: Arc::default() }
    }

    /// Records `secs` (seconds since the epoch) as the newest time of `table`, if newer.
    pub(crate) fn observe(&self, table: &str, secs: f64) {
        let mut map = self.newest.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = map.entry(table.to_owned()).or_insert(f64::MIN);
        *entry = entry.max(secs);
    }
}

impl Collector for Freshness {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let newest = self.newest.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if newest.is_empty() {
            return Ok(());
        }
        let mut family =
            encoder.encode_descriptor(self.name, self.help, None, prometheus_client::metrics::MetricType::Gauge)?;
        for (table, newest) in newest {
            let gauge = ConstGauge::new(now - newest);
            gauge.encode(family.encode_family(&Table { table })?)?;
        }
        Ok(())
    }
}

/// The per-record counters of one topic (see [`SilverMetrics::topic`]).
#[derive(Clone, Debug)]
pub struct TopicCounters {
    records_in: Counter,
    duplicates: Counter,
}

impl TopicCounters {
    pub fn record_in(&self) {
        self.records_in.inc();
    }

    pub fn duplicate(&self) {
        self.duplicates.inc();
    }
}

#[derive(Debug)]
pub struct SilverMetrics {
    records_in: Family<Topic, Counter>,
    rows_written: Family<Table, Counter>,
    deadlettered: Family<TopicReason, Counter>,
    duplicates: Family<Topic, Counter>,
    conflicts: Family<Topic, Counter>,
    offsets_skipped: Family<TopicReason, Counter>,
    offset_resets: Family<Topic, Counter>,
    consumer_lag: Family<TopicPartition, Gauge>,
    flush_duration: Histogram,
    commit_rows: Histogram,
    commit_bytes: Histogram,
    table_version: Family<Table, Gauge>,
    newest_event_time: Family<Table, Gauge<f64, std::sync::atomic::AtomicU64>>,
    last_commit: Family<Topic, Gauge<f64, std::sync::atomic::AtomicU64>>,
    freshness: Freshness,
    compactions: Family<TopicResult, Counter>,
    compacted_files: Family<Topic, Counter>,
    compaction_duration: Histogram,
}

impl SilverMetrics {
    pub(crate) fn register(r: &mut Registry) -> Self {
        let m = Self::new();
        m.register_flow(r);
        m.register_commits(r);
        r.register_collector(Box::new(m.freshness.clone()));
        m
    }

    fn new() -> Self {
        SilverMetrics {
            records_in: Family::default(),
            rows_written: Family::default(),
            deadlettered: Family::default(),
            duplicates: Family::default(),
            conflicts: Family::default(),
            offsets_skipped: Family::default(),
            offset_resets: Family::default(),
            consumer_lag: Family::default(),
            flush_duration: Histogram::new([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            commit_rows: Histogram::new([1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6]),
            commit_bytes: Histogram::new([1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9]),
            table_version: Family::default(),
            newest_event_time: Family::default(),
            last_commit: Family::default(),
            compactions: Family::default(),
            compacted_files: Family::default(),
            compaction_duration: Histogram::new([0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
            freshness: Freshness::new(
                "reco_silver_freshness_seconds",
                "Now minus the newest event time written, per table (event-time lag; large for replays of old data)",
            ),
        }
    }

    /// What passes through: records in, rows out, dead letters, duplicates, skipped offsets, lag.
    fn register_flow(&self, r: &mut Registry) {
        r.register("reco_silver_records_in", "Kafka records read by the silver job, by topic", self.records_in.clone());
        r.register("reco_silver_rows_written", "Rows committed, by table", self.rows_written.clone());
        r.register(
            "reco_silver_deadlettered",
            "Records written to a dead-letter table, by topic and error kind",
            self.deadlettered.clone(),
        );
        r.register(
            "reco_silver_duplicates",
            "Records dropped as duplicates of an event_id within the horizon, by topic",
            self.duplicates.clone(),
        );
        r.register(
            "reco_silver_commit_conflicts",
            "Commits refused because another writer moved the offsets, by topic",
            self.conflicts.clone(),
        );
        r.register(
            "reco_silver_offsets_skipped",
            "Kafka offsets passed without a record, by topic and reason (retention: deleted before silver \
             read them; gap: never returned to a read_committed consumer, as transaction markers, aborted \
             or compacted records)",
            self.offsets_skipped.clone(),
        );
        r.register(
            "reco_silver_offset_resets",
            "Partitions whose Kafka log no longer continues the one silver read (broker storage lost, topic \
             re-created, another cluster), read again from the log start, by topic",
            self.offset_resets.clone(),
        );
        r.register(
            "reco_silver_consumer_lag",
            "Records behind the partition's end, per topic and partition",
            self.consumer_lag.clone(),
        );
    }

    /// How commits and compactions go: durations, sizes, versions, times.
    fn register_commits(&self, r: &mut Registry) {
        r.register(
            "reco_silver_batch_flush_duration_seconds",
            "Time to write and commit one batch",
            self.flush_duration.clone(),
        );
        r.register("reco_silver_commit_rows", "Rows per commit (silver and dead-letter)", self.commit_rows.clone());
        r.register("reco_silver_commit_bytes", "Data bytes per commit", self.commit_bytes.clone());
        r.register(
            "reco_silver_table_version",
            "Last committed version per silver table (Delta version or batch-log entry)",
            self.table_version.clone(),
        );
        r.register(
            "reco_silver_newest_event_time_seconds",
            "Newest event time written per table, seconds since the epoch",
            self.newest_event_time.clone(),
        );
        r.register(
            "reco_silver_last_commit_timestamp_seconds",
            "Wall-clock time of the last commit per topic",
            self.last_commit.clone(),
        );
        r.register(
            "reco_silver_compactions",
            "Compaction runs of a topic's tables, by result (ok, conflict: another compactor won, error)",
            self.compactions.clone(),
        );
        r.register(
            "reco_silver_compacted_files",
            "Small files rewritten (removed) by compaction, by topic",
            self.compacted_files.clone(),
        );
        r.register(
            "reco_silver_compaction_duration_seconds",
            "Duration of a compaction run of a topic's tables",
            self.compaction_duration.clone(),
        );
    }

    /// Handles on the per-record counters of `topic`, to keep once and increment without a
    /// label lookup (and its allocation and lock) per record.
    pub fn topic(&self, topic: &str) -> TopicCounters {
        let label = Topic { topic: topic.to_owned() };
        // Exported at 0 from the start, so a dashboard or alert sees a series, not "no data".
        for reason in SKIP_REASONS {
            let _ = self.offsets_skipped.get_or_create(&TopicReason { topic: topic.to_owned(), reason });
        }
        let _ = self.offset_resets.get_or_create(&label);
        TopicCounters {
            records_in: self.records_in.get_or_create(&label).clone(),
            duplicates: self.duplicates.get_or_create(&label).clone(),
        }
    }

    /// Creates `topic`'s dead-letter series of every reason at 0 (the reasons are a fixed set),
    /// so a dashboard shows "none" rather than "no data" before the first bad record.
    pub fn known_reasons(&self, topic: &str, reasons: &[&'static str]) {
        for reason in reasons {
            let _ = self.deadlettered.get_or_create(&TopicReason { topic: topic.to_owned(), reason });
        }
    }

    /// `reason` is an `ErrorKind` name: a fixed set.
    pub fn deadlettered(&self, topic: &str, reason: &'static str) {
        self.deadlettered.get_or_create(&TopicReason { topic: topic.to_owned(), reason }).inc();
    }

    /// `count` offsets of `topic` passed without a record; `reason` is one of [`SKIP_REASONS`].
    pub fn offsets_skipped(&self, topic: &str, reason: &'static str, count: u64) {
        self.offsets_skipped.get_or_create(&TopicReason { topic: topic.to_owned(), reason }).inc_by(count);
    }

    /// One partition of `topic` found reset (its log does not continue the one silver read).
    pub fn offset_reset(&self, topic: &str) {
        self.offset_resets.get_or_create(&Topic { topic: topic.to_owned() }).inc();
    }

    pub fn conflict(&self, topic: &str) {
        self.conflicts.get_or_create(&Topic { topic: topic.to_owned() }).inc();
    }

    /// One compaction run of `topic`'s tables; `result` is `ok`, `conflict` or `error`.
    pub fn compacted(&self, topic: &str, result: &'static str, files_removed: usize, seconds: f64) {
        let label = Topic { topic: topic.to_owned() };
        self.compactions.get_or_create(&TopicResult { topic: label.topic.clone(), result }).inc();
        self.compacted_files.get_or_create(&label).inc_by(files_removed as u64);
        self.compaction_duration.observe(seconds);
    }

    pub fn consumer_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.consumer_lag.get_or_create(&TopicPartition { topic: topic.to_owned(), partition }).set(lag);
    }

    /// One committed batch: its duration, rows per table, bytes and versions.
    pub fn batch_committed(&self, batch: &CommittedBatch<'_>) {
        let &CommittedBatch {
            topic,
            silver,
            deadletter,
            seconds,
            silver_rows,
            deadletter_rows,
            bytes,
            version,
            newest_event_time_us,
        } = batch;
        self.flush_duration.observe(seconds);
        self.commit_rows.observe((silver_rows + deadletter_rows) as f64);
        self.commit_bytes.observe(bytes as f64);
        self.rows_written.get_or_create(&Table { table: silver.to_owned() }).inc_by(silver_rows as u64);
        self.rows_written.get_or_create(&Table { table: deadletter.to_owned() }).inc_by(deadletter_rows as u64);
        self.table_version.get_or_create(&Table { table: silver.to_owned() }).set(version);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        self.last_commit.get_or_create(&Topic { topic: topic.to_owned() }).set(now);
        if let Some(us) = newest_event_time_us {
            let secs = us as f64 / 1e6;
            let gauge = self.newest_event_time.get_or_create(&Table { table: silver.to_owned() });
            if secs > gauge.get() {
                gauge.set(secs);
                self.freshness.observe(silver, secs);
            }
        }
    }
}

/// What [`SilverMetrics::batch_committed`] records of one commit.
#[derive(Clone, Copy, Debug)]
pub struct CommittedBatch<'a> {
    pub topic: &'a str,
    /// The tables' lake keys, as the `table` label (`silver/<topic>`, `silver/_deadletter/<topic>`).
    pub silver: &'a str,
    pub deadletter: &'a str,
    pub seconds: f64,
    pub silver_rows: usize,
    pub deadletter_rows: usize,
    pub bytes: u64,
    pub version: i64,
    pub newest_event_time_us: Option<i64>,
}
