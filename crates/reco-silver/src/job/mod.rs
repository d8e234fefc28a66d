//! The consumer loop: read, validate, de-duplicate, buffer, commit with offsets.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use rdkafka::{
    Offset, TopicPartitionList,
    consumer::{CommitMode, Consumer, StreamConsumer},
};
use reco_core::ErrorKind;
use reco_lake::{CommitOutcome, StreamBatch, TopicTables, Upstream};
use reco_telemetry::{CommittedBatch, Telemetry, TopicCounters};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

mod bounds;
mod context;
mod record;

use bounds::{Reads, Scope, assigned};
use context::{Context, fetch_from};
use record::Progress;

use crate::{
    Error, Result, SilverConfig,
    catchup::{self, CatchUp},
    compaction::Compaction,
    position::PartitionState,
};

/// How long the re-read of a log reported shorter than silver's offset runs before the job
/// asks the broker again and decides (time for the batches it reports to arrive).
const SHORT_LOG_SETTLE: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Pending {
    batch: StreamBatch,
    bytes: usize,
    newest_event_us: Option<i64>,
}

pub(crate) struct Job {
    config: SilverConfig,
    telemetry: Arc<Telemetry>,
    consumer: Arc<StreamConsumer<Context>>,
    tables: HashMap<String, TopicTables>,
    /// Per topic (every consumed topic has an entry), per partition: looked up by `&str` so
    /// the per-record path allocates no key.
    partitions: HashMap<String, HashMap<i32, PartitionState>>,
    counters: HashMap<String, TopicCounters>,
    pending: BTreeMap<String, Pending>,
    /// Partition count per topic from Kafka metadata, named in every commit (for gold).
    topic_partitions: BTreeMap<String, i32>,
    pending_bytes: usize,
    oldest_pending: Option<Instant>,
    compaction: Compaction,
    catchup: CatchUp,
    /// The newest `(log start, end)` the broker gave for each partition, to name the empty ones
    /// in each commit (see [`Upstream::empty`]).
    log_bounds: HashMap<(String, i32), (i64, i64)>,
}

