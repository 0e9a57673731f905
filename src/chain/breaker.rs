//! A per-endpoint circuit breaker: a pure state machine, fed with the time by its caller.
//!
//! Closed, the endpoint takes every request. After `threshold` transport failures in a row it
//! opens and takes none for `cooldown`; then it half-opens and lets one trial request through.
//! The trial's success closes it, its failure opens it for another cool-down. A trial whose
//! outcome never arrives (its caller gave up) is replaced by a new one after a cool-down.

use std::time::{Duration, Instant};

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow; `failures` transport failures in a row so far.
    Closed {
        /// Consecutive transport failures.
        failures: u32,
    },
    /// No requests until `until`.
    Open {
        /// When the cool-down ends.
        until: Instant,
    },
    /// One trial request is in flight since `since`.
    HalfOpen {
        /// When the trial was let through.
        since: Instant,
    },
}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(&self) -> &'static str {
        match self {
            BreakerState::Closed { .. } => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen { .. } => "half_open",
        }
    }
}

/// A circuit breaker for one endpoint.
#[derive(Debug, Clone)]
pub struct Breaker {
    state: BreakerState,
    threshold: u32,
    cooldown: Duration,
}

impl Breaker {
    /// A closed breaker that opens after `threshold` (at least 1) failures in a row and stays
    /// open for `cooldown`.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self { state: BreakerState::Closed { failures: 0 }, threshold: threshold.max(1), cooldown }
    }

    /// The state now.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// True while the breaker is open or half-open (the endpoint is not known to be healthy).
    pub fn is_open(&self) -> bool {
        !matches!(self.state, BreakerState::Closed { .. })
    }

    /// May a request go to the endpoint at `now`? An open breaker whose cool-down has passed
    /// half-opens and lets this one request through as its trial.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.state {
            BreakerState::Closed { .. } => true,
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::HalfOpen { since: now };
                true
            }
            BreakerState::Open { .. } => false,
            BreakerState::HalfOpen { since } if now >= since + self.cooldown => {
                self.state = BreakerState::HalfOpen { since: now };
                true
            }
            BreakerState::HalfOpen { .. } => false,
        }
    }

    /// The endpoint answered: the breaker closes.
    pub fn success(&mut self) {
        self.state = BreakerState::Closed { failures: 0 };
    }

    /// The endpoint failed at transport level at `now`. Returns true when this failure opened
    /// the breaker.
    pub fn failure(&mut self, now: Instant) -> bool {
        match self.state {
            BreakerState::Closed { failures } if failures + 1 < self.threshold => {
                self.state = BreakerState::Closed { failures: failures + 1 };
                false
            }
            BreakerState::Closed { .. } | BreakerState::HalfOpen { .. } => {
                self.state = BreakerState::Open { until: now + self.cooldown };
                true
            }
            // A late failure of a request let through before the breaker opened.
            BreakerState::Open { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(5);

    #[test]
    fn opens_after_threshold_consecutive_failures() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new(3, COOLDOWN);
        assert!(!breaker.failure(t0));
        assert!(!breaker.failure(t0));
        assert!(breaker.allow(t0));
        assert!(breaker.failure(t0), "the third failure in a row opens it");
        assert!(breaker.is_open());
        assert!(!breaker.allow(t0 + Duration::from_secs(1)));
        assert!(!breaker.allow(t0 + COOLDOWN - Duration::from_millis(1)));
    }

    #[test]
    fn a_success_resets_the_count() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new(2, COOLDOWN);
        breaker.failure(t0);
        breaker.success();
        assert!(!breaker.failure(t0), "failures are counted only in a row");
        assert_eq!(breaker.state(), BreakerState::Closed { failures: 1 });
    }

    #[test]
    fn half_opens_after_cooldown_with_one_trial() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new(1, COOLDOWN);
        assert!(breaker.failure(t0));
        let later = t0 + COOLDOWN;
        assert!(breaker.allow(later), "the trial goes through");
        assert_eq!(breaker.state(), BreakerState::HalfOpen { since: later });
        assert!(!breaker.allow(later), "only one trial at a time");
        breaker.success();
        assert_eq!(breaker.state(), BreakerState::Closed { failures: 0 });
        assert!(breaker.allow(later));
    }

    #[test]
    fn a_failed_trial_reopens_for_another_cooldown() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new(1, COOLDOWN);
        breaker.failure(t0);
        let trial = t0 + COOLDOWN;
        assert!(breaker.allow(trial));
        assert!(breaker.failure(trial));
        assert_eq!(breaker.state(), BreakerState::Open { until: trial + COOLDOWN });
        assert!(!breaker.allow(trial + Duration::from_secs(1)));
    }

    #[test]
    fn a_lost_trial_is_replaced_after_a_cooldown() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new(1, COOLDOWN);
        breaker.failure(t0);
        assert!(breaker.allow(t0 + COOLDOWN));
        assert!(!breaker.allow(t0 + COOLDOWN + Duration::from_secs(1)));
        assert!(breaker.allow(t0 + COOLDOWN * 2), "the first trial never reported back");
    }

    #[test]
    fn a_late_failure_while_open_does_not_extend_it() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new(1, COOLDOWN);
        breaker.failure(t0);
        assert!(!breaker.failure(t0 + Duration::from_secs(1)));
        assert_eq!(breaker.state(), BreakerState::Open { until: t0 + COOLDOWN });
    }
}
