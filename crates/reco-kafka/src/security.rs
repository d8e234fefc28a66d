//! Client security (TLS, SASL) and any other librdkafka property, set once per process.
//!
//! Every Kafka client a reco process creates talks to the same cluster with the same
//! credentials, so the properties live in one process-wide list that [`crate::client_config`]
//! applies, rather than in every job's and tool's config struct. The binary sets them from its
//! flags before it creates a client; tests that run the binary as a child get them the same way.

use std::sync::OnceLock;

use rdkafka::{ClientConfig, producer::BaseProducer};

use crate::{Error, Result};

static OPTIONS: OnceLock<Vec<(String, String)>> = OnceLock::new();

/// Properties whose values are secrets: never logged or shown (librdkafka redacts them in its
/// own config dump too).
const SECRET: [&str; 4] = ["sasl.password", "ssl.key.password", "ssl.keystore.password", "ssl.key.pem"];

/// Whether `property`'s value must never be printed.
pub fn is_secret(property: &str) -> bool {
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
