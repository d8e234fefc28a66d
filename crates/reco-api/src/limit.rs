//! An optional request-rate limit on `POST /events`, per caller: the token name when the
//! request was authenticated, else the client's IP address. A caller over its rate gets 429
//! with `Retry-After` (whole seconds until a request would pass). The bookkeeping is
//! `governor`'s keyed GCRA limiter; this module only picks the key and shapes the answer.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{DefaultKeyedRateLimiter, Quota, clock::Clock};

use crate::{ApiError, AppState, auth::Caller};

/// Requests per second a caller may make, and how many may come at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
enum Key {
    Token(Arc<str>),
    Ip(IpAddr),
}

/// The limiter state shared by every request of one router.
#[derive(Debug)]
pub(crate) struct Limiter {
    limiter: DefaultKeyedRateLimiter<Key>,
    checks: AtomicU64,
}

/// Forget idle callers' state every this many checks, so per-IP state stays bounded.
const SWEEP_EVERY: u64 = 4096;

impl Limiter {
    pub(crate) fn new(limit: RateLimit) -> Limiter {
        let quota = Quota::per_second(limit.per_second).allow_burst(limit.burst);
        Limiter { limiter: DefaultKeyedRateLimiter::dashmap(quota), checks: AtomicU64::new(0) }
    }

    /// `Ok` to go ahead, or the seconds to wait.
    fn check(&self, key: &Key) -> Result<(), u64> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.limiter.clock().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

pub(crate) async fn rate_limit(
    State((state, limiter)): State<(AppState, Arc<Limiter>)>,
    req: Request,
    next: Next,
) -> Response {
    let key = match req.extensions().get::<Caller>() {
        Some(caller) => Key::Token(caller.0.clone()),
        None => Key::Ip(
            req.extensions().get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip()),
        ),
    };
    match limiter.check(&key) {
        Ok(()) => next.run(req).await,
        Err(wait_secs) => {
            state.telemetry.ingest.rejected("rate_limited");
            let wait_secs = wait_secs.max(1);
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("request rate over this caller's limit; retry in {wait_secs} s"),
            )
            .retry_after(wait_secs)
            .into_response()
        }
    }
}
