//! Client security (TLS, SASL) and any other librdkafka property, set once per process.
//!
//! Every Kafka client a reco process creates talks to the same cluster with the same
//! credentials, so the properties live in one process-wide list that [`crate::client_config`]
//! applies, rather than in every job's and tool's config struct. The binary sets them from its
//! flags before it creates a client; tests that run the binary as a child get them the same way.

use std::{sync::OnceLock, time::Duration};

use rdkafka::{
    ClientConfig, ClientContext,
    error::KafkaError,
    producer::{BaseProducer, Producer, ProducerContext},
    types::RDKafkaErrorCode,
};

use crate::{Error, Result};

static OPTIONS: OnceLock<Vec<(String, String)>> = OnceLock::new();

/// Properties whose values are secrets: never logged or shown (librdkafka redacts them in its
/// own config dump too).
const SECRET: [&str; 4] = ["sasl.password", "ssl.key.password", "ssl.keystore.password", "ssl.key.pem"];

/// Whether `property`'s value must never be printed.
fn is_secret(property: &str) -> bool {
    SECRET.contains(&property) || property.contains("secret") || property.contains("password")
}

/// Checks `options` with librdkafka (unknown property, bad value, a CA or key file it cannot
/// load) and makes them apply to every client created afterwards. `source` names where each
/// property came from (a flag, an environment variable) for the error message.
pub fn set_client_options(options: Vec<(String, String)>, source: impl Fn(&str) -> String) -> Result<()> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", "127.0.0.1:9").set("log_level", "0");
    for (key, value) in &options {
        config.set(key, value);
    }
    // All at once: some only make sense together (a SASL protocol and its mechanism).
    if let Err(e) = config.create::<BaseProducer>() {
        let message = e.to_string();
        // librdkafka names the property at fault; name the flag it came from.
        let at_fault = options.iter().find(|(key, _)| message.contains(key.as_str()));
        let setting = match at_fault {
            Some((key, _)) => source(key),
            None => options.iter().map(|(key, _)| source(key)).collect::<Vec<_>>().join(", "),
        };
        let shown: Vec<String> = options
            .iter()
            .map(|(k, v)| if is_secret(k) { format!("{k} = (hidden)") } else { format!("{k} = {v}") })
            .collect();
        return Err(Error::Config { setting, message: format!("{message} (settings: {})", shown.join(", ")) });
    }
    OPTIONS.set(options).map_err(|_| Error::Config {
        setting: "Kafka client options".into(),
        message: "set twice in one process".into(),
    })
}

/// The options [`set_client_options`] set (none by default).
pub fn client_options() -> &'static [(String, String)] {
    OPTIONS.get().map_or(&[], Vec::as_slice)
}

/// Whether clients connect without TLS or SASL (`security.protocol` unset or `plaintext`).
pub fn plaintext() -> bool {
    client_options().iter().all(|(k, v)| k != "security.protocol" || v.eq_ignore_ascii_case("plaintext"))
}

/// Records the errors librdkafka reports while [`check_security`] connects.
#[derive(Default)]
struct Recorder {
    errors: std::sync::Mutex<Vec<(RDKafkaErrorCode, String)>>,
}

impl ClientContext for Recorder {
    fn error(&self, error: KafkaError, reason: &str) {
        if let Some(code) = error.rdkafka_error_code() {
            self.errors.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((code, reason.to_owned()));
        }
    }
}

impl ProducerContext for Recorder {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

/// With TLS or SASL configured, connects once and fails on a handshake or authentication
/// error: a CA or credentials that do not work are a configuration error to report at start,
/// naming the settings, not something to retry forever. An unreachable broker is not (services
/// wait for it), and neither is anything else.
pub async fn check_security(bootstrap: &str) -> Result<()> {
    if plaintext() {
        return Ok(());
    }
    let bootstrap = bootstrap.to_owned();
    let found = tokio::task::spawn_blocking(move || -> Result<Option<String>> {
        let producer: BaseProducer<Recorder> =
            crate::client_config(&bootstrap).create_with_context(Recorder::default())?;
        let refused = || {
            let errors = producer.context().errors.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            errors
                .iter()
                .find(|(code, _)| matches!(code, RDKafkaErrorCode::SSL | RDKafkaErrorCode::Authentication))
                .map(|(_, reason)| format!("{bootstrap}: {reason}"))
        };
        let deadline = std::time::Instant::now() + crate::ADMIN_TIMEOUT;
        while std::time::Instant::now() < deadline {
            if producer.client().fetch_metadata(None, Duration::from_millis(500)).is_ok() {
                return Ok(None);
            }
            // Errors reach the context when the client is polled.
            producer.poll(Duration::from_millis(100));
            if let Some(reason) = refused() {
                return Ok(Some(reason));
            }
        }
        Ok(None)
    })
    .await
    .map_err(|e| Error::Config { setting: "Kafka security check".into(), message: e.to_string() })??;
    match found {
        None => Ok(()),
        Some(message) => Err(Error::Config {
            setting: "KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, \
                      KAFKA_SSL_CA_LOCATION (the broker refused them)"
                .into(),
            message,
        }),
    }
}
