//! Log output: reco's own crates at the level asked, dependencies at WARN unless named (OPERATIONS.md).

use tracing_subscriber::{EnvFilter, fmt};

/// reco's own crates: a bare level in `RUST_LOG` applies to these.
const OURS: [&str; 8] =
    ["reco", "reco_api", "reco_kafka", "reco_silver", "reco_gold", "reco_lake", "reco_telemetry", "reco_traffic"];

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), in colour only at a terminal. A bare level (`RUST_LOG=debug`)
/// applies to reco's crates; libraries stay at `warn` (their per-connection chatter and the
/// Delta kernel's snapshot dumps would drown ours) unless a directive names them, e.g.
/// `RUST_LOG=info,rdkafka=debug`. delta-rs' per-file note that it keeps no statistics for
/// binary columns is expected for dead-letter tables and silenced, as is the kernel's "no
/// files in log segment" while it probes a table that does not exist yet.
pub fn init_tracing() {
    // Expected noise, silenced even under a user's RUST_LOG unless it names these targets.
    const QUIET: [&str; 2] = ["deltalake_core::writer::stats=error", "buoyant_kernel::snapshot::builder=off"];
    let base = std::env::var("RUST_LOG").ok().filter(|s| !s.trim().is_empty()).unwrap_or_else(|| "info".to_owned());
    let mut spec = expand(&base);
    // librdkafka's own debug contexts, when asked for (reco-kafka's `client_config`).
    if std::env::var_os("RECO_KAFKA_DEBUG").is_some() && !base.contains("rdkafka") {
        spec.push_str(",librdkafka=debug,rdkafka=debug");
    }
    for quiet in QUIET {
        let target = quiet.split('=').next().unwrap_or(quiet);
        if !base.contains(target) {
            spec.push(',');
            spec.push_str(quiet);
        }
    }
    let filter = EnvFilter::try_new(&spec).unwrap_or_else(|e| {
        eprintln!("RUST_LOG={base:?} is not a valid filter ({e}); using the default");
        EnvFilter::new(format!("{},{}", expand("info"), QUIET.join(",")))
    });
    // Colour only for a person at a terminal: a file, a pipe or a log collector gets plain
    // text (escape codes break grep and most log shippers); NO_COLOR turns it off anywhere.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let _ = fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).try_init();
}

/// A warning that can repeat every cycle, logged at most once per period with the count of
/// what it reports since the last line (the metric behind it keeps the exact total). Pure:
/// the caller passes the time.
#[derive(Debug)]
pub struct Throttle {
    period: std::time::Duration,
    last: Option<std::time::Instant>,
    pending: u64,
}

impl Throttle {
    pub fn new(period: std::time::Duration) -> Throttle {
        Throttle { period, last: None, pending: 0 }
    }

    /// `n` more at `now`: the total to log now, if a line is due (the first one always is).
    pub fn add(&mut self, n: u64, now: std::time::Instant) -> Option<u64> {
        self.pending += n;
        if self.pending == 0 || self.last.is_some_and(|at| now.duration_since(at) < self.period) {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.pending))
    }
}

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// `RUST_LOG` with each bare level `L` turned into `L` for reco's crates and the less verbose
/// of `L` and `warn` for everything else; directives naming a target are kept as written.
fn expand(spec: &str) -> String {
    let mut out = Vec::new();
    for directive in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = directive.to_ascii_lowercase();
        match LEVELS.iter().position(|l| *l == level) {
            Some(n) => {
                out.push(LEVELS[n.min(2)].to_owned());
                out.extend(OURS.iter().map(|c| format!("{c}={level}")));
            }
            None => out.push(directive.to_owned()),
        }
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{Throttle, expand};

    #[test]
    fn a_throttled_warning_logs_once_per_period_with_the_count_in_between() {
        let mut t = Throttle::new(Duration::from_secs(30));
        let start = Instant::now();
        assert_eq!(t.add(3, start), Some(3), "the first report logs at once");
        assert_eq!(t.add(5, start + Duration::from_secs(1)), None);
        assert_eq!(t.add(0, start + Duration::from_secs(29)), None);
        assert_eq!(t.add(2, start + Duration::from_secs(30)), Some(7), "everything since the last line");
        assert_eq!(t.add(0, start + Duration::from_secs(90)), None, "nothing new: no line");
        assert_eq!(t.add(1, start + Duration::from_secs(91)), Some(1));
    }

    #[test]
    fn a_bare_level_is_ours_and_libraries_stay_at_warn() {
        let debug = expand("debug");
        assert!(debug.starts_with("warn,reco=debug,reco_api=debug"), "{debug}");
        assert!(expand("error").starts_with("error,reco=error"));
        let named = expand("info,rdkafka=debug");
        assert!(named.starts_with("warn,reco=info") && named.ends_with(",rdkafka=debug"), "{named}");
        assert_eq!(expand("reco_gold=trace"), "reco_gold=trace");
    }
}
