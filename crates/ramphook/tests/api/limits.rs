//! The limits that keep one partner from hurting the others: requests per
//! API key (429 `rate_limited` with `Retry-After`; the admin token is not
//! limited) and endpoints per partner (422 naming the setting, also under
//! concurrent creation).

use serde_json::json;

use crate::common::{Backend, TestServer};

on_both_backends!(endpoints_per_partner_are_capped_even_when_created_at_once);

#[tokio::test]
async fn each_api_key_is_rate_limited_and_the_admin_token_is_not() {
    let server = TestServer::start_with(
        Backend::Sqlite,
        &[("RAMPHOOK_RATE_LIMIT", "1/m"), ("RAMPHOOK_RATE_LIMIT_BURST", "3")],
    )
    .await;
    let (pid, key) = server.partner().await;
    let (other, other_key) = server.partner().await;
    let path = format!("/v1/partners/{pid}/endpoints");
    for _ in 0..3 {
        let (status, body) = server.call("GET", &path, Some(&key), None).await;
        assert_eq!(status, 200, "{body}");
    }
    let response = server
        .client
        .get(format!("{}{path}", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(body["status"], 429);

    // Another partner's key has its own budget; the admin is not limited.
    let (status, _) = server
        .call(
            "GET",
            &format!("/v1/partners/{other}/endpoints"),
            Some(&other_key),
            None,
        )
        .await;
    assert_eq!(status, 200);
    for _ in 0..20 {
        let (status, _) = server.admin("GET", &path, None).await;
        assert_eq!(status, 200);
    }
    // A wrong key is 401, never 429 (nothing to limit it by).
    let (status, _) = server.call("GET", &path, Some("rh_wrong_key_0123456789"), None).await;
    assert_eq!(status, 401);
}

async fn endpoints_per_partner_are_capped_even_when_created_at_once(backend: Backend) {
    let server = TestServer::start_with(backend, &[("RAMPHOOK_MAX_ENDPOINTS_PER_PARTNER", "3")]).await;
    let (pid, _) = server.partner().await;
    let path = format!("/v1/partners/{pid}/endpoints");
    let create = || server.admin("POST", &path, Some(json!({"url": "http://127.0.0.1:9/hook"})));
    let results = futures_util::future::join_all((0..8).map(|_| create())).await;
    let created: Vec<_> = results.iter().filter(|(s, _)| *s == 201).collect();
    let refused: Vec<_> = results.iter().filter(|(s, _)| *s == 422).collect();
    assert_eq!((created.len(), refused.len()), (3, 5), "{results:?}");
    for (_, body) in &refused {
        assert_eq!(body["code"], "invalid_input");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("RAMPHOOK_MAX_ENDPOINTS_PER_PARTNER"),
            "{body}"
        );
    }
    let (_, list) = server.admin("GET", &path, None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 3, "nothing half-written");

    // Another partner has its own cap; deleting one makes room again.
    let (other, _) = server.partner().await;
    let (status, _) = server
        .admin(
            "POST",
            &format!("/v1/partners/{other}/endpoints"),
            Some(json!({"url": "http://127.0.0.1:9/hook"})),
        )
        .await;
    assert_eq!(status, 201);
    let id = created[0].1["id"].as_str().unwrap();
    let (status, _) = server.admin("DELETE", &format!("{path}/{id}"), None).await;
    assert_eq!(status, 204);
    assert_eq!(create().await.0, 201);
    assert_eq!(create().await.0, 422);
}
