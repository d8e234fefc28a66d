//! The per-partition side of the loop: each partition's state and where it resumes, the
//! brokers' log bounds (start and end offsets) and what they tell: skipped offsets, logs that
//! restarted below silver's offset, partitions read to their end or left behind.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, PoisonError},
    time::Duration,
};

use rdkafka::{
    Offset,
    consumer::{Consumer, StreamConsumer},
};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::{Job, context::Context};
use reco_lake::Upstream;

use crate::{Error, OnOffsetReset, Result, catchup, position::PartitionState};

impl Job {
    /// Moves the consumer of a partition whose state was just changed to match: reading on
    /// from elsewhere could skip records, so a failure stops the job (see [`Error::Seek`]).
    pub(super) fn seek(&self, topic: &str, partition: i32, to: Offset) -> Result<()> {
        self.consumer.seek(topic, partition, to, Duration::ZERO).map_err(|e| Error::Seek {
            topic: topic.to_owned(),
            partition,
            to: format!("{to:?}"),
            message: e.to_string(),
        })
    }

    pub(super) fn state(&mut self, topic: &str, partition: i32) -> Result<&mut PartitionState> {
        self.partition_map(topic)?.get_mut(&partition).ok_or_else(|| unknown(topic, partition))
    }

    /// The partition's `(log start, high watermark)`, asked of the broker on a blocking thread;
    /// `None` when it does not answer in time.
    pub(super) async fn ask_bounds(&self, topic: &str, partition: i32) -> Option<(i64, i64)> {
        let (consumer, owned) = (Arc::clone(&self.consumer), topic.to_owned());
        let asked =
            tokio::task::spawn_blocking(move || consumer.fetch_watermarks(&owned, partition, Duration::from_secs(5)));
        match asked.await {
            Ok(Ok(marks)) => Some(marks),
            Ok(Err(e)) => {
                warn!(topic, partition, error = %e, "cannot read the partition's log bounds");
                None
            }
            Err(_) => None,
        }
    }

    /// The broker did not return offsets `[expected, got)` to this consumer. It reads in order
    /// from at or before `expected` (every assignment and seek starts there), so they hold no
    /// record it may read: deleted by retention (below the log start), or transaction markers,
    /// aborted or compacted records. Counted by reason; only retention is a loss.
    pub(super) async fn count_skipped(&self, topic: &str, partition: i32, expected: i64, got: i64) {
        let start = self.ask_bounds(topic, partition).await.map(|(low, _)| low);
        let deleted = start.map_or(0, |low| low.min(got) - expected).max(0);
        let gap = got - expected - deleted;
        if deleted > 0 {
            let to = expected + deleted;
            warn!(
                topic,
                partition,
                from = expected,
                to,
                "records deleted from Kafka (retention) before silver read them"
            );
            self.telemetry.silver.offsets_skipped(topic, "retention", deleted as u64);
        }
        if gap > 0 {
            // Normal with transactional producers (one marker per commit): counted, not logged.
            debug!(topic, partition, from = got - gap, to = got, "offsets without a readable record");
            self.telemetry.silver.offsets_skipped(topic, "gap", gap as u64);
        }
    }

    /// `found` shows the partition's log is not the one silver read. By policy: stop with an
    /// error naming the way on, or read the new log from its start (the buffered records of
    /// the old log are still committed; de-duplication by `event_id` keeps a replayed log
    /// from doubling rows).
    pub(super) fn reset(&self, state: &mut PartitionState, topic: &str, partition: i32, found: String) -> Result<()> {
        let stored = state.position.or(state.committed).unwrap_or(0);
        if self.config.on_offset_reset == OnOffsetReset::Fail {
            return Err(Error::OffsetReset { topic: topic.to_owned(), partition, stored, found });
        }
        warn!(topic, partition, stored, found, "Kafka log reset; reading the partition again from its start");
        self.telemetry.silver.offset_reset(topic);
        self.consumer.context().forget_resume_at(topic, partition);
        state.position = None;
        state.last_seen = None;
        state.last_committed = None;
        self.seek(topic, partition, Offset::Beginning)
    }

