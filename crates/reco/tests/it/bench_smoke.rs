//! `make bench`'s API part runs end to end on a tiny size (CI checks the command, not speed):
//! `scripts/bench-api.sh` with this build's binary, one second per load, prints its table. The
//! script refuses to print a load that got any answer outside 2xx, so a row is a measure of
//! the answer it names (a `GET /trending` that found no window measured 404s).

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
    assert_eq!(
        rows.len(),
        16,
        "baseline, 3 single-event loads, 2 batch loads, GET /trending, GET /items/{{id}}/similar, 2 loads of \
         GET /users/{{id}}/recommendations, 3 FastAPI loads, 3 loads with a bearer token:\n{stdout}"
    );
    assert_eq!(rows.iter().filter(|r| r.contains("FastAPI (seed)")).count(), 3, "{stdout}");
    assert_eq!(rows.iter().filter(|r| r.contains("bearer token")).count(), 3, "{stdout}");
    for row in &rows {
        let rps: f64 = row.split('|').nth(3).unwrap().trim().parse().unwrap_or(0.0);
        assert!(rps > 0.0, "every load got answers: {row}");
    }
    assert!(stdout.contains("peak RSS of reco up"), "{stdout}");
}

/// `make bench`'s ingest part on a tiny size: per broker storage, the first event in silver,
/// the bare producer's ceiling, the API's batches and single events, the FastAPI baseline and
/// `GET /health/live`, each a positive figure.
#[test]
fn ingest_bench_script_prints_a_row_per_storage() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/bench-ingest.sh");
    let out = Command::new("bash")
        // Two seconds per load: one second on a busy CI machine can end before the slowest
        // stack (FastAPI, 100-event batches) answers a request.
        .args([script, "2", "20000"])
        .env("RECO_BIN", env!("CARGO_BIN_EXE_reco"))
        .output()
        .expect("run scripts/bench-ingest.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    for storage in ["sqlite", "memory"] {
        let row =
            stdout.lines().find(|l| l.starts_with(&format!("| {storage} |"))).unwrap_or_else(|| panic!("{stdout}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // Nine figures after the storage; the ratios (columns 5, 7 and 10) may round to 0.00
        // in a debug build, the measured figures may not be zero.
        for (i, cell) in cells.iter().enumerate().skip(2).take(9) {
            let figure: f64 = cell.split_whitespace().next().unwrap_or("").parse().unwrap_or(-1.0);
            let ratio = [5, 7, 10].contains(&i);
            assert!(if ratio { figure >= 0.0 } else { figure > 0.0 }, "column {i} of {row}");
        }
    }
}

/// The freshness benchmark's code, compiled into this test from the example's own source: the
/// test needs no example binary, which `cargo nextest run --all-targets` does not leave at
/// `examples/freshness` and a stale one from an earlier build would hide (issue 14).
#[allow(dead_code)]
#[path = "../../examples/freshness.rs"]
mod freshness;

/// The freshness benchmark on a tiny size: it runs the three services, and prints latencies
/// and peak memory per component.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freshness_bench_prints_its_tables() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_reco"));
    let stdout = freshness::measure(bin, 8.0, 500.0, 60.0).await;
    assert!(stdout.contains("4000 of 4000 events acknowledged, 0 failed"), "{stdout}");
    // The recommendation probes post events of their own beside the generator's.
    let probes: u64 = stdout
        .split(" probe events")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the probe count");
    let silver = stdout.lines().find(|l| l.starts_with("| sent → committed in silver")).expect("silver row");
    assert!(silver.contains(&format!("(n = {})", 4000 + probes)), "every event's latency measured: {silver}");
    assert!(stdout.contains("| a user's interaction acknowledged → in their recommendations |"), "{stdout}");
    for component in ["reco serve", "reco silver", "reco gold"] {
        assert!(stdout.contains(&format!("| {component}")), "{component} peak RSS: {stdout}");
    }
}
