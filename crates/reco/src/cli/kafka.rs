//! Options that reach Kafka: the cluster and its security, the topics, the embedded broker.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, ValueEnum};
use reco_kafka::topics::TopicSpec;

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

/// One librdkafka property and the flag (with its variable) it came from, for error messages.
pub struct ClientOption {
    pub key: String,
    pub value: String,
    pub from: &'static str,
}

impl KafkaArgs {
    /// The librdkafka properties these settings stand for. Refuses a pass-through option that
    /// is not `key=value`.
    pub fn client_options(&self) -> anyhow::Result<Vec<ClientOption>> {
        let mut out: Vec<ClientOption> = Vec::new();
        let mut put =
            |key: &str, value: String, from: &'static str| out.push(ClientOption { key: key.to_owned(), value, from });
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
        let sources: Vec<(String, &'static str)> = options.iter().map(|o| (o.key.clone(), o.from)).collect();
        let source = |key: &str| {
            sources.iter().rev().find(|(k, _)| k == key).map_or_else(|| key.to_owned(), |(_, s)| (*s).to_owned())
        };
        reco_kafka::set_client_options(options.into_iter().map(|o| (o.key, o.value)).collect(), source)?;
        Ok(())
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
