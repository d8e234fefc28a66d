//! Every reco metric, declared once, and the plumbing to expose them.
//!
//! Components never create metrics: they receive an `Arc<Telemetry>` and call named methods
//! (`telemetry.ingest.accepted(topic, n)`), so a metric's name, help, type and label set live
//! in exactly one place and nobody invents a label by accident. One registry per process: in
//! `reco up` every component shares it and one `/metrics` shows them all.
//!
//! ```
//! let telemetry = reco_telemetry::Telemetry::new();
//! telemetry.ingest.accepted("events_views", 3);
//! assert!(telemetry.render().contains("reco_api_events_accepted_total{topic=\"events_views\"} 3"));
//! ```

mod gold;
mod http;
mod ingest;
mod logging;
mod process;
mod silver;

use std::fmt;

use prometheus_client::{encoding::text::encode, registry::Registry};

pub use gold::GoldMetrics;
pub use http::{HttpMetrics, UNMATCHED_ENDPOINT, track_http};
pub use ingest::IngestMetrics;
pub use logging::{Throttle, init_tracing};
pub use process::{HeapStats, set_heap_probe};
pub use silver::{CommittedBatch, SilverMetrics, TopicCounters};

/// The `Content-Type` of [`Telemetry::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The process-wide metrics registry and every metric family in it.
pub struct Telemetry {
    registry: Registry,
    pub http: HttpMetrics,
    pub ingest: IngestMetrics,
    pub silver: SilverMetrics,
    pub gold: GoldMetrics,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        let ingest = IngestMetrics::register(&mut registry);
        let silver = SilverMetrics::register(&mut registry);
        let gold = GoldMetrics::register(&mut registry);
        process::register(&mut registry);
        Telemetry { registry, http, ingest, silver, gold }
    }

    /// The exposition text (OpenMetrics, which Prometheus scrapes natively).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
