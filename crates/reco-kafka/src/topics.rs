//! The platform's topics (CONTRACTS §2) and `reco topics init`: create what is missing, report
//! drift, fix config drift on request. Idempotent, so it is safe to run at every start.

use std::{collections::HashMap, time::Duration};

use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication},
    consumer::{BaseConsumer, Consumer},
    types::RDKafkaErrorCode,
};
use serde::Serialize;

use crate::{ADMIN_TIMEOUT, Error, QuietContext, Result, alter, client_config};

pub const RETENTION_MS: &str = "retention.ms";
/// Set to `delete` on every topic created: Kafka's default, but the embedded broker (tansu)
/// enforces `retention.ms` only on topics that name the policy.
pub const CLEANUP_POLICY: &str = "cleanup.policy";

/// What a topic should look like.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub retention_ms: i64,
    /// `None` lets the broker choose (`default.replication.factor`).
    pub replication_factor: Option<i32>,
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// CONTRACTS §2: three partitions each; views and clicks kept 7 days, ratings 30.
pub fn default_topics() -> Vec<TopicSpec> {
    use reco_core::EventType;
    [(EventType::View, 7 * DAY_MS), (EventType::Click, 7 * DAY_MS), (EventType::Rating, 30 * DAY_MS)]
        .into_iter()
        .map(|(kind, retention_ms)| (kind.topic(), retention_ms))
        .map(|(name, retention_ms)| TopicSpec {
            name: name.to_owned(),
            partitions: 3,
            retention_ms,
            replication_factor: None,
        })
        .collect()
}

/// What a topic looks like on the broker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TopicState {
    pub name: String,
    pub partitions: i32,
    /// `None` when the broker did not report the config.
    pub retention_ms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Created,
    Unchanged,
    /// Differences remain (not fixed, or not fixable such as the partition count).
    Drifted,
    /// Every difference was fixed.
    Fixed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub setting: String,
    pub expected: String,
    pub actual: String,
    pub fixed: bool,
    /// Why it was left alone, when it was.
    pub note: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TopicReport {
    pub topic: String,
    pub outcome: Outcome,
    pub drifts: Vec<Drift>,
}

/// Reads partition counts and `retention.ms` of the named topics; missing topics are absent.
pub async fn describe_topics(bootstrap: &str, names: &[String]) -> Result<Vec<TopicState>> {
    describe_topics_within(bootstrap, names, ADMIN_TIMEOUT).await
}

/// [`describe_topics`], giving up after `timeout`. librdkafka's own timeout, not a timer around
/// the call: a call abandoned by a timer keeps its client on a blocking thread, and a process
/// exiting meanwhile tears OpenSSL down under it (`reco status` against a TLS broker it could
/// not verify died by a signal now and then).
pub async fn describe_topics_within(bootstrap: &str, names: &[String], timeout: Duration) -> Result<Vec<TopicState>> {
    let partitions = partition_counts_within(bootstrap, timeout).await?;
    let admin = admin(bootstrap)?;
    let present: Vec<&String> = names.iter().filter(|n| partitions.contains_key(*n)).collect();
    let specifiers: Vec<ResourceSpecifier> = present.iter().map(|n| ResourceSpecifier::Topic(n)).collect();
    let configs = if specifiers.is_empty() {
        Vec::new()
    } else {
        admin.describe_configs(&specifiers, &options_within(timeout)).await?
    };
    let mut states = Vec::new();
    for (name, config) in present.into_iter().zip(configs) {
        let config = config.map_err(|code| Error::Topic {
            topic: name.clone(),
            message: format!("describe configs failed: {code}"),
        })?;
        let retention_ms = config.get(RETENTION_MS).and_then(|e| e.value.as_deref()?.parse().ok());
        states.push(TopicState { name: name.clone(), partitions: partitions[name], retention_ms });
    }
    Ok(states)
}

