//! The silver job: Kafka topics → silver tables and dead-letter tables, exactly once.
//!
//! Each record is validated with `reco-core` (the API's rules), de-duplicated by `event_id`
//! within an event-time horizon, buffered, and committed together with the Kafka offsets it
//! covers (see `reco-lake`). On start, on every assignment and after any conflict the job
//! resumes from the offsets stored in the tables; Kafka group offsets are committed after,
//! only so lag is visible. A bad record never stops the job: it becomes a dead-letter row.

mod catchup;
mod compaction;
mod decode;
mod dedupe;
mod job;
mod position;

use std::{sync::Arc, time::Duration};

use reco_core::Rules;
use reco_lake::{CompactPolicy, Lake};
use reco_telemetry::Telemetry;
use tokio_util::sync::CancellationToken;

pub use decode::{Decoded, RawRecord, decode};
pub use dedupe::Dedupe;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kafka(#[from] reco_kafka::Error),
    #[error(transparent)]
    Lake(#[from] reco_lake::Error),
    #[error("record from topic {0}, which the job does not consume")]
    UnknownTopic(String),
    #[error("{topic} partition {partition}: no state for it, though its records are being read")]
    UnknownPartition { topic: String, partition: i32 },
    #[error(
        "{topic} partition {partition}: cannot move the consumer to offset {to}: {message}. Reading on \
         from where it is could skip records, so the job stops; restarted, it resumes from the table's offsets"
    )]
    Seek { topic: String, partition: i32, to: String, message: String },
    #[error("background task failed: {0}")]
    Task(String),
    #[error(
        "{topic} partition {partition}: the Kafka log no longer continues the one silver read: {found}. \
         The broker's storage was lost or replaced, the topic was deleted and re-created, or this is \
         another cluster. Nothing past silver's offset {stored} was read. To read this partition's \
         new log from its start (records already in silver are dropped as duplicates by event_id), \
         restart with --on-offset-reset=continue (RECO_ON_OFFSET_RESET=continue)"
    )]
    OffsetReset { topic: String, partition: i32, stored: i64, found: String },
}

/// What the job does when a partition's Kafka log no longer continues the one it read (its
/// end is before the offset stored in silver, or the record at silver's last offset is
/// another one). See docs/ARCHITECTURE.md, "When silver skips offsets".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnOffsetReset {
    /// Stop with [`Error::OffsetReset`]: on a cluster whose log is meant to last, a reset is
    /// an operator's decision (a restored backup, a wrong cluster).
    #[default]
    Fail,
    /// Read the new log from its start, log the reset once and count it. For a broker whose
    /// log is ephemeral by design (`reco up --broker-storage memory`).
    Continue,
}

/// Whether `topic`'s silver table has the `rating` column (CONTRACTS §4).
pub(crate) fn with_rating(topic: &str) -> bool {
    topic == reco_core::EventType::Rating.topic()
}

/// Settings of the silver job. `Default` gives the documented defaults (lake: `./data`, Delta).
#[derive(Clone, Debug)]
pub struct SilverConfig {
    pub bootstrap_servers: String,
    /// Consumer group; workers in one group split the partitions.
    pub group_id: String,
    /// Static group membership (`group.instance.id`): a worker restarted with the same id
    /// takes its partitions back at once instead of waiting for the session to time out.
    pub instance_id: Option<String>,
    /// How long the group waits for a silent worker before reassigning its partitions.
    pub session_timeout: Duration,
    pub topics: Vec<String>,
    pub lake: Lake,
    /// Flush when the buffered records reach this many bytes...
    pub max_batch_bytes: usize,
    /// ...or when the oldest buffered record is this old (the latency bound)...
    pub max_batch_age: Duration,
    /// ...or, once the oldest is this old, as soon as the job has read every assigned
    /// partition up to where the broker said it ended (`catchup.rs`). Zero: never early.
    pub min_batch_age: Duration,
    /// Duplicates by `event_id` are caught within this much event time.
    pub dedupe_horizon: Duration,
    pub rules: Rules,
    /// Compaction of the small files each batch adds (Delta only; `None`: off).
    pub compact: Option<CompactPolicy>,
    pub on_offset_reset: OnOffsetReset,
    /// On shutdown, keep reading until every partition is read to its end (at most this long)
    /// before the last commit. For a broker whose log dies with the process (`reco up
    /// --broker-storage memory`): what it acknowledged is then in silver, not lost.
    pub drain_on_stop: Option<Duration>,
    /// Signalled after every flush, for a gold job in the same process (`reco up`) to read
    /// the new versions at once instead of at its next poll.
    pub committed: Option<Arc<tokio::sync::Notify>>,
}

impl SilverConfig {
    pub fn new(bootstrap_servers: impl Into<String>, lake: Lake) -> SilverConfig {
        SilverConfig {
            bootstrap_servers: bootstrap_servers.into(),
            group_id: "reco-silver".into(),
            instance_id: None,
            session_timeout: Duration::from_secs(10),
            topics: reco_core::EventType::ALL.map(|t| t.topic().to_owned()).to_vec(),
            lake,
            max_batch_bytes: 32 * 1024 * 1024,
            max_batch_age: Duration::from_secs(2),
            min_batch_age: Duration::from_millis(250),
            dedupe_horizon: Duration::from_secs(24 * 3600),
            rules: Rules::default(),
            compact: Some(CompactPolicy::default()),
            on_offset_reset: OnOffsetReset::Fail,
            drain_on_stop: None,
            committed: None,
        }
    }
}

/// Runs the job until `shutdown`, then commits what it has read and returns.
pub async fn run(config: SilverConfig, telemetry: Arc<Telemetry>, shutdown: CancellationToken) -> Result<()> {
    config.lake.check(true).await?;
    job::Job::new(config, telemetry).await?.run(shutdown).await
}
