//! A whole webhook request, both schemes together: what ramphook sends
//! ([`sign_webhook`]) and what a receiver checks ([`verify_webhook`]).

use crate::body::{webhook_body, EventPayload, ReceivedBody};
use crate::error::{VerifyError, WebhookError};
use crate::standard::{parse_timestamp, standard_signature_header, verify_standard};

/// The three Standard Webhooks headers of a request, found by
/// case-insensitive name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookHeaders {
    /// `webhook-id`: the event id, the same on every attempt.
    pub id: Option<String>,
    /// `webhook-timestamp`: unix seconds of this attempt.
    pub timestamp: Option<String>,
    /// `webhook-signature`: `v1,<base64>` entries separated by spaces.
    pub signature: Option<String>,
}

impl WebhookHeaders {
    /// Picks the three headers out of any `(name, value)` list; other headers
    /// are ignored. A repeated `webhook-signature` is joined with spaces.
    ///
    /// ```
    /// use ramphook_signature::WebhookHeaders;
    /// let headers = WebhookHeaders::from_pairs([("Webhook-Id", "evt_1"), ("content-type", "application/json")]);
    /// assert_eq!(headers.id.as_deref(), Some("evt_1"));
    /// assert_eq!(headers.timestamp, None);
    /// ```
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut headers = Self::default();
        for (name, value) in pairs {
            let (name, value) = (name.as_ref().trim(), value.as_ref().trim().to_owned());
            if name.eq_ignore_ascii_case("webhook-id") {
                headers.id.get_or_insert(value);
            } else if name.eq_ignore_ascii_case("webhook-timestamp") {
                headers.timestamp.get_or_insert(value);
            } else if name.eq_ignore_ascii_case("webhook-signature") {
                headers.signature = Some(match headers.signature.take() {
                    Some(earlier) => format!("{earlier} {value}"),
                    None => value,
                });
            }
        }
        headers
    }

    /// Checks the headers alone: present, timestamp within `tolerance_seconds`
    /// of `now` (unix seconds; `None` skips the age check), and a `v1,`
    /// signature matching `secret` over `body`. Returns the timestamp.
    pub fn verify(
        &self,
        secret: &[u8],
        body: &[u8],
        now: i64,
        tolerance_seconds: Option<u64>,
    ) -> Result<i64, WebhookError> {
        let id = self.id.as_deref().ok_or(WebhookError::MissingHeader("webhook-id"))?;
        let timestamp_text = self
            .timestamp
            .as_deref()
            .ok_or(WebhookError::MissingHeader("webhook-timestamp"))?;
        let signature = self
            .signature
            .as_deref()
            .ok_or(WebhookError::MissingHeader("webhook-signature"))?;
        let timestamp = parse_timestamp(timestamp_text).map_err(header_error)?;
        if let Some(tolerance_seconds) = tolerance_seconds {
            let age = now.saturating_sub(timestamp);
            if age > 0 && age.unsigned_abs() > tolerance_seconds {
                return Err(WebhookError::StaleTimestamp {
                    age_seconds: age.unsigned_abs(),
                    tolerance_seconds,
                });
            }
            if age < 0 && age.unsigned_abs() > tolerance_seconds {
                return Err(WebhookError::FutureTimestamp {
                    ahead_seconds: age.unsigned_abs(),
                    tolerance_seconds,
                });
            }
        }
        verify_standard(secret, id, timestamp_text, signature, body, now, None).map_err(header_error)?;
        Ok(timestamp)
    }
}

fn header_error(error: VerifyError) -> WebhookError {
    match error {
        VerifyError::BadSignature => WebhookError::BadHeaderSignature,
        VerifyError::MalformedHeader(why) => WebhookError::MalformedHeader(why),
        other => WebhookError::MalformedHeader(other.to_string()),
    }
}

