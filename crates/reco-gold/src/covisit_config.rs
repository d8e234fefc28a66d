//! The parameters of the co-visitation rules (the `covisit` module documentation says what
//! each one does).

use serde::{Deserialize, Serialize};

use super::Action;

const MINUTE_US: i64 = 60_000_000;
const DAY_US: i64 = 24 * 60 * MINUTE_US;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub view_weight: f64,
    pub click_weight: f64,
    pub rating_weight: f64,
    pub rating_threshold: f64,
    pub session_gap_us: i64,
    pub named_session_idle_us: i64,
    pub history: usize,
    /// 0: nothing fades (historic replays).
    pub half_life_us: i64,
    pub candidates: usize,
    pub top_k: usize,
    pub min_support: u32,
    pub forget_below: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            view_weight: 1.0,
            click_weight: 2.0,
            rating_weight: 3.0,
            rating_threshold: 4.0,
            session_gap_us: 30 * MINUTE_US,
            named_session_idle_us: DAY_US,
            history: 20,
            half_life_us: 30 * DAY_US,
            candidates: 200,
            top_k: 50,
            min_support: 1,
            forget_below: 0.01,
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), String> {
        let weights = [self.view_weight, self.click_weight, self.rating_weight];
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) || !self.rating_threshold.is_finite() {
            return Err("neighbour weights must be finite and not negative".into());
        }
        if self.history < 1 || self.top_k < 1 || self.candidates < self.top_k {
            return Err("history and top K must be at least 1, and candidates at least top K".into());
        }
        if self.session_gap_us <= 0 || self.named_session_idle_us <= 0 || self.half_life_us < 0 {
            return Err("session limits must be positive and the half-life not negative".into());
        }
        Ok(())
    }

    /// The weight of an interaction, `None` when it is not positive.
    pub fn weight(&self, action: Action) -> Option<f64> {
        match action {
            Action::View => Some(self.view_weight),
            Action::Click => Some(self.click_weight),
            Action::Rating(r) if r >= self.rating_threshold => Some(self.rating_weight),
            Action::Rating(_) => None,
        }
        .filter(|w| *w > 0.0)
    }
}
