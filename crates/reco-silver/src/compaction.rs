//! Background compaction of the tables this job writes ([`reco_lake::Compactor`]).
//!
//! Silver commits a small file per table per batch; every `min_files` commits of a topic the
//! job compacts that topic's tables in a task of its own, so batches keep flowing meanwhile
//! (a compaction commit never conflicts with an append). One worker per topic compacts: the
//! one assigned partition 0. Two would not corrupt anything (the later compaction commit is
//! refused), but they would rewrite the same files twice.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use reco_lake::{CompactPolicy, CompactStats, Compactor, Format, Lake};
use reco_telemetry::Telemetry;
use tokio::task::JoinHandle;
use tracing::warn;

type Outcome = (Option<Compactor>, reco_lake::Result<CompactStats>, Duration);

#[derive(Default)]
struct TableCompaction {
    /// Kept between runs so a run reads only the commits since the last (`None`: not opened
    /// yet, or dropped after an error).
    compactor: Option<Compactor>,
    commits: usize,
    running: Option<JoinHandle<Outcome>>,
}

pub(crate) struct Compaction {
    /// `None`: compaction off (disabled, or a Parquet lake, whose batch log has no remove).
    policy: Option<CompactPolicy>,
    lake: Lake,
    telemetry: Arc<Telemetry>,
    tables: HashMap<String, TableCompaction>,
}

impl Compaction {
    pub(crate) fn new(policy: Option<CompactPolicy>, lake: &Lake, telemetry: Arc<Telemetry>) -> Compaction {
        let policy = policy.filter(|p| p.min_files > 0 && lake.format == Format::Delta);
        Compaction { policy, lake: lake.clone(), telemetry, tables: HashMap::new() }
    }

    /// A batch of `topic` was committed; starts a compaction when enough commits have passed
    /// and `owner()` says this worker holds the topic's partition 0.
    pub(crate) async fn committed(&mut self, topic: &str, owner: impl FnOnce() -> bool) {
        let Some(policy) = self.policy else { return };
        self.reap(topic).await;
        if !self.tables.contains_key(topic) {
            self.tables.insert(topic.to_owned(), TableCompaction::default());
        }
        let Some(table) = self.tables.get_mut(topic) else { return };
        table.commits += 1;
        if table.running.is_some() || table.commits < policy.min_files || !owner() {
            return;
        }
        table.commits = 0;
        let (lake, topic, compactor) = (self.lake.clone(), topic.to_owned(), table.compactor.take());
        table.running = Some(tokio::spawn(async move {
            let started = Instant::now();
            let mut compactor = match compactor {
                Some(c) => c,
                None => match Compactor::open(&lake, &topic, crate::with_rating(&topic), policy).await {
                    Ok(c) => c,
                    Err(e) => return (None, Err(e), started.elapsed()),
                },
            };
            let result = compactor.run().await;
            let keep = result.is_ok().then_some(compactor);
            (keep, result, started.elapsed())
        }));
    }

    /// Collects a finished run of `topic`: metrics, and the compactor back for the next run.
    async fn reap(&mut self, topic: &str) {
        let Some(table) = self.tables.get_mut(topic) else { return };
        if !table.running.as_ref().is_some_and(JoinHandle::is_finished) {
            return;
        }
        let Some(handle) = table.running.take() else { return };
        // Finished: this await does not wait.
        match handle.await {
            Ok((compactor, result, took)) => {
                table.compactor = compactor;
                record(&self.telemetry, topic, result, took);
            }
            Err(e) => {
                warn!(topic, error = %e, "compaction task failed");
                self.telemetry.silver.compacted(topic, "error", 0, 0.0);
            }
        }
    }

    /// Shutdown: gives running compactions `grace` to commit, then abandons them (an
    /// abandoned rewrite leaves only unreferenced files, never a partial commit).
    pub(crate) async fn finish(mut self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        for (topic, table) in &mut self.tables {
            let Some(mut handle) = table.running.take() else { continue };
            match tokio::time::timeout_at(deadline, &mut handle).await {
                Ok(Ok((_, result, took))) => record(&self.telemetry, topic, result, took),
                Ok(Err(e)) => {
                    warn!(topic, error = %e, "compaction task failed");
                    self.telemetry.silver.compacted(topic, "error", 0, 0.0);
                }
                Err(_) => {
                    handle.abort();
                    warn!(topic, "compaction still running at shutdown; abandoned (no partial commit)");
                }
            }
        }
    }
}

fn record(telemetry: &Telemetry, topic: &str, result: reco_lake::Result<CompactStats>, took: Duration) {
    let seconds = took.as_secs_f64();
    match result {
        Ok(stats) if stats.conflicts > 0 && stats.files_removed == 0 => {
            telemetry.silver.compacted(topic, "conflict", 0, seconds)
        }
        Ok(stats) => telemetry.silver.compacted(topic, "ok", stats.files_removed, seconds),
        Err(e) => {
            warn!(topic, error = %e, "compaction failed; the tables are unchanged, retrying later");
            telemetry.silver.compacted(topic, "error", 0, seconds);
        }
    }
}
