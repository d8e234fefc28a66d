//! The integration tests of the `reco` binary, one module per behaviour, in one test binary:
//! each test binary links rdkafka, deltalake and tansu, so one binary instead of twenty-one
//! saves that link (time and disk) twenty times over. nextest still runs every test in its own
//! process. The reliability suite keeps its own binary (`make reliability` runs it alone).

mod bench_smoke;
mod broker_memory_log;
mod broker_produce_groups;
mod broker_retention;
mod console;
mod deploy;
mod docs;
mod exposure;
mod gold_crash;
mod group_rejoin;
mod kafka_tls;
mod monitoring;
mod neighbors_e2e;
mod quality;
mod readme;
mod s3_lake;
mod silver_crash;
mod silver_offsets;
mod status;
mod topics_init;
mod traffic;
mod trending_e2e;
mod uneven_e2e;
mod up;
