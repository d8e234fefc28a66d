use tracing_subscriber::{EnvFilter, fmt};

/// Logs to stderr, filtered by `RUST_LOG` (default: `info` for reco, `warn` for libraries,
/// whose per-connection chatter would drown ours; delta-rs' per-file note that it keeps no
/// statistics for binary columns is expected for dead-letter tables and silenced, as is the
/// kernel's "no files in log segment" while it probes a table that does not exist yet).
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(
            "warn,reco=info,reco_api=info,reco_kafka=info,reco_silver=info,reco_lake=info,\
             deltalake_core::writer::stats=error,buoyant_kernel::snapshot::builder=off",
        )
    });
    let _ = fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
