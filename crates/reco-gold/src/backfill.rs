//! `reco gold backfill`: recompute the windows of a time range from everything in silver and
//! replace them in the gold tables (after a bug fix or a scoring change).
//!
//! Independent of the running job's state: all silver files whose `event_date` can hold an
//! event of a window in range are read (not only new versions), counted with an unbounded
//! horizon, and every window starting in `[from, to)` is replaced; windows in range that the
//! recomputation does not produce are removed. Run it with the gold job stopped, or for a
//! range older than the job's state horizon, so the two do not publish the same window.
//!
//! Windows are written complete up to the watermark of silver as read here (the minimum over
//! the tables' partitions), and never past the watermark of the gold job's newest checkpoint;
//! later windows are written provisional, and the job completes them as its watermark passes.

use std::collections::BTreeMap;

use reco_lake::{SilverFeed, gold::table_name, schema::date_of};

use crate::{
    Error, GoldConfig, Result,
    checkpoint::Checkpoints,
    job::{INPUTS, gold_windows, now_us, open_tables},
    window::Trending,
};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct BackfillReport {
    pub files: usize,
    pub events: u64,
    /// Windows written per window length.
    pub windows: BTreeMap<&'static str, usize>,
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
    let longest = config.window.windows.iter().map(|w| w.length_us).max().unwrap_or(0);
    // Windows starting in [from, to) hold events in [from, to + longest).
    let (until_us, first_day, last_day) = (to_us + longest, date_of(from_us), date_of(to_us + longest));
    let mut inputs = Vec::new();
    for (topic, kind) in INPUTS {
        let (_, files) = SilverFeed::new(&config.lake, topic).snapshot().await?;
        let files: Vec<_> =
            files.into_iter().filter(|f| f.event_date.is_none_or(|d| (first_day..=last_day).contains(&d))).collect();
        inputs.extend(files.into_iter().map(|f| (f, topic, kind)));
    }
    let total = inputs.len() as u64;
    let mut window_config = config.window.clone();
    window_config.horizon_us = i64::MAX / 4;
    let mut trending = Trending::new(window_config);
    if let Some(job) = Checkpoints::newest_watermark(&config.lake, config.window.lateness_us).await? {
        trending.limit_watermark(job);
    }
    let mut report = BackfillReport { files: inputs.len(), ..BackfillReport::default() };
    progress(0, total);
    for (done, (file, topic, kind)) in inputs.into_iter().enumerate() {
        let events = tokio::task::spawn_blocking(move || reco_lake::read::read_events(std::slice::from_ref(&file)))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        let now = now_us();
        for (item, t, partition) in events {
            // Every event moves its input's watermark, in range or not: the range's windows are
            // complete when all of silver is past them.
            let input = trending.input(topic, partition, now);
            if (from_us..until_us).contains(&t) {
                trending.record(input, &item, kind, t, now);
                report.events += 1;
            } else {
                trending.observe(input, t, now);
            }
        }
        progress(done as u64 + 1, total);
    }
    let now = now_us();
    for (topic, _) in INPUTS {
        trending.hold_table(topic, now);
    }
    let mut results = trending.advance(now);
    results.extend(trending.provisional());
    results.retain(|r| (from_us..to_us).contains(&r.start_us));
    let computed_at = now_us();
    for (name, mut table) in open_tables(&config.lake, &config.window).await? {
        let mine: Vec<_> = results.iter().filter(|r| r.window == name).cloned().collect();
        report.windows.insert(name, mine.len());
        table.replace(gold_windows(&mine, computed_at), Some((from_us, to_us))).await?;
        tracing::info!(table = table_name(name), windows = mine.len(), "backfilled");
    }
    Ok(report)
}
