//! The API's integration tests, one module per behaviour, in one test binary (each test binary
//! links rdkafka and the embedded broker: one link instead of six). nextest runs every test in
//! its own process.

mod bad_requests;
mod broker_outage;
mod common;
mod exposure;
mod ingest;
mod metrics;
mod trending;
