//! Per-API-key rate limiting: each partner key gets its own token bucket
//! (governor's GCRA), so one noisy or compromised partner cannot starve the
//! others. The admin token — the platform's own services, which create
//! orders and events — is not limited: it is trusted, and throttling it would
//! hold up every partner's webhooks at once.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// `RAMPHOOK_RATE_LIMIT`: `N/s`, `N/m`, `N/h`, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// `None` = no limit.
    pub per: Option<(NonZeroU32, Duration)>,
}

/// Parses `100/s`, `600/m`, `5000/h` or `off`.
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(Rate { per: None });
    }
    let hint = "use requests per unit such as 100/s, 600/m or 5000/h, or off";
    let (count, unit) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?} is not a rate; {hint}"))?;
    let count: u32 = count
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} does not start with a whole number; {hint}"))?;
    let count = NonZeroU32::new(count).ok_or_else(|| format!("{text:?} allows nothing; {hint}"))?;
    let period = match unit.trim() {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return Err(format!("{text:?} has no known unit; {hint}")),
    };
    Ok(Rate {
        per: Some((count, period)),
    })
}

/// The limiter shared by every request, keyed by partner id.
#[derive(Clone)]
pub struct RateLimiter {
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
}

impl RateLimiter {
    /// `None` when the rate is `off`. `burst` requests may come at once
    /// (at least 1), refilled at `rate`.
    pub fn new(rate: Rate, burst: NonZeroU32) -> Option<Self> {
        let (count, period) = rate.per?;
        let quota = Quota::with_period(period / count.get())?.allow_burst(burst);
        Some(Self {
            limiter: Arc::new(governor::RateLimiter::keyed(quota)),
        })
    }

    /// `Ok` if `key` may make a request now; otherwise how many whole
    /// seconds to wait (at least 1), for `Retry-After`.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        match self.limiter.check_key(&key.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err((wait.as_secs_f64().ceil() as u64).max(1))
            }
        }
    }

    /// Forgets keys whose buckets are full again, so memory stays bounded.
    pub fn shrink(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_a_unit_or_off() {
        let per = |n: u32, s: u64| Some((NonZeroU32::new(n).unwrap(), Duration::from_secs(s)));
        assert_eq!(parse_rate("100/s").unwrap().per, per(100, 1));
        assert_eq!(parse_rate(" 600/m ").unwrap().per, per(600, 60));
        assert_eq!(parse_rate("5000/h").unwrap().per, per(5000, 3600));
        assert_eq!(parse_rate("OFF").unwrap().per, None);
        for bad in ["", "100", "0/s", "-1/s", "1/d", "x/s", "1/", "/s", "1.5/s"] {
            assert!(parse_rate(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn each_key_has_its_own_bucket_and_refusals_say_how_long_to_wait() {
        let limiter = RateLimiter::new(parse_rate("1/m").unwrap(), NonZeroU32::new(2).unwrap()).unwrap();
        assert_eq!(limiter.check("a"), Ok(()));
        assert_eq!(limiter.check("a"), Ok(()));
        let wait = limiter.check("a").unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(limiter.check("b"), Ok(()), "another key is not affected");
        assert!(RateLimiter::new(parse_rate("off").unwrap(), NonZeroU32::new(2).unwrap()).is_none());
    }
}
