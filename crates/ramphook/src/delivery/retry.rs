//! The retry schedule: how long to wait before each attempt, with jitter, and
//! how a partner's own signals (429/503 with `Retry-After`, timeouts) push the
//! next try back. Pure: the caller passes the randomness in.

use std::time::Duration;

/// Delays before attempt 1, 2, … (`0s,5s,5m,…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

impl RetrySchedule {
    /// Parses a comma list of durations; at least one entry.
    pub fn parse(text: &str) -> Result<Self, String> {
        let delays = text
            .split(',')
            .map(|part| crate::config::parse_duration(part).map_err(|e| format!("{:?}: {e}", part.trim())))
            .collect::<Result<Vec<_>, _>>()?;
        if delays.is_empty() {
            return Err("the schedule needs at least one delay".into());
        }
        Ok(Self(delays))
    }

    pub fn delays(&self) -> &[Duration] {
        &self.0
    }

    /// After `attempts_made` failed attempts: the delay before the next one,
    /// or `None` when the schedule is used up (the delivery has failed).
    /// `jitter` in [0, 1) spreads retries by up to ±10 % so a partner coming
    /// back is not hit by every retry in the same millisecond.
    pub fn next_delay(&self, attempts_made: u32, jitter: f64) -> Option<Duration> {
        let base = *self.0.get(attempts_made as usize)?;
        let factor = 0.9 + 0.2 * jitter.clamp(0.0, 1.0);
        Some(base.mul_f64(factor))
    }
}

/// The longest `Retry-After` honoured; a partner cannot park a delivery longer.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// What the failed attempt told us about the partner's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Failure {
    pub status: Option<u16>,
    pub timed_out: bool,
    pub retry_after: Option<Duration>,
}

impl RetrySchedule {
    /// The delay before the next attempt after `failure`, or `None` when the
    /// schedule is used up. A `Retry-After` on 429/503 is honoured up to
    /// [`MAX_RETRY_AFTER`]; a timeout or a 429 waits at least `throttle_min`,
    /// so a struggling partner is not hammered.
    pub fn after_failure(
        &self,
        attempts_made: u32,
        jitter: f64,
        failure: Failure,
        throttle_min: Duration,
    ) -> Option<Duration> {
        let mut delay = self.next_delay(attempts_made, jitter)?;
        if matches!(failure.status, Some(429 | 503)) {
            if let Some(asked) = failure.retry_after {
                delay = delay.max(asked.min(MAX_RETRY_AFTER));
            }
        }
        if failure.timed_out || failure.status == Some(429) {
            delay = delay.max(throttle_min);
        }
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_gives_eight_attempts_then_stops() {
        let s = RetrySchedule::parse("0s,5s,5m,30m,2h,5h,10h,10h").unwrap();
        assert_eq!(s.next_delay(1, 0.5), Some(Duration::from_secs(5)));
        assert_eq!(s.next_delay(2, 0.5), Some(Duration::from_secs(300)));
        assert_eq!(s.next_delay(7, 0.5), Some(Duration::from_secs(36_000)));
        assert_eq!(s.next_delay(8, 0.5), None);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let s = RetrySchedule::parse("0s,100s").unwrap();
        assert_eq!(s.next_delay(1, 0.0), Some(Duration::from_secs(90)));
        assert_eq!(s.next_delay(1, 1.0), Some(Duration::from_secs(110)));
        assert_eq!(s.next_delay(0, 0.7), Some(Duration::ZERO));
    }

    #[test]
    fn bad_entries_are_named() {
        let err = RetrySchedule::parse("0s,5x").unwrap_err();
        assert!(err.contains("5x"), "{err}");
        assert!(RetrySchedule::parse("").is_err());
    }

    #[test]
    fn partners_signals_push_the_next_try_back_within_bounds() {
        let s = RetrySchedule::parse("0s,5s,5m").unwrap();
        let minute = Duration::from_secs(60);
        let plain = Failure {
            status: Some(500),
            ..Failure::default()
        };
        assert_eq!(s.after_failure(1, 0.5, plain, minute), Some(Duration::from_secs(5)));
        let timeout = Failure {
            timed_out: true,
            ..Failure::default()
        };
        assert_eq!(s.after_failure(1, 0.5, timeout, minute), Some(minute));
        let throttled = Failure {
            status: Some(429),
            retry_after: None,
            ..Failure::default()
        };
        assert_eq!(s.after_failure(1, 0.5, throttled, minute), Some(minute));
        let asked = Failure {
            status: Some(503),
            retry_after: Some(Duration::from_secs(120)),
            ..Failure::default()
        };
        assert_eq!(s.after_failure(1, 0.5, asked, minute), Some(Duration::from_secs(120)));
        let greedy = Failure {
            status: Some(429),
            retry_after: Some(Duration::from_secs(86_400)),
            ..Failure::default()
        };
        assert_eq!(s.after_failure(1, 0.5, greedy, minute), Some(MAX_RETRY_AFTER));
        // Retry-After on other statuses is not a promise to honour.
        let odd = Failure {
            status: Some(500),
            retry_after: Some(Duration::from_secs(120)),
            ..Failure::default()
        };
        assert_eq!(s.after_failure(1, 0.5, odd, minute), Some(Duration::from_secs(5)));
        // The schedule still ends the delivery.
        assert_eq!(s.after_failure(3, 0.5, asked, minute), None);
    }
}
