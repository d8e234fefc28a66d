//! The crate's one error type: what went wrong talking to Kafka, named by broker, topic or setting.

use rdkafka::error::KafkaError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kafka client error: {0}")]
    Kafka(#[from] KafkaError),
    #[error("broker at {bootstrap} is unreachable: {message}")]
    Unreachable { bootstrap: String, message: String },
    #[error("topic {topic}: {message}")]
    Topic { topic: String, message: String },
    #[error("embedded broker on {addr}: {message}")]
    EmbeddedBroker { addr: String, message: String },
    #[error("{setting}: {message}")]
    Config { setting: String, message: String },
    #[error("consumer group {group}: {message}")]
    Group { group: String, message: String },
    #[error("Kafka protocol exchange with {bootstrap}: {message}")]
    Protocol { bootstrap: String, message: String },
}
