//! `ramphook verify` from a partner's shell: a webhook really sent by ramphook
//! is valid from stdin and from a file; each kind of failure exits 1 with its
//! own one-line reason.

use ramphook_signature::{sign_webhook, standard_signature_header, whsec, EventPayload};
use serde_json::Value;

use crate::common::{real_webhook, run_ramphook, Received};

const SECRET: &str = "a-partner-defined-secret-0001";

/// `--header` flags for the three signature headers of `hook`.
fn header_flags(hook: &Received) -> Vec<String> {
    ["webhook-id", "webhook-timestamp", "webhook-signature"]
        .iter()
        .flat_map(|name| ["--header".to_owned(), format!("{name}: {}", hook.headers[*name])])
        .collect()
}

async fn verify(secret: &str, extra: &[String], stdin: &str) -> (i32, String, String) {
    let mut args = vec!["verify", "--secret", secret];
    args.extend(extra.iter().map(String::as_str));
    let out = run_ramphook(&args, stdin.as_bytes()).await;
    (
        out.status.code().expect("exited"),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn assert_invalid(result: (i32, String, String), reason: &str) {
    let (code, stdout, stderr) = result;
    assert_eq!(code, 1, "stdout {stdout:?} stderr {stderr:?}");
    assert_eq!(stdout, "");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("invalid: {reason}")),
        "expected {reason:?}, got {stderr:?}"
    );
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn a_real_webhook_is_valid_from_stdin_from_a_file_and_with_a_whsec_secret() {
    let (_server, hook) = real_webhook(SECRET, "payment_received").await;
    let flags = header_flags(&hook);

    assert_eq!(
        verify(SECRET, &flags, &hook.body).await,
        (0, "valid\n".into(), String::new())
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.json");
    std::fs::write(&file, &hook.body).unwrap();
    let mut with_file = flags.clone();
    with_file.extend(["--body-file".into(), file.display().to_string()]);
    assert_eq!(verify(SECRET, &with_file, "").await.0, 0);

    // Header names are case-insensitive; the secret may be given as whsec_….
    let shouting: Vec<String> = flags.iter().map(|f| f.replacen("webhook-", "Webhook-", 1)).collect();
    assert_eq!(verify(&whsec(SECRET.as_bytes()), &shouting, &hook.body).await.0, 0);
}

#[tokio::test]
async fn wrong_secret_tampering_and_a_missing_header_each_say_why() {
    let (_server, hook) = real_webhook(SECRET, "payment_received").await;
    let flags = header_flags(&hook);

    assert_invalid(
        verify("another-secret-entirely", &flags, &hook.body).await,
        "bad header signature",
    );
    let tampered = hook.body.replace("payment_received", "payment_rejected");
    assert_invalid(verify(SECRET, &flags, &tampered).await, "bad header signature");
    assert_invalid(
        verify(SECRET, &flags[..4], &hook.body).await,
        "missing header: webhook-signature",
    );
    let mut from_missing_file = flags.clone();
    from_missing_file.extend(["--body-file".into(), "/nonexistent/body.json".into()]);
    let (code, _, stderr) = verify(SECRET, &from_missing_file, "").await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("/nonexistent/body.json"), "{stderr}");
}

fn signed_flags(id: &str, timestamp: &str, signature: &str) -> Vec<String> {
    vec![
        "-H".into(),
        format!("webhook-id: {id}"),
        "-H".into(),
        format!("webhook-timestamp: {timestamp}"),
        "-H".into(),
        format!("webhook-signature: {signature}"),
    ]
}

const PAYLOAD: EventPayload<'static> = EventPayload {
    event_name: "crypto_delivered",
    order_id: "5a3288ea-0bd4-44d2-af11-aae1f88bbd61",
    time_stamp: "2022-10-26T22:36:41.658Z",
};

#[tokio::test]
async fn stale_and_future_timestamps_are_refused_unless_the_tolerance_allows() {
    let old = sign_webhook(&[SECRET], "evt_old", now() - 600, &PAYLOAD);
    let flags = signed_flags(&old.webhook_id, &old.webhook_timestamp, &old.webhook_signature);
    assert_invalid(verify(SECRET, &flags, &old.body).await, "stale timestamp");
    let mut wider = flags.clone();
    wider.extend(["--tolerance".into(), "15m".into()]);
    assert_eq!(verify(SECRET, &wider, &old.body).await.0, 0);

    let ahead = sign_webhook(&[SECRET], "evt_ahead", now() + 600, &PAYLOAD);
    let flags = signed_flags(&ahead.webhook_id, &ahead.webhook_timestamp, &ahead.webhook_signature);
    assert_invalid(verify(SECRET, &flags, &ahead.body).await, "future timestamp");
}

#[tokio::test]
async fn the_body_is_judged_once_the_headers_pass() {
    // Rotation: headers signed with both secrets, the body with the newest; a
    // partner still holding the old secret sees the body signature fail.
    let rotated = sign_webhook(&["the-newest-secret-0001", SECRET], "evt_r", now(), &PAYLOAD);
    let flags = signed_flags(
        &rotated.webhook_id,
        &rotated.webhook_timestamp,
        &rotated.webhook_signature,
    );
    assert_invalid(verify(SECRET, &flags, &rotated.body).await, "bad body signature");

    let garbage = "<html>not a webhook</html>";
    let at = now();
    let signature = standard_signature_header(&[SECRET], "evt_g", at, garbage.as_bytes());
    assert_invalid(
        verify(SECRET, &signed_flags("evt_g", &at.to_string(), &signature), garbage).await,
        "malformed body",
    );
}

#[tokio::test]
async fn the_reference_vectors_are_valid_with_the_tolerance_off_and_stale_with_it_on() {
    let doc: Value = serde_json::from_str(include_str!(
        "../../../ramphook-signature/tests/vectors/standard-webhooks.json"
    ))
    .unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let text = |k: &str| case[k].as_str().unwrap().to_owned();
        let flags = signed_flags(&text("webhookId"), &text("webhookTimestamp"), &text("webhookSignature"));
        let mut off = flags.clone();
        off.extend(["--tolerance".into(), "off".into()]);
        assert_eq!(verify(&text("secret"), &off, &text("body")).await.0, 0, "{case}");
        assert_eq!(
            verify(&text("whsecForLibraries"), &off, &text("body")).await.0,
            0,
            "{case}"
        );
        assert_invalid(verify(&text("secret"), &flags, &text("body")).await, "stale timestamp");
    }
}
