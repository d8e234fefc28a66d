//! `make bench`'s API part runs end to end on a tiny size (CI checks the command, not speed):
//! `scripts/bench-api.sh` with this build's binary, one second per load, prints its table.

use std::process::Command;

#[test]
fn api_bench_script_prints_its_table() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/bench-api.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg("1")
        .env("RECO_BIN", env!("CARGO_BIN_EXE_reco"))
        .output()
        .expect("run scripts/bench-api.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| load")).collect();
    assert_eq!(rows.len(), 7, "baseline, 3 single-event loads, 2 batch loads, GET /trending:\n{stdout}");
    for row in &rows {
        let rps: f64 = row.split('|').nth(3).unwrap().trim().parse().unwrap_or(0.0);
        assert!(rps > 0.0, "every load got answers: {row}");
    }
    assert!(stdout.contains("peak RSS of reco up"), "{stdout}");
}

/// The freshness benchmark (an example of this package, built by `--all-targets`) on a tiny
/// size: it runs the three services, and prints latencies and peak memory per component.
#[test]
fn freshness_bench_prints_its_tables() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_reco"));
    let example = bin.parent().unwrap().join("examples").join("freshness");
    // `make test` (and plain `cargo test`) build examples; `--test bench_smoke` alone does not.
    assert!(example.exists(), "{} not built: run with --all-targets", example.display());
    let out = Command::new(&example).args(["8", "500"]).env("RECO_BIN", bin).output().expect("run freshness");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("4000 of 4000 events acknowledged, 0 failed"), "{stdout}");
    let silver = stdout.lines().find(|l| l.starts_with("| sent → committed in silver")).expect("silver row");
    assert!(silver.contains("(n = 4000)"), "every event's latency measured: {silver}");
    for component in ["reco serve", "reco silver", "reco gold"] {
        assert!(stdout.contains(&format!("| {component}")), "{component} peak RSS: {stdout}");
    }
}
