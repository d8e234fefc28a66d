//! The integration tests of `reco-silver`, one module per behaviour, in one test binary (one link of
//! its dependencies instead of 4). nextest runs every test in its own process.

mod batching;
mod compaction;
mod mixed_stream;
mod offsets;
