//! Webhook endpoints: create, list, get, patch, delete; secrets; URL checks.

use serde_json::json;

use crate::common::{Backend, TestServer};

on_both_backends!(
    endpoint_lifecycle_and_secrets,
    bad_endpoints_are_refused_and_nothing_is_written,
    private_and_loopback_targets_are_refused_unless_allowed,
);

async fn endpoint_lifecycle_and_secrets(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (pid, _) = server.partner().await;
    let path = format!("/v1/partners/{pid}/endpoints");

    let (status, created) = server
        .admin("POST", &path, Some(json!({"url": "http://127.0.0.1:9/a"})))
        .await;
    assert_eq!(status, 201);
    let secret = created["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 64);
    assert!(secret.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(created["enabled"], true);
    assert_eq!(created["eventTypes"], json!(null));
    let id = created["id"].as_str().unwrap();

    let (status, mine) = server
        .admin(
            "POST",
            &path,
            Some(json!({"url": "http://127.0.0.1:9/b", "secret": "partner-secret-0001", "eventTypes": ["payment_received"], "description": "ops"})),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(mine["secret"], "partner-secret-0001");
    assert_eq!(mine["eventTypes"], json!(["payment_received"]));

    let (status, got) = server.admin("GET", &format!("{path}/{id}"), None).await;
    assert_eq!(status, 200);
    assert!(
        got.get("secret").is_none(),
        "the secret is shown only at creation: {got}"
    );

    let (_, list) = server.admin("GET", &format!("{path}?limit=1"), None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let cursor = list["nextCursor"].as_str().expect("a second page");
    let (_, second) = server
        .admin("GET", &format!("{path}?limit=1&cursor={cursor}"), None)
        .await;
    assert_eq!(second["data"][0]["id"], mine["id"]);
    assert_eq!(second["nextCursor"], json!(null));

    let (status, patched) = server
        .admin(
            "PATCH",
            &format!("{path}/{id}"),
            Some(json!({"url": "http://127.0.0.1:9/c", "eventTypes": ["crypto_delivered"], "description": "new", "enabled": false})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["url"], "http://127.0.0.1:9/c");
    assert_eq!(patched["eventTypes"], json!(["crypto_delivered"]));
    assert_eq!(patched["enabled"], false);
    let (_, patched) = server
        .admin("PATCH", &format!("{path}/{id}"), Some(json!({"eventTypes": null})))
        .await;
    assert_eq!(patched["eventTypes"], json!(null));
    assert_eq!(patched["description"], "new", "fields left out stay as they were");

    let (status, _) = server.admin("DELETE", &format!("{path}/{id}"), None).await;
    assert_eq!(status, 204);
    let (status, _) = server.admin("GET", &format!("{path}/{id}"), None).await;
    assert_eq!(status, 404);
    let (status, _) = server.admin("DELETE", &format!("{path}/{id}"), None).await;
    assert_eq!(status, 404);
}

async fn bad_endpoints_are_refused_and_nothing_is_written(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (pid, _) = server.partner().await;
    let path = format!("/v1/partners/{pid}/endpoints");
    for (body, needle) in [
        (json!({"url": "ftp://127.0.0.1/x"}), "http"),
        (json!({"url": "not a url"}), "url"),
        (json!({"url": "http://127.0.0.1:9/x", "secret": "short"}), "16"),
        (
            json!({"url": "http://127.0.0.1:9/x", "eventTypes": ["payment_teleported"]}),
            "payment_teleported",
        ),
        (json!({"url": "http://127.0.0.1:9/x", "eventTypes": []}), "eventTypes"),
        (json!({"url": "http://127.0.0.1:9/x", "colour": "red"}), "colour"),
        (json!({"url": 5}), "url"),
    ] {
        let (status, problem) = server.admin("POST", &path, Some(body.clone())).await;
        assert_eq!(status, 422, "{body} → {problem}");
        assert_eq!(problem["code"], "invalid_input");
        assert!(problem["detail"].as_str().unwrap().contains(needle), "{problem}");
    }
    let (_, list) = server.admin("GET", &path, None).await;
    assert_eq!(list["data"], json!([]));
}

async fn private_and_loopback_targets_are_refused_unless_allowed(backend: Backend) {
    let server = TestServer::start_with(backend, &[("RAMPHOOK_ALLOW_CIDRS", "")]).await;
    let (pid, _) = server.partner().await;
    let path = format!("/v1/partners/{pid}/endpoints");
    for url in [
        "http://127.0.0.1:8080/x",
        "http://localhost:8080/x",
        "http://10.0.0.1/x",
        "http://192.168.1.10/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://0.0.0.0/x",
        "http://2130706433/x",
        "http://0x7f.1/x",
    ] {
        let (status, problem) = server.admin("POST", &path, Some(json!({"url": url}))).await;
        assert_eq!(status, 422, "{url} was accepted");
        assert!(
            problem["detail"].as_str().unwrap().contains("RAMPHOOK_ALLOW_CIDRS"),
            "{problem}"
        );
    }
}
