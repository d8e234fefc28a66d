//! The gold job's loop: read what silver committed since last time, count it, publish the
//! windows that became due, checkpoint now and then.

use std::{collections::BTreeMap, sync::Arc, time::Instant};

use reco_lake::{GoldRow, GoldTable, GoldWindow, Lake, SilverFeed, Upstream, gold::table_name};
use reco_telemetry::Telemetry;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    Error, GoldConfig, Result,
    checkpoint::Checkpoints,
    lease::Lease,
    watermark::InputId,
    window::{Kind, Recorded, Trending, WindowResult},
};

/// The silver tables gold reads, and what their rows count as.
pub(crate) const INPUTS: [(&str, Kind); 2] = [("events_views", Kind::View), ("events_clicks", Kind::Click)];

/// Test-only fault injection: `RECO_FAULT=gold_crash_after_publish` aborts the process
/// after windows were written and before the checkpoint that records them.
fn crash_point(name: &str) {
    if std::env::var("RECO_FAULT").is_ok_and(|v| v == name) {
        eprintln!("RECO_FAULT={name}: aborting");
        std::process::abort();
    }
}

/// How long after silver's last new version the job keeps polling at the active interval.
const ACTIVE_FOR: std::time::Duration = std::time::Duration::from_secs(10);

pub(crate) fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

pub(crate) struct Job {
    config: GoldConfig,
    telemetry: Arc<Telemetry>,
    trending: Trending,
    feeds: Vec<(SilverFeed, Kind)>,
    versions: BTreeMap<String, i64>,
    tables: BTreeMap<&'static str, GoldTable>,
    checkpoints: Checkpoints,
    lease: Lease,
    /// Input counted since the last checkpoint.
    unsaved: bool,
    /// When the job last found new silver versions.
    last_read: Option<Instant>,
    last_checkpoint: Instant,
}

impl Job {
    /// A job holding the lake's gold `lease`: the checkpoint it resumes from is the newest.
    pub async fn new(config: GoldConfig, telemetry: Arc<Telemetry>, lease: Lease) -> Result<Job> {
        config.validate().map_err(Error::Config)?;
        let (checkpoints, restored) = Checkpoints::open(&config.lake, &config.window).await?;
        let (trending, versions) = match restored {
            Some((manifest, panes)) => {
                info!(
                    seq = manifest.seq,
                    versions = ?manifest.silver_versions,
                    "gold job resuming from its checkpoint"
                );
                let t = Trending::restore(config.window.clone(), manifest.state, panes, now_us())
                    .map_err(Error::Checkpoint)?;
                (t, manifest.silver_versions)
            }
            None => (Trending::new(config.window.clone()), BTreeMap::new()),
        };
        let feeds = INPUTS.iter().map(|(topic, kind)| (SilverFeed::new(&config.lake, topic), *kind)).collect();
        let tables = open_tables(&config.lake, &config.window).await?;
        let windows: Vec<&str> = config.window.windows.iter().map(|w| w.name).collect();
        let inputs: Vec<String> = INPUTS.iter().map(|(topic, _)| format!("silver/{topic}")).collect();
        telemetry.gold.known(&windows, &inputs.iter().map(String::as_str).collect::<Vec<_>>());
        Ok(Job {
            config,
            telemetry,
            trending,
            feeds,
            versions,
            tables,
            checkpoints,
            lease,
            unsaved: false,
            last_read: None,
            last_checkpoint: Instant::now(),
        })
    }

