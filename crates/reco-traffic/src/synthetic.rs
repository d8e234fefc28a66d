//! Synthetic interactions with a realistic shape. Pure: a seeded generator and an injected
//! clock, so the same seed gives the same stream and tests can check its shape.
//!
//! - **Items** are drawn from a Zipf distribution over popularity ranks; which item holds each
//!   rank drifts with event time (`drift_items_per_hour`), so "trending" changes.
//! - **Users** have sessions: a session ends after `session_events` events on average or after
//!   30 minutes of event time without activity; the next event starts a new session id.
//! - **Funnel**: every interaction starts with a view; a view leads to a click with
//!   `click_ratio`, a click to a rating with `rating_ratio`.
//! - **Malformed** events (`malformed_ratio`) cover the validation errors the API and silver
//!   must report: empty or missing ids, unknown fields, bad ratings, far-future timestamps, text
//!   that is not JSON.

use serde_json::{Value, json};

const SESSION_GAP_US: i64 = 30 * 60 * 1_000_000;

/// Where event times come from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Clock {
    /// Event time = the wall clock when generated.
    Now,
    /// Event time starts at `start_us` and runs `speedup` times faster than the wall clock.
    Historic { start_us: i64, speedup: f64 },
}

#[derive(Clone, Debug, PartialEq)]
pub struct GenConfig {
    pub seed: u64,
    pub items: usize,
    pub users: usize,
    /// Zipf exponent: larger concentrates traffic on the top items.
    pub zipf_s: f64,
    /// How many ranks the popularity ranking shifts per hour of event time.
    pub drift_items_per_hour: f64,
    pub click_ratio: f64,
    pub rating_ratio: f64,
    pub malformed_ratio: f64,
    /// Mean events per session.
    pub session_events: u32,
    pub clock: Clock,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 42,
            items: 10_000,
            users: 5_000,
            zipf_s: 1.1,
            drift_items_per_hour: 25.0,
            click_ratio: 0.15,
            rating_ratio: 0.3,
            malformed_ratio: 0.0,
            session_events: 8,
            clock: Clock::Now,
        }
    }
}

/// One generated request body: a valid event, or a malformed one with the kind of mistake.
#[derive(Clone, Debug, PartialEq)]
pub enum Generated {
    Valid(Value),
    Malformed { kind: &'static str, body: String },
}

#[derive(Clone, Debug)]
struct Session {
    id: u64,
    remaining: u32,
    last_us: i64,
}

#[derive(Debug)]
pub struct Generator {
    config: GenConfig,
    rng: u64,
    /// Cumulative Zipf weights over ranks 0..items.
    cdf: Vec<f64>,
    sessions: Vec<Option<Session>>,
    next_session: u64,
    /// Follow-ups of the funnel (click after view, rating after click), emitted next.
    queue: std::collections::VecDeque<Value>,
    started_wall_us: Option<i64>,
}

impl Generator {
    pub fn new(config: GenConfig) -> Generator {
        let mut cdf = Vec::with_capacity(config.items.max(1));
        let mut total = 0.0;
        for rank in 1..=config.items.max(1) {
            total += 1.0 / (rank as f64).powf(config.zipf_s);
            cdf.push(total);
        }
        cdf.iter_mut().for_each(|c| *c /= total);
        Generator {
            rng: config.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            sessions: vec![None; config.users.max(1)],
            cdf,
            config,
            next_session: 1,
            queue: Default::default(),
            started_wall_us: None,
        }
    }