/// A webhook that passed [`verify_webhook`]: who sent it when, and the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedWebhook {
    /// `webhook-id`: deduplicate on it, deliveries are at least once.
    pub webhook_id: String,
    /// `webhook-timestamp`: unix seconds of this attempt.
    pub timestamp: i64,
    /// The event, e.g. `payment_received`.
    pub event_name: String,
    /// The order's UUID.
    pub order_id: String,
    /// When the event happened, RFC 3339 UTC with milliseconds.
    pub time_stamp: String,
}

/// Verifies a received webhook request completely: the Standard Webhooks
/// headers (found case-insensitively among `headers`), the timestamp's
/// distance from `now` (unix seconds) against `tolerance_seconds` (`None`
/// skips it, for fixed test vectors), then the body signature.
///
/// `secret` is the HMAC key: the endpoint secret's UTF-8 bytes, or
/// [`decode_secret`](crate::decode_secret) of a `whsec_…` string. `body` must
/// be the raw bytes received, not a re-serialised parse.
///
/// ```
/// use ramphook_signature::{verify_webhook, WebhookError};
/// let headers = [("webhook-id", "evt_1"), ("webhook-timestamp", "1764237600")];
/// let error = verify_webhook(b"secret", headers, b"{}", 1_764_237_600, Some(300)).unwrap_err();
/// assert_eq!(error, WebhookError::MissingHeader("webhook-signature"));
/// assert_eq!(error.to_string(), "missing header: webhook-signature");
/// ```
pub fn verify_webhook<I, K, V>(
    secret: &[u8],
    headers: I,
    body: &[u8],
    now: i64,
    tolerance_seconds: Option<u64>,
) -> Result<VerifiedWebhook, WebhookError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let headers = WebhookHeaders::from_pairs(headers);
    let timestamp = headers.verify(secret, body, now, tolerance_seconds)?;
    let parsed = ReceivedBody::parse(body).map_err(|e| match e {
        VerifyError::MalformedBody(why) => WebhookError::MalformedBody(why),
        other => WebhookError::MalformedBody(other.to_string()),
    })?;
    if !parsed.signature_matches(secret) {
        return Err(WebhookError::BadBodySignature);
    }
    Ok(VerifiedWebhook {
        webhook_id: headers.id.unwrap_or_default(),
        timestamp,
        event_name: parsed.event_name,
        order_id: parsed.order_id,
        time_stamp: parsed.time_stamp,
    })
}

/// A signed webhook request, as ramphook sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedWebhook {
    /// The body, byte for byte.
    pub body: String,
    /// The `webhook-id` header.
    pub webhook_id: String,
    /// The `webhook-timestamp` header.
    pub webhook_timestamp: String,
    /// The `webhook-signature` header.
    pub webhook_signature: String,
}