    pub async fn run(mut self, shutdown: CancellationToken) -> Result<()> {
        info!(lake = %self.config.lake.display(), "gold job started");
        while !shutdown.is_cancelled() {
            let started = Instant::now();
            self.lease.renew().await?;
            let more = self.cycle().await?;
            self.telemetry.gold.cycle(started.elapsed().as_secs_f64());
            if self.unsaved && self.last_checkpoint.elapsed() >= self.config.checkpoint_interval {
                self.checkpoint().await?;
            }
            if !more {
                let notified = self.config.silver_committed.clone();
                let silver_committed = async move {
                    match notified {
                        Some(n) => n.notified().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = tokio::time::sleep(self.poll_wait()) => {}
                    () = silver_committed => {}
                }
            }
        }
        // What the input holds beyond the watermark stays readable (`?provisional=true`) while
        // the job is down; the next run publishes those windows again as they complete.
        let open = self.trending.take_provisional();
        if !open.is_empty() {
            self.publish_fenced(open, None).await?;
        }
        if self.unsaved {
            self.checkpoint().await?;
        }
        self.lease.release().await;
        info!("gold job stopped");
        Ok(())
    }

    /// How long to wait before looking at silver again: `active_poll_interval` while silver
    /// committed recently, `poll_interval` once it has been quiet for [`ACTIVE_FOR`] (on an
    /// object store every look lists each table's log).
    fn poll_wait(&self) -> std::time::Duration {
        let active = self.last_read.is_some_and(|at| at.elapsed() < ACTIVE_FOR);
        if active { self.config.active_poll_interval.min(self.config.poll_interval) } else { self.config.poll_interval }
    }

    /// Publishes under the lease: renewed (or found lost) right before writing, since reading a
    /// long backlog can take a while, and every commit fenced with the lease number. A commit
    /// the fence refused because another job took the lease meanwhile stops this job with that
    /// reason rather than as a bare Delta conflict.
    async fn publish_fenced(&mut self, windows: Vec<WindowResult>, expire_before: Option<i64>) -> Result<()> {
        self.lease.renew().await?;
        self.tables.values_mut().for_each(|t| t.fence(self.lease.seq()));
        let result = publish(&mut self.tables, windows, expire_before, &self.telemetry).await;
        if let Err(e) = &result
            && let Some(by) = self.lease.taken_by().await
        {
            return Err(Error::Lease(format!(
                "the lease of {} was taken by {by} while this job was paused; its commit was refused \
                 ({e}); stopping without writing again",
                self.config.lake.display()
            )));
        }
        result
    }

    /// One round; true when silver has more versions waiting. Every table's new versions are
    /// recorded before the watermark moves (in `advance`), so no input's events are judged
    /// against another input's progress within the round.
    async fn cycle(&mut self) -> Result<bool> {
        let mut more = false;
        let mut upstreams = Vec::new();
        for (feed, kind) in &mut self.feeds {
            let topic = feed.topic().to_owned();
            let Some(latest) = feed.latest().await? else { continue };
            let after = self.versions.get(&topic).copied();
            if after.is_some_and(|a| a >= latest) {
                continue;
            }
            let from = after.unwrap_or(-1);
            let upto = latest.min(from + self.config.max_versions_per_cycle as i64);
            let files = feed.files_between(after, upto).await?;
            upstreams.extend(feed.upstream().cloned());
            let events = tokio::task::spawn_blocking(move || reco_lake::read::read_events(&files))
                .await
                .map_err(|e| Error::Task(e.to_string()))??;
            let (mut late, mut beyond) = (0, 0);
            let now = now_us();
            let mut inputs: BTreeMap<i32, InputId> = BTreeMap::new();
            for (item, t, partition) in &events {
                let input = *inputs.entry(*partition).or_insert_with(|| self.trending.input(&topic, *partition, now));
                match self.trending.record(input, item, *kind, *t, now) {
                    Recorded::OnTime => {}
                    Recorded::Late => late += 1,
                    Recorded::BeyondHorizon => beyond += 1,
                }
            }
            if upto < latest {
                // Versions still waiting: this table's inputs are catching up, not idle.
                more = true;
                self.trending.hold_table(&topic, now);
            }
            if beyond > 0 {
                warn!(topic, events = beyond, "events older than the state horizon were not counted");
            }
            let table = format!("silver/{topic}");
            self.telemetry.gold.events(&table, events.len() as u64 - beyond, late, beyond);
            self.telemetry.gold.silver_versions(&table, (upto - from) as u64, upto);
            self.versions.insert(topic, upto);
            self.unsaved = true;
            self.last_read = Some(Instant::now());
        }
        self.wait_for_upstream(upstreams);
        let due = self.trending.advance(now_us());
        if !due.is_empty() {
            let expire_before = self
                .config
                .retention
                .zip(self.trending.watermark_us())
                .map(|(r, watermark)| watermark.saturating_sub(r.as_micros() as i64));
            self.publish_fenced(due, expire_before).await?;
            self.unsaved = true;
            crash_point("gold_crash_after_publish");
        }
        self.telemetry.gold.state(self.trending.watermark_us(), self.trending.state_size());
        for (input, watermark) in self.trending.watermarks().per_input() {
            self.telemetry.gold.input_watermark(&format!("silver/{}", input.table), input.partition, watermark);
        }
        Ok(more)
    }

    /// What silver knew of Kafka when it made the commits read this cycle: every partition of the
    /// topics gold reads is an input, rows or not (one whose first rows come in a later commit
    /// holds the watermark meanwhile, until idle), and the partitions silver has not read to
    /// the end are catching up, not idle. Read from every table's commits, since silver says
    /// this for all its topics: the clicks table's first commit may come after the views
    /// table's hundredth.
    fn wait_for_upstream(&mut self, upstreams: Vec<Upstream>) {
        let now = now_us();
        for upstream in upstreams {
            for (topic, _) in INPUTS {
                for partition in 0..upstream.partitions.get(topic).copied().unwrap_or(0) {
                    self.trending.input(topic, partition, now);
                }
                for &partition in upstream.behind.get(topic).map_or(&[][..], Vec::as_slice) {
                    let input = self.trending.input(topic, partition, now);
                    self.trending.hold_input(input, now);
                }
            }
        }
    }

    async fn checkpoint(&mut self) -> Result<()> {
        let started = Instant::now();
        self.checkpoints.write(&self.trending, &self.versions).await?;
        self.telemetry.gold.checkpoint(started.elapsed().as_secs_f64());
        self.unsaved = false;
        self.last_checkpoint = Instant::now();
        Ok(())
    }
}

pub(crate) async fn open_tables(
    lake: &Lake,
    window: &crate::window::Config,
) -> Result<BTreeMap<&'static str, GoldTable>> {
    let mut tables = BTreeMap::new();
    for spec in &window.windows {
        tables.insert(spec.name, GoldTable::open(lake, &table_name(spec.name)).await?);
    }
    Ok(tables)
}

