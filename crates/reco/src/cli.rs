//! Command-line options. Every option is a flag with an environment variable (CONTRACTS §8);
//! the original platform's names (`KAFKA_BOOTSTRAP_SERVERS`, `LAKEHOUSE_PATH`,
//! `STORAGE_FORMAT`) are kept. Defaults let `reco up` run from a checkout with no env at all.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use reco_kafka::topics::TopicSpec;

mod http;
pub use http::{HttpArgs, RulesArgs};

#[derive(Debug, Parser)]
#[command(name = "reco", version, about = "Real-time event pipeline and trending service")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process: embedded broker, topic setup and the API.
    Up(UpArgs),
    /// Run only the embedded broker (with the platform's topics), for running `serve`,
    /// `silver` and `gold` as separate processes on one machine without Kafka.
    Broker(BrokerArgs),
    /// Run the HTTP API against a Kafka cluster.
    Serve(ServeArgs),
    /// Run the Kafka → silver job (validated, de-duplicated tables plus dead-letter tables).
    Silver(SilverArgs),
    /// Run the silver → gold trending job, or recompute a time range with `backfill`.
    Gold(GoldArgs),
    /// Send synthetic traffic (Zipf items that drift, sessions, view → click → rating funnel,
    /// malformed share) to the API or straight to Kafka.
    Gen(GenArgs),
    /// Replay an interaction log (CSV, JSON Lines, Parquet) in event-time order to the API or
    /// Kafka, with a column mapping.
    Replay(ReplayArgs),
    /// Check the whole platform: broker, topics, silver group lag, API, jobs, gold. Exit code
    /// 0 healthy, 1 degraded, 2 down.
    Status(StatusArgs),
    /// Manage the platform's topics.
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
    },
}

