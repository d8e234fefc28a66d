//! [`UserHistories`]: the per-user histories, kept current by following the event topics.
//!
//! Every API process reads every partition of the three topics itself (no consumer group), so
//! any process answers for any user, and a restarted one rebuilds its histories by re-reading
//! the last [`UserHistories::new`] `horizon` of the log. Records are validated as silver
//! validates them; invalid ones are skipped (silver dead-letters them).

use std::{
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use reco_core::{EventType, Mode, Rules, decode_json, validate_event};
use reco_kafka::tail::{TailRecord, follow};

use super::history::{Histories, HistoryConfig, UserHistory};

/// How often users beyond the horizon are dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct UserHistories {
    histories: RwLock<Histories>,
    rules: Rules,
    /// How far back (by arrival) the log is read and users are kept.
    horizon_us: i64,
}

impl UserHistories {
    pub fn new(config: HistoryConfig, rules: Rules, horizon: Duration) -> Arc<UserHistories> {
        Arc::new(UserHistories {
            histories: RwLock::new(Histories::new(config)),
            rules,
            horizon_us: i64::try_from(horizon.as_micros()).unwrap_or(i64::MAX),
        })
    }

    pub fn get(&self, user: &str) -> Option<UserHistory> {
        self.histories.read().unwrap_or_else(PoisonError::into_inner).get(user)
    }

    /// Takes one record from an event topic.
    pub fn take(&self, record: TailRecord<'_>) {
        let Some(payload) = record.payload else { return };
        let Ok(value) = decode_json(payload) else { return };
        let arrived = record.timestamp_ms.map_or_else(|| chrono::Utc::now().timestamp_micros(), |ms| ms * 1000);
        let mode = Mode::Stored { topic_type: EventType::from_topic(record.topic) };
        let Ok(e) = validate_event(&value, &self.rules, arrived, mode) else { return };
        self.histories.write().unwrap_or_else(PoisonError::into_inner).apply(
            &e.user_id,
            &e.item_id,
            e.event_type,
            e.rating,
            e.event_time_us,
            arrived,
        );
    }

    /// Follows the event topics from `horizon` ago (Kafka time) until the task is dropped,
    /// dropping every minute the users none of whose events arrived within the horizon.
    pub async fn run(self: Arc<Self>, bootstrap: String) {
        let sweeper = {
            let this = self.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(SWEEP_EVERY).await;
                    let before = chrono::Utc::now().timestamp_micros().saturating_sub(this.horizon_us);
                    this.histories.write().unwrap_or_else(PoisonError::into_inner).forget_before(before);
                }
            })
        };
        let since_ms = chrono::Utc::now().timestamp_millis() - self.horizon_us / 1000;
        let topics: Vec<&str> = EventType::ALL.iter().map(|t| t.topic()).collect();
        let this = self.clone();
        if let Err(e) = follow(&bootstrap, &topics, Some(since_ms), move |r| this.take(r)).await {
            tracing::error!(error = %e, "stopped following the event topics: user recommendations no longer change");
        }
        sweeper.abort();
    }
}
