//! Everything reco says to Kafka: topic specs and their setup, the event producer, and the
//! embedded Kafka-protocol broker that `reco up` runs in-process.
//!
//! All client code is `rdkafka` (librdkafka), the same against the embedded broker and
//! against a production cluster, so tests on the embedded broker exercise the production path.
//! The one exception is [`topics`]' config fix, which needs IncrementalAlterConfigs; rdkafka
//! does not wrap it, so it is sent with the `tansu-sans-io` protocol codec (see `alter.rs`).
//!
//! ```no_run
//! # async fn demo() -> reco_kafka::Result<()> {
//! use reco_kafka::{EmbeddedBroker, BrokerStorage, topics};
//! let broker = EmbeddedBroker::start("127.0.0.1:9092".parse().unwrap(), BrokerStorage::Memory).await?;
//! let report = topics::ensure_topics(&broker.bootstrap(), &topics::default_topics(), false).await?;
//! broker.stop().await;
//! # Ok(()) }
//! ```

mod alter;
mod broker;
mod error;
pub mod group;
mod producer;
mod security;
pub mod tail;
pub mod topics;

use std::time::Duration;

use rdkafka::{ClientConfig, ClientContext, config::RDKafkaLogLevel, consumer::ConsumerContext, error::KafkaError};

pub use broker::{BrokerStorage, EmbeddedBroker};
pub use error::{Error, Result};
pub use producer::{Delivery, EventProducer, Outgoing, ProducerSettings};
pub use security::{check_security, client_options, plaintext, set_client_options};

/// How long admin and metadata calls wait for the broker before reporting it unreachable.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The client settings every reco Kafka client shares.
pub fn client_config(bootstrap_servers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap_servers)
        .set("client.id", "reco")
        // Failing fast on a dead broker is what lets the API answer 503 promptly; librdkafka
        // keeps reconnecting in the background either way.
        .set("socket.connection.setup.timeout.ms", "3000")
        .set("reconnect.backoff.max.ms", "1000")
        .set("log_level", "3");
    // librdkafka's own debug contexts (e.g. `cgrp,topic`), for diagnosing broker behaviour.
    if let Ok(debug) = std::env::var("RECO_KAFKA_DEBUG") {
        config.set("debug", debug).set("log_level", "7");
    }
    // TLS, SASL and any other property the operator set (see `security`).
    for (key, value) in client_options() {
        config.set(key, value);
    }
    config
}

/// The context of short-lived inspection clients (admin calls, metadata, group lag): what
/// librdkafka reports on its own — a bootstrap connection replaced by the broker's advertised
/// one ("AllBrokersDown: 0/1 brokers are down"), a connection the broker closes when the call
/// is done — goes to debug logs. The call's own result says whether the broker answered, and
/// the command reports that; a healthy `reco status` prints no error lines.
#[derive(Clone, Copy, Debug, Default)]
pub struct QuietContext;

impl ClientContext for QuietContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(?level, fac, "librdkafka: {log_message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, "librdkafka: {reason}");
    }
}

impl ConsumerContext for QuietContext {}
