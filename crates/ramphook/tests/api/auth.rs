//! Admin vs partner scope: a partner sees only its own resources (others
//! answer 404), no or a wrong token answers 401, keys are shown once.

use serde_json::json;

use crate::common::{Backend, TestServer};

on_both_backends!(
    missing_or_wrong_tokens_are_refused,
    a_partner_sees_its_own_resources_and_nothing_of_another,
);

async fn missing_or_wrong_tokens_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (status, body) = server.call("GET", "/v1/partners/ptn_x", None, None).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    let (status, _) = server.call("GET", "/v1/partners/ptn_x", Some("not-a-key"), None).await;
    assert_eq!(status, 401);
    let (status, _) = server
        .call("POST", "/v1/partners", Some("rh_000"), Some(json!({"name": "x"})))
        .await;
    assert_eq!(status, 401);
}

async fn a_partner_sees_its_own_resources_and_nothing_of_another(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (mine, my_key) = server.partner().await;
    let (theirs, _) = server.partner().await;
    let their_endpoint = server
        .endpoint(&theirs, "http://127.0.0.1:9/hook", "their-secret-0123456")
        .await;
    let their_order = server.order(&theirs, "on_ramp").await;

    let (status, body) = server
        .call("GET", &format!("/v1/partners/{mine}"), Some(&my_key), None)
        .await;
    assert_eq!(status, 200);
    assert!(body.get("apiKey").is_none(), "the key is shown once only: {body}");
    let (status, _) = server
        .call(
            "POST",
            &format!("/v1/partners/{mine}/endpoints"),
            Some(&my_key),
            Some(json!({"url": "http://127.0.0.1:9/h"})),
        )
        .await;
    assert_eq!(status, 201);

    for path in [
        format!("/v1/partners/{theirs}"),
        format!("/v1/partners/{theirs}/endpoints"),
        format!("/v1/partners/{theirs}/endpoints/{their_endpoint}"),
        format!("/v1/partners/{theirs}/deliveries"),
        format!("/v1/orders/{their_order}"),
    ] {
        let (status, body) = server.call("GET", &path, Some(&my_key), None).await;
        assert_eq!((status, body["code"].as_str()), (404, Some("not_found")), "{path}");
    }
    let (status, _) = server
        .call(
            "DELETE",
            &format!("/v1/partners/{theirs}/endpoints/{their_endpoint}"),
            Some(&my_key),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = server
        .admin(
            "GET",
            &format!("/v1/partners/{theirs}/endpoints/{their_endpoint}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "the other partner's endpoint is untouched");

    // Admin-only routes are not for partners.
    let (status, _) = server
        .call("POST", "/v1/partners", Some(&my_key), Some(json!({"name": "x"})))
        .await;
    assert_eq!(status, 404);
}
