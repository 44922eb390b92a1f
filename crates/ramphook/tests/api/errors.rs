//! Every bad input answers problem+json, never 500, and writes nothing.

use serde_json::json;

use crate::common::{Backend, TestServer};

on_both_backends!(
    malformed_wrong_and_oversized_bodies,
    unknown_routes_methods_and_ids_are_problems,
);

async fn malformed_wrong_and_oversized_bodies(backend: Backend) {
    let server = TestServer::start_with(backend, &[("RAMPHOOK_MAX_BODY_BYTES", "4096")]).await;
    let client = &server.client;
    let post = |body: Vec<u8>| {
        client
            .post(format!("{}/v1/partners", server.base))
            .bearer_auth(crate::common::ADMIN)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for (body, status, code) in [
        (b"{\"name\":".to_vec(), 400, "bad_request"),
        (b"".to_vec(), 400, "bad_request"),
        (b"\xff\xfe".to_vec(), 400, "bad_request"),
        (b"[1,2]".to_vec(), 422, "invalid_input"),
        (b"{\"name\": 7}".to_vec(), 422, "invalid_input"),
        (b"{}".to_vec(), 422, "invalid_input"),
        (
            format!("{{\"name\":\"{}\"}}", "x".repeat(10_000)).into_bytes(),
            413,
            "payload_too_large",
        ),
    ] {
        let response = post(body).await.unwrap();
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        let problem: serde_json::Value = response.json().await.unwrap();
        assert_eq!(problem["code"], code);
        assert_eq!(problem["status"], status);
        assert!(problem["title"].is_string() && problem["type"].is_string() && problem["detail"].is_string());
    }
}

async fn unknown_routes_methods_and_ids_are_problems(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (status, problem) = server.admin("GET", "/v1/nothing-here", None).await;
    assert_eq!((status, problem["code"].as_str()), (404, Some("not_found")));
    let (status, _) = server.admin("PUT", "/v1/orders", Some(json!({}))).await;
    assert_eq!(status, 405);
    let (status, _) = server.admin("GET", "/v1/orders/%FF%FE", None).await;
    assert!(status == 400 || status == 404, "{status}");
    let (status, _) = server.admin("GET", "/v1/deliveries/dlv_nope", None).await;
    assert_eq!(status, 404);
    let (status, _) = server.admin("POST", "/v1/deliveries/dlv_nope/retry", None).await;
    assert_eq!(status, 404);
    let (pid, _) = server.partner().await;
    for query in ["limit=0", "limit=501", "limit=ten", "cursor=garbage", "status=lost"] {
        let (status, problem) = server
            .admin("GET", &format!("/v1/partners/{pid}/deliveries?{query}"), None)
            .await;
        assert_eq!(status, 422, "{query}: {problem}");
    }
    let (status, _) = server.call("GET", "/v1/orders/x", Some("Basic abc"), None).await;
    assert_eq!(status, 401);
}
