//! A consumer group as an operator sees it: members, and per partition the committed offset,
//! the end of the log and the lag between them (`reco status`).

use std::time::Duration;

use rdkafka::{
    Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    types::RDKafkaErrorCode,
};
use serde::Serialize;

use crate::{
    Error, QuietContext, Result, client_config,
    topics::{admin, options, run_blocking},
};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupMember {
    pub member_id: String,
    pub client_id: String,
    pub host: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// Committed group offset; `None` before the group committed anything.
    pub committed: Option<i64>,
    /// End of the log (high watermark).
    pub end: i64,
    /// `end − committed`, or the whole log when nothing is committed.
    pub lag: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupStatus {
    pub group: String,
    /// The coordinator's group state (`Stable`, `Empty`, …); `None` when it would not say.
    pub state: Option<String>,
    pub members: Vec<GroupMember>,
    pub partitions: Vec<PartitionLag>,
}

/// Describes `group` and its lag on `topics` (every partition of each).
pub async fn group_status(bootstrap: &str, group: &str, topics: &[String], timeout: Duration) -> Result<GroupStatus> {
    let (bootstrap, group, topics) = (bootstrap.to_owned(), group.to_owned(), topics.to_vec());
    run_blocking(move || {
        let consumer: BaseConsumer<QuietContext> =
            client_config(&bootstrap).set("group.id", &group).create_with_context(QuietContext)?;
        let metadata = consumer
            .fetch_metadata(None, timeout)
            .map_err(|e| Error::Unreachable { bootstrap: bootstrap.clone(), message: e.to_string() })?;
        // Not every broker implements DescribeGroups the same way; members are best effort.
        let (state, members) = match consumer.fetch_group_list(Some(&group), timeout) {
            Ok(list) => match list.groups().first() {
                Some(g) => (
                    Some(g.state().to_owned()),
                    g.members()
                        .iter()
                        .map(|m| GroupMember {
                            member_id: m.id().to_owned(),
                            client_id: m.client_id().to_owned(),
                            host: m.client_host().to_owned(),
                        })
                        .collect(),
                ),
                None => (None, Vec::new()),
            },
            Err(_) => (None, Vec::new()),
        };
        let mut tpl = TopicPartitionList::new();
        for t in metadata.topics().iter().filter(|t| topics.iter().any(|n| n == t.name())) {
            for p in t.partitions() {
                tpl.add_partition(t.name(), p.id());
            }
        }
        let committed = consumer.committed_offsets(tpl.clone(), timeout)?;
        let mut partitions = Vec::new();
        for e in committed.elements() {
            let (_, end) = consumer.fetch_watermarks(e.topic(), e.partition(), timeout)?;
            let committed = match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            };
            partitions.push(PartitionLag {
                topic: e.topic().to_owned(),
                partition: e.partition(),
                committed,
                end,
                lag: (end - committed.unwrap_or(0)).max(0),
            });
        }
        partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(GroupStatus { group, state, members, partitions })
    })
    .await
}

/// Forgets `group` on the broker: its members, its assignment and its committed offsets. For a
/// group only its caller uses (`reco up`'s silver worker on its own embedded broker): a member
/// left behind by a killed process would otherwise make the next one wait for its session to
/// expire. A group the broker does not know is no error.
pub async fn delete_group(bootstrap: &str, group: &str) -> Result<()> {
    let admin = admin(bootstrap)?;
    let results = admin.delete_groups(&[group], &options()).await?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::GroupIdNotFound)) => {}
            Err((_, code)) => {
                return Err(Error::Group { group: group.to_owned(), message: format!("cannot delete it: {code}") });
            }
        }
    }
    Ok(())
}