impl Command {
    /// The Kafka client settings of a command that talks to a Kafka cluster (`up` and `broker`
    /// run their own, in-process and plaintext).
    pub fn kafka(&self) -> Option<&KafkaArgs> {
        match self {
            Command::Serve(a) => Some(&a.kafka),
            Command::Silver(a) => Some(&a.kafka),
            Command::Status(a) => Some(&a.kafka),
            Command::Gen(a) => Some(&a.to.kafka),
            Command::Replay(a) => Some(&a.to.kafka),
            Command::Topics { command: TopicsCommand::Init(a) } => Some(&a.kafka),
            Command::Up(_) | Command::Broker(_) | Command::Gold(_) => None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Create missing topics and report (or, with --fix, repair) drifted configs. Idempotent.
    Init(TopicsInitArgs),
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Listen address of the embedded Kafka-protocol broker.
    #[arg(long, env = "RECO_BROKER_ADDR", default_value = "127.0.0.1:9092")]
    pub broker_addr: SocketAddr,
    /// Where the embedded broker keeps its log: `sqlite` (a file in the lake folder, kept
    /// across restarts) or `memory` (lost at exit).
    #[arg(long, env = "RECO_BROKER_STORAGE", value_enum, default_value_t = BrokerStorageKind::Sqlite)]
    pub broker_storage: BrokerStorageKind,
    /// Folder of the embedded broker's SQLite log (in `_broker/`). Default: the lake folder,
    /// or `./data` when the lake is in an object store.
    #[arg(long, env = "RECO_BROKER_DATA")]
    pub broker_data: Option<PathBuf>,
    #[command(flatten)]
    pub lake: LakeArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub rules: RulesArgs,
    #[command(flatten)]
    pub topics: TopicArgs,
    #[command(flatten)]
    pub silver: SilverOptions,
    #[command(flatten)]
    pub gold: GoldOptions,
}

#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// Listen address of the embedded Kafka-protocol broker.
    #[arg(long, env = "RECO_BROKER_ADDR", default_value = "127.0.0.1:9092")]
    pub broker_addr: SocketAddr,
    /// Where the broker keeps its log: `sqlite` (LAKEHOUSE_PATH/_broker/tansu.db, as `reco up`)
    /// or `memory` (lost at exit).
    #[arg(long, env = "RECO_BROKER_STORAGE", value_enum, default_value_t = BrokerStorageKind::Sqlite)]
    pub broker_storage: BrokerStorageKind,
    /// Folder holding the broker's data (in `_broker/`), as for `reco up`.
    #[arg(long, env = "LAKEHOUSE_PATH", default_value = "./data")]
    pub lakehouse_path: PathBuf,
    /// `host:port` clients are told to connect to, when they reach the broker through a proxy
    /// (a TLS terminator, a published container port). Default: the listen address.
    #[arg(long, env = "RECO_BROKER_ADVERTISED_ADDR")]
    pub broker_advertised_addr: Option<String>,
    #[command(flatten)]
    pub topics: TopicArgs,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub lake: LakeArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub rules: RulesArgs,
    /// Items per window stored by the gold job: the largest GET /trending `limit`.
    #[arg(long, env = "RECO_GOLD_TOP_N", default_value_t = 100)]
    pub top_n: usize,
}

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
    /// Random seed: the same seed gives the same stream shape.
    #[arg(long, env = "RECO_GEN_SEED", default_value_t = 42)]
    pub seed: u64,
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
    #[arg(long, env = "RECO_GEN_RATE", default_value_t = 0.0)]
    pub rate: f64,
    /// Events per request.
    #[arg(long, env = "RECO_GEN_BATCH", default_value_t = 500)]
    pub batch: usize,
    /// Concurrent requests. 1 keeps event-time order exactly; more interleave batches.
    #[arg(long, env = "RECO_GEN_CONCURRENCY", default_value_t = 1)]
    pub concurrency: usize,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub lake: LakeArgs,
    #[command(flatten)]
    pub topics: TopicArgs,
    /// Base URL of the API (its /health/ready is checked).
    #[arg(long, env = "RECO_STATUS_API_URL", default_value = "http://127.0.0.1:8000")]
    pub api_url: String,
    /// Base URL of the silver job's metrics listener.
    #[arg(long, env = "RECO_STATUS_SILVER_URL", default_value = "http://127.0.0.1:9101")]
    pub silver_url: String,
    /// Base URL of the gold job's metrics listener.
    #[arg(long, env = "RECO_STATUS_GOLD_URL", default_value = "http://127.0.0.1:9102")]
    pub gold_url: String,
    /// The jobs run inside `reco up`: read their metrics from the API URL.
    #[arg(long, env = "RECO_STATUS_ALL_IN_ONE")]
    pub all_in_one: bool,
    /// Consumer group of the silver workers.
    #[arg(long = "silver-group-id", env = "RECO_SILVER_GROUP_ID", default_value = "reco-silver")]
    pub silver_group_id: String,
    /// Total silver consumer lag (records) above which the platform counts as degraded.
    #[arg(long, env = "RECO_STATUS_MAX_LAG", default_value_t = 100_000)]
    pub max_lag: i64,
    /// How long each check may take, in milliseconds.
    #[arg(long, env = "RECO_STATUS_TIMEOUT_MS", default_value_t = 5000)]
    pub timeout_ms: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TopicsInitArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub topics: TopicArgs,
    /// Set drifted topic configs back to the expected values.
    #[arg(long, env = "RECO_TOPICS_FIX")]
    pub fix: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BrokerStorageKind {
    Sqlite,
    Memory,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StorageFormat {
    /// Delta Lake tables (default).
    Delta,
    /// Plain Parquet files plus a batch log.
    Parquet,
}

#[derive(Debug, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma-separated.
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS", default_value = "127.0.0.1:9092")]
    pub kafka_bootstrap_servers: String,
    /// How clients connect: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    #[arg(long, env = "KAFKA_SECURITY_PROTOCOL", value_enum, ignore_case = true)]
    pub kafka_security_protocol: Option<SecurityProtocol>,
    /// SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    #[arg(long, env = "KAFKA_SASL_MECHANISM", value_enum, ignore_case = true)]
    pub kafka_sasl_mechanism: Option<SaslMechanism>,
    #[arg(long, env = "KAFKA_SASL_USERNAME")]
    pub kafka_sasl_username: Option<String>,
    /// Never shown in --help or logs.
    #[arg(long, env = "KAFKA_SASL_PASSWORD", hide_env_values = true)]
    pub kafka_sasl_password: Option<Secret>,
    /// CA certificate(s) to verify the brokers with (PEM file); unset: the system's.
    #[arg(long, env = "KAFKA_SSL_CA_LOCATION")]
    pub kafka_ssl_ca_location: Option<PathBuf>,
    /// Client certificate (PEM file), for brokers that authenticate clients by TLS.
    #[arg(long, env = "KAFKA_SSL_CERTIFICATE_LOCATION")]
    pub kafka_ssl_certificate_location: Option<PathBuf>,
    /// The client certificate's private key (PEM file).
    #[arg(long, env = "KAFKA_SSL_KEY_LOCATION")]
    pub kafka_ssl_key_location: Option<PathBuf>,
    /// Password of the private key. Never shown in --help or logs.
    #[arg(long, env = "KAFKA_SSL_KEY_PASSWORD", hide_env_values = true)]
    pub kafka_ssl_key_password: Option<Secret>,
    /// Any other librdkafka property, `key=value`; repeat the flag, or separate with commas in
    /// the variable. Applied after the settings above.
    #[arg(long = "kafka-option", env = "RECO_KAFKA_OPTIONS", value_delimiter = ',', value_name = "KEY=VALUE")]
    pub kafka_options: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SecurityProtocol {
    #[value(name = "PLAINTEXT")]
    Plaintext,
    #[value(name = "SSL")]
    Ssl,
    #[value(name = "SASL_PLAINTEXT")]
    SaslPlaintext,
    #[value(name = "SASL_SSL")]
    SaslSsl,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SaslMechanism {
    #[value(name = "PLAIN")]
    Plain,
    #[value(name = "SCRAM-SHA-256")]
    ScramSha256,
    #[value(name = "SCRAM-SHA-512")]
    ScramSha512,
}

/// A value that is never printed (its `Debug` is `(hidden)`).
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(hidden)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

impl KafkaArgs {
    /// The librdkafka properties these settings stand for, each with the flag and variable it
    /// came from (for error messages). Refuses a pass-through option that is not `key=value`.
    pub fn client_options(&self) -> anyhow::Result<Vec<(String, String, &'static str)>> {
        let mut out: Vec<(String, String, &'static str)> = Vec::new();
        let mut put = |key: &str, value: String, from: &'static str| out.push((key.to_owned(), value, from));
        if let Some(p) = self.kafka_security_protocol {
            let name = p.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default();
            put("security.protocol", name.to_lowercase(), "--kafka-security-protocol (KAFKA_SECURITY_PROTOCOL)");
        }
        if let Some(m) = self.kafka_sasl_mechanism {
            let name = m.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default();
            put("sasl.mechanisms", name, "--kafka-sasl-mechanism (KAFKA_SASL_MECHANISM)");
        }
        if let Some(u) = &self.kafka_sasl_username {
            put("sasl.username", u.clone(), "--kafka-sasl-username (KAFKA_SASL_USERNAME)");
        }
        if let Some(p) = &self.kafka_sasl_password {
            put("sasl.password", p.0.clone(), "--kafka-sasl-password (KAFKA_SASL_PASSWORD)");
        }
        let path = |p: &PathBuf| p.display().to_string();
        if let Some(p) = &self.kafka_ssl_ca_location {
            put("ssl.ca.location", path(p), "--kafka-ssl-ca-location (KAFKA_SSL_CA_LOCATION)");
        }
        if let Some(p) = &self.kafka_ssl_certificate_location {
            put(
                "ssl.certificate.location",
                path(p),
                "--kafka-ssl-certificate-location (KAFKA_SSL_CERTIFICATE_LOCATION)",
            );
        }
        if let Some(p) = &self.kafka_ssl_key_location {
            put("ssl.key.location", path(p), "--kafka-ssl-key-location (KAFKA_SSL_KEY_LOCATION)");
        }
        if let Some(p) = &self.kafka_ssl_key_password {
            put("ssl.key.password", p.0.clone(), "--kafka-ssl-key-password (KAFKA_SSL_KEY_PASSWORD)");
        }
        for option in &self.kafka_options {
            let Some((key, value)) = option.split_once('=') else {
                anyhow::bail!("--kafka-option (RECO_KAFKA_OPTIONS): {option:?} is not key=value");
            };
            put(key.trim(), value.to_owned(), "--kafka-option (RECO_KAFKA_OPTIONS)");
        }
        Ok(out)
    }

    /// Makes these settings apply to every Kafka client of this process; a setting librdkafka
    /// refuses (unknown, malformed, a file it cannot load) is an error naming its flag.
    pub fn apply(&self) -> anyhow::Result<()> {
        let options = self.client_options()?;
        let sources: Vec<(String, &'static str)> = options.iter().map(|(k, _, s)| (k.clone(), *s)).collect();
        let source = |key: &str| {
            sources.iter().rev().find(|(k, _)| k == key).map_or_else(|| key.to_owned(), |(_, s)| (*s).to_owned())
        };
        reco_kafka::set_client_options(options.into_iter().map(|(k, v, _)| (k, v)).collect(), source)?;
        Ok(())
    }
}

#[derive(Debug, Args)]
pub struct LakeArgs {
    /// The lakehouse (silver and gold tables): a folder, or an object store URL
    /// (`s3://bucket/prefix`, `gs://…`, `az://…`; credentials from the standard variables,
    /// e.g. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL).
    #[arg(long, env = "LAKEHOUSE_PATH", default_value = "./data")]
    pub lakehouse_path: String,
    /// Table format of the silver and gold tables.
    #[arg(long, env = "STORAGE_FORMAT", value_enum, default_value_t = StorageFormat::Delta)]
    pub storage_format: StorageFormat,
}

impl LakeArgs {
    pub fn lake(&self) -> anyhow::Result<reco_lake::Lake> {
        let format = match self.storage_format {
            StorageFormat::Delta => reco_lake::Format::Delta,
            StorageFormat::Parquet => reco_lake::Format::Parquet,
        };
        reco_lake::Lake::open(&self.lakehouse_path, format)
            .map_err(|e| anyhow::anyhow!("lakehouse {}: {e}", self.lakehouse_path))
    }
}

#[derive(Debug, Args)]
pub struct TopicArgs {
    /// Partitions of each events topic.
    #[arg(long, env = "RECO_TOPIC_PARTITIONS", default_value_t = 3)]
    pub partitions: i32,
    /// Replication factor for new topics; unset lets the broker decide.
    #[arg(long, env = "RECO_TOPIC_REPLICATION_FACTOR")]
    pub replication_factor: Option<i32>,
    /// retention.ms of events_views (default 7 days).
    #[arg(long, env = "RECO_VIEWS_RETENTION_MS", default_value_t = 604_800_000)]
    pub views_retention_ms: i64,
    /// retention.ms of events_clicks (default 7 days).
    #[arg(long, env = "RECO_CLICKS_RETENTION_MS", default_value_t = 604_800_000)]
    pub clicks_retention_ms: i64,
    /// retention.ms of events_ratings (default 30 days).
    #[arg(long, env = "RECO_RATINGS_RETENTION_MS", default_value_t = 2_592_000_000)]
    pub ratings_retention_ms: i64,
}

impl TopicArgs {
    pub fn specs(&self) -> Vec<TopicSpec> {
        [
            ("events_views", self.views_retention_ms),
            ("events_clicks", self.clicks_retention_ms),
            ("events_ratings", self.ratings_retention_ms),
        ]
        .into_iter()
        .map(|(name, retention_ms)| TopicSpec {
            name: name.to_owned(),
            partitions: self.partitions,
            retention_ms,
            replication_factor: self.replication_factor,
        })
        .collect()
    }
}