/// Converts window results to gold rows, stamped with one `computed_at`.
pub(crate) fn gold_windows(results: &[WindowResult], computed_at_us: i64) -> Vec<GoldWindow> {
    results
        .iter()
        .map(|r| GoldWindow {
            start_us: r.start_us,
            rows: r
                .rows
                .iter()
                .map(|row| GoldRow {
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

/// Writes due windows, one commit (or set of renames) per gold table.
async fn publish(
    tables: &mut BTreeMap<&'static str, GoldTable>,
    due: Vec<WindowResult>,
    expire_before: Option<i64>,
    telemetry: &Telemetry,
) -> Result<()> {
    let computed_at = now_us();
    let mut by_window: BTreeMap<&'static str, Vec<WindowResult>> = BTreeMap::new();
    for r in due {
        by_window.entry(r.window).or_default().push(r);
    }
    for (window, results) in by_window {
        let Some(table) = tables.get_mut(window) else { continue };
        // Windows ending before `expire_before` leave in the same commit that publishes new
        // ones; the table is cleared by window start, and all its windows have one length.
        let length = results.first().map_or(0, |r| r.end_us - r.start_us);
        let expired = expire_before.map(|end| (i64::MIN, end.saturating_sub(length)));
        table.replace(gold_windows(&results, computed_at), expired).await?;
        let name = table_name(window);
        for r in &results {
            telemetry.gold.published(window, &name, r.end_us, r.republished, r.complete);
        }
        info!(
            table = name,
            windows = results.len(),
            republished = results.iter().filter(|r| r.republished).count(),
            provisional = results.iter().filter(|r| !r.complete).count(),
            "gold windows published"
        );
    }
    Ok(())
}
