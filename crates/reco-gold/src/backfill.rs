//! `reco gold backfill`: recompute what the aggregates publish for a time range from everything
//! in silver and replace it in the gold tables (after a bug fix or a scoring change).
//!
//! Independent of the running job's state: every aggregate is built afresh in backfill mode,
//! all silver files whose `event_date` can hold an event it needs are read (not only new
//! versions), and what it then publishes replaces the range (for trending: every window
//! starting in `[from, to)`, counted with an unbounded horizon; windows in range that the
//! recomputation does not produce are removed). It takes the gold lease (`lease.rs`) for its
//! whole run and fences its commits with it, so it refuses to start beside a running gold job
//! (the two would publish the same row sets), and a gold job started meanwhile waits for it.
//!
//! Trending writes windows complete up to the watermark of silver as read here (the minimum
//! over the tables' partitions), and never past the watermark of the gold job's newest
//! checkpoint; later windows are written provisional, and the job completes them as its
//! watermark passes.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use reco_core::EventType;
use reco_lake::{GoldTable, SilverFeed, schema::date_of};
use reco_telemetry::Telemetry;

use crate::{
    Error, GoldConfig, Result,
    aggregate::{Mode, Recorded, hosted},
    checkpoint::Checkpoints,
    job::now_us,
    lease::{Kept, Lease},
};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct BackfillReport {
    pub files: usize,
    /// Events counted (in range) by all aggregates.
    pub events: u64,
    /// Row sets written per label (`1h`: trending's hourly windows).
    pub windows: BTreeMap<String, usize>,
}

/// Recomputes every window starting in `[from_us, to_us)`; `progress(done, total)` is called
/// after each silver file read.
pub async fn backfill(
    config: &GoldConfig,
    from_us: i64,
    to_us: i64,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<BackfillReport> {
    config.window.validate().map_err(Error::Config)?;
    if from_us >= to_us {
        return Err(Error::Config("backfill range is empty: --from must be before --to".into()));
    }
    let lease = match Lease::try_take(&config.lake, config.lease_ttl).await? {
        Ok(lease) => Kept::start(lease),
        Err(holder) => {
            return Err(Error::Lease(format!(
                "a gold job ({holder}) holds the lease of {}: stop it (`reco gold`, or `reco up`) before a \
                 backfill and start it again afterwards, so the two do not publish the same windows",
                config.lake.display()
            )));
        }
    };
    let result = recompute(config, from_us, to_us, progress, &lease).await;
    lease.release().await;
    result
}

async fn recompute(
    config: &GoldConfig,
    from_us: i64,
    to_us: i64,
    progress: &mut (dyn FnMut(u64, u64) + Send),
    lease: &Kept,
) -> Result<BackfillReport> {
    // The metrics of a backfill are not served anywhere.
    let telemetry = Arc::new(Telemetry::new());
    let mut aggregates = hosted(config, &telemetry, Mode::Backfill { from_us, to_us });
    for a in &mut aggregates {
        if let Some(job) = Checkpoints::newest_body(&config.lake, a.checkpoint_dir()).await? {
            a.follow_job(&job);
        }
    }
    // The days of silver any aggregate needs (`None`: all).
    let days = aggregates
        .iter()
        .map(|a| a.backfill_reads().map(|(f, t)| (date_of(f), date_of(t))))
        .try_fold(None::<(i32, i32)>, |acc, span| {
            span.map(|(f, t)| Some(acc.map_or((f, t), |(a, b)| (a.min(f), b.max(t)))))
        });
    let sources: BTreeSet<EventType> = aggregates.iter().flat_map(|a| a.sources().iter().copied()).collect();
    let users = aggregates.iter().any(|a| a.needs_users());
    let mut inputs = Vec::new();
    for source in sources {
        let (_, files) = SilverFeed::new(&config.lake, source.topic()).snapshot().await?;
        let wanted = |d: Option<i32>| match (d, days.flatten()) {
            (Some(d), Some((first, last))) => (first..=last).contains(&d),
            _ => true,
        };
        inputs.extend(files.into_iter().filter(|f| wanted(f.event_date)).map(|f| (f, source)));
    }
    let total = inputs.len() as u64;
    let mut report = BackfillReport { files: inputs.len(), ..BackfillReport::default() };
    progress(0, total);
    for (done, (file, source)) in inputs.into_iter().enumerate() {
        let batches =
            tokio::task::spawn_blocking(move || reco_lake::read::read_events(std::slice::from_ref(&file), users))
                .await
                .map_err(|e| Error::Task(e.to_string()))??;
        let now = now_us();
        for a in aggregates.iter_mut().filter(|a| a.sources().contains(&source)) {
            for event in batches.iter().flat_map(|b| b.events()) {
                let input = a.watermarks().input(source.topic(), event.kafka_partition, now);
                if a.record(source, input, &event, now) != Recorded::OutOfRange {
                    report.events += 1;
                }
            }
        }
        progress(done as u64 + 1, total);
    }
    let now = now_us();
    for a in &mut aggregates {
        for publication in a.finish_backfill(now)? {
            let mut table = GoldTable::open(&config.lake, &publication.table).await?;
            lease.renew().await?;
            table.fence(lease.seq().await);
            *report.windows.entry(publication.label.clone()).or_default() += publication.sets.len();
            tracing::info!(table = publication.table, sets = publication.sets.len(), "backfilled");
            table.replace(publication.sets, publication.clear).await?;
            (publication.report)(&telemetry);
        }
    }
    Ok(report)
}
