//! Times as the contract prints them: RFC 3339 UTC with milliseconds and `Z`.
//! Stored as integer milliseconds since the epoch so both databases compare
//! them cheaply.

use chrono::{DateTime, SecondsFormat, Utc};

pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// `2022-10-26T22:36:41.658Z`
pub fn format_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses an RFC 3339 time (any offset) into epoch milliseconds.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_three_fraction_digits_and_z() {
        assert_eq!(format_ms(1_666_823_801_658), "2022-10-26T22:36:41.658Z");
        assert_eq!(format_ms(1_666_823_801_000), "2022-10-26T22:36:41.000Z");
    }

    #[test]
    fn parses_back_what_it_prints() {
        assert_eq!(parse_rfc3339_ms("2022-10-26T22:36:41.658Z"), Some(1_666_823_801_658));
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }
}
