//! The integration tests of `reco-lake`, one module per behaviour, in one test binary (one link of
//! its dependencies instead of 2). nextest runs every test in its own process.

mod compact;
mod tables;
