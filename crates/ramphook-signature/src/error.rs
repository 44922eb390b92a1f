//! Why a webhook did not verify: per scheme ([`VerifyError`]) and for the
//! whole request ([`WebhookError`]), each with a one-line `Display`.

/// Why one signature scheme did not verify (see [`verify_body`](crate::verify_body)
/// and [`verify_standard`](crate::verify_standard)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// The body is not the JSON object a webhook carries.
    MalformedBody(String),
    /// A header value is missing or not in the expected form.
    MalformedHeader(String),
    /// The signature does not match the secret.
    BadSignature,
    /// `webhook-timestamp` is further from now than the tolerance allows.
    StaleTimestamp {
        /// Now minus the timestamp: negative when it lies in the future.
        age_seconds: i64,
    },
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

/// Why a received webhook request was rejected by [`verify_webhook`](crate::verify_webhook).
///
/// The checks run in this order, and the first failure is reported: headers
/// present, timestamp well-formed and within the tolerance, header signature,
/// body well-formed, body signature.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookError {
    /// One of `webhook-id`, `webhook-timestamp`, `webhook-signature` is absent.
    MissingHeader(&'static str),
    /// A header is present but unusable (a timestamp that is not a number, a
    /// signature header with no `v1,` entry).
    MalformedHeader(String),
    /// `webhook-timestamp` is older than the tolerance allows (a replay, or a
    /// clock far behind).
    StaleTimestamp {
        /// How old the timestamp is.
        age_seconds: u64,
        /// The tolerance it was checked against.
        tolerance_seconds: u64,
    },
    /// `webhook-timestamp` lies further in the future than the tolerance allows.
    FutureTimestamp {
        /// How far ahead of now the timestamp is.
        ahead_seconds: u64,
        /// The tolerance it was checked against.
        tolerance_seconds: u64,
    },
    /// The body is not `{"eventName","orderId","timeStamp","signature"}`.
    MalformedBody(String),
    /// No `v1,` signature in `webhook-signature` matches this secret, id,
    /// timestamp and body.
    BadHeaderSignature,
    /// The body's `signature` member does not match this secret.
    BadBodySignature,
}

impl std::fmt::Display for WebhookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WebhookError::MissingHeader(name) => write!(f, "missing header: {name}"),
            WebhookError::MalformedHeader(why) => write!(f, "malformed header: {why}"),
            WebhookError::StaleTimestamp {
                age_seconds,
                tolerance_seconds,
            } => write!(
                f,
                "stale timestamp: webhook-timestamp is {age_seconds}s old (tolerance {tolerance_seconds}s)"
            ),
            WebhookError::FutureTimestamp {
                ahead_seconds,
                tolerance_seconds,
            } => write!(
                f,
                "future timestamp: webhook-timestamp is {ahead_seconds}s ahead (tolerance {tolerance_seconds}s)"
            ),
            WebhookError::MalformedBody(why) => write!(f, "malformed body: {why}"),
            WebhookError::BadHeaderSignature => write!(
                f,
                "bad header signature: no v1 signature in webhook-signature matches this secret"
            ),
            WebhookError::BadBodySignature => {
                write!(
                    f,
                    "bad body signature: the body's \"signature\" does not match this secret"
                )
            }
        }
    }
}

impl std::error::Error for WebhookError {}
