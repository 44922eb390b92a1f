//! Argument types that `verify` and `listen` share: a request header given as
//! `name: value`, and a timestamp tolerance that can be switched off.

use std::time::Duration;

use crate::config::parse_duration;

/// One `--header 'name: value'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// Parses `name: value` (the first colon splits; both sides are trimmed).
pub fn parse_header(text: &str) -> Result<Header, String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not a header; write it as 'name: value'"))?;
    let name = name.trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(format!("{text:?} has no header name before the colon"));
    }
    Ok(Header {
        name: name.to_owned(),
        value: value.trim().to_owned(),
    })
}

/// How far `webhook-timestamp` may be from now; `None` skips the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tolerance(pub Option<Duration>);

impl Tolerance {
    pub fn seconds(self) -> Option<u64> {
        self.0.map(|d| d.as_secs())
    }
}

/// Parses a duration (`5m`, `300s`) or `off`.
pub fn parse_tolerance(text: &str) -> Result<Tolerance, String> {
    if text.trim().eq_ignore_ascii_case("off") {
        return Ok(Tolerance(None));
    }
    parse_duration(text)
        .map(|d| Tolerance(Some(d)))
        .map_err(|e| format!("{e}, or off to skip the check"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_split_on_the_first_colon_and_are_trimmed() {
        assert_eq!(
            parse_header("Webhook-Signature:  v1,abc:def "),
            Ok(Header {
                name: "Webhook-Signature".into(),
                value: "v1,abc:def".into()
            })
        );
        assert_eq!(parse_header("webhook-id:").unwrap().value, "");
        assert!(parse_header("no colon").is_err());
        assert!(parse_header(": value").is_err());
        assert!(parse_header("two words: value").is_err());
    }

    #[test]
    fn tolerance_is_a_duration_or_off() {
        assert_eq!(parse_tolerance("5m").unwrap().seconds(), Some(300));
        assert_eq!(parse_tolerance("off").unwrap().seconds(), None);
        assert_eq!(parse_tolerance("OFF").unwrap().seconds(), None);
        assert!(parse_tolerance("soon").unwrap_err().contains("off"));
    }
}
