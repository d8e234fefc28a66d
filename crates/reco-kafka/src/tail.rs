//! Following topics outside any consumer group: every partition, from a point in time, for a
//! reader that needs *all* records (the API's per-user histories), not a share of them.
//!
//! No offsets are committed: a restarted reader starts again from its point in time, which is
//! what a cache rebuilt from the log wants.

use std::time::Duration;

use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer, StreamConsumer},
};
use tracing::{info, warn};

use crate::{Error, QuietContext, Result, client_config, topics::run_blocking};

/// One record as the follower hands it on.
#[derive(Clone, Copy, Debug)]
pub struct TailRecord<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// The record's Kafka timestamp in milliseconds, when it has one.
    pub timestamp_ms: Option<i64>,
    pub payload: Option<&'a [u8]>,
}

/// How long to wait before asking again for topics that do not exist yet.
const RETRY: Duration = Duration::from_secs(5);

/// Reads every partition of `topics`, starting at the first record produced at or after
/// `since_ms` (the start of each log when `None`), and hands each record to `on_record`.
/// Runs until the task is dropped; topics that do not exist yet are waited for.
pub async fn follow(
    bootstrap: &str,
    topics: &[&str],
    since_ms: Option<i64>,
    mut on_record: impl FnMut(TailRecord<'_>) + Send,
) -> Result<()> {
    let consumer: StreamConsumer<QuietContext> = client_config(bootstrap)
        // Required by librdkafka for any consumer; never joined (no subscribe) nor committed.
        .set("group.id", "reco-follow")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // A record should reach the reader within a fraction of a second of its acknowledgment.
        .set("fetch.wait.max.ms", "50")
        .set("fetch.error.backoff.ms", "100")
        .create_with_context(QuietContext)?;
    let start = loop {
        match starting_offsets(bootstrap, topics, since_ms).await {
            Ok(tpl) => break tpl,
            Err(e) => {
                warn!(error = %e, "cannot read where to start following the event topics; retrying in 5 s");
                tokio::time::sleep(RETRY).await;
            }
        }
    };
    consumer.assign(&start)?;
    info!(topics = ?topics, partitions = start.count(), since_ms, "following the event topics");
    loop {
        match consumer.recv().await {
            Ok(m) => on_record(TailRecord {
                topic: m.topic(),
                partition: m.partition(),
                offset: m.offset(),
                timestamp_ms: m.timestamp().to_millis(),
                payload: m.payload(),
            }),
            // librdkafka retries on its own; a persistent error shows up in every log line.
            Err(e) => {
                warn!(error = %e, "error while following the event topics");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Every partition of `topics` at the first offset at or after `since_ms`.
async fn starting_offsets(bootstrap: &str, topics: &[&str], since_ms: Option<i64>) -> Result<TopicPartitionList> {
    let (bootstrap, topics) = (bootstrap.to_owned(), topics.iter().map(|t| t.to_string()).collect::<Vec<_>>());
    run_blocking(move || {
        let consumer: BaseConsumer<QuietContext> =
            client_config(&bootstrap).set("group.id", "reco-follow").create_with_context(QuietContext)?;
        let mut tpl = TopicPartitionList::new();
        for topic in &topics {
            let metadata = consumer
                .fetch_metadata(Some(topic), crate::ADMIN_TIMEOUT)
                .map_err(|e| Error::Unreachable { bootstrap: bootstrap.clone(), message: e.to_string() })?;
            let partitions = metadata.topics().first().map(|t| t.partitions().len()).unwrap_or(0);
            if partitions == 0 {
                return Err(Error::Topic { topic: topic.clone(), message: "does not exist (yet)".into() });
            }
            for p in 0..partitions as i32 {
                let offset = since_ms.map_or(Offset::Beginning, Offset::Offset);
                tpl.add_partition_offset(topic, p, offset)?;
            }
        }
        if since_ms.is_none() {
            return Ok(tpl);
        }
        // A time maps to the first offset whose timestamp is at or after it, or to the end.
        let found = consumer.offsets_for_times(tpl, crate::ADMIN_TIMEOUT)?;
        let mut start = TopicPartitionList::new();
        for e in found.elements() {
            let offset = match e.offset() {
                o @ Offset::Offset(_) => o,
                _ => Offset::End,
            };
            start.add_partition_offset(e.topic(), e.partition(), offset)?;
        }
        Ok(start)
    })
    .await
}