    pub(super) fn reset_partition(&mut self, topic: &str, partition: i32, found: String) -> Result<()> {
        let mut state = self.partition_map(topic)?.remove(&partition).ok_or_else(|| unknown(topic, partition))?;
        let reset = self.reset(&mut state, topic, partition, found);
        self.partition_map(topic)?.insert(partition, state);
        reset
    }

    /// Per topic, every partition (assigned or not yet) that Kafka holds more records of than
    /// this worker has read: what a drain waits for. The log bounds come from the broker (one
    /// request for all, on a blocking thread); a partition it does not answer for counts as
    /// behind.
    pub(super) async fn partitions_behind(&mut self) -> BTreeMap<String, Vec<i32>> {
        let reads: Reads = self.config.topics.iter().map(|t| (t.clone(), self.reads(t, Scope::All))).collect();
        let asks = reads.iter().flat_map(|(t, r)| r.keys().map(|p| (t.to_string(), *p))).collect();
        let marks = catchup::ask_log_bounds(&self.consumer, asks).await;
        self.note_bounds(&marks);
        self.behind_in(&marks, &reads)
    }

    /// Per topic, the partitions of `reads` (next offset read) that `marks` say hold more (high
    /// watermark past both the next offset to accept and librdkafka's fetch position, which
    /// passes transaction markers; no answer counts as more).
    fn behind_in(&self, marks: &[catchup::Mark], reads: &Reads) -> BTreeMap<String, Vec<i32>> {
        let mut behind: BTreeMap<String, Vec<i32>> =
            self.config.topics.iter().map(|t| (t.clone(), Vec::new())).collect();
        for (topic, p, mark) in marks {
            let Some(read) = reads.get(topic).and_then(|r| r.get(p)) else { continue };
            if catchup::holds_more(*mark, *read)
                && let Some(partitions) = behind.get_mut(topic)
            {
                partitions.push(*p);
            }
        }
        behind.values_mut().for_each(|partitions| partitions.sort_unstable());
        behind
    }

    /// What this worker knows of Kafka for the gold job, written with its commits (see
    /// [`Upstream`]): partition counts; its partitions left behind (none when `caught_up`: every
    /// one was just read to the high watermark the broker reported) or found empty; and the log
    /// end of every partition with records, its own or not, from one request for all. `reads`:
    /// the next offset of each assigned partition, per topic. A partition still being caught up
    /// on must not count as idle in gold, however long since its last rows; a broker that does
    /// not answer makes it "behind", which at worst holds gold's watermark one idle timeout more.
    pub(super) async fn upstream(&mut self, caught_up: bool, reads: &Reads) -> Upstream {
        let mut upstream = Upstream { partitions: self.topic_partitions.clone(), ..Upstream::default() };
        let asks = (self.topic_partitions.iter())
            .filter(|(topic, _)| self.config.topics.contains(topic))
            .flat_map(|(topic, n)| (0..*n).map(move |p| (topic.clone(), p)))
            .collect();
        let marks = catchup::ask_log_bounds(&self.consumer, asks).await;
        self.note_bounds(&marks);
        for (topic, p, mark) in &marks {
            if let Some((low, high)) = mark
                && high > low
            {
                upstream.log_ends.entry(topic.clone()).or_default().insert(*p, *high);
            }
        }
        upstream.behind = if caught_up {
            self.config.topics.iter().map(|t| (t.clone(), Vec::new())).collect()
        } else {
            self.behind_in(&marks, reads)
        };
        upstream.empty = self.empty_partitions();
        upstream
    }

