//! Command-line options. Every option is a flag with an environment variable (CONTRACTS §8);
//! the original platform's names (`KAFKA_BOOTSTRAP_SERVERS`, `LAKEHOUSE_PATH`,
//! `STORAGE_FORMAT`) are kept. Defaults let `reco up` run from a checkout with no env at all.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand};

mod http;
mod jobs;
mod kafka;
mod lake;
mod traffic;

pub use http::{HttpArgs, RulesArgs};
pub use jobs::*;
pub use kafka::*;
pub use lake::*;
pub use traffic::*;

#[derive(Debug, Parser)]
#[command(name = "reco", version, about = "Real-time event pipeline and trending service")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process: embedded broker, topic setup, the silver and gold jobs
    /// and the API.
    Up(UpArgs),
    /// Run only the embedded broker (with the platform's topics), for running `serve`,
    /// `silver` and `gold` as separate processes on one machine without Kafka.
    Broker(BrokerArgs),
    /// Run the HTTP API against a Kafka cluster.
    Serve(ServeArgs),
    /// Run the Kafka → silver job (validated, de-duplicated tables plus dead-letter tables).
    Silver(SilverArgs),
    /// Run the silver → gold job (trending windows, item neighbours), or recompute a time
    /// range of trending windows with `backfill`.
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
pub struct StatusArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub lake: LakeArgs,
    #[command(flatten)]
    pub topics: TopicArgs,
    /// Base URL of the API (its /health/ready is checked). Default: http:// and the address
    /// in RECO_HTTP_ADDR (as `reco up` and `reco serve` read it), else http://127.0.0.1:8000.
    #[arg(long, env = "RECO_STATUS_API_URL")]
    pub api_url: Option<String>,
    /// Base URL of the silver job's metrics listener. Default: the API's, when its /metrics
    /// carries the jobs' (`reco up`), else http://127.0.0.1:9101.
    #[arg(long, env = "RECO_STATUS_SILVER_URL")]
    pub silver_url: Option<String>,
    /// Base URL of the gold job's metrics listener. Default: as for silver, else
    /// http://127.0.0.1:9102.
    #[arg(long, env = "RECO_STATUS_GOLD_URL")]
    pub gold_url: Option<String>,
    /// The jobs run inside `reco up`: read their metrics from the API URL (found out by
    /// itself unless a job URL is given).
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
