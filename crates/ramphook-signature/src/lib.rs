//! Sign and verify ramphook webhooks, with no async and no I/O.
//!
//! A ramphook webhook carries two independent signatures:
//!
//! 1. **The body signature** (the platform's original scheme): the body is
//!    `{"eventName","orderId","timeStamp","signature"}` and `signature` is the
//!    lowercase hex HMAC-SHA256, keyed with the endpoint secret, of exactly what
//!    JavaScript's `JSON.stringify({eventName, orderId, timeStamp})` prints.
//! 2. **Standard Webhooks headers**: `webhook-signature: v1,<base64 HMAC-SHA256
//!    of "<webhook-id>.<webhook-timestamp>.<body>">`, keyed with the secret's
//!    UTF-8 bytes (libraries take the secret as `whsec_` + base64(secret)).
//!
//! ```
//! use ramphook_signature::{EventPayload, webhook_body, verify_body};
//! let payload = EventPayload {
//!     event_name: "crypto_delivered",
//!     order_id: "5a3288ea-0bd4-44d2-af11-aae1f88bbd61",
//!     time_stamp: "2022-10-26T22:36:41.658Z",
//! };
//! let body = webhook_body(b"a-partner-defined-secret-0001", &payload);
//! assert!(verify_body(b"a-partner-defined-secret-0001", body.as_bytes()).is_ok());
//! ```

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The three signed fields of a webhook body, in the order they are printed.
///
/// Field order matters: the signature is over bytes, and `serde_json` prints
/// struct fields in declaration order with no spaces, exactly as
/// `JSON.stringify` does for these string values.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EventPayload<'a> {
    pub event_name: &'a str,
    pub order_id: &'a str,
    pub time_stamp: &'a str,
}

/// Why a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// The body is not the JSON object a webhook carries.
    MalformedBody(String),
    /// A header value is missing or not in the expected form.
    MalformedHeader(String),
    /// The signature does not match the secret.
    BadSignature,
    /// `webhook-timestamp` is further from now than the tolerance allows.
    StaleTimestamp { age_seconds: i64 },
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyError::MalformedBody(why) => write!(f, "malformed body: {why}"),
            VerifyError::MalformedHeader(why) => write!(f, "malformed header: {why}"),
            VerifyError::BadSignature => write!(f, "bad signature"),
            VerifyError::StaleTimestamp { age_seconds } if *age_seconds < 0 => {
                write!(f, "timestamp is {}s in the future", -age_seconds)
            }
            VerifyError::StaleTimestamp { age_seconds } => {
                write!(f, "timestamp is stale ({age_seconds}s old)")
            }
        }
    }
}

impl std::error::Error for VerifyError {}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The signed JSON `P`: `{"eventName":…,"orderId":…,"timeStamp":…}`.
pub fn signed_json(payload: &EventPayload<'_>) -> String {
    serde_json::to_string(payload).expect("three strings always serialise")
}

/// The body signature: lowercase hex HMAC-SHA256(secret, P).
pub fn body_signature(secret: &[u8], payload: &EventPayload<'_>) -> String {
    hex::encode(hmac(secret, &[signed_json(payload).as_bytes()]))
}

/// The whole webhook body, byte for byte: P with `"signature":"<hex>"` appended.
pub fn webhook_body(secret: &[u8], payload: &EventPayload<'_>) -> String {
    let signed = signed_json(payload);
    let signature = hex::encode(hmac(secret, &[signed.as_bytes()]));
    // P always ends with '}', so the body is P without it plus one more member.
    let mut body = String::with_capacity(signed.len() + 80);
    body.push_str(&signed[..signed.len() - 1]);
    body.push_str(",\"signature\":\"");
    body.push_str(&signature);
    body.push_str("\"}");
    body
}

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

/// The secret as Standard Webhooks libraries take it: `whsec_` + base64(secret).
pub fn whsec(secret: &[u8]) -> String {
    format!("whsec_{}", BASE64.encode(secret))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReceivedBody {
    event_name: String,
    order_id: String,
    time_stamp: String,
    signature: String,
}

/// Verifies a received body the way a partner's Node code does: parse, drop
/// `signature`, re-serialise the other three fields, HMAC, compare.
pub fn verify_body(secret: &[u8], body: &[u8]) -> Result<(), VerifyError> {
    let parsed: ReceivedBody = serde_json::from_slice(body).map_err(|e| VerifyError::MalformedBody(e.to_string()))?;
    let expected = body_signature(
        secret,
        &EventPayload {
            event_name: &parsed.event_name,
            order_id: &parsed.order_id,
            time_stamp: &parsed.time_stamp,
        },
    );
    if bool::from(expected.as_bytes().ct_eq(parsed.signature.as_bytes())) {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
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
    let timestamp: i64 = webhook_timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::MalformedHeader(format!("webhook-timestamp {webhook_timestamp:?}")))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn cases(file: &str) -> Vec<Value> {
        let text = match file {
            "seed" => include_str!("../tests/vectors/seed-signature.json"),
            _ => include_str!("../tests/vectors/standard-webhooks.json"),
        };
        let doc: Value = serde_json::from_str(text).unwrap();
        doc["cases"].as_array().unwrap().clone()
    }

    #[test]
    fn seed_vectors_from_node_crypto_match_byte_for_byte() {
        let all = cases("seed");
        assert!(!all.is_empty());
        for case in all {
            let secret = case["secret"].as_str().unwrap().as_bytes();
            let payload = EventPayload {
                event_name: case["eventName"].as_str().unwrap(),
                order_id: case["orderId"].as_str().unwrap(),
                time_stamp: case["timeStamp"].as_str().unwrap(),
            };
            assert_eq!(signed_json(&payload), case["signedJson"].as_str().unwrap());
            assert_eq!(body_signature(secret, &payload), case["signature"].as_str().unwrap());
            let body = webhook_body(secret, &payload);
            assert_eq!(body, case["body"].as_str().unwrap());
            verify_body(secret, body.as_bytes()).unwrap();
        }
    }

    #[test]
    fn standard_webhooks_vectors_from_reference_library_match() {
        let all = cases("standard");
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
    fn tampered_body_stale_timestamp_and_garbage_are_rejected() {
        let payload = EventPayload {
            event_name: "payment_received",
            order_id: "0b8f6f0e-3c1a-4d55-9a8e-7f2b1c9d4e10",
            time_stamp: "2026-11-27T10:00:00.000Z",
        };
        let body = webhook_body(b"secret-secret-secret", &payload);
        let tampered = body.replace("payment_received", "payment_rejected");
        assert_eq!(
            verify_body(b"secret-secret-secret", tampered.as_bytes()),
            Err(VerifyError::BadSignature)
        );
        assert!(matches!(
            verify_body(b"secret-secret-secret", b"not json"),
            Err(VerifyError::MalformedBody(_))
        ));
        let sig = standard_signature(b"k", "evt", 1000, b"x");
        assert!(matches!(
            verify_standard(b"k", "evt", "1000", &sig, b"x", 2000, Some(300)),
            Err(VerifyError::StaleTimestamp { age_seconds: 1000 })
        ));
        assert!(matches!(
            verify_standard(b"k", "evt", "soon", &sig, b"x", 1000, Some(300)),
            Err(VerifyError::MalformedHeader(_))
        ));
    }
}