    /// Per topic, this worker's partitions whose log the broker last reported empty and of which
    /// no record is buffered (a record read just before retention emptied the log is still to
    /// commit). Only its own: another worker may hold such a record.
    pub(super) fn empty_partitions(&self) -> BTreeMap<String, Vec<i32>> {
        let mut empty: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        let assigned = self.consumer.assignment().unwrap_or_default();
        for ((topic, partition), (low, high)) in &self.log_bounds {
            let buffered = self.pending.get(topic).is_some_and(|p| p.batch.offsets.contains_key(partition));
            if high <= low && !buffered && assigned.find_partition(topic, *partition).is_some() {
                empty.entry(topic.clone()).or_default().push(*partition);
            }
        }
        empty.values_mut().for_each(|partitions| partitions.sort_unstable());
        empty
    }

    /// Keeps the broker's answers for [`Job::empty_partitions`].
    pub(super) fn note_bounds(&mut self, marks: &[catchup::Mark]) {
        for (topic, partition, mark) in marks {
            match mark {
                Some(bounds) => self.log_bounds.insert((topic.clone(), *partition), *bounds),
                None => self.log_bounds.remove(&(topic.clone(), *partition)),
            };
        }
    }

    /// The next offset this worker reads in each partition of `topic` in `scope`.
    pub(super) fn reads(&self, topic: &str, scope: Scope) -> HashMap<i32, i64> {
        let fetch = self.consumer.position().unwrap_or_default();
        let states = self.partitions.get(topic);
        let resume_at = self.consumer.context().resume_at.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let partitions: Vec<i32> = match scope {
            Scope::Assigned => fetch.elements_for_topic(topic).iter().map(|e| e.partition()).collect(),
            Scope::All => (0..self.topic_partitions.get(topic).copied().unwrap_or(0)).collect(),
        };
        partitions
            .into_iter()
            .map(|p| {
                let loaded = states.and_then(|s| s.get(&p));
                let accepted = loaded.and_then(|s| s.position);
                // Before its first record, a partition's stored offset says nothing of a log
                // that may have been reset: when draining, only what was read counts.
                let stored = match (loaded, scope) {
                    (None, Scope::All) => None,
                    _ => resume_at.get(&(topic.to_owned(), p)).copied(),
                };
                let fetched = match fetch.find_partition(topic, p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => Some(o),
                    _ => None,
                };
                (p, accepted.max(stored).max(fetched).unwrap_or(0))
            })
            .collect()
    }

    /// Starts asking the broker for every assigned partition's log bounds (see `catchup.rs`).
    pub(super) fn ask_caught_up(&mut self) -> JoinHandle<Vec<catchup::Mark>> {
        self.catchup.asking();
        let fetch = self.consumer.position().unwrap_or_default();
        let asks = fetch.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect();
        let consumer = Arc::clone(&self.consumer);
        tokio::spawn(async move { catchup::ask_log_bounds(&consumer, asks).await })
    }

    /// The broker answered [`Job::ask_caught_up`]; true when every partition is read to the
    /// offsets it named.
    pub(super) fn caught_up(&mut self, marks: Vec<catchup::Mark>) -> bool {
        self.note_bounds(&marks);
        let reads: HashMap<String, HashMap<i32, i64>> =
            self.config.topics.iter().map(|t| (t.clone(), self.reads(t, Scope::Assigned))).collect();
        let read = |topic: &str, p: i32| reads.get(topic).and_then(|r| r.get(&p)).copied().unwrap_or(0);
        self.catchup.answered(marks, read)
    }
}

fn unknown(topic: &str, partition: i32) -> Error {
    Error::UnknownPartition { topic: topic.to_owned(), partition }
}

/// Per topic, the next offset this worker reads in each partition ([`Job::reads`]).
pub(super) type Reads = HashMap<String, HashMap<i32, i64>>;

/// Which partitions [`Job::reads`] looks at.
#[derive(Clone, Copy)]
pub(super) enum Scope {
    /// Those assigned to this worker now.
    Assigned,
    /// Every partition of the topic (Kafka metadata at start).
    All,
}

/// Whether this worker is assigned `partition` of `topic` right now.
pub(super) fn assigned(consumer: &StreamConsumer<Context>, topic: &str, partition: i32) -> bool {
    consumer.assignment().is_ok_and(|tpl| tpl.find_partition(topic, partition).is_some())
}
