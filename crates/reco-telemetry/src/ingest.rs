//! Metrics of `POST /events`: what reached Kafka, what was refused and why.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabel {
    topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabel {
    token: String,
}

/// Refusals of a whole request, before its events are looked at.
pub const REQUEST_REFUSALS: [&str; 8] = [
    "unauthorized",
    "rate_limited",
    "unsupported_media_type",
    "body_too_large",
    "invalid_json",
    "not_an_event",
    "empty_batch",
    "batch_too_large",
];

#[derive(Debug)]
pub struct IngestMetrics {
    accepted: Family<TopicLabel, Counter>,
    rejected: Family<ReasonLabel, Counter>,
    authenticated: Family<TokenLabel, Counter>,
    unacknowledged: Family<TopicLabel, Counter>,
    ack_duration: Histogram,
}

impl IngestMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let m = IngestMetrics {
            accepted: Family::default(),
            rejected: Family::default(),
            authenticated: Family::default(),
            unacknowledged: Family::default(),
            ack_duration: Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        };
        registry.register(
            "reco_api_events_accepted",
            "Events acknowledged by the broker and answered 202, by topic",
            m.accepted.clone(),
        );
        registry.register(
            "reco_api_events_rejected",
            "Refusals of POST /events: each refused event by its first error kind, and each refused request \
             (unauthorized, rate_limited, unsupported_media_type, body_too_large, invalid_json, not_an_event, \
             empty_batch, batch_too_large)",
            m.rejected.clone(),
        );
        registry.register(
            "reco_api_authenticated_requests",
            "Requests let through by bearer token, by token name (never the token)",
            m.authenticated.clone(),
        );
        registry.register(
            "reco_api_events_unacknowledged",
            "Events the broker did not acknowledge in time (the request answered 503), by topic",
            m.unacknowledged.clone(),
        );
        registry.register(
            "reco_api_produce_ack_duration_seconds",
            "Time from handing a request's events to the producer until the last acknowledgment",
            m.ack_duration.clone(),
        );
        m
    }

    pub fn accepted(&self, topic: &str, n: u64) {
        self.accepted.get_or_create(&TopicLabel { topic: topic.to_owned() }).inc_by(n);
    }

    /// `reason` is a validation `ErrorKind` name: a fixed set.
    pub fn rejected(&self, reason: &'static str) {
        self.rejected.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Creates every refusal reason (`reasons`: the request refusals and the validation error
    /// kinds), every token name and every event topic's accepted and unacknowledged counters at
    /// 0, so dashboards (and the console) show 0 rather than "no data".
    pub fn known(&self, reasons: &[&'static str], token_names: &[String], topics: &[&str]) {
        for &reason in REQUEST_REFUSALS.iter().chain(reasons) {
            let _ = self.rejected.get_or_create(&ReasonLabel { reason });
        }
        for topic in topics {
            let label = TopicLabel { topic: (*topic).to_owned() };
            let _ = self.accepted.get_or_create(&label);
            let _ = self.unacknowledged.get_or_create(&label);
        }
        for name in token_names {
            let _ = self.authenticated.get_or_create(&TokenLabel { token: name.clone() });
        }
    }

    /// A request authenticated with the token called `name`.
    pub fn authenticated(&self, name: &str) {
        self.authenticated.get_or_create(&TokenLabel { token: name.to_owned() }).inc();
    }

    pub fn unacknowledged(&self, topic: &str, n: u64) {
        self.unacknowledged.get_or_create(&TopicLabel { topic: topic.to_owned() }).inc_by(n);
    }

    pub fn ack_duration(&self, seconds: f64) {
        self.ack_duration.observe(seconds);
    }
}
