//! Options of the silver and gold jobs (and gold's backfill).

use std::net::SocketAddr;

use clap::{Args, Subcommand, ValueEnum};

use super::{KafkaArgs, LakeArgs, RulesArgs};

#[derive(Debug, Args)]
pub struct SilverArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub lake: LakeArgs,
    #[command(flatten)]
    pub silver: SilverOptions,
    #[command(flatten)]
    pub rules: RulesArgs,
    /// Listen address of the job's /metrics and /health/live.
    #[arg(long, env = "RECO_METRICS_ADDR", default_value = "0.0.0.0:9101")]
    pub metrics_addr: SocketAddr,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct GoldArgs {
    #[command(subcommand)]
    pub action: Option<GoldAction>,
    #[command(flatten)]
    pub lake: LakeArgs,
    #[command(flatten)]
    pub gold: GoldOptions,
    /// Listen address of the job's /metrics and /health/live.
    #[arg(long, env = "RECO_METRICS_ADDR", default_value = "0.0.0.0:9102")]
    pub metrics_addr: SocketAddr,
}

#[derive(Debug, Subcommand)]
pub enum GoldAction {
    /// Recompute and republish every window starting in [--from, --to) from the silver tables
    /// (after a bug fix or a scoring change). Run it with the gold job stopped.
    Backfill(BackfillArgs),
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// Start of the range: RFC 3339 time (2019-03-01T00:00:00Z) or date (2019-03-01), UTC.
    #[arg(long, value_parser = parse_time)]
    pub from: i64,
    /// End of the range (exclusive), same formats.
    #[arg(long, value_parser = parse_time)]
    pub to: i64,
    #[command(flatten)]
    pub lake: LakeArgs,
    #[command(flatten)]
    pub gold: GoldOptions,
}

/// Microseconds since the epoch of an RFC 3339 time or a `YYYY-MM-DD` date (UTC midnight).
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_micros());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_micros())
        .ok_or_else(|| format!("{s:?} is neither an RFC 3339 time (2019-03-01T00:00:00Z) nor a date (2019-03-01)"))
}

#[derive(Debug, Args)]
pub struct GoldOptions {
    /// Items kept per window (the most GET /trending can return).
    #[arg(long, env = "RECO_GOLD_TOP_N", default_value_t = 100)]
    pub top_n: usize,
    /// score = view_weight·views + click_weight·clicks.
    #[arg(long, env = "RECO_GOLD_VIEW_WEIGHT", default_value_t = 1.0)]
    pub view_weight: f64,
    /// score = view_weight·views + click_weight·clicks.
    #[arg(long, env = "RECO_GOLD_CLICK_WEIGHT", default_value_t = 3.0)]
    pub click_weight: f64,
    /// Allowed lateness: each input's watermark (a silver table's Kafka partition) trails its
    /// newest event time by this much, in seconds; the job follows the slowest active input.
    #[arg(long, env = "RECO_GOLD_ALLOWED_LATENESS_SECS", default_value_t = 300)]
    pub allowed_lateness_secs: i64,
    /// Late events up to this far behind the watermark still update published windows, in seconds.
    #[arg(long, env = "RECO_GOLD_STATE_HORIZON_SECS", default_value_t = 24 * 3600 + 300)]
    pub state_horizon_secs: i64,
    /// An input without data this long stops holding the watermark back; when all inputs are,
    /// the open windows are published as provisional (`complete = false`), in milliseconds.
    #[arg(long, env = "RECO_GOLD_IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    pub idle_timeout_ms: i64,
    /// How often silver is checked for new commits once it has committed nothing for 10 s,
    /// in milliseconds (on an object store each check lists the silver tables' logs).
    #[arg(long, env = "RECO_GOLD_POLL_INTERVAL_MS", default_value_t = 1000)]
    pub poll_interval_ms: u64,
    /// How often silver is checked while it is committing, in milliseconds (at most the
    /// poll interval). Default: 200 for `reco gold` (windows published within a second of
    /// closing); the poll interval in `reco up`, where silver wakes gold at each flush.
    #[arg(long, env = "RECO_GOLD_ACTIVE_POLL_INTERVAL_MS")]
    pub active_poll_interval_ms: Option<u64>,
    /// Least time between state checkpoints, in seconds (a crash re-reads at most this much).
    #[arg(long, env = "RECO_GOLD_CHECKPOINT_INTERVAL_SECS", default_value_t = 30)]
    pub checkpoint_interval_secs: u64,
    /// How long the lake's gold lease lasts without renewal, in seconds: one gold job writes
    /// a lake; another waits, and takes over at most this long after the holder died.
    #[arg(long, env = "RECO_GOLD_LEASE_TTL_SECS", default_value_t = 30)]
    pub lease_ttl_secs: u64,
    /// Windows that ended this long before the watermark (event time) are removed from the
    /// gold tables, in hours; 0 keeps every window. At least the state horizon.
    #[arg(long, env = "RECO_GOLD_RETENTION_HOURS", default_value_t = 168)]
    pub retention_hours: u64,
    /// Item neighbours on (the default) or off. Off, the gold job builds trending only: the
    /// neighbour core applies about 12,000 events a second per core (docs/BENCHMARKS.md), far
    /// below trending's rate, so a platform above that rate that needs no recommendations
    /// turns it off.
    #[arg(long, env = "RECO_NEIGHBORS", default_value_t = true, action = clap::ArgAction::Set)]
    pub neighbors: bool,
    /// Item neighbours: co-visits fade by half every this many days of event time; 0: never
    /// (for historic replays). docs/ARCHITECTURE.md, "Gold: item neighbours".
    #[arg(long, env = "RECO_NEIGHBORS_HALF_LIFE_DAYS", default_value_t = 30.0)]
    pub neighbors_half_life_days: f64,
    /// Item neighbours: each positive interaction pairs with this many of the session's
    /// previous distinct positive items.
    #[arg(long, env = "RECO_NEIGHBORS_HISTORY", default_value_t = 20)]
    pub neighbors_history: usize,
    /// Item neighbours: the list kept per item (the most GET /items/{id}/similar returns).
    #[arg(long, env = "RECO_NEIGHBORS_TOP_K", default_value_t = 50)]
    pub neighbors_top_k: usize,
}