impl Job {
    pub(crate) async fn new(config: SilverConfig, telemetry: Arc<Telemetry>) -> Result<Job> {
        let context =
            Context { revoked: AtomicBool::new(false), resume_at: Mutex::default(), telemetry: telemetry.clone() };
        let mut client = reco_kafka::client_config(&config.bootstrap_servers);
        if let Some(id) = &config.instance_id {
            client.set("group.instance.id", id);
        }
        let consumer: StreamConsumer<Context> = client
            .set("group.id", &config.group_id)
            .set("session.timeout.ms", config.session_timeout.as_millis().to_string())
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("statistics.interval.ms", "5000")
            .set("fetch.wait.max.ms", "100")
            .create_with_context(context)
            .map_err(reco_kafka::Error::from)?;
        let consumer = Arc::new(consumer);
        let mut tables = HashMap::new();
        let mut topic_partitions = BTreeMap::new();
        // Before subscribing, so the first assignment starts at the table's offsets. One
        // request for all topics: an unreachable broker costs one timeout, not one per topic.
        let asking = Arc::clone(&consumer);
        let metadata = tokio::task::spawn_blocking(move || {
            asking.fetch_metadata(None, Duration::from_secs(10)).map(|m| {
                m.topics()
                    .iter()
                    .map(|t| (t.name().to_owned(), t.partitions().iter().map(|p| p.id()).collect::<Vec<i32>>()))
                    .collect::<HashMap<String, Vec<i32>>>()
            })
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?;
        let metadata = metadata.unwrap_or_else(|e| {
            warn!(bootstrap = %config.bootstrap_servers, error = %e, "cannot read the topics from Kafka yet; consuming anyway");
            HashMap::new()
        });
        for topic in &config.topics {
            let mut table = TopicTables::open(&config.lake, topic, crate::with_rating(topic)).await?;
            let partitions = metadata.get(topic).cloned().unwrap_or_default();
            if !partitions.is_empty() {
                topic_partitions.insert(topic.clone(), partitions.len() as i32);
            }
            for (partition, offset) in table.stored_offsets(&partitions).await?.silver {
                consumer.context().set_resume_at(topic, partition, offset);
            }
            tables.insert(topic.clone(), table);
        }
        let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(reco_kafka::Error::from)?;
        let partitions = config.topics.iter().map(|t| (t.clone(), HashMap::new())).collect();
        let reasons = ErrorKind::ALL.map(ErrorKind::as_str);
        config.topics.iter().for_each(|t| telemetry.silver.known_reasons(t, &reasons));
        let counters = config.topics.iter().map(|t| (t.clone(), telemetry.silver.topic(t))).collect();
        let compaction = Compaction::new(config.compact, &config.lake, telemetry.clone());
        let catchup = CatchUp::new(config.min_batch_age, config.max_batch_age);
        Ok(Job {
            config,
            telemetry,
            consumer,
            tables,
            partitions,
            counters,
            pending: BTreeMap::new(),
            topic_partitions,
            pending_bytes: 0,
            oldest_pending: None,
            compaction,
            catchup,
            log_bounds: HashMap::new(),
        })
    }

    pub(crate) async fn run(mut self, shutdown: CancellationToken) -> Result<()> {
        info!(group = %self.config.group_id, topics = ?self.config.topics, "silver job consuming");
        // A received message borrows the consumer; holding it outside `self` lets the handler
        // take `&mut self` while the message is alive (no copy of the payload).
        let consumer = Arc::clone(&self.consumer);
        let mut short_logs = tokio::time::interval(SHORT_LOG_SETTLE);
        let mut asking: Option<JoinHandle<Vec<catchup::Mark>>> = None;
        loop {
            let deadline = self.oldest_pending.map(|t| t + self.config.max_batch_age);
            let ask_at = if asking.is_none() { self.catchup.ask_at(self.oldest_pending) } else { None };
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = sleep_until(deadline) => self.flush(false).await?,
                marks = answer(&mut asking) => {
                    asking = None;
                    if marks.is_some_and(|m| self.caught_up(m)) && !self.pending.is_empty() {
                        self.flush(true).await?;
                    }
                }
                () = sleep_until(ask_at) => asking = Some(self.ask_caught_up()),
                _ = short_logs.tick() => self.check_short_logs().await?,
                message = consumer.recv() => {
                    if consumer.context().revoked.swap(false, Ordering::SeqCst) {
                        self.forget_uncommitted();
                        if let Some(asked) = asking.take() {
                            asked.abort();
                        }
                    }
                    let caught_up = match message {
                        Ok(m) => self.handle(&m).await? == Progress::CaughtUp,
                        Err(e) => {
                            warn!(error = %e, "consumer error");
                            false
                        }
                    };
                    if caught_up || self.pending_bytes >= self.config.max_batch_bytes {
                        self.flush(caught_up).await?;
                    }
                }
            }
        }
        if let Some(limit) = self.config.drain_on_stop {
            self.drain(limit).await?;
        }
        // Graceful stop: commit what was read, so a restart re-reads nothing.
        if !self.consumer.context().revoked.load(Ordering::SeqCst) {
            self.flush(false).await?;
        }
        self.compaction.finish(Duration::from_secs(5)).await;
        info!("silver job stopped");
        Ok(())
    }

    /// Reads on after shutdown until no partition has unread records (or `limit` passes).
    /// Producers in the same process (the API) stop on the same signal; their last
    /// acknowledged records are on the broker before the first check that can end the drain.
    async fn drain(&mut self, limit: Duration) -> Result<()> {
        let consumer = Arc::clone(&self.consumer);
        let (started, deadline) = (Instant::now(), Instant::now() + limit);
        loop {
            // All partitions, assigned or not yet: a worker stopped before its first
            // assignment has read nothing, and that is not "caught up".
            let mut behind: Vec<(String, i32)> = (self.partitions_behind().await.into_iter())
                .flat_map(|(topic, partitions)| partitions.into_iter().map(move |p| (topic.clone(), p)))
                .collect();
            self.check_short_logs().await?;
            for (topic, states) in &self.partitions {
                let unsettled = states.iter().filter(|(_, s)| s.short_log_since.is_some());
                behind.extend(unsettled.map(|(p, _)| (topic.clone(), *p)));
            }
            if behind.is_empty() && started.elapsed() >= Duration::from_millis(500) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                warn!(partitions = ?behind, "stopping with records not read (drain limit reached)");
                return Ok(());
            }
            let until = Instant::now() + Duration::from_millis(200);
            while let Ok(message) = tokio::time::timeout_at(until.into(), consumer.recv()).await {
                if consumer.context().revoked.swap(false, Ordering::SeqCst) {
                    self.forget_uncommitted();
                }
                match message {
                    Ok(m) => _ = self.handle(&m).await?,
                    Err(e) => warn!(error = %e, "consumer error"),
                }
            }
        }
    }

    /// A revocation happened: uncommitted work may now belong to another worker. Drop it; the
    /// records are re-read from the committed offsets by whoever owns the partition.
    fn forget_uncommitted(&mut self) {
        debug!("partitions revoked; dropping uncommitted batches");
        self.pending.clear();
        self.pending_bytes = 0;
        self.oldest_pending = None;
        self.partitions.values_mut().for_each(HashMap::clear);
        self.catchup.forget();
        // What this worker knew of partitions it may no longer own: another worker's could
        // have data by now, and naming it empty would let gold pass it by. The next flush asks
        // again for the partitions assigned then.
        self.log_bounds.clear();
    }

