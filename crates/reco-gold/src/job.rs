//! The gold job's loop, the host of every aggregate (`aggregate.rs`): read what silver
//! committed since last time, hand each row to the aggregates that read its table, publish
//! what they say is due, checkpoint each now and then.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Instant,
};

use reco_core::EventType;
use reco_lake::{GoldTable, SilverFeed, Upstream, read::EventBatch};
use reco_telemetry::{Telemetry, Throttle};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    Error, GoldConfig, Result,
    aggregate::{Aggregate, Mode, Publication, Recorded, hosted},
    checkpoint::Checkpoints,
    lease::Kept,
};

/// Least time between two warnings of one kind (a replay of old events would otherwise warn
/// every cycle).
const WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// How long after silver's last new version the job keeps polling at the active interval.
const ACTIVE_FOR: std::time::Duration = std::time::Duration::from_secs(10);

pub(crate) fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// An aggregate with its checkpoints and its position in each silver table.
struct Hosted {
    aggregate: Box<dyn Aggregate>,
    checkpoints: Checkpoints,
    /// Last silver version consumed per table (topic).
    versions: BTreeMap<String, i64>,
}

impl Hosted {
    fn reads(&self, source: EventType) -> bool {
        self.aggregate.sources().contains(&source)
    }

    fn version(&self, source: EventType) -> i64 {
        self.versions.get(source.topic()).copied().unwrap_or(-1)
    }
}

pub(crate) struct Job {
    config: GoldConfig,
    telemetry: Arc<Telemetry>,
    hosted: Vec<Hosted>,
    /// Every silver table some aggregate reads.
    feeds: BTreeMap<EventType, SilverFeed>,
    tables: BTreeMap<String, GoldTable>,
    lease: Kept,
    /// Input counted since the last checkpoint.
    unsaved: bool,
    /// When the job last found new silver versions.
    last_read: Option<Instant>,
    last_checkpoint: Instant,
    /// Per (aggregate, table): the warning about events beyond the state horizon.
    beyond_horizon: BTreeMap<(&'static str, &'static str), Throttle>,
    late: BTreeMap<(&'static str, &'static str), Throttle>,
}

impl Job {
    /// A job holding the lake's gold `lease`: the checkpoints it resumes from are the newest.
    pub async fn new(config: GoldConfig, telemetry: Arc<Telemetry>, lease: Kept) -> Result<Job> {
        config.validate().map_err(Error::Config)?;
        let mut aggregates = Vec::new();
        for mut aggregate in hosted(&config, &telemetry, Mode::Job) {
            let (dir, files) = (aggregate.checkpoint_dir(), aggregate.files());
            let (checkpoints, restored) = Checkpoints::open(&config.lake, dir, files).await?;
            let mut versions = BTreeMap::new();
            if let Some(r) = restored {
                info!(
                    aggregate = aggregate.name(),
                    seq = r.seq,
                    versions = ?r.silver_versions,
                    "gold job resuming from its checkpoint"
                );
                aggregate.restore(r.saved, now_us()).map_err(|e| checkpoints.error(r.seq, e))?;
                versions = r.silver_versions;
            }
            aggregates.push(Hosted { aggregate, checkpoints, versions });
        }
        let sources: BTreeSet<EventType> =
            aggregates.iter().flat_map(|h| h.aggregate.sources().iter().copied()).collect();
        let feeds = sources.iter().map(|s| (*s, SilverFeed::new(&config.lake, s.topic()))).collect();
        let mut tables = BTreeMap::new();
        for name in aggregates.iter().flat_map(|h| h.aggregate.tables()) {
            let table = GoldTable::open(&config.lake, &name).await?;
            tables.insert(name, table);
        }
        let windows: Vec<&str> = config.window.windows.iter().map(|w| w.name).collect();
        let inputs: Vec<String> = sources.iter().map(|s| reco_lake::silver_key(s.topic())).collect();
        telemetry.gold.known(&windows, &inputs.iter().map(String::as_str).collect::<Vec<_>>());
        Ok(Job {
            config,
            telemetry,
            hosted: aggregates,
            feeds,
            tables,
            lease,
            unsaved: false,
            last_read: None,
            last_checkpoint: Instant::now(),
            beyond_horizon: BTreeMap::new(),
            late: BTreeMap::new(),
        })
    }

