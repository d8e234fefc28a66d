//! The gold job: silver rows → gold tables, through **aggregates** (`aggregate.rs`) in
//! event-time order. The job (`job.rs`) hosts them: it reads silver incrementally (new Delta
//! commits or batch-log entries), hands each row to the aggregates that read its table, moves
//! their watermarks (`watermark.rs`: one per Kafka partition of each silver table), replaces
//! the row sets they publish in the gold tables, and checkpoints each one's state (see
//! `checkpoint.rs` for why resuming is exact). [`backfill`] recomputes a range.
//!
//! Trending (`trending.rs`) is the first aggregate. [`window::Trending`] is its core, a pure,
//! synchronous state machine with an injected clock: it is fed events (`record`) and asked
//! which windows are due (`advance`); it does no I/O. Counts live in panes that every window
//! length shares (5-minute panes serve both the 1 h / 5 min and the 24 h / 15 min windows), so
//! each event is counted once, not once per window it belongs to (Spark's `window()` copies
//! each row 12× and 96×).
//!
//! ```
//! use reco_gold::window::{Config, Trending};
//! use reco_core::EventType;
//! let mut t = Trending::new(Config::default());
//! let (minute, now) = (60_000_000, 1_800_000_000_000_000); // `now`: wall clock, µs
//! let views = t.watermarks_mut().input("events_views", 0, now); // one input per silver table partition
//! t.record(views, "m1", EventType::View, 0, now);
//! t.record(views, "m1", EventType::Click, 10 * minute, now);
//! t.record(views, "m2", EventType::View, 2 * 60 * minute, now); // moves the watermark past the first hour
//! let due = t.advance(now);
//! let first = due.iter().find(|w| w.window == "1h" && w.start_us == 0).unwrap();
//! assert_eq!((first.rows[0].item_id.as_str(), first.rows[0].score, first.complete), ("m1", 4.0, true));
//! ```

pub mod aggregate;
mod backfill;
mod checkpoint;
pub mod covisit;
mod job;
pub mod lease;
mod neighbors;
mod rank;
mod trending;
pub mod watermark;
pub mod window;

use std::{sync::Arc, time::Duration};

use reco_lake::Lake;
use reco_telemetry::Telemetry;
use tokio_util::sync::CancellationToken;

pub use backfill::{BackfillReport, backfill};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Lake(#[from] reco_lake::Error),
    #[error("gold checkpoint: {0}")]
    Checkpoint(String),
    #[error("Arrow/Parquet: {0}")]
    Arrow(String),
    #[error("gold configuration: {0}")]
    Config(String),
    #[error("background task failed: {0}")]
    Task(String),
    #[error("gold lease: {0}")]
    Lease(String),
}

impl Error {
    fn arrow(e: impl std::fmt::Display) -> Error {
        Error::Arrow(e.to_string())
    }
}

/// Settings of the gold job; `new` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct GoldConfig {
    pub lake: Lake,
    /// Windows, panes, lateness, horizon, idle timeout, top N and score weights. The lateness
    /// and idle timeout are every aggregate's.
    pub window: window::Config,
    /// The item neighbours aggregate's rules (`None`: not run).
    pub neighbors: Option<covisit::Config>,
    /// Buckets of the `item_neighbors` table (one data file each).
    pub neighbor_buckets: u32,
    /// How often silver is checked for new versions when it has committed nothing for a
    /// while (10 s)...
    pub poll_interval: Duration,
    /// ...and while it is committing.
    pub active_poll_interval: Duration,
    /// Wakes the job at once: a silver job in the same process (`reco up`) signals each flush.
    /// Separate services poll.
    pub silver_committed: Option<Arc<tokio::sync::Notify>>,
    /// Least time between state checkpoints (a crash re-reads at most this much silver).
    pub checkpoint_interval: Duration,
    /// Silver versions read per table per cycle while catching up (bounds memory).
    pub max_versions_per_cycle: usize,
    /// Windows that ended this much event time before the watermark are removed from the gold
    /// tables, in a commit that publishes (`None`: kept for ever). At least the state horizon.
    /// A gold table gains 384 windows a day and every reader and writer holds the table's
    /// file list in memory, so without a retention both grow for as long as the job runs.
    pub retention: Option<Duration>,
    /// How long the gold lease lasts without renewal: a gold job that died on another host is
    /// replaced after at most this long (see `lease.rs`).
    pub lease_ttl: Duration,
}

impl GoldConfig {
    pub fn new(lake: Lake) -> GoldConfig {
        GoldConfig {
            lake,
            window: window::Config::default(),
            neighbors: Some(covisit::Config::default()),
            neighbor_buckets: 64,
            poll_interval: Duration::from_secs(1),
            // The library's default; `reco gold` sets 200 ms (windows published within a
            // second of closing), `reco up` the poll interval (silver wakes gold there).
            active_poll_interval: Duration::from_secs(1),
            silver_committed: None,
            checkpoint_interval: Duration::from_secs(30),
            max_versions_per_cycle: 100,
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
            lease_ttl: Duration::from_secs(30),
        }
    }
}

impl GoldConfig {
    /// The window scheme's relations, and a retention no shorter than the state horizon.
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.window.validate()?;
        if let Some(n) = &self.neighbors {
            n.validate()?;
        }
        if self.neighbor_buckets == 0 {
            return Err("the item_neighbors table needs at least one bucket".into());
        }
        match self.retention {
            // A late event (at most the horizon behind the watermark) republishes the windows
            // holding it, which all end after it; a shorter retention would remove windows a
            // late event can still bring back.
            Some(r) if (r.as_micros() as i64) < self.window.horizon_us => Err(format!(
                "the gold retention ({} h) must be at least the state horizon ({} s)",
                r.as_secs() / 3600,
                self.window.horizon_us / 1_000_000
            )),
            _ => Ok(()),
        }
    }
}

/// Takes the lake's gold lease (waiting while another job holds it), runs the job until
/// `shutdown`, then checkpoints, releases the lease and returns.
pub async fn run(config: GoldConfig, telemetry: Arc<Telemetry>, shutdown: CancellationToken) -> Result<()> {
    config.lake.check(true).await?;
    let Some(lease) = lease::Lease::acquire(&config.lake, config.lease_ttl, &shutdown).await? else { return Ok(()) };
    job::Job::new(config, telemetry, lease::Kept::start(lease)).await?.run(shutdown).await
}
