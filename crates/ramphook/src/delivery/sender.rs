//! One webhook attempt over real HTTP: sign, POST, classify what happened.
//! The client never follows redirects and resolves names through the SSRF
//! guard, so the address actually connected to is the one checked.
//!
//! The client is `outbound`'s (hyper-util directly, not reqwest).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE, USER_AGENT as USER_AGENT_HEADER};
use hyper::{Method, Request};
use ramphook_signature::{standard_signature_header, webhook_body, EventPayload};

use crate::domain::time::format_ms;
use crate::net_guard::{GuardError, NetGuard};
use crate::outbound::{self, classify, error_chain, target_uri, OutboundClient, USER_AGENT};

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
    client: OutboundClient,
    guard: NetGuard,
    timeout: Duration,
}

impl Sender {
    /// `max_idle_per_host`: idle connections kept per host. Several
    /// endpoints may share a host, so pass the global in-flight bound: a
    /// lower one closes and reopens connections under load (a connect per
    /// webhook).
    pub fn new(guard: NetGuard, timeout: Duration, max_idle_per_host: usize) -> Self {
        let client = outbound::client(&guard, timeout.min(Duration::from_secs(10)), max_idle_per_host);
        Self { client, guard, timeout }
    }

    /// The most one attempt can take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub async fn send(&self, hook: &Webhook<'_>) -> AttemptOutcome {
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started + self.timeout);
        let fail = |error: String| AttemptOutcome {
            status_code: None,
            duration: started.elapsed(),
            error: Some(error),
            response_body: None,
            retry_after: None,
        };
        let uri = match target_uri(hook.url) {
            Ok(uri) => uri,
            Err(error) => return fail(error),
        };
        // The connector skips the resolver for IP literals: check those here.
        if let Some(ip) = uri.host().and_then(|host| self.guard.refused_literal_host(host)) {
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
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(USER_AGENT_HEADER, HeaderValue::from_static(USER_AGENT))
            .header("webhook-id", hook.event_id)
            .header("webhook-timestamp", unix_now)
            .header("webhook-signature", signature)
            .body(Full::new(Bytes::from(body)));
        let request = match request {
            Ok(request) => request,
            Err(e) => return fail(format!("request: {e}")),
        };
        let response = match tokio::time::timeout_at(deadline, self.client.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return fail(classify(&e)),
            Err(_) => return fail(format!("timeout: no answer within {} ms", self.timeout.as_millis())),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
        let mut body = response.into_body();
        let mut collected = Vec::new();
        let mut read_error = None;
        while collected.len() < RESPONSE_BODY_LIMIT {
            match tokio::time::timeout_at(deadline, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Some(chunk) = frame.data_ref() {
                        collected.extend_from_slice(chunk);
                    }
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    read_error = Some(format!("request: reading the answer: {}", error_chain(&e)));
                    break;
                }
                Err(_) => {
                    read_error = Some(format!(
                        "timeout: the answer's body did not end within {} ms",
                        self.timeout.as_millis()
                    ));
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
