//! The reliability suite (`make reliability`): kill loop, broker outage, bad input, soak and
//! `reco up` restarts,
//! each ending in a one-line verdict with its numbers. By default each runs at a quick scale
//! (part of `make test` and CI); `RECO_RELIABILITY=full` runs the sizes of docs/RELIABILITY.md.

mod bad_input;
mod chaos;
mod common;
mod kill_loop;
mod outage;
mod restarts;
mod soak;