    /// Partitions whose log was reported shorter than silver's offset a while ago and whose
    /// re-read has not reached that offset: reset when the re-read has delivered everything
    /// the broker reports and the log still ends before the offset; cleared when the log now
    /// reaches it (the identity check on silver's last offset judges the records).
    async fn check_short_logs(&mut self) -> Result<()> {
        let quiet: Vec<(String, i32, i64, i64)> = self
            .partitions
            .iter()
            .flat_map(|(topic, states)| {
                states.iter().filter_map(move |(p, s)| {
                    let since = s.short_log_since?;
                    let read = s.last_seen.map_or(0, |o| o + 1);
                    (since.elapsed() >= SHORT_LOG_SETTLE).then(|| (topic.clone(), *p, s.position.unwrap_or(0), read))
                })
            })
            .collect();
        for (topic, partition, position, read) in quiet {
            match self.ask_bounds(&topic, partition).await {
                Some((_, high)) if high < position && read >= high => {
                    let end = high.max(read);
                    self.reset_partition(&topic, partition, format!("the log ends at offset {end}"))?
                }
                Some((_, high)) if high >= position => self.state(&topic, partition)?.short_log_since = None,
                _ => {}
            }
        }
        Ok(())
    }

    /// Commits every pending batch, one commit per topic. `caught_up`: every assigned
    /// partition was just read to the high watermark the broker reported (none is behind).
    async fn flush(&mut self, caught_up: bool) -> Result<()> {
        if self.pending.is_empty() {
            self.pending_bytes = 0;
            self.oldest_pending = None;
            return Ok(());
        }
        // Where each assigned partition is read to: all of it is in the tables after this flush.
        // Asked before the batches leave `pending`: it tells which partitions have records buffered.
        let reads: Reads = self.config.topics.iter().map(|t| (t.clone(), self.reads(t, Scope::Assigned))).collect();
        let upstream = self.upstream(caught_up, &reads).await;
        let pending = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        self.oldest_pending = None;
        for (topic, mut p) in pending {
            // Every commit says what this worker knew of all its topics: gold reads one table
            // at a time and must know of another table's partitions before their rows come.
            if p.batch.offsets.is_empty() {
                continue;
            }
            let read = reads.get(&topic).map(|r| r.iter().map(|(p, o)| (*p, *o)).collect()).unwrap_or_default();
            p.batch.upstream = Some(Upstream { read, ..upstream.clone() });
            let started = Instant::now();
            let offsets = p.batch.offsets.clone();
            let tables = self.tables.get_mut(&topic).ok_or_else(|| Error::UnknownTopic(topic.clone()))?;
            match tables.commit(p.batch).await? {
                CommitOutcome::Committed(stats) => {
                    self.telemetry.silver.batch_committed(&CommittedBatch {
                        topic: &topic,
                        silver: &reco_lake::silver_key(&topic),
                        deadletter: &reco_lake::deadletter_key(&topic),
                        seconds: started.elapsed().as_secs_f64(),
                        silver_rows: stats.silver_rows,
                        deadletter_rows: stats.deadletter_rows,
                        bytes: stats.bytes,
                        version: stats.version,
                        newest_event_time_us: p.newest_event_us,
                    });
                    let mut tpl = TopicPartitionList::new();
                    for (partition, (_, end)) in &offsets {
                        if let Some(s) = self.partitions.get_mut(&topic).and_then(|p| p.get_mut(partition)) {
                            s.committed = Some(*end);
                        }
                        self.consumer.context().set_resume_at(&topic, *partition, *end);
                        // For the lag display below only.
                        let _ = tpl.add_partition_offset(&topic, *partition, Offset::Offset(*end));
                    }
                    // Group offsets only make lag visible; the truth is in the table.
                    if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                        debug!(error = %e, "group offset commit failed (lag display only)");
                    }
                    let consumer = &self.consumer;
                    self.compaction.committed(&topic, || assigned(consumer, &topic, 0)).await;
                }
                CommitOutcome::Conflict { partition } => {
                    warn!(
                        topic,
                        partition, "another writer committed these offsets; re-reading from the table's offsets"
                    );
                    self.telemetry.silver.conflict(&topic);
                    for partition in offsets.keys() {
                        self.partition_map(&topic)?.remove(partition);
                        let state = self.load_partition(&topic, *partition).await?;
                        let to = state.committed.map_or(Offset::Beginning, fetch_from);
                        self.seek(&topic, *partition, to)?;
                        self.partition_map(&topic)?.insert(*partition, state);
                    }
                }
            }
        }
        // Gold needs waking only when there is something new to read.
        if let Some(committed) = self.config.committed.as_ref() {
            committed.notify_one();
        }
        Ok(())
    }
}

/// The broker's answer once `asking` has one; never while nothing is asked.
async fn answer(asking: &mut Option<JoinHandle<Vec<catchup::Mark>>>) -> Option<Vec<catchup::Mark>> {
    match asking {
        Some(handle) => handle.await.ok(),
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
