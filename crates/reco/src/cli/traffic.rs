//! Options of the traffic tools: `reco gen` and `reco replay`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{KafkaArgs, parse_time};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GenTarget {
    /// POST /events on --api-url.
    Http,
    /// Produce to the topics on --kafka-bootstrap-servers (bypasses the API).
    Kafka,
}

/// Where `gen` and `replay` send events.
#[derive(Debug, Args)]
pub struct TrafficTarget {
    /// Where the events go.
    #[arg(long, env = "RECO_GEN_TARGET", value_enum, default_value_t = GenTarget::Http)]
    pub target: GenTarget,
    /// Base URL of the API (target http).
    #[arg(long, env = "RECO_GEN_API_URL", default_value = "http://127.0.0.1:8000")]
    pub api_url: String,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

#[derive(Debug, Args)]
pub struct GenArgs {
    #[command(flatten)]
    pub to: TrafficTarget,
    /// Events per second; 0 sends as fast as possible.
    #[arg(long, env = "RECO_GEN_RATE", default_value_t = 1000.0)]
    pub rate: f64,
    /// Stop after this many events; 0 runs until Ctrl-C (or --duration-secs).
    #[arg(long, env = "RECO_GEN_EVENTS", default_value_t = 0)]
    pub events: u64,
    /// Stop after this many seconds; 0 means no limit.
    #[arg(long, env = "RECO_GEN_DURATION_SECS", default_value_t = 0)]
    pub duration_secs: u64,
    /// Valid events per request (malformed ones are sent alone, so they cannot sink a batch).
    #[arg(long, env = "RECO_GEN_BATCH", default_value_t = 100)]
    pub batch: usize,
    /// Concurrent connections / in-flight batches.
    #[arg(long, env = "RECO_GEN_CONCURRENCY", default_value_t = 4)]
    pub concurrency: usize,
    /// Distinct items.
    #[arg(long, env = "RECO_GEN_ITEMS", default_value_t = 10_000)]
    pub items: usize,
    /// Distinct users.
    #[arg(long, env = "RECO_GEN_USERS", default_value_t = 5_000)]
    pub users: usize,
    /// Zipf exponent of item popularity (larger: more concentrated).
    #[arg(long, env = "RECO_GEN_ZIPF_S", default_value_t = 1.1)]
    pub zipf_s: f64,
    /// Popularity ranks the ranking shifts per hour of event time (so trending changes).
    #[arg(long, env = "RECO_GEN_DRIFT_ITEMS_PER_HOUR", default_value_t = 25.0)]
    pub drift_items_per_hour: f64,
    /// Share of views followed by a click.
    #[arg(long, env = "RECO_GEN_CLICK_RATIO", default_value_t = 0.15)]
    pub click_ratio: f64,
    /// Share of clicks followed by a rating.
    #[arg(long, env = "RECO_GEN_RATING_RATIO", default_value_t = 0.3)]
    pub rating_ratio: f64,
    /// Share of malformed events (each kind of validation error).
    #[arg(long, env = "RECO_GEN_MALFORMED_RATIO", default_value_t = 0.0)]
    pub malformed_ratio: f64,
    /// Mean events per user session.
    #[arg(long, env = "RECO_GEN_SESSION_EVENTS", default_value_t = 8)]
    pub session_events: u32,
    /// Simulate a historic clock starting here (RFC 3339 or date) instead of now.
    #[arg(long, env = "RECO_GEN_HISTORIC_START", value_parser = parse_time)]
    pub historic_start: Option<i64>,
    /// With --historic-start: event time runs this many times faster than the wall clock.
    #[arg(long, env = "RECO_GEN_SPEEDUP", default_value_t = 1.0)]
    pub speedup: f64,
    /// Random seed: the same seed gives the same stream, event ids included (silver then
    /// dead-letters a second run's events as duplicates). Without it every run picks a fresh
    /// seed and prints it.
    #[arg(long, env = "RECO_GEN_SEED")]
    pub seed: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TimeUnitArg {
    /// Unix seconds (MovieLens).
    S,
    /// Unix milliseconds.
    Ms,
    /// Unix microseconds.
    Us,
    /// RFC 3339 text (or a Parquet timestamp column).
    Rfc3339,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The log: .csv (with a header), .jsonl or .parquet.
    pub file: PathBuf,
    #[command(flatten)]
    pub to: TrafficTarget,
    /// Column with the user id.
    #[arg(long, default_value = "user_id")]
    pub user_col: String,
    /// Column with the item id.
    #[arg(long, default_value = "item_id")]
    pub item_col: String,
    /// Column with the event time.
    #[arg(long, default_value = "timestamp")]
    pub time_col: String,
    /// How the time column is written.
    #[arg(long, value_enum, default_value_t = TimeUnitArg::S)]
    pub time_unit: TimeUnitArg,
    /// Column with the rating (rating events).
    #[arg(long)]
    pub rating_col: Option<String>,
    /// Type of every row: view, click or rating (unless --type-col).
    #[arg(long = "type", default_value = "view")]
    pub event_type: String,
    /// Column holding each row's type instead of --type.
    #[arg(long)]
    pub type_col: Option<String>,
    /// Also send each rating as a view at the same time.
    #[arg(long)]
    pub rating_as_view: bool,
    /// Events per second; 0 sends as fast as possible.
    #[arg(long, env = "RECO_REPLAY_RATE", default_value_t = 0.0)]
    pub rate: f64,
    /// Events per request.
    #[arg(long, env = "RECO_REPLAY_BATCH", default_value_t = 500)]
    pub batch: usize,
    /// Concurrent requests. 1 keeps event-time order exactly; more interleave batches.
    #[arg(long, env = "RECO_REPLAY_CONCURRENCY", default_value_t = 1)]
    pub concurrency: usize,
}
