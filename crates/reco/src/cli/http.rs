//! Options of the HTTP API (`reco serve`, `reco up`) and the event rules it shares with the
//! silver job.

use std::{net::SocketAddr, num::NonZeroU32, path::PathBuf, sync::Arc, time::Duration};

use clap::Args;
use reco_api::{ApiConfig, RateLimit, Tokens};
use reco_core::Rules;

use super::parse_time;

#[derive(Debug, Args)]
pub struct HttpArgs {
    /// Listen address of the HTTP API. Default: 0.0.0.0:8000 for `reco serve`, 127.0.0.1:8000
    /// (this machine only) for `reco up`.
    #[arg(long, env = "RECO_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// Listen address of /metrics (and /health/live). Set, /metrics leaves the API port;
    /// unset, the API port serves it.
    #[arg(long, env = "RECO_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// File of API tokens, one `name:token` per line: POST /events then requires
    /// `Authorization: Bearer <token>`. Re-read on SIGHUP. Unset: no authentication.
    #[arg(long, env = "RECO_API_TOKENS_FILE")]
    pub api_tokens_file: Option<PathBuf>,
    /// With --api-tokens-file, GET /trending requires a token too.
    #[arg(long, env = "RECO_API_TOKENS_FOR_TRENDING")]
    pub api_tokens_for_trending: bool,
    /// Origins allowed to call the API from web pages (CORS), comma-separated, e.g.
    /// `https://shop.example.com`; `*` allows any. Unset: browsers refuse cross-origin calls.
    #[arg(long, env = "RECO_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Accept POST /events bodies sent as `text/plain` (JSON inside), as
    /// `navigator.sendBeacon` sends them without a CORS pre-flight; with tokens, such a page
    /// passes its token as `?access_token=`.
    #[arg(long, env = "RECO_ACCEPT_TEXT_PLAIN")]
    pub accept_text_plain: bool,
    /// POST /events requests per second per caller (token name, else client IP); over it,
    /// 429 with Retry-After. 0: no limit.
    #[arg(long, env = "RECO_RATE_LIMIT_PER_SEC", default_value_t = 0)]
    pub rate_limit_per_sec: u32,
    /// Requests a caller may send at once above its rate. Default: one second's worth.
    #[arg(long, env = "RECO_RATE_LIMIT_BURST")]
    pub rate_limit_burst: Option<u32>,
    /// Largest request body in bytes; larger ones get 413.
    #[arg(long, env = "RECO_BODY_LIMIT_BYTES", default_value_t = 1024 * 1024)]
    pub body_limit_bytes: usize,
    /// Most events in one POST /events batch.
    #[arg(long, env = "RECO_MAX_BATCH_EVENTS", default_value_t = 1000)]
    pub max_batch_events: usize,
    /// Longest wait for the broker's acknowledgment before answering 503, in milliseconds.
    #[arg(long, env = "RECO_ACK_TIMEOUT_MS", default_value_t = 5000)]
    pub ack_timeout_ms: u64,
    /// Longest a request may take before it is answered 503, in milliseconds.
    #[arg(long, env = "RECO_REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    /// Do not serve the web console (`GET /`, `/console/`): for an API exposed to clients
    /// only. With --api-tokens-file the console's data needs a token anyway.
    #[arg(long, env = "RECO_NO_CONSOLE")]
    pub no_console: bool,
    /// How far back a user's history counts for their recommendations, in days: at start the
    /// API re-reads this much of the event topics, and drops users with no event arriving for
    /// this long.
    #[arg(long, env = "RECO_HISTORY_DAYS", default_value_t = 30)]
    pub history_days: u64,
}

/// The event rules of CONTRACTS §3 that an operator may change. One group, flattened once into
/// every command that validates events (the API and the silver job), so both always agree on
/// what is valid: an event the API accepted is never dead-lettered by silver for a rule.
#[derive(Debug, Args)]
pub struct RulesArgs {
    /// How far in the future an event timestamp may be, in seconds (client clock skew).
    #[arg(long, env = "RECO_MAX_FUTURE_SECS", default_value_t = 900)]
    pub max_future_secs: i64,
    /// The earliest event time accepted (RFC 3339 or date, UTC). Earlier times are refused;
    /// epoch seconds sent where milliseconds belong (a January 1970 time) are named as such.
    #[arg(long, env = "RECO_MIN_EVENT_TIME", value_parser = parse_time, default_value = "1980-01-01")]
    pub min_event_time: i64,
    /// Lowest accepted rating.
    #[arg(long, env = "RECO_RATING_MIN", default_value_t = 0.0, allow_negative_numbers = true)]
    pub rating_min: f64,
    /// Highest accepted rating.
    #[arg(long, env = "RECO_RATING_MAX", default_value_t = 5.0)]
    pub rating_max: f64,
}

impl RulesArgs {
    pub fn rules(&self) -> anyhow::Result<Rules> {
        anyhow::ensure!(
            self.rating_min.is_finite() && self.rating_max.is_finite() && self.rating_min <= self.rating_max,
            "--rating-min ({}) must not exceed --rating-max ({})",
            self.rating_min,
            self.rating_max
        );
        anyhow::ensure!(self.max_future_secs >= 0, "--max-future-secs ({}) must not be negative", self.max_future_secs);
        Ok(Rules {
            max_future_us: self.max_future_secs.saturating_mul(1_000_000),
            min_event_time_us: self.min_event_time,
            rating_min: self.rating_min,
            rating_max: self.rating_max,
            ..Rules::default()
        })
    }
}

impl HttpArgs {
    pub fn api_config(&self, rules: Rules) -> anyhow::Result<ApiConfig> {
        anyhow::ensure!(
            self.request_timeout_ms > self.ack_timeout_ms,
            "--request-timeout-ms ({}) must exceed --ack-timeout-ms ({}) so a slow broker gets a precise answer",
            self.request_timeout_ms,
            self.ack_timeout_ms
        );
        for origin in &self.cors_origins {
            reco_api::check_origin(origin).map_err(|e| anyhow::anyhow!("--cors-origins (RECO_CORS_ORIGINS): {e}"))?;
        }
        let tokens = match &self.api_tokens_file {
            Some(path) => Some(Arc::new(
                Tokens::from_file(path).map_err(|e| anyhow::anyhow!("--api-tokens-file (RECO_API_TOKENS_FILE) {e}"))?,
            )),
            None => None,
        };
        anyhow::ensure!(
            tokens.is_some() || !self.api_tokens_for_trending,
            "--api-tokens-for-trending needs --api-tokens-file (RECO_API_TOKENS_FILE)"
        );
        let rate_limit = NonZeroU32::new(self.rate_limit_per_sec).map(|per_second| {
            let burst = self.rate_limit_burst.and_then(NonZeroU32::new).unwrap_or(per_second);
            RateLimit { per_second, burst }
        });
        Ok(ApiConfig {
            body_limit_bytes: self.body_limit_bytes,
            max_batch_events: self.max_batch_events,
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            rules,
            tokens,
            tokens_for_trending: self.api_tokens_for_trending,
            cors_origins: self.cors_origins.iter().map(|o| o.trim().to_owned()).collect(),
            text_plain: self.accept_text_plain,
            rate_limit,
            metrics_on_api: self.metrics_addr.is_none(),
            console: !self.no_console,
        })
    }

    pub fn ack_timeout(&self) -> Duration {
        Duration::from_millis(self.ack_timeout_ms)
    }
}
