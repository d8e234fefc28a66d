use tracing_subscriber::{EnvFilter, fmt};

/// Logs to stderr, filtered by `RUST_LOG` (default: `info` for reco, `warn` for libraries,
/// whose per-connection chatter would drown ours; delta-rs' per-file note that it keeps no
/// statistics for binary columns is expected for dead-letter tables and silenced, as is the
/// kernel's "no files in log segment" while it probes a table that does not exist yet).
pub fn init_tracing() {
    const DEFAULT: &str = "warn,reco=info,reco_api=info,reco_kafka=info,reco_silver=info,reco_gold=info,reco_lake=info";
    // Expected noise, silenced even under a user's RUST_LOG unless it names these targets.
    const QUIET: [&str; 2] = ["deltalake_core::writer::stats=error", "buoyant_kernel::snapshot::builder=off"];
    let base = std::env::var("RUST_LOG").ok().filter(|s| !s.trim().is_empty()).unwrap_or_else(|| DEFAULT.to_owned());
    let mut spec = base.clone();
    for quiet in QUIET {
        let target = quiet.split('=').next().unwrap_or(quiet);
        if !base.contains(target) {
            spec.push(',');
            spec.push_str(quiet);
        }
    }
    let filter = EnvFilter::try_new(&spec).unwrap_or_else(|e| {
        eprintln!("RUST_LOG={base:?} is not a valid filter ({e}); using the default");
        EnvFilter::new(format!("{DEFAULT},{}", QUIET.join(",")))
    });
    let _ = fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
