//! One record's way in: admitted (or recognised as a re-read, a jump ahead, a log reset),
//! validated, de-duplicated and buffered; and a partition's state loaded from the lake the
//! first time one of its records arrives.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use rdkafka::{Message, consumer::Consumer, message::BorrowedMessage};
use reco_core::ErrorKind;
use reco_lake::read;
use tracing::debug;

use super::{
    Job, Pending,
    context::{BATCH_REACH, fetch_from},
};
use crate::{
    Error, Result,
    decode::{Decoded, RawRecord, deadletter_row, decode},
    dedupe::Dedupe,
    position::{Arrival, PartitionState, classify},
};

/// Where reading stands after one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Progress {
    Reading,
    /// It was the last record to read to be caught up (see `catchup.rs`): time to commit.
    CaughtUp,
}

impl Job {
    /// Buffers one record (or deals with a re-read, a jump or a log reset instead).
    pub(super) async fn handle(&mut self, m: &BorrowedMessage<'_>) -> Result<Progress> {
        let (topic, partition, offset) = (m.topic(), m.partition(), m.offset());
        if !self.admit(topic, partition, offset, m.payload()).await? || !self.buffer(m) {
            return Ok(Progress::Reading);
        }
        Ok(if self.catchup.read(topic, partition, offset + 1) { Progress::CaughtUp } else { Progress::Reading })
    }

    /// Whether the record at `offset` is the next one to buffer. Re-reads, jumps ahead and log
    /// resets are dealt with here (false); offsets passed without a record are counted.
    async fn admit(&mut self, topic: &str, partition: i32, offset: i64, payload: Option<&[u8]>) -> Result<bool> {
        let loaded = self.partitions.get(topic).ok_or_else(|| Error::UnknownTopic(topic.to_owned()))?;
        if !loaded.contains_key(&partition) {
            let state = self.load_partition(topic, partition).await?;
            self.partition_map(topic)?.insert(partition, state);
        }
        let (arrival, expected) = {
            let Some(state) = self.partitions.get_mut(topic).and_then(|p| p.get_mut(&partition)) else {
                return Ok(false);
            };
            (classify(state, offset, payload), state.position.unwrap_or(0))
        };
        match arrival {
            Arrival::Next => {}
            Arrival::Seen => {
                // Far behind (the fetch started well before the table's offset, e.g. at the
                // log start): jump ahead rather than read everything again.
                if expected - offset > 2 * BATCH_REACH {
                    self.state(topic, partition)?.last_seen = None;
                    // Only a shortcut: if it fails, the records up to `expected` keep being
                    // read and skipped as seen.
                    if let Err(e) = self.consumer.seek(topic, partition, fetch_from(expected), Duration::ZERO) {
                        debug!(topic, partition, error = %e, "cannot jump ahead; reading on");
                    }
                }
                return Ok(false);
            }
            Arrival::OtherLog(found) => return self.reset_partition(topic, partition, found).map(|()| false),
            Arrival::WentBack(found) => {
                // Offsets going down is only a reset when the log ends before what was read;
                // otherwise it is a re-read, skipped as any other.
                if self.ask_bounds(topic, partition).await.is_some_and(|(_, high)| high < expected) {
                    return self.reset_partition(topic, partition, found).map(|()| false);
                }
                return Ok(false);
            }
        }
        if offset > expected {
            self.count_skipped(topic, partition, expected, offset).await;
        }
        Ok(true)
    }