    pub async fn run(mut self, shutdown: CancellationToken) -> Result<()> {
        info!(lake = %self.config.lake.display(), "gold job started");
        while !shutdown.is_cancelled() {
            let started = Instant::now();
            self.lease.renew().await?;
            let backlog = self.cycle().await?;
            self.telemetry.gold.cycle(started.elapsed().as_secs_f64());
            if self.unsaved && self.last_checkpoint.elapsed() >= self.config.checkpoint_interval {
                self.checkpoint().await?;
            }
            if backlog == Backlog::Empty {
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
        let mut last = Vec::new();
        for h in &mut self.hosted {
            last.extend(h.aggregate.stopping()?);
        }
        if !last.is_empty() {
            self.publish_fenced(last).await?;
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

    /// Publishes under the lease: renewed (or found lost after a pause) right before writing,
    /// and every commit fenced with the lease number. A commit
    /// the fence refused because another job took the lease meanwhile stops this job with that
    /// reason rather than as a bare Delta conflict.
    async fn publish_fenced(&mut self, publications: Vec<Publication>) -> Result<()> {
        self.lease.renew().await?;
        let seq = self.lease.seq().await;
        self.tables.values_mut().for_each(|t| t.fence(seq));
        let result = publish(&mut self.tables, publications, &self.telemetry).await;
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

    /// One round: read what silver committed (up to `max_versions_per_cycle` per table), hand it
    /// to the aggregates, publish what is due. Every table's new versions are recorded before
    /// the watermarks move (in `advance`), so no input's events are judged against another
    /// input's progress within the round.
    async fn cycle(&mut self) -> Result<Backlog> {
        let mut more = false;
        let mut upstreams = Vec::new();
        let sources: Vec<EventType> = self.feeds.keys().copied().collect();
        for source in sources {
            let Some(feed) = self.feeds.get_mut(&source) else { continue };
            let Some(latest) = feed.latest().await? else { continue };
            let readers: Vec<usize> = (0..self.hosted.len()).filter(|i| self.hosted[*i].reads(source)).collect();
            let from = readers.iter().map(|i| self.hosted[*i].version(source)).min().unwrap_or(latest);
            if from >= latest {
                continue;
            }
            // Aggregates behind the others on this table (a crash between two of their
            // checkpoints, an aggregate new to this lake) catch up alone first.
            let ahead = readers.iter().map(|i| self.hosted[*i].version(source)).filter(|v| *v > from).min();
            let upto = latest.min(from + self.config.max_versions_per_cycle as i64).min(ahead.unwrap_or(i64::MAX));
            let feeding: Vec<usize> = readers.into_iter().filter(|i| self.hosted[*i].version(source) == from).collect();
            let files = feed.files_between(Some(from), upto).await?;
            upstreams.extend(feed.take_upstreams().into_iter().map(|u| (source.topic(), u)));
            let users = feeding.iter().any(|i| self.hosted[*i].aggregate.needs_users());
            let batches = tokio::task::spawn_blocking(move || reco_lake::read::read_events(&files, users))
                .await
                .map_err(|e| Error::Task(e.to_string()))??;
            let (topic, now) = (source.topic(), now_us());
            let table = reco_lake::silver_key(topic);
            let rows: u64 = batches.iter().map(|b| b.len() as u64).sum();
            for i in &feeding {
                let aggregate = &mut self.hosted[*i].aggregate;
                let fed = hand_over(aggregate.as_mut(), source, &batches, now);
                if upto < latest {
                    // Versions still waiting: this table's inputs are catching up, not idle.
                    aggregate.watermarks().hold_table(topic, now);
                }
                aggregate.counted(&self.telemetry, &table, rows, fed.late, fed.beyond);
                self.report(*i, topic, &fed, (from, upto), now);
                self.hosted[*i].versions.insert(topic.to_owned(), upto);
            }
            more |= upto < latest;
            self.telemetry.gold.silver_versions(&table, (upto - from) as u64, upto);
            self.unsaved = true;
            self.last_read = Some(Instant::now());
        }
        self.wait_for_upstream(upstreams);
        for i in 0..self.hosted.len() {
            let due = self.hosted[i].aggregate.advance(now_us())?;
            if !due.is_empty() {
                self.publish_fenced(due).await?;
                self.unsaved = true;
                reco_lake::fault::crash_point("gold_crash_after_publish");
            }
        }
        Ok(if more { Backlog::Waiting } else { Backlog::Empty })
    }

    /// Logs, throttled, what aggregate `i` could not count on time from `topic`'s silver
    /// versions `from..upto`: late events with the state of every input (what an operator asks
    /// when windows re-publish), events beyond the state horizon with the way to recount them.
    fn report(&mut self, i: usize, topic: &'static str, fed: &Fed, (from, upto): (i64, i64), now: i64) {
        let aggregate = &mut self.hosted[i].aggregate;
        let name = aggregate.name();
        if let Some((partition, event_us)) = fed.first_late {
            let throttle = self.late.entry((name, topic)).or_insert_with(|| Throttle::new(WARN_EVERY));
            if let Some(events) = throttle.add(fed.late, Instant::now()) {
                let marks = aggregate.watermarks();
                info!(
                    topic,
                    aggregate = name,
                    events,
                    partition,
                    event_us,
                    silver_versions = format!("{from}..{upto}"),
                    watermark_us = ?marks.current(),
                    inputs = marks.describe(now),
                    "events behind the watermark were counted late (their windows re-published)"
                );
            }
        }
        let throttle = self.beyond_horizon.entry((name, topic)).or_insert_with(|| Throttle::new(WARN_EVERY));
        if let Some(events) = throttle.add(fed.beyond, Instant::now()) {
            warn!(
                topic,
                aggregate = name,
                events,
                "events older than the state horizon were not counted (since the last such line; \
                 reco_gold_beyond_horizon_events_total counts them all; `reco gold backfill` recomputes a range)"
            );
        }
    }

    /// What silver knew of Kafka when it made the commits read this cycle (`(table's topic,
    /// what its commit said)`): every partition of the topics an aggregate reads is an input,
    /// rows or not (one whose first rows come in a later commit holds the watermark meanwhile,
    /// until idle, unless silver found its log empty); the partitions silver has not read to
    /// the end are catching up, and those whose log ends past what their writer committed wait
    /// for a writer: neither is idle. Read from every table's commits, since silver says this
    /// for all its topics: the clicks table's first commit may come after the views table's
    /// hundredth.
    fn wait_for_upstream(&mut self, upstreams: Vec<(&'static str, Upstream)>) {
        let now = now_us();
        let partitions = |list: &BTreeMap<String, Vec<i32>>, topic: &str| list.get(topic).cloned().unwrap_or_default();
        for (committed, upstream) in upstreams {
            for h in &mut self.hosted {
                for source in h.aggregate.sources() {
                    let (topic, marks) = (source.topic(), h.aggregate.watermarks());
                    for partition in 0..upstream.partitions.get(topic).copied().unwrap_or(0) {
                        marks.input(topic, partition, now);
                    }
                    if topic == committed {
                        for (partition, next) in &upstream.read {
                            let input = marks.input(topic, *partition, now);
                            marks.read(input, *next);
                        }
                    }
                    for (partition, end) in upstream.log_ends.get(topic).into_iter().flatten() {
                        let input = marks.input(topic, *partition, now);
                        marks.log_end(input, *end, now);
                    }
                    for partition in partitions(&upstream.empty, topic) {
                        let input = marks.input(topic, partition, now);
                        marks.empty(input);
                    }
                    for partition in partitions(&upstream.behind, topic) {
                        let input = marks.input(topic, partition, now);
                        marks.hold_input(input, now);
                    }
                }
            }
        }
    }

    async fn checkpoint(&mut self) -> Result<()> {
        let started = Instant::now();
        for h in &mut self.hosted {
            let saved = h.aggregate.save()?;
            h.checkpoints.write(saved, &h.versions).await?;
        }
        self.telemetry.gold.checkpoint(started.elapsed().as_secs_f64());
        self.unsaved = false;
        self.last_checkpoint = Instant::now();
        Ok(())
    }
}

/// Whether silver has versions the last cycle left for the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backlog {
    Waiting,
    Empty,
}

/// What one aggregate made of one table's rows in a cycle.
struct Fed {
    late: u64,
    beyond: u64,
    /// `(Kafka partition, event time)` of the first late event, for the log line.
    first_late: Option<(i32, i64)>,
}

/// Hands `batches` of `source` to `aggregate`, each Kafka partition an input of its watermark.
fn hand_over(aggregate: &mut dyn Aggregate, source: EventType, batches: &[EventBatch], now: i64) -> Fed {
    let mut fed = Fed { late: 0, beyond: 0, first_late: None };
    let mut inputs: BTreeMap<i32, usize> = BTreeMap::new();
    for batch in batches {
        for event in batch.events() {
            let partition = event.kafka_partition;
            let input = *inputs
                .entry(partition)
                .or_insert_with(|| aggregate.watermarks().input(source.topic(), partition, now));
            match aggregate.record(source, input, &event, now) {
                Recorded::OnTime | Recorded::OutOfRange => {}
                Recorded::Late => {
                    fed.late += 1;
                    fed.first_late.get_or_insert((partition, event.event_time_us));
                }
                Recorded::BeyondHorizon => fed.beyond += 1,
            }
        }
    }
    fed
}

/// Writes publications, one commit (or set of renames) per publication, then reports them.
pub(crate) async fn publish(
    tables: &mut BTreeMap<String, GoldTable>,
    publications: Vec<Publication>,
    telemetry: &Telemetry,
) -> Result<()> {
    for p in publications {
        let table = tables.get_mut(&p.table).ok_or_else(|| Error::Config(format!("no gold table {}", p.table)))?;
        table.replace(p.sets, p.clear).await?;
        (p.report)(telemetry);
    }
    Ok(())
}