#[derive(Debug, Args)]
pub struct SilverOptions {
    /// Consumer group of the silver workers; workers in one group split the partitions.
    #[arg(long = "silver-group-id", env = "RECO_SILVER_GROUP_ID", default_value = "reco-silver")]
    pub group_id: String,
    /// Static membership id of this worker (`group.instance.id`), e.g. a StatefulSet pod name:
    /// a restarted worker takes its partitions back at once. Unset: dynamic membership.
    #[arg(long = "silver-instance-id", env = "RECO_SILVER_INSTANCE_ID")]
    pub instance_id: Option<String>,
    /// How long the group waits for a silent worker before reassigning its partitions, in ms.
    #[arg(long = "silver-session-timeout-ms", env = "RECO_SILVER_SESSION_TIMEOUT_MS", default_value_t = 10_000)]
    pub session_timeout_ms: u64,
    /// Flush a batch when it holds this many bytes of records.
    #[arg(long, env = "RECO_SILVER_MAX_BATCH_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_batch_bytes: usize,
    /// Flush a batch when its oldest record is this old, in milliseconds (the latency bound).
    #[arg(long, env = "RECO_SILVER_MAX_BATCH_AGE_MS", default_value_t = 2000)]
    pub max_batch_age_ms: u64,
    /// Once a batch's oldest record is this old, flush as soon as every assigned partition is
    /// read to where the broker last said it ended, in milliseconds (0: only by size or age).
    #[arg(long, env = "RECO_SILVER_MIN_BATCH_AGE_MS", default_value_t = 250)]
    pub min_batch_age_ms: u64,
    /// Catch duplicate event_ids within this much event time, in seconds.
    #[arg(long, env = "RECO_SILVER_DEDUPE_HORIZON_SECS", default_value_t = 24 * 3600)]
    pub dedupe_horizon_secs: u64,
    /// Compact a topic's Delta tables every this many commits, rewriting each date's small
    /// files into larger ones (0: never; Parquet lakes are never compacted).
    #[arg(long, env = "RECO_SILVER_COMPACT_MIN_FILES", default_value_t = 32)]
    pub compact_min_files: usize,
    /// Size of the files compaction writes, in MiB; larger files are left alone.
    #[arg(long, env = "RECO_SILVER_COMPACT_TARGET_MB", default_value_t = 16)]
    pub compact_target_mb: u64,
    /// When a partition's Kafka log no longer continues the one silver read (broker storage
    /// lost, topic re-created, another cluster): `fail` stops with an error naming topic,
    /// partition and offsets; `continue` reads the new log from its start and counts the reset.
    /// Default: `continue` for `reco up --broker-storage memory` (its log is lost at every
    /// exit by design), `fail` everywhere else.
    #[arg(long, env = "RECO_ON_OFFSET_RESET", value_enum)]
    pub on_offset_reset: Option<OnOffsetResetArg>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnOffsetResetArg {
    Fail,
    Continue,
}