    /// Validates and de-duplicates an admitted record into its topic's pending batch (a
    /// dead-letter row when invalid or a duplicate); false if its partition is not held.
    fn buffer(&mut self, m: &BorrowedMessage<'_>) -> bool {
        let (topic, partition, offset) = (m.topic(), m.partition(), m.offset());
        let Some(state) = self.partitions.get_mut(topic).and_then(|p| p.get_mut(&partition)) else { return false };
        let counters = &self.counters[topic];
        counters.record_in();
        let now_us = chrono::Utc::now().timestamp_micros();
        let record = RawRecord {
            topic,
            partition,
            offset,
            timestamp_us: m.timestamp().to_millis().map(|ms| ms * 1000),
            key: m.key(),
            payload: m.payload(),
        };
        let size = record.payload.map_or(0, <[u8]>::len) + record.key.map_or(0, <[u8]>::len) + 64;
        // Looked up by `&str`: `entry` would allocate the key for every record.
        if !self.pending.contains_key(topic) {
            self.pending.insert(topic.to_owned(), Pending::default());
        }
        let Some(pending) = self.pending.get_mut(topic) else { return false };
        match decode(&record, &self.config.rules, now_us) {
            Decoded::Valid(row) => {
                if state.dedupe.insert(&row.event_id, row.event_time_us) {
                    pending.newest_event_us = pending.newest_event_us.max(Some(row.event_time_us));
                    pending.batch.silver.push(row);
                } else {
                    counters.duplicate();
                    self.telemetry.silver.deadlettered(topic, ErrorKind::Duplicate.as_str());
                    let message = format!("duplicate of event_id {:?} already in silver", row.event_id);
                    pending.batch.deadletter.push(deadletter_row(&record, ErrorKind::Duplicate, message, now_us));
                }
            }
            Decoded::Invalid { kind, message } => {
                self.telemetry.silver.deadlettered(topic, kind.as_str());
                pending.batch.deadletter.push(deadletter_row(&record, kind, message, now_us));
            }
        }
        let entry = pending.batch.offsets.entry(partition).or_insert((state.committed, offset + 1));
        entry.1 = offset + 1;
        state.position = Some(offset + 1);
        pending.bytes += size;
        self.pending_bytes += size;
        self.oldest_pending.get_or_insert_with(Instant::now);
        true
    }

    pub(super) fn partition_map(&mut self, topic: &str) -> Result<&mut HashMap<i32, PartitionState>> {
        self.partitions.get_mut(topic).ok_or_else(|| Error::UnknownTopic(topic.to_owned()))
    }

    /// Reads a partition's stored offset and rebuilds its de-duplication state from silver.
    pub(super) async fn load_partition(&mut self, topic: &str, partition: i32) -> Result<PartitionState> {
        let tables = self.tables.get_mut(topic).ok_or_else(|| Error::UnknownTopic(topic.to_owned()))?;
        let stored = tables.stored_offsets(&[partition]).await?;
        let committed = stored.silver.get(&partition).copied();
        let horizon_us = i64::try_from(self.config.dedupe_horizon.as_micros()).unwrap_or(i64::MAX);
        let mut dedupe = Dedupe::new(horizon_us);
        let mut last_committed = None;
        if committed.is_some() {
            // Only the newest dates can hold ids within the horizon of the newest event.
            let files = tables.silver_files().await?;
            let newest = files.iter().filter_map(|f| f.event_date).max();
            let horizon_days = (horizon_us / 86_400_000_000) as i32 + 1;
            let recent: Vec<_> = files
                .into_iter()
                .filter(|f| match (f.event_date, newest) {
                    (Some(d), Some(n)) => d >= n - horizon_days,
                    _ => true,
                })
                .collect();
            let stored = tokio::task::spawn_blocking(move || read::read_ids(&recent, partition))
                .await
                .map_err(|e| Error::Task(e.to_string()))??;
            let mut ids = stored.ids;
            last_committed = stored.last.filter(|(at, _)| committed.is_some_and(|c| *at < c && *at >= c - BATCH_REACH));
            ids.sort_by_key(|(_, t)| *t);
            for (id, t) in ids {
                dedupe.insert(&id, t);
            }
        }
        if let Some(offset) = committed {
            self.consumer.context().set_resume_at(topic, partition, offset);
        }
        debug!(topic, partition, ?committed, ids = dedupe.len(), "partition loaded");
        let mut state = PartitionState {
            committed,
            position: committed,
            last_seen: None,
            last_committed,
            short_log_since: None,
            dedupe,
        };
        if let Some(stored) = committed
            && let Some((_, high)) = self.ask_bounds(topic, partition).await
            && high < stored
        {
            // Not yet a verdict on one answer (a broker may report the newest batch's first
            // offset as the end): the re-read settles it (see `check_short_logs`).
            debug!(topic, partition, stored, high, "the broker reports the log ending before silver's offset");
            state.short_log_since = Some(Instant::now());
        }
        Ok(state)
    }
}
