//! `ramphook listen` as a partner uses it: a real `ramphook serve` delivers to
//! it and it prints each webhook with both signatures ticked; it answers
//! validation callbacks from its allow and deny lists.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;

use crate::common::{wait_until, Backend, TestServer};

const SECRET: &str = "a-partner-defined-secret-0001";

/// A running `ramphook listen`, killed on drop, its stdout collected by line
/// (also used by the README walkthrough test).
pub struct Listen {
    _child: Child,
    pub base: String,
    lines: Arc<Mutex<Vec<String>>>,
    changed: Arc<Notify>,
}

impl Listen {
    pub async fn start(args: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ramphook"));
        command
            .args(["listen", "--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("RAMPHOOK_")) {
            command.env_remove(k);
        }
        let mut child = command.spawn().expect("ramphook listen starts");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let changed = Arc::new(Notify::new());
        let mut reader = BufReader::new(child.stdout.take().unwrap()).lines();
        let (sink, notify) = (lines.clone(), changed.clone());
        tokio::spawn(async move {
            while let Ok(Some(line)) = reader.next_line().await {
                sink.lock().unwrap().push(line);
                notify.notify_waiters();
            }
        });
        let mut listen = Self {
            _child: child,
            base: String::new(),
            lines,
            changed,
        };
        let first = listen
            .wait_for_line(|l| l.starts_with("listening on http://"), Duration::from_secs(10))
            .await;
        listen.base = first.trim_start_matches("listening on ").to_owned();
        listen
    }

    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits (bounded) for a printed line matching `want`; returns it.
    pub async fn wait_for_line(&self, want: impl Fn(&str) -> bool, limit: Duration) -> String {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.changed.notified();
            if let Some(line) = self.lines.lock().unwrap().iter().find(|l| want(l)) {
                return line.clone();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("no such line within {limit:?}; output so far:\n{}", self.output());
            }
        }
    }

    async fn validate(&self, body: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/validate", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }
}

#[tokio::test]
async fn webhooks_from_a_real_server_are_printed_with_both_signatures_ticked() {
    let listen = Listen::start(&["--secret", SECRET]).await;
    let server = TestServer::start(Backend::Sqlite).await;
    let (pid, _) = server.partner().await;
    server
        .endpoint(&pid, &format!("{}/webhooks", listen.base), SECRET)
        .await;
    let order = server.order(&pid, "on_ramp").await;
    let event_id = server.event(&order, "payment_received").await;

    listen
        .wait_for_line(|l| l.starts_with("webhook payment_received"), Duration::from_secs(10))
        .await;
    listen
        .wait_for_line(|l| l.contains("→ answered"), Duration::from_secs(5))
        .await;
    let out = listen.output();
    assert!(out.contains(&format!("order {order}")), "{out}");
    assert!(out.contains(&format!("webhook-id         {event_id}")), "{out}");
    assert!(
        out.contains("  ✓ body signature\n  ✓ header signature\n  → answered 200"),
        "{out}"
    );
    assert!(!out.contains('✗'), "{out}");
    wait_until(Duration::from_secs(5), "the delivery is recorded delivered", || async {
        server.deliveries(&pid, "").await[0]["status"] == "delivered"
    })
    .await;
}

#[tokio::test]
async fn with_strict_a_wrong_secret_is_crossed_and_answered_400() {
    let listen = Listen::start(&["--secret", "not-the-endpoint-secret", "--strict"]).await;
    let server = TestServer::start_with(Backend::Sqlite, &[("RAMPHOOK_RETRY_SCHEDULE", "0s")]).await;
    let (pid, _) = server.partner().await;
    server
        .endpoint(&pid, &format!("{}/webhooks", listen.base), SECRET)
        .await;
    let order = server.order(&pid, "on_ramp").await;
    server.event(&order, "payment_received").await;

    listen
        .wait_for_line(|l| l.contains("→ answered 400"), Duration::from_secs(10))
        .await;
    let out = listen.output();
    assert!(out.contains("✗ body signature: bad signature"), "{out}");
    assert!(out.contains("✗ header signature: bad header signature"), "{out}");
    wait_until(Duration::from_secs(5), "the delivery fails with 400", || async {
        let delivery = &server.deliveries(&pid, "").await[0];
        delivery["status"] == "failed" && delivery["lastStatusCode"] == 400
    })
    .await;
}

#[tokio::test]
async fn validation_callbacks_are_answered_from_the_allow_and_deny_lists() {
    let listen = Listen::start(&[
        "--allow",
        "alice@example.com,@partner.test",
        "--deny",
        "mallory@partner.test",
    ])
    .await;
    for (email, action, allowed) in [
        ("alice@example.com", "buy", true),
        ("ALICE@example.com", "private_info", true),
        ("bob@partner.test", "sell", true),
        ("mallory@partner.test", "buy", false),
        ("eve@example.com", "buy", false),
    ] {
        let (status, answer) = listen
            .validate(&json!({"email": email, "action": action}).to_string())
            .await;
        assert_eq!((status, answer), (200, json!({ "allowed": allowed })), "{email}");
    }
    listen
        .wait_for_line(
            |l| l.starts_with("validation buy for mallory@partner.test"),
            Duration::from_secs(5),
        )
        .await;

    let (status, answer) = listen
        .validate(r#"{"email":"alice@example.com","action":"steal"}"#)
        .await;
    assert_eq!(status, 400);
    assert!(answer["error"].as_str().unwrap().contains("steal"), "{answer}");
}

#[tokio::test]
async fn with_no_lists_everyone_is_allowed_and_hmac_callbacks_are_checked() {
    let listen = Listen::start(&["--secret", SECRET]).await;
    let body = r#"{"email":"anyone@example.com","action":"buy"}"#;
    assert_eq!(listen.validate(body).await, (200, json!({"allowed": true})));

    // An hmac-authenticated callback: Standard Webhooks headers over the body.
    let now = chrono::Utc::now().timestamp();
    let signature = ramphook_signature::standard_signature(SECRET.as_bytes(), "msg_1", now, body.as_bytes());
    let response = reqwest::Client::new()
        .post(format!("{}/validate", listen.base))
        .header("webhook-id", "msg_1")
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    listen
        .wait_for_line(|l| l.contains("[hmac ✓]"), Duration::from_secs(5))
        .await;
}