impl SignedWebhook {
    /// The three signature headers as `(name, value)` pairs.
    pub fn headers(&self) -> [(&'static str, &str); 3] {
        [
            ("webhook-id", &self.webhook_id),
            ("webhook-timestamp", &self.webhook_timestamp),
            ("webhook-signature", &self.webhook_signature),
        ]
    }
}

/// Signs a webhook the way ramphook does: the body signature with the first
/// (newest) secret, and one `v1,` header signature per secret.
///
/// # Panics
///
/// If `secrets` is empty.
pub fn sign_webhook<S: AsRef<[u8]>>(
    secrets: &[S],
    webhook_id: &str,
    timestamp: i64,
    payload: &EventPayload<'_>,
) -> SignedWebhook {
    let newest = secrets.first().expect("at least one secret to sign with");
    let body = webhook_body(newest.as_ref(), payload);
    let webhook_signature = standard_signature_header(secrets, webhook_id, timestamp, body.as_bytes());
    SignedWebhook {
        body,
        webhook_id: webhook_id.to_owned(),
        webhook_timestamp: timestamp.to_string(),
        webhook_signature,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a-partner-defined-secret-0001";
    const NOW: i64 = 1_764_237_600;

    fn sent() -> SignedWebhook {
        sign_webhook(
            &[SECRET],
            "evt_1",
            NOW,
            &EventPayload {
                event_name: "payment_received",
                order_id: "0b8f6f0e-3c1a-4d55-9a8e-7f2b1c9d4e10",
                time_stamp: "2026-11-27T10:00:00.000Z",
            },
        )
    }

    fn check(hook: &SignedWebhook, body: &str, now: i64) -> Result<VerifiedWebhook, WebhookError> {
        verify_webhook(SECRET, hook.headers(), body.as_bytes(), now, Some(300))
    }

    #[test]
    fn a_signed_webhook_verifies_and_yields_its_event() {
        let hook = sent();
        let event = check(&hook, &hook.body, NOW + 300).unwrap();
        assert_eq!(event.webhook_id, "evt_1");
        assert_eq!(event.timestamp, NOW);
        assert_eq!(event.event_name, "payment_received");
        assert_eq!(event.order_id, "0b8f6f0e-3c1a-4d55-9a8e-7f2b1c9d4e10");
        // Header names are case-insensitive, as in HTTP.
        let shouting = hook.headers().map(|(k, v)| (k.to_uppercase(), v.to_owned()));
        verify_webhook(SECRET, shouting, hook.body.as_bytes(), NOW, Some(300)).unwrap();
    }

    #[test]
    fn each_failure_has_its_own_reason() {
        let hook = sent();
        assert_eq!(
            verify_webhook(
                b"wrong-secret-0000000",
                hook.headers(),
                hook.body.as_bytes(),
                NOW,
                Some(300)
            ),
            Err(WebhookError::BadHeaderSignature)
        );
        assert_eq!(
            check(&hook, &hook.body, NOW + 301),
            Err(WebhookError::StaleTimestamp {
                age_seconds: 301,
                tolerance_seconds: 300
            })
        );
        assert_eq!(
            check(&hook, &hook.body, NOW - 301),
            Err(WebhookError::FutureTimestamp {
                ahead_seconds: 301,
                tolerance_seconds: 300
            })
        );
        assert_eq!(
            verify_webhook(SECRET, hook.headers(), hook.body.as_bytes(), NOW + 10_000, None).map(|e| e.timestamp),
            Ok(NOW)
        );
        let without_id = &hook.headers()[1..];
        assert_eq!(
            verify_webhook(SECRET, without_id.iter().copied(), hook.body.as_bytes(), NOW, Some(300)),
            Err(WebhookError::MissingHeader("webhook-id"))
        );
        let tampered = hook.body.replace("payment_received", "payment_rejected");
        assert_eq!(check(&hook, &tampered, NOW), Err(WebhookError::BadHeaderSignature));
    }

    #[test]
    fn the_body_is_checked_after_the_headers() {
        // Headers signed over a body that is not a webhook: the body is blamed.
        let garbage = "not json";
        let headers = [
            ("webhook-id", "evt_1".to_owned()),
            ("webhook-timestamp", NOW.to_string()),
            (
                "webhook-signature",
                standard_signature_header(&[SECRET], "evt_1", NOW, garbage.as_bytes()),
            ),
        ];
        assert!(matches!(
            verify_webhook(SECRET, headers, garbage.as_bytes(), NOW, Some(300)),
            Err(WebhookError::MalformedBody(_))
        ));
        // Headers right for the body, but the body signature made with another secret.
        let hook = sign_webhook(
            &[b"another-secret-00000".as_slice(), SECRET],
            "evt_1",
            NOW,
            &EventPayload {
                event_name: "payment_received",
                order_id: "0b8f6f0e-3c1a-4d55-9a8e-7f2b1c9d4e10",
                time_stamp: "2026-11-27T10:00:00.000Z",
            },
        );
        assert_eq!(check(&hook, &hook.body, NOW), Err(WebhookError::BadBodySignature));
    }

    #[test]
    fn repeated_signature_headers_are_joined() {
        let headers = WebhookHeaders::from_pairs([("webhook-signature", "v1,a"), ("Webhook-Signature", "v1,b")]);
        assert_eq!(headers.signature.as_deref(), Some("v1,a v1,b"));
    }
}