    fn next_u64(&mut self) -> u64 {
        // xorshift64*: fast, seedable, good enough for traffic shapes.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The event time for wall-clock `now_us`.
    pub fn event_time(&mut self, now_us: i64) -> i64 {
        let started = *self.started_wall_us.get_or_insert(now_us);
        match self.config.clock {
            Clock::Now => now_us,
            Clock::Historic { start_us, speedup } => start_us + ((now_us - started) as f64 * speedup) as i64,
        }
    }

    /// The item at popularity `rank` (0 = most popular) at event time `t_us`.
    pub fn item_at(&self, rank: usize, t_us: i64) -> String {
        let shift = (t_us as f64 / 3.6e9 * self.config.drift_items_per_hour).max(0.0) as usize;
        format!("item-{}", (rank + shift) % self.config.items.max(1))
    }

    fn zipf_rank(&mut self) -> usize {
        let u = self.unit();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }

    /// The next request body at wall-clock `now_us`.
    pub fn next(&mut self, now_us: i64) -> Generated {
        let t = self.event_time(now_us);
        if let Some(mut follow_up) = self.queue.pop_front() {
            follow_up["timestamp"] = json!(rfc3339(t));
            return Generated::Valid(follow_up);
        }
        if self.config.malformed_ratio > 0.0 && self.unit() < self.config.malformed_ratio {
            return self.malformed(t, now_us);
        }
        let user = (self.next_u64() % self.config.users.max(1) as u64) as usize;
        let session = self.session(user, t);
        let rank = self.zipf_rank();
        let item = self.item_at(rank, t);
        let base = json!({
            "user_id": format!("user-{user}"),
            "item_id": item,
            "session_id": format!("s-{session}"),
        });
        if self.unit() < self.config.click_ratio {
            let mut click = base.clone();
            click["type"] = json!("click");
            click["event_id"] = json!(self.event_id());
            self.queue.push_back(click);
            if self.unit() < self.config.rating_ratio {
                let mut rating = base.clone();
                rating["type"] = json!("rating");
                // Ratings lean positive, as in public datasets: 2–5 in halves.
                rating["rating"] = json!(((self.unit() * 3.0 + 2.0) * 2.0).round() / 2.0);
                rating["event_id"] = json!(self.event_id());
                self.queue.push_back(rating);
            }
        }
        let mut view = base;
        view["type"] = json!("view");
        view["event_id"] = json!(self.event_id());
        view["timestamp"] = json!(rfc3339(t));
        Generated::Valid(view)
    }

    fn event_id(&mut self) -> String {
        // Random 128 bits in UUID form: unique without a clock, reproducible per seed.
        let (a, b) = (self.next_u64(), self.next_u64());
        uuid::Builder::from_random_bytes(((a as u128) << 64 | b as u128).to_be_bytes()).into_uuid().to_string()
    }

    fn session(&mut self, user: usize, t: i64) -> u64 {
        let mean = self.config.session_events.max(1);
        let length = 1 + (self.next_u64() % (2 * mean as u64)) as u32;
        let fresh = Session { id: 0, remaining: length, last_us: t };
        let current = match self.sessions[user].take() {
            Some(s) if s.remaining > 0 && t - s.last_us < SESSION_GAP_US => s,
            _ => {
                self.next_session += 1;
                Session { id: self.next_session, ..fresh }
            }
        };
        let id = current.id;
        self.sessions[user] = Some(Session { remaining: current.remaining - 1, last_us: t, ..current });
        id
    }

    fn malformed(&mut self, t: i64, now_us: i64) -> Generated {
        let kinds = 7;
        let (kind, body) = match self.next_u64() % kinds {
            0 => ("invalid_json", "{\"type\": \"view\", \"user_id\": \"u1\",".to_owned()),
            1 => ("missing_field", json!({"type": "view", "user_id": "u1", "timestamp": rfc3339(t)}).to_string()),
            2 => ("invalid_field", json!({"type": "view", "user_id": "", "item_id": "i1"}).to_string()),
            3 => (
                "unknown_field",
                json!({"type": "view", "user_id": "u1", "item_id": "i1", "colour": "red"}).to_string(),
            ),
            4 => {
                ("invalid_field", json!({"type": "rating", "user_id": "u1", "item_id": "i1", "rating": 11}).to_string())
            }
            5 => (
                "timestamp_out_of_range",
                json!({"type": "click", "user_id": "u1", "item_id": "i1", "timestamp": now_us / 1000 + 86_400_000})
                    .to_string(),
            ),
            _ => ("invalid_field", json!({"type": "purchase", "user_id": "u1", "item_id": "i1"}).to_string()),
        };
        Generated::Malformed { kind, body }
    }
}

pub fn rfc3339(us: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "synthetic_tests.rs"]
mod tests;
