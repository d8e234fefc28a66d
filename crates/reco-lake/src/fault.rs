//! Test-only fault injection, in one place for every crate: `RECO_FAULT=<point>` aborts the
//! process at that point, so the crash tests (`crates/reco/tests/it/silver_crash.rs`,
//! `gold_crash.rs`) can stop a real process exactly where a crash is hardest to recover from.
//! The points:
//!
//! - `crash_before_commit`: a batch's data files are written, the commit that would make them
//!   visible is not (silver, both formats);
//! - `crash_between_commits`: a Delta batch's dead-letter commit is made, its silver commit not;
//! - `gold_crash_after_publish`: gold windows are written, the checkpoint that records them not.
//!
//! Reading one environment variable is the whole cost when it is unset.

/// Aborts the process if `RECO_FAULT` names `point`.
pub fn crash_point(point: &str) {
    if std::env::var("RECO_FAULT").is_ok_and(|v| v == point) {
        eprintln!("RECO_FAULT={point}: aborting");
        std::process::abort();
    }
}
