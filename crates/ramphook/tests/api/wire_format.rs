//! The webhook on the wire, checked by partners' own tools: the body by
//! Node's `crypto` the way a partner's one-liner does it, the headers by the
//! Standard Webhooks reference package (PyPI `standardwebhooks`).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::common::{Backend, Receiver, TestServer};

on_both_backends!(what_ramphook_sends_verifies_with_node_crypto_and_standard_webhooks,);

/// A partner's Node code: parse, drop `signature`, JSON.stringify, HMAC, compare.
const NODE_VERIFY: &str = r#"
const crypto = require('crypto');
const { secret, body } = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const { signature, ...payload } = JSON.parse(body);
const expected = crypto.createHmac('sha256', secret).update(JSON.stringify(payload)).digest('hex');
process.exit(expected === signature ? 0 : 1);
"#;

/// The Standard Webhooks reference library, with its 5-minute tolerance on.
const PYTHON_VERIFY: &str = r#"
import base64, json, sys
from standardwebhooks.webhooks import Webhook
case = json.load(sys.stdin)
wh = Webhook("whsec_" + base64.b64encode(case["secret"].encode()).decode())
try:
    wh.verify(case["body"], case["headers"])
except Exception as e:
    print(e, file=sys.stderr)
    sys.exit(1)
"#;

fn run(program: &str, args: &[&str], input: &serde_json::Value) -> bool {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("`{program}` is needed to check the wire format against partners' tools: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    child.wait().unwrap().success()
}

pub fn node_verifies(secret: &str, body: &str) -> bool {
    run("node", &["-e", NODE_VERIFY], &json!({"secret": secret, "body": body}))
}

pub fn standard_webhooks_verifies(secret: &str, body: &str, headers: &serde_json::Value) -> bool {
    run(
        "python3",
        &["-c", PYTHON_VERIFY],
        &json!({"secret": secret, "body": body, "headers": headers}),
    )
}

async fn what_ramphook_sends_verifies_with_node_crypto_and_standard_webhooks(backend: Backend) {
    let server = TestServer::start(backend).await;
    let receiver = Receiver::ok().await;
    let (pid, _) = server.partner().await;
    let secret = "spaces and ünïcödé in the secret ✓";
    server.endpoint(&pid, &receiver.url(), secret).await;
    let order = server.order(&pid, "on_ramp").await;
    let (_, created) = server.post_event(&order, "payment_received").await;

    let got = receiver.wait_for(1, Duration::from_secs(5)).await;
    let hook = &got[0];
    let event = &created["event"];
    assert_eq!(hook.headers["content-type"], "application/json");
    assert!(hook.headers["user-agent"].starts_with("ramphook/"));
    assert_eq!(hook.headers["webhook-id"], event["id"].as_str().unwrap());
    let sent_at: i64 = hook.headers["webhook-timestamp"].parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - sent_at).abs() < 10);
    assert!(hook.headers["webhook-signature"].starts_with("v1,"));

    // Byte for byte: the three fields in order, then the signature.
    let signed = format!(
        r#"{{"eventName":"payment_received","orderId":"{order}","timeStamp":"{}"}}"#,
        event["timeStamp"].as_str().unwrap()
    );
    assert!(hook.body.starts_with(&signed[..signed.len() - 1]), "{}", hook.body);
    let body_signature = hook.json()["signature"].as_str().unwrap().to_owned();
    assert_eq!(
        hook.body,
        format!("{},\"signature\":\"{body_signature}\"}}", &signed[..signed.len() - 1])
    );
    assert_eq!(body_signature.len(), 64);

    let headers = json!({
        "webhook-id": hook.headers["webhook-id"],
        "webhook-timestamp": hook.headers["webhook-timestamp"],
        "webhook-signature": hook.headers["webhook-signature"],
    });
    assert!(
        node_verifies(secret, &hook.body),
        "Node's crypto rejects the body signature"
    );
    assert!(
        standard_webhooks_verifies(secret, &hook.body, &headers),
        "standardwebhooks rejects the headers"
    );
    // And both checks can fail: a wrong secret or a tampered body is caught.
    assert!(!node_verifies("another-secret-entirely", &hook.body));
    assert!(!standard_webhooks_verifies(
        "another-secret-entirely",
        &hook.body,
        &headers
    ));
    let tampered = hook.body.replace("payment_received", "payment_rejected");
    assert!(!node_verifies(secret, &tampered));
    assert!(!standard_webhooks_verifies(secret, &tampered, &headers));
}
