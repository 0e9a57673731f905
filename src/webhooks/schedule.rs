//! When a delivery is tried again: a schedule of delays (the first before the first attempt),
//! each with ±10% jitter so that many deliveries failing together do not retry together, and
//! never sooner than a receiver's `Retry-After` asks (capped at 24 h).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

/// The longest `Retry-After` honoured; a longer one waits this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3_600);

/// Most entries a schedule may have.
const MAX_STEPS: usize = 50;

/// Delays before each attempt: entry `n` is waited before attempt `n + 1`. A delivery gives up
/// after as many attempts as the schedule has entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

impl Default for RetrySchedule {
    fn default() -> Self {
        Self(vec![Duration::ZERO])
    }
}

/// A schedule that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid retry schedule `{0}`: expected comma-separated delays like `0s,5s,5m,2h`")]
pub struct InvalidSchedule(String);

impl FromStr for RetrySchedule {
    type Err = InvalidSchedule;

    fn from_str(text: &str) -> Result<Self, InvalidSchedule> {
        let invalid = || InvalidSchedule(text.to_owned());
        let delays = text
            .split(',')
            .map(|part| parse_delay(part.trim()).ok_or_else(invalid))
            .collect::<Result<Vec<_>, _>>()?;
        if delays.is_empty() || delays.len() > MAX_STEPS {
            return Err(invalid());
        }
        Ok(Self(delays))
    }
}

fn parse_delay(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let millis = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    number.checked_mul(millis).map(Duration::from_millis)
}

impl fmt::Display for RetrySchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|d| format!("{}ms", d.as_millis())).collect();
        f.write_str(&parts.join(","))
    }
}

impl RetrySchedule {
    /// How many attempts a delivery gets before it fails.
    pub fn attempts(&self) -> usize {
        self.0.len()
    }

    /// The delay before the first attempt.
    pub fn first(&self) -> Duration {
        self.0.first().copied().unwrap_or_default()
    }

    /// The delay before the next attempt after `made` attempts of this round, with `jitter`
    /// (in [-1, 1]) scaling ±10% and `retry_after` as a floor; `None` once the schedule is used
    /// up.
    pub fn next_delay(
        &self,
        made: usize,
        jitter: f64,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        let base = *self.0.get(made)?;
        let jittered = base.mul_f64(1.0 + 0.1 * jitter.clamp(-1.0, 1.0));
        Some(match retry_after {
            Some(asked) => jittered.max(asked.min(MAX_RETRY_AFTER)),
            None => jittered,
        })
    }
}

/// A `Retry-After` value: delay-seconds or an HTTP date (RFC 9110 §10.2.3), as a delay from
/// `now`; `None` if it is neither.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_default_schedule() {
        let schedule: RetrySchedule = crate::webhooks::DEFAULT_SCHEDULE.parse().unwrap();
        assert_eq!(schedule.attempts(), 10);
        assert_eq!(schedule.first(), Duration::ZERO);
        let total: Duration = schedule.0.iter().sum();
        // About three days: 5 s + 5 min + 30 min + 2 h + 5 h + 10 h + 14 h + 20 h + 24 h.
        assert_eq!(total, Duration::from_secs(5 + 300 + 1_800 + 3_600 * 75));
        assert_eq!("50ms,1d".parse::<RetrySchedule>().unwrap().0[1], Duration::from_secs(86_400));
        for bad in ["", "5", "5x", "-1s", "1s,,2s", "s"] {
            assert!(bad.parse::<RetrySchedule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn jitters_within_ten_percent_and_gives_up_at_the_end() {
        let schedule: RetrySchedule = "0s,10s,100s".parse().unwrap();
        assert_eq!(schedule.next_delay(1, 0.0, None), Some(Duration::from_secs(10)));
        assert_eq!(schedule.next_delay(1, 1.0, None), Some(Duration::from_secs(11)));
        assert_eq!(schedule.next_delay(2, -1.0, None), Some(Duration::from_secs(90)));
        assert_eq!(schedule.next_delay(3, 0.0, None), None);
    }

    #[test]
    fn retry_after_raises_the_delay_up_to_a_cap() {
        let schedule: RetrySchedule = "0s,10s".parse().unwrap();
        let asked = Some(Duration::from_secs(60));
        assert_eq!(schedule.next_delay(1, 0.0, asked), Some(Duration::from_secs(60)));
        let small = Some(Duration::from_secs(1));
        assert_eq!(schedule.next_delay(1, 0.0, small), Some(Duration::from_secs(10)));
        let huge = Some(Duration::from_secs(10 * 86_400));
        assert_eq!(schedule.next_delay(1, 0.0, huge), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn reads_retry_after_in_both_forms() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
