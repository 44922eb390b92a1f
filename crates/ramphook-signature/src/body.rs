//! The body signature (the platform's original scheme): hex HMAC-SHA256 of
//! `JSON.stringify({eventName, orderId, timeStamp})`, carried in the body.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::error::VerifyError;
use crate::mac::hmac;

/// The three signed fields of a webhook body, in the order they are printed.
///
/// Field order matters: the signature is over bytes, and `serde_json` prints
/// struct fields in declaration order with no spaces, exactly as
/// `JSON.stringify` does for these string values.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EventPayload<'a> {
    /// The event, e.g. `payment_received`.
    pub event_name: &'a str,
    /// The order's UUID.
    pub order_id: &'a str,
    /// When the event happened, RFC 3339 UTC with milliseconds.
    pub time_stamp: &'a str,
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

/// A received body's members, owned.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReceivedBody {
    pub(crate) event_name: String,
    pub(crate) order_id: String,
    pub(crate) time_stamp: String,
    pub(crate) signature: String,
}

impl ReceivedBody {
    pub(crate) fn parse(body: &[u8]) -> Result<Self, VerifyError> {
        serde_json::from_slice(body).map_err(|e| VerifyError::MalformedBody(e.to_string()))
    }

    pub(crate) fn signature_matches(&self, secret: &[u8]) -> bool {
        let expected = body_signature(
            secret,
            &EventPayload {
                event_name: &self.event_name,
                order_id: &self.order_id,
                time_stamp: &self.time_stamp,
            },
        );
        bool::from(expected.as_bytes().ct_eq(self.signature.as_bytes()))
    }
}

/// Verifies a received body the way a partner's Node code does: parse, drop
/// `signature`, re-serialise the other three fields, HMAC, compare.
pub fn verify_body(secret: &[u8], body: &[u8]) -> Result<(), VerifyError> {
    if ReceivedBody::parse(body)?.signature_matches(secret) {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn seed_vectors_from_node_crypto_match_byte_for_byte() {
        let doc: Value = serde_json::from_str(include_str!("../tests/vectors/seed-signature.json")).unwrap();
        let all = doc["cases"].as_array().unwrap();
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
    fn tampered_body_and_garbage_are_rejected() {
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
    }
}
