//! Consumer callbacks: start assigned partitions at the table's offsets, note revocations (the
//! loop drops uncommitted work), export lag.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
};

use rdkafka::{
    ClientContext, Offset, Statistics, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext},
    types::RDKafkaRespErr,
};
use reco_telemetry::Telemetry;
use tracing::{debug, info, warn};

/// The consumer's callbacks and what they share with the loop.
pub(super) struct Context {
    pub(super) revoked: AtomicBool,
    /// Where each partition resumes according to the silver table, as far as this worker knows
    /// (loaded at start, moved by its own commits; another worker's commits only make it lag,
    /// and records below the table's offset are skipped anyway). A partition without an entry
    /// has nothing in the table and starts at the beginning of the topic.
    pub(super) resume_at: Mutex<HashMap<(String, i32), i64>>,
    pub(super) telemetry: Arc<Telemetry>,
}

impl Context {
    pub(super) fn set_resume_at(&self, topic: &str, partition: i32, offset: i64) {
        self.resume_at.lock().unwrap_or_else(PoisonError::into_inner).insert((topic.to_owned(), partition), offset);
    }

    /// The partition starts at the log's start on its next assignment (after a reset).
    pub(super) fn forget_resume_at(&self, topic: &str, partition: i32) {
        self.resume_at.lock().unwrap_or_else(PoisonError::into_inner).remove(&(topic.to_owned(), partition));
    }
}

impl ClientContext for Context {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.telemetry.silver.consumer_lag(topic, *partition, p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for Context {
    /// The table's offsets are the truth, not the group's: a fetch started at the group offset
    /// can begin past records the table never got (a lake restored from a backup, or group
    /// offsets committed from a batch another worker's rebalance dropped), and skipping them
    /// would lose them. So each assigned partition starts where the table resumes. (Eager
    /// protocol, the default assignors; the group offsets only make lag visible.)
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let resume_at = self.resume_at.lock().unwrap_or_else(PoisonError::into_inner).clone();
                let assigned: Vec<(String, i32)> =
                    tpl.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect();
                // Operators (and a stalled test) need to see who holds what after a rebalance.
                info!(partitions = ?assigned, "partitions assigned");
                // The table's offsets go to the group too, so lag reads right from the start
                // even when the group's offsets are gone (`reco up` deletes its group at start).
                let mut table_offsets = TopicPartitionList::new();
                for (topic, partition) in assigned {
                    let resume = resume_at.get(&(topic.clone(), partition)).copied();
                    let at = resume.map_or(Offset::Beginning, fetch_from);
                    // Cannot fail: the partition was just read from this list.
                    let _ = tpl.set_partition_offset(&topic, partition, at);
                    if let Some(offset) = resume {
                        let _ = table_offsets.add_partition_offset(&topic, partition, Offset::Offset(offset));
                    }
                }
                if let Err(e) = consumer.assign(tpl) {
                    warn!(error = %e, "cannot take the assigned partitions");
                }
                if table_offsets.count() > 0
                    && let Err(e) = consumer.commit(&table_offsets, CommitMode::Async)
                {
                    debug!(error = %e, "group offset commit failed (lag display only)");
                }
            }
            _ => {
                info!(partitions = tpl.count(), "partitions revoked");
                self.revoked.store(true, Ordering::SeqCst);
                if let Err(e) = consumer.unassign() {
                    warn!(error = %e, "cannot release the revoked partitions");
                }
            }
        }
    }
}

/// The most records one producer batch holds (librdkafka's `batch.num.messages` default).
pub(super) const BATCH_REACH: i64 = 10_000;

/// Where to fetch from to read `offset` onwards. A Kafka broker answers a fetch with the batch
/// that contains the offset; the embedded broker (tansu 0.6) answers with the first batch that
/// *starts* at or after it, silently skipping the rest of a batch the offset falls inside. So
/// fetches start up to one batch early and the records below `offset` are skipped here;
/// starting at `offset` itself would lose the rest of that batch.
pub(super) fn fetch_from(offset: i64) -> Offset {
    Offset::Offset((offset - BATCH_REACH).max(0))
}
