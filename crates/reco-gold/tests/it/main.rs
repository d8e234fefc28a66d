//! The integration tests of `reco-gold`, one module per behaviour, in one test binary (one link of
//! its dependencies instead of 3). nextest runs every test in its own process.

mod job;
mod neighbors;
mod uneven;
