//! Verify one ramphook webhook with `ramphook-signature` (no async runtime):
//!
//! ```sh
//! cargo run -p ramphook-signature --example verify -- "$SECRET" \
//!   "webhook-id: $ID" "webhook-timestamp: $TS" "webhook-signature: $SIG" < body.json
//! ```

use std::io::Read;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use ramphook_signature::{decode_secret, verify_webhook, VerifiedWebhook, WebhookError};

/// What a webhook handler calls with the raw request. `secret` may be the
/// endpoint secret as ramphook shows it, or its `whsec_…` form.
fn verify(secret: &str, headers: &[(String, String)], raw_body: &[u8]) -> Result<VerifiedWebhook, WebhookError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    let headers = headers.iter().map(|(name, value)| (name.as_str(), value.as_str()));
    // 300 s: reject replays and requests from a badly skewed clock.
    verify_webhook(&decode_secret(secret), headers, raw_body, now, Some(300))
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(secret) = args.next() else {
        eprintln!("usage: verify SECRET 'name: value'... < body");
        return ExitCode::from(2);
    };
    let headers: Vec<(String, String)> = args
        .filter_map(|h| {
            h.split_once(':')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    let mut body = Vec::new();
    std::io::stdin()
        .read_to_end(&mut body)
        .expect("read the body from stdin");

    match verify(&secret, &headers, &body) {
        Ok(event) => {
            // Deduplicate on webhook_id: delivery is at least once.
            println!(
                "valid: {} for order {} ({})",
                event.event_name, event.order_id, event.webhook_id
            );
            ExitCode::SUCCESS
        }
        Err(reason) => {
            eprintln!("invalid: {reason}");
            ExitCode::FAILURE
        }
    }
}
