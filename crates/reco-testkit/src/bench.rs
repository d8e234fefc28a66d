//! The summary table of `make bench`: each benchmark appends its headline rows to the file named
//! by `RECO_BENCH_REPORT` (when set), and the Makefile prints them together at the end, so one
//! table holds every figure beside the baseline measured in the same run.

use std::io::Write;

/// Appends one row, in the columns of the header the Makefile prints
/// (`| part | measure | result | baseline (same run) | ratio |`); a no-op unless
/// `RECO_BENCH_REPORT` is set.
pub fn report(part: &str, measure: &str, result: &str, baseline: &str, ratio: Option<f64>) {
    let Ok(path) = std::env::var("RECO_BENCH_REPORT") else { return };
    let ratio = ratio.map(|r| format!("{r:.2}")).unwrap_or_default();
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "| {part} | {measure} | {result} | {baseline} | {ratio} |");
    }
}