/// Creates missing topics and compares existing ones with their spec; with `fix`, sets
/// drifted configs back. Partition counts are reported, never changed: adding partitions
/// moves keys to other partitions, which is a decision for an operator, not a start script.
pub async fn ensure_topics(bootstrap: &str, specs: &[TopicSpec], fix: bool) -> Result<Vec<TopicReport>> {
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    let existing: HashMap<String, TopicState> =
        describe_topics(bootstrap, &names).await?.into_iter().map(|s| (s.name.clone(), s)).collect();
    let admin = admin(bootstrap)?;
    let mut reports = Vec::new();

    let retention: Vec<String> = specs.iter().map(|s| s.retention_ms.to_string()).collect();
    let missing: Vec<NewTopic> = specs
        .iter()
        .zip(&retention)
        .filter(|(s, _)| !existing.contains_key(&s.name))
        .map(|(s, r)| {
            NewTopic::new(&s.name, s.partitions, TopicReplication::Fixed(s.replication_factor.unwrap_or(-1)))
                .set(RETENTION_MS, r)
                .set(CLEANUP_POLICY, "delete")
        })
        .collect();
    if !missing.is_empty() {
        for result in admin.create_topics(&missing, &options()).await? {
            match result {
                Ok(topic) => reports.push(TopicReport { topic, outcome: Outcome::Created, drifts: vec![] }),
                // Another process created it between our describe and create: fine.
                Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    reports.push(TopicReport { topic, outcome: Outcome::Unchanged, drifts: vec![] })
                }
                Err((topic, code)) => {
                    return Err(Error::Topic { topic, message: format!("create failed: {code}") });
                }
            }
        }
    }

    for spec in specs {
        let Some(state) = existing.get(&spec.name) else { continue };
        let mut drifts = Vec::new();
        if state.partitions != spec.partitions {
            drifts.push(Drift {
                setting: "partitions".into(),
                expected: spec.partitions.to_string(),
                actual: state.partitions.to_string(),
                fixed: false,
                note: Some("changing the partition count remaps keys; change it deliberately".into()),
            });
        }
        if state.retention_ms != Some(spec.retention_ms) {
            let fixed = if fix {
                alter::set_topic_configs(bootstrap, &spec.name, &[(RETENTION_MS, &spec.retention_ms.to_string())])
                    .await?;
                true
            } else {
                false
            };
            drifts.push(Drift {
                setting: RETENTION_MS.into(),
                expected: spec.retention_ms.to_string(),
                actual: state.retention_ms.map_or_else(|| "unknown".into(), |r| r.to_string()),
                fixed,
                note: (!fix).then(|| "run with --fix to set it".into()),
            });
        }
        let outcome = if drifts.is_empty() {
            Outcome::Unchanged
        } else if drifts.iter().all(|d| d.fixed) {
            Outcome::Fixed
        } else {
            Outcome::Drifted
        };
        reports.push(TopicReport { topic: spec.name.clone(), outcome, drifts });
    }
    reports.sort_by(|a, b| a.topic.cmp(&b.topic));
    Ok(reports)
}

pub(crate) fn admin(bootstrap: &str) -> Result<AdminClient<QuietContext>> {
    Ok(client_config(bootstrap).create_with_context(QuietContext)?)
}

pub(crate) fn options() -> AdminOptions {
    options_within(ADMIN_TIMEOUT)
}

fn options_within(timeout: Duration) -> AdminOptions {
    AdminOptions::new().request_timeout(Some(timeout)).operation_timeout(Some(timeout))
}

/// Partition count per topic, from cluster metadata.
pub async fn partition_counts(bootstrap: &str) -> Result<HashMap<String, i32>> {
    partition_counts_within(bootstrap, ADMIN_TIMEOUT).await
}

async fn partition_counts_within(bootstrap: &str, timeout: Duration) -> Result<HashMap<String, i32>> {
    let bootstrap = bootstrap.to_owned();
    run_blocking(move || {
        let consumer: BaseConsumer<QuietContext> = client_config(&bootstrap).create_with_context(QuietContext)?;
        let metadata = consumer
            .fetch_metadata(None, timeout)
            .map_err(|e| Error::Unreachable { bootstrap: bootstrap.clone(), message: e.to_string() })?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| (t.name().to_owned(), t.partitions().len() as i32))
            .collect())
    })
    .await
}

/// Runs a blocking librdkafka call off the async workers.
pub(crate) async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(Error::Unreachable { bootstrap: String::new(), message: format!("metadata task failed: {e}") })
    })
}
