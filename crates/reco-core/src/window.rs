//! The trending windows of the contract (CONTRACTS §5): one type for the gold job that computes
//! them and the API that serves them.

const MINUTE_US: i64 = 60_000_000;

/// A window length and slide, in microseconds, under the name the API and metrics use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowSpec {
    /// The `window` label and API parameter, e.g. `1h`.
    pub name: &'static str,
    pub length_us: i64,
    pub slide_us: i64,
}

/// `trending_now_1h` (1 hour sliding every 5 minutes) and `trending_now_24h` (24 hours every 15).
pub const TRENDING_WINDOWS: [WindowSpec; 2] = [
    WindowSpec { name: "1h", length_us: 60 * MINUTE_US, slide_us: 5 * MINUTE_US },
    WindowSpec { name: "24h", length_us: 24 * 60 * MINUTE_US, slide_us: 15 * MINUTE_US },
];
