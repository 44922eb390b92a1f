//! Standard Webhooks headers: `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "<webhook-id>.<webhook-timestamp>.<body>">`, one entry per valid secret.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use subtle::ConstantTimeEq;

use crate::error::VerifyError;
use crate::mac::hmac;

/// One Standard Webhooks signature: `v1,<base64>`.
pub fn standard_signature(secret: &[u8], webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = hmac(secret, &[webhook_id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    format!("v1,{}", BASE64.encode(mac))
}

/// The `webhook-signature` header value: one `v1,…` per secret, space separated.
pub fn standard_signature_header<S: AsRef<[u8]>>(
    secrets: &[S],
    webhook_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|s| standard_signature(s.as_ref(), webhook_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Verifies Standard Webhooks headers: any `v1,` signature in the header that
/// matches is enough. `now` and `tolerance_seconds` bound the timestamp's age;
/// pass `None` as tolerance to skip that check (fixed test vectors).
pub fn verify_standard(
    secret: &[u8],
    webhook_id: &str,
    webhook_timestamp: &str,
    webhook_signature: &str,
    body: &[u8],
    now: i64,
    tolerance_seconds: Option<i64>,
) -> Result<(), VerifyError> {
    let timestamp = parse_timestamp(webhook_timestamp)?;
    if let Some(tolerance) = tolerance_seconds {
        let age = now - timestamp;
        if age.abs() > tolerance {
            return Err(VerifyError::StaleTimestamp { age_seconds: age });
        }
    }
    let expected = standard_signature(secret, webhook_id, timestamp, body);
    let mut saw_v1 = false;
    for candidate in webhook_signature.split_whitespace() {
        if candidate.starts_with("v1,") {
            saw_v1 = true;
            if bool::from(candidate.as_bytes().ct_eq(expected.as_bytes())) {
                return Ok(());
            }
        }
    }
    if saw_v1 {
        Err(VerifyError::BadSignature)
    } else {
        Err(VerifyError::MalformedHeader(
            "webhook-signature has no v1 signature".into(),
        ))
    }
}

/// `webhook-timestamp` as unix seconds.
pub(crate) fn parse_timestamp(webhook_timestamp: &str) -> Result<i64, VerifyError> {
    webhook_timestamp.trim().parse().map_err(|_| {
        VerifyError::MalformedHeader(format!("webhook-timestamp {webhook_timestamp:?} is not unix seconds"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::whsec;
    use serde_json::Value;

    #[test]
    fn standard_webhooks_vectors_from_reference_library_match() {
        let doc: Value = serde_json::from_str(include_str!("../tests/vectors/standard-webhooks.json")).unwrap();
        let all = doc["cases"].as_array().unwrap();
        assert!(!all.is_empty());
        for case in all {
            let secret = case["secret"].as_str().unwrap().as_bytes();
            let id = case["webhookId"].as_str().unwrap();
            let ts_text = case["webhookTimestamp"].as_str().unwrap();
            let ts: i64 = ts_text.parse().unwrap();
            let body = case["body"].as_str().unwrap().as_bytes();
            let expected = case["webhookSignature"].as_str().unwrap();
            assert_eq!(whsec(secret), case["whsecForLibraries"].as_str().unwrap());
            assert_eq!(standard_signature(secret, id, ts, body), expected);
            verify_standard(secret, id, ts_text, expected, body, 0, None).unwrap();
        }
    }

    #[test]
    fn rotation_header_carries_one_signature_per_secret_and_each_verifies() {
        let header = standard_signature_header(&[b"new-secret-0123456", b"old-secret-0123456"], "evt_1", 100, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        for secret in [b"new-secret-0123456", b"old-secret-0123456"] {
            verify_standard(secret, "evt_1", "100", &header, b"{}", 100, Some(300)).unwrap();
        }
        assert_eq!(
            verify_standard(b"other-secret-00000", "evt_1", "100", &header, b"{}", 100, Some(300)),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn stale_timestamp_and_garbage_are_rejected() {
        let sig = standard_signature(b"k", "evt", 1000, b"x");
        assert!(matches!(
            verify_standard(b"k", "evt", "1000", &sig, b"x", 2000, Some(300)),
            Err(VerifyError::StaleTimestamp { age_seconds: 1000 })
        ));
        assert!(matches!(
            verify_standard(b"k", "evt", "soon", &sig, b"x", 1000, Some(300)),
            Err(VerifyError::MalformedHeader(_))
        ));
        assert!(matches!(
            verify_standard(b"k", "evt", "1000", "v2,abc", b"x", 1000, Some(300)),
            Err(VerifyError::MalformedHeader(_))
        ));
    }
}
