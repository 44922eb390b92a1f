//! What `ramphook listen` prints for each request: the webhook's event and
//! headers with each signature checked (✓/✗), or a validation callback and
//! its answer. Pure: the caller passes the request and the clock.

use ramphook_signature::{verify_body, WebhookHeaders};

/// A signature check: passed, failed with a reason, or not run (no secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Passed,
    Failed(String),
    Skipped,
}

impl Check {
    fn line(&self, what: &str) -> String {
        match self {
            Check::Passed => format!("  ✓ {what}"),
            Check::Failed(why) => format!("  ✗ {what}: {why}"),
            Check::Skipped => format!("  - {what} not checked (no --secret)"),
        }
    }
}

/// One received webhook, checked.
#[derive(Debug, Clone)]
pub struct WebhookReport {
    pub path: String,
    pub event_name: Option<String>,
    pub order_id: Option<String>,
    pub time_stamp: Option<String>,
    pub headers: WebhookHeaders,
    pub body_check: Check,
    pub header_check: Check,
}

impl WebhookReport {
    /// Checks both signatures independently, so a partner sees each verdict.
    pub fn check(
        path: &str,
        secret: Option<&[u8]>,
        headers: WebhookHeaders,
        body: &[u8],
        now: i64,
        tolerance_seconds: Option<u64>,
    ) -> Self {
        let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let field = |name: &str| {
            parsed
                .as_ref()
                .and_then(|v| v.get(name))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        let (body_check, header_check) = match secret {
            None => (Check::Skipped, Check::Skipped),
            Some(secret) => (
                match verify_body(secret, body) {
                    Ok(()) => Check::Passed,
                    Err(e) => Check::Failed(e.to_string()),
                },
                match headers.verify(secret, body, now, tolerance_seconds) {
                    Ok(_) => Check::Passed,
                    Err(e) => Check::Failed(e.to_string()),
                },
            ),
        };
        Self {
            path: path.to_owned(),
            event_name: field("eventName"),
            order_id: field("orderId"),
            time_stamp: field("timeStamp"),
            headers,
            body_check,
            header_check,
        }
    }

    pub fn failed(&self) -> bool {
        matches!(self.body_check, Check::Failed(_)) || matches!(self.header_check, Check::Failed(_))
    }

    /// The lines printed for this webhook, ending with the answer's status.
    pub fn render(&self, now: i64, status: u16) -> String {
        let or_missing = |v: &Option<String>| v.clone().unwrap_or_else(|| "(missing)".into());
        let sent = match self.headers.timestamp.as_deref().map(str::parse::<i64>) {
            Some(Ok(ts)) if now >= ts => format!("{ts} ({}s ago)", now - ts),
            Some(Ok(ts)) => format!("{ts} ({}s in the future)", ts - now),
            Some(Err(_)) => format!(
                "{:?} (not unix seconds)",
                self.headers.timestamp.as_deref().unwrap_or("")
            ),
            None => "(missing)".into(),
        };
        [
            format!(
                "webhook {}  order {}  at {}  (POST {})",
                or_missing(&self.event_name),
                or_missing(&self.order_id),
                or_missing(&self.time_stamp),
                self.path
            ),
            format!("  webhook-id         {}", or_missing(&self.headers.id)),
            format!("  webhook-timestamp  {sent}"),
            self.body_check.line("body signature"),
            self.header_check.line("header signature"),
            format!("  → answered {status}"),
        ]
        .join("\n")
    }
}

/// How a validation callback authenticated itself, as far as the listener
/// can tell: `hmac` is checked when there is a secret.
pub fn describe_auth(authorization: Option<&str>, hmac: Option<Check>) -> String {
    if let Some(check) = hmac {
        return match check {
            Check::Passed => "hmac ✓".into(),
            Check::Failed(why) => format!("hmac ✗ ({why})"),
            Check::Skipped => "hmac (not checked: no --secret)".into(),
        };
    }
    match authorization.map(|a| a.split_whitespace().next().unwrap_or("").to_lowercase()) {
        Some(scheme) if scheme == "bearer" => "bearer token".into(),
        Some(scheme) if scheme == "basic" => "basic".into(),
        Some(scheme) => format!("authorization {scheme}"),
        None => "no authorization header".into(),
    }
}

/// The lines printed for one validation callback.
pub fn render_validation(request: Result<(&str, &str), &str>, auth: &str, answer: &str, status: u16) -> String {
    match request {
        Ok((email, action)) => format!("validation {action} for {email}  [{auth}]\n  → answered {status} {answer}"),
        Err(why) => format!("validation request rejected: {why}  [{auth}]\n  → answered {status} {answer}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ramphook_signature::{sign_webhook, EventPayload};

    const SECRET: &[u8] = b"a-partner-defined-secret-0001";
    const NOW: i64 = 1_764_237_600;

    fn report(secret: Option<&[u8]>, now: i64) -> WebhookReport {
        let hook = sign_webhook(
            &[SECRET],
            "evt_1",
            NOW,
            &EventPayload {
                event_name: "payment_received",
                order_id: "0b8f6f0e-3c1a-4d55-9a8e-7f2b1c9d4e10",
                time_stamp: "2026-11-27T10:00:00.000Z",
            },
        );
        let headers = WebhookHeaders::from_pairs(hook.headers());
        WebhookReport::check("/hooks", secret, headers, hook.body.as_bytes(), now, Some(300))
    }

    #[test]
    fn a_good_webhook_prints_its_event_and_two_ticks() {
        let report = report(Some(SECRET), NOW + 2);
        assert!(!report.failed());
        let text = report.render(NOW + 2, 200);
        assert!(
            text.starts_with(
                "webhook payment_received  order 0b8f6f0e-3c1a-4d55-9a8e-7f2b1c9d4e10  at 2026-11-27T10:00:00.000Z"
            ),
            "{text}"
        );
        assert!(text.contains("  webhook-id         evt_1\n"), "{text}");
        assert!(text.contains("(2s ago)"), "{text}");
        assert!(
            text.contains("  ✓ body signature\n  ✓ header signature\n  → answered 200"),
            "{text}"
        );
    }

    #[test]
    fn each_signature_is_judged_on_its_own() {
        let wrong = report(Some(b"another-secret-000000"), NOW);
        assert!(wrong.failed());
        let text = wrong.render(NOW, 400);
        assert!(text.contains("✗ body signature: bad signature"), "{text}");
        assert!(text.contains("✗ header signature: bad header signature"), "{text}");

        let stale = report(Some(SECRET), NOW + 600);
        assert_eq!(stale.body_check, Check::Passed);
        assert!(matches!(&stale.header_check, Check::Failed(why) if why.contains("stale")));

        let unchecked = report(None, NOW);
        assert!(!unchecked.failed());
        assert!(unchecked.render(NOW, 200).contains("- body signature not checked"));
    }

    #[test]
    fn a_request_that_is_no_webhook_is_shown_as_such() {
        let report = WebhookReport::check("/x", Some(SECRET), WebhookHeaders::default(), b"hello", NOW, Some(300));
        let text = report.render(NOW, 400);
        assert!(text.contains("webhook (missing)"), "{text}");
        assert!(text.contains("✗ body signature: malformed body"), "{text}");
        assert!(
            text.contains("✗ header signature: missing header: webhook-id"),
            "{text}"
        );
    }

    #[test]
    fn auth_is_described_without_revealing_credentials() {
        assert_eq!(describe_auth(Some("Bearer s3cr3t"), None), "bearer token");
        assert_eq!(describe_auth(Some("Basic dTpw"), None), "basic");
        assert_eq!(describe_auth(None, None), "no authorization header");
        assert_eq!(describe_auth(None, Some(Check::Passed)), "hmac ✓");
        assert_eq!(
            render_validation(Ok(("a@b.c", "buy")), "bearer token", r#"{"allowed":true}"#, 200),
            "validation buy for a@b.c  [bearer token]\n  → answered 200 {\"allowed\":true}"
        );
    }
}
