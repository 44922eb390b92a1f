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
//! A receiver normally wants [`verify_webhook`], which checks both at once,
//! plus the timestamp's age, and hands back the event:
//!
//! ```
//! use ramphook_signature::{sign_webhook, verify_webhook, EventPayload};
//! let secret = b"a-partner-defined-secret-0001";
//! let payload = EventPayload {
//!     event_name: "crypto_delivered",
//!     order_id: "5a3288ea-0bd4-44d2-af11-aae1f88bbd61",
//!     time_stamp: "2022-10-26T22:36:41.658Z",
//! };
//! // What ramphook sends ...
//! let sent = sign_webhook(&[secret], "evt_1", 1_764_237_600, &payload);
//! // ... and what the partner checks, 10 seconds later, with a 5-minute tolerance.
//! let event = verify_webhook(secret, sent.headers(), sent.body.as_bytes(), 1_764_237_610, Some(300)).unwrap();
//! assert_eq!(event.event_name, "crypto_delivered");
//! assert_eq!(event.webhook_id, "evt_1");
//! ```
//!
//! The lower-level functions check one scheme each:
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

#![warn(missing_docs)]

mod body;
mod error;
mod mac;
mod secret;
mod standard;
mod webhook;

pub use body::{body_signature, signed_json, verify_body, webhook_body, EventPayload};
pub use error::{VerifyError, WebhookError};
pub use secret::{decode_secret, whsec};
pub use standard::{standard_signature, standard_signature_header, verify_standard};
pub use webhook::{sign_webhook, verify_webhook, SignedWebhook, VerifiedWebhook, WebhookHeaders};
