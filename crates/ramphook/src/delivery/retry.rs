//! The retry schedule: how long to wait before each attempt, with jitter.
//! Pure: the caller passes the randomness in.

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
}
