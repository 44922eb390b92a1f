//! One webhook attempt over real HTTP: sign, POST, classify what happened.
//! The client never follows redirects and resolves names through the SSRF
//! guard, so the address actually connected to is the one checked.

use std::time::{Duration, Instant};

use ramphook_signature::{standard_signature_header, webhook_body, EventPayload};

use crate::domain::time::format_ms;
use crate::net_guard::{GuardError, NetGuard};

pub const USER_AGENT: &str = concat!("ramphook/", env!("CARGO_PKG_VERSION"));
const RESPONSE_BODY_LIMIT: usize = 1024;

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub status_code: Option<u16>,
    pub duration: Duration,
    /// `kind: detail`, with kind one of timeout, connect, dns,
    /// refused_address, request, http_status.
    pub error: Option<String>,
    pub response_body: Option<String>,
    /// The partner's `Retry-After`, in seconds or as an HTTP date.
    pub retry_after: Option<Duration>,
}

impl AttemptOutcome {
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.status_code.is_some_and(|s| (200..300).contains(&s))
    }

    pub fn timed_out(&self) -> bool {
        self.error.as_deref().is_some_and(|e| e.starts_with("timeout"))
    }
}

/// Reads `Retry-After: 120` or `Retry-After: Wed, 21 Oct 2026 07:28:00 GMT`.
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The webhook as it goes on the wire.
pub struct Webhook<'a> {
    pub url: &'a str,
    /// Newest first: the body is signed with the first, the
    /// `webhook-signature` header carries one signature per secret.
    pub secrets: &'a [&'a str],
    pub event_id: &'a str,
    pub event_name: &'a str,
    pub order_id: &'a str,
    pub time_stamp_ms: i64,
}

#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    guard: NetGuard,
    timeout: Duration,
}

impl Sender {
    /// `max_idle_per_host`: idle connections kept per host. Several
    /// endpoints may share a host, so pass the global in-flight bound: a
    /// lower one closes and reopens connections under load (a connect per
    /// webhook).
    pub fn new(guard: NetGuard, timeout: Duration, max_idle_per_host: usize) -> Self {
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(max_idle_per_host)
            .tcp_nodelay(true)
            .no_proxy()
            .dns_resolver(guard.resolver())
            .build()
            .expect("the HTTP client's settings are valid");
        Self { client, guard, timeout }
    }

    /// The most one attempt can take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub async fn send(&self, hook: &Webhook<'_>) -> AttemptOutcome {
        let started = Instant::now();
        let fail = |error: String| AttemptOutcome {
            status_code: None,
            duration: started.elapsed(),
            error: Some(error),
            response_body: None,
            retry_after: None,
        };
        // Parsed once, here, and handed to reqwest as is (a `&str` would be
        // parsed again). reqwest skips the resolver for IP literals: check
        // those here.
        let url = match reqwest::Url::parse(hook.url) {
            Ok(url) => url,
            Err(e) => return fail(format!("request: bad url: {e}")),
        };
        if let Some(ip) = self.guard.refused_literal(&url) {
            return fail(format!("refused_address: {}", GuardError::Refused(ip)));
        }
        let time_stamp = format_ms(hook.time_stamp_ms);
        let newest = hook.secrets.first().copied().unwrap_or_default();
        let body = webhook_body(
            newest.as_bytes(),
            &EventPayload {
                event_name: hook.event_name,
                order_id: hook.order_id,
                time_stamp: &time_stamp,
            },
        );
        let unix_now = chrono::Utc::now().timestamp();
        let keys: Vec<&[u8]> = hook.secrets.iter().map(|s| s.as_bytes()).collect();
        let signature = standard_signature_header(&keys, hook.event_id, unix_now, body.as_bytes());
        let request = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", hook.event_id)
            .header("webhook-timestamp", unix_now.to_string())
            .header("webhook-signature", signature)
            .body(body);
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => return fail(classify(&e)),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
        let mut collected = Vec::new();
        let mut read_error = None;
        while collected.len() < RESPONSE_BODY_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => collected.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    read_error = Some(classify(&e));
                    break;
                }
            }
        }
        collected.truncate(RESPONSE_BODY_LIMIT);
        let error = if (200..300).contains(&status) {
            None
        } else {
            read_error.or_else(|| Some(format!("http_status: {status}")))
        };
        AttemptOutcome {
            status_code: Some(status),
            duration: started.elapsed(),
            error,
            response_body: Some(String::from_utf8_lossy(&collected).into_owned()),
            retry_after,
        }
    }
}

/// Names the kind of failure: the guard's refusals, DNS, timeout, connect.
pub(crate) fn classify(err: &reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(guard) = e.downcast_ref::<GuardError>() {
            return match guard {
                GuardError::Dns(_) => format!("dns: {guard}"),
                GuardError::Refused(_) => format!("refused_address: {guard}"),
            };
        }
        source = e.source();
    }
    let kind = if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connect"
    } else {
        "request"
    };
    let mut detail = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        detail.push_str(": ");
        detail.push_str(&e.to_string());
        source = e.source();
    }
    format!("{kind}: {detail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(parse_retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(90)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
