//! Delivery under stress: isolation between endpoints, partners' signals
//! (410, Retry-After, 429), disabling that is never silent, secret rotation,
//! test deliveries, recovery, and retention.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use tokio::task::JoinSet;

use crate::common::{wait_until, Backend, Receiver, TestServer};
use crate::wire_format::{node_verifies, standard_webhooks_verifies};

on_both_backends!(
    a_slow_and_a_dead_endpoint_do_not_hold_up_a_healthy_one,
    gone_disables_at_once_loudly_and_enabling_resumes,
    retry_after_and_throttling_push_the_next_try_back,
    an_endpoint_failing_too_long_is_disabled,
    during_a_rotation_both_secrets_verify_and_after_only_the_new,
    test_webhooks_are_signed_and_marked,
    recover_requeues_the_failed_deliveries_of_a_window,
    retention_purges_finished_deliveries_and_keeps_pending_ones,
);

/// Posts one `payment_received` per new order for `pid`, `count` in all, 16 at a time.
async fn burst(server: &TestServer, pid: &str, count: usize) {
    let mut tasks = JoinSet::new();
    let client = server.client.clone();
    let base = server.base.clone();
    let pid = pid.to_owned();
    let next = Arc::new(AtomicUsize::new(0));
    for _ in 0..16 {
        let (client, base, pid, next) = (client.clone(), base.clone(), pid.clone(), next.clone());
        tasks.spawn(async move {
            while next.fetch_add(1, Ordering::SeqCst) < count {
                let order: serde_json::Value = client
                    .post(format!("{base}/v1/orders"))
                    .bearer_auth(crate::common::ADMIN)
                    .body(json!({"partnerId": pid, "email": "a@b.co", "direction": "on_ramp"}).to_string())
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let response = client
                    .post(format!("{base}/v1/orders/{}/events", order["id"].as_str().unwrap()))
                    .bearer_auth(crate::common::ADMIN)
                    .body(json!({"eventName": "payment_received"}).to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 201);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

async fn endpoint_json(server: &TestServer, pid: &str, eid: &str) -> serde_json::Value {
    server
        .admin("GET", &format!("/v1/partners/{pid}/endpoints/{eid}"), None)
        .await
        .1
}

async fn a_slow_and_a_dead_endpoint_do_not_hold_up_a_healthy_one(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        &[
            ("RAMPHOOK_MAX_IN_FLIGHT_PER_ENDPOINT", "16"),
            ("RAMPHOOK_RETRY_SCHEDULE", "0s,1s,1s,1s"),
            ("RAMPHOOK_DELIVERY_TIMEOUT", "5s"),
        ],
    )
    .await;
    let slow = Receiver::start(Arc::new(|_, _| (200, Duration::from_secs(10)))).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (troubled, _) = server.partner().await;
    server.endpoint(&troubled, &slow.url(), "partner-secret-0001").await;
    server
        .endpoint(&troubled, &format!("http://{closed}/hook"), "partner-secret-0002")
        .await;
    burst(&server, &troubled, 300).await;
    let pending = server.deliveries(&troubled, "status=pending").await.len();
    assert!(
        pending >= 300,
        "the troubled endpoints hold hundreds of pending deliveries ({pending})"
    );

    let healthy = Receiver::ok().await;
    let (fine, _) = server.partner().await;
    server.endpoint(&fine, &healthy.url(), "partner-secret-0003").await;
    burst(&server, &fine, 500).await;
    healthy.wait_for(500, Duration::from_secs(30)).await;
    let slow_seen = slow.received().len();
    assert!(
        slow_seen <= 36,
        "the slow endpoint saw {slow_seen} requests: its lane is not bounded"
    );
}

/// A receiver that answers `status` with `headers` to its first `times`
/// requests and 200 afterwards; returns it and its request count.
async fn answering(
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
    times: usize,
) -> (String, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let headers = headers.clone();
            async move {
                let mut response = axum::response::Response::new(axum::body::Body::from("no"));
                if n < times {
                    *response.status_mut() = StatusCode::from_u16(status).unwrap();
                    for (k, v) in headers {
                        response.headers_mut().insert(k, v.parse().unwrap());
                    }
                }
                response
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), count)
}

async fn gone_disables_at_once_loudly_and_enabling_resumes(backend: Backend) {
    let ops = Receiver::ok().await;
    let server = TestServer::start_with(backend, &[("RAMPHOOK_OPS_WEBHOOK_URL", &ops.url())]).await;
    let (url, count) = answering(410, vec![], 1).await;
    let (pid, _) = server.partner().await;
    let eid = server.endpoint(&pid, &url, "partner-secret-0001").await;
    let order = server.order(&pid, "on_ramp").await;
    server.event(&order, "payment_received").await;

    let alert = ops.wait_for(1, Duration::from_secs(10)).await[0].json();
    assert_eq!(alert["type"], "endpoint.disabled");
    assert_eq!(alert["endpointId"], eid.as_str());
    assert!(alert["reason"].as_str().unwrap().contains("410"));
    let endpoint = endpoint_json(&server, &pid, &eid).await;
    assert_eq!(endpoint["enabled"], false);
    assert!(endpoint["disabledReason"].as_str().unwrap().contains("410"));
    wait_until(
        Duration::from_secs(5),
        "the gone delivery to be failed after one attempt",
        || async {
            let d = server.deliveries(&pid, "").await;
            d[0]["status"] == "failed" && d[0]["attempts"] == 1
        },
    )
    .await;
    let metrics = server.metrics().await;
    assert!(metrics.contains("ramphook_endpoints_disabled_total 1"), "{metrics}");

    // While disabled, new events are not queued for it (as for an endpoint
    // disabled by hand); once enabled again, it receives the next ones.
    server.event(&order, "crypto_tx_sent").await;
    assert_eq!(server.deliveries(&pid, "").await.len(), 1);
    let (_, enabled) = server
        .admin(
            "PATCH",
            &format!("/v1/partners/{pid}/endpoints/{eid}"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(enabled["enabled"], true);
    assert_eq!(enabled["disabledReason"], json!(null));
    server.event(&order, "crypto_delivered").await;
    wait_until(Duration::from_secs(5), "the next event to be delivered", || async {
        server.deliveries(&pid, "status=delivered").await.len() == 1
    })
    .await;
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

async fn attempt_times(server: &TestServer, pid: &str) -> Vec<chrono::DateTime<chrono::FixedOffset>> {
    let delivery = server.deliveries(pid, "").await[0]["id"].as_str().unwrap().to_owned();
    let (_, detail) = server.admin("GET", &format!("/v1/deliveries/{delivery}"), None).await;
    detail["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| chrono::DateTime::parse_from_rfc3339(a["at"].as_str().unwrap()).unwrap())
        .collect()
}

async fn retry_after_and_throttling_push_the_next_try_back(backend: Backend) {
    let server = TestServer::start_with(backend, &[("RAMPHOOK_THROTTLE_BACKOFF", "1s")]).await;
    // 503 asking for 2 s: honoured although the schedule says 50 ms.
    let (pid, _) = server.partner().await;
    let (url, _) = answering(503, vec![("retry-after", "2")], 1).await;
    server.endpoint(&pid, &url, "partner-secret-0001").await;
    let order = server.order(&pid, "on_ramp").await;
    server.event(&order, "payment_received").await;
    wait_until(Duration::from_secs(10), "the second attempt", || async {
        attempt_times(&server, &pid).await.len() == 2
    })
    .await;
    let at = attempt_times(&server, &pid).await;
    assert!(
        at[1] - at[0] >= chrono::TimeDelta::milliseconds(1800),
        "retried after {}",
        at[1] - at[0]
    );

    // 429 without Retry-After: at least the throttle backoff (1 s).
    let (other, _) = server.partner().await;
    let (url, _) = answering(429, vec![], 1).await;
    server.endpoint(&other, &url, "partner-secret-0002").await;
    let order = server.order(&other, "on_ramp").await;
    server.event(&order, "payment_received").await;
    wait_until(Duration::from_secs(10), "the second attempt", || async {
        attempt_times(&server, &other).await.len() == 2
    })
    .await;
    let at = attempt_times(&server, &other).await;
    assert!(
        at[1] - at[0] >= chrono::TimeDelta::milliseconds(900),
        "retried after {}",
        at[1] - at[0]
    );
}

async fn an_endpoint_failing_too_long_is_disabled(backend: Backend) {
    let ops = Receiver::ok().await;
    // A few quick failures, then the next try an hour away: still pending
    // when the maintenance task disables the endpoint (1-2 s in).
    let keep_failing = "0s,200ms,200ms,1h";
    let server = TestServer::start_with(
        backend,
        &[
            ("RAMPHOOK_DISABLE_AFTER", "1s"),
            ("RAMPHOOK_RETRY_SCHEDULE", keep_failing),
            ("RAMPHOOK_OPS_WEBHOOK_URL", &ops.url()),
        ],
    )
    .await;
    let (url, _) = answering(500, vec![], usize::MAX).await;
    let (pid, _) = server.partner().await;
    let eid = server.endpoint(&pid, &url, "partner-secret-0001").await;
    let order = server.order(&pid, "on_ramp").await;
    server.event(&order, "payment_received").await;
    wait_until(Duration::from_secs(10), "the endpoint to be failing", || async {
        !endpoint_json(&server, &pid, &eid).await["failingSince"].is_null()
    })
    .await;
    let alert = ops.wait_for(1, Duration::from_secs(10)).await[0].json();
    assert_eq!(alert["endpointId"], eid.as_str());
    assert_eq!(alert["reason"], "failing without a break for 1s");
    let endpoint = endpoint_json(&server, &pid, &eid).await;
    assert_eq!(endpoint["enabled"], false);
    assert_eq!(endpoint["disabledReason"], "failing without a break for 1s");
    let stopped = server.deliveries(&pid, "").await;
    assert_eq!(
        stopped[0]["status"], "pending",
        "its pending delivery waits, neither sent nor failed"
    );
}

async fn during_a_rotation_both_secrets_verify_and_after_only_the_new(backend: Backend) {
    let server = TestServer::start(backend).await;
    let receiver = Receiver::ok().await;
    let (pid, _) = server.partner().await;
    let old = "the-old-secret-0000001";
    let eid = server.endpoint(&pid, &receiver.url(), old).await;
    let rotate = format!("/v1/partners/{pid}/endpoints/{eid}/rotate-secret");
    let (status, rotated) = server
        .admin("POST", &rotate, Some(json!({"keepPreviousFor": "1h"})))
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_eq!(new.len(), 64);
    assert!(rotated["endpoint"]["previousSecretExpiresAt"].is_string());

    let order = server.order(&pid, "on_ramp").await;
    server.event(&order, "payment_received").await;
    let hook = receiver.wait_for(1, Duration::from_secs(5)).await[0].clone();
    let headers = |hook: &crate::common::Received| {
        json!({"webhook-id": hook.headers["webhook-id"], "webhook-timestamp": hook.headers["webhook-timestamp"],
               "webhook-signature": hook.headers["webhook-signature"]})
    };
    assert_eq!(hook.headers["webhook-signature"].split(' ').count(), 2);
    assert!(
        standard_webhooks_verifies(&new, &hook.body, &headers(&hook)),
        "the new secret verifies"
    );
    assert!(
        standard_webhooks_verifies(old, &hook.body, &headers(&hook)),
        "the old secret still verifies"
    );
    assert!(
        node_verifies(&new, &hook.body),
        "the body is signed with the newest secret"
    );
    assert!(!node_verifies(old, &hook.body));

    let (status, _) = server
        .admin(
            "POST",
            &rotate,
            Some(json!({"secret": "the-newest-secret-00001", "keepPreviousFor": "0s"})),
        )
        .await;
    assert_eq!(status, 200);
    server.event(&order, "crypto_tx_sent").await;
    let hook = receiver.wait_for(2, Duration::from_secs(5)).await[1].clone();
    assert_eq!(hook.headers["webhook-signature"].split(' ').count(), 1);
    assert!(standard_webhooks_verifies(
        "the-newest-secret-00001",
        &hook.body,
        &headers(&hook)
    ));
    assert!(
        !standard_webhooks_verifies(&new, &hook.body, &headers(&hook)),
        "the dropped secret no longer verifies"
    );

    for bad in [
        json!({"secret": "short"}),
        json!({"keepPreviousFor": "forever"}),
        json!({"keepPreviousFor": "30d"}),
    ] {
        let (status, _) = server.admin("POST", &rotate, Some(bad.clone())).await;
        assert_eq!(status, 422, "{bad}");
    }
    let (status, _) = server
        .admin(
            "POST",
            &format!("/v1/partners/{pid}/endpoints/ep_nope/rotate-secret"),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

async fn test_webhooks_are_signed_and_marked(backend: Backend) {
    let server = TestServer::start(backend).await;
    let receiver = Receiver::ok().await;
    let (pid, key) = server.partner().await;
    let eid = server.endpoint(&pid, &receiver.url(), "partner-secret-0001").await;
    let path = format!("/v1/partners/{pid}/endpoints/{eid}/test");
    let (status, queued) = server
        .call(
            "POST",
            &path,
            Some(&key),
            Some(json!({"eventName": "crypto_delivered"})),
        )
        .await;
    assert_eq!(status, 202, "{queued}");
    let hook = receiver.wait_for(1, Duration::from_secs(5)).await[0].clone();
    assert_eq!(hook.json()["eventName"], "crypto_delivered");
    assert!(uuid::Uuid::parse_str(hook.json()["orderId"].as_str().unwrap()).is_ok());
    assert!(node_verifies("partner-secret-0001", &hook.body));
    wait_until(
        Duration::from_secs(5),
        "the test delivery to be listed as delivered",
        || async {
            let d = server.deliveries(&pid, "").await;
            d.len() == 1 && d[0]["test"] == true && d[0]["status"] == "delivered" && d[0]["id"] == queued["deliveryId"]
        },
    )
    .await;
    let (status, _) = server
        .admin("POST", &path, Some(json!({"eventName": "payment_teleported"})))
        .await;
    assert_eq!(status, 422);
}

async fn recover_requeues_the_failed_deliveries_of_a_window(backend: Backend) {
    let server = TestServer::start_with(backend, &[("RAMPHOOK_RETRY_SCHEDULE", "0s")]).await;
    let (pid, _) = server.partner().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let eid = server
        .endpoint(&pid, &format!("http://{closed}/hook"), "partner-secret-0001")
        .await;
    for _ in 0..3 {
        let order = server.order(&pid, "on_ramp").await;
        server.event(&order, "payment_received").await;
    }
    wait_until(Duration::from_secs(5), "all three to fail", || async {
        server.deliveries(&pid, "status=failed").await.len() == 3
    })
    .await;
    let receiver = Receiver::ok().await;
    server
        .admin(
            "PATCH",
            &format!("/v1/partners/{pid}/endpoints/{eid}"),
            Some(json!({"url": receiver.url()})),
        )
        .await;
    let recover = format!("/v1/partners/{pid}/endpoints/{eid}/recover");
    let (status, _) = server
        .admin("POST", &recover, Some(json!({"since": "2999-01-01T00:00:00Z"})))
        .await;
    assert_eq!(status, 422, "until (now) before since");
    let (status, body) = server
        .admin("POST", &recover, Some(json!({"since": "2000-01-01T00:00:00Z"})))
        .await;
    assert_eq!((status, body["requeued"].as_u64()), (202, Some(3)));
    receiver.wait_for(3, Duration::from_secs(5)).await;
    wait_until(Duration::from_secs(5), "all three to be delivered", || async {
        server.deliveries(&pid, "status=delivered").await.len() == 3
    })
    .await;
    let (status, _) = server
        .admin("POST", &recover, Some(json!({"since": "yesterday"})))
        .await;
    assert_eq!(status, 422);
}

async fn retention_purges_finished_deliveries_and_keeps_pending_ones(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        &[("RAMPHOOK_RETENTION", "1s"), ("RAMPHOOK_RETRY_SCHEDULE", "0s,1h")],
    )
    .await;
    let receiver = Receiver::ok().await;
    let (pid, _) = server.partner().await;
    server.endpoint(&pid, &receiver.url(), "partner-secret-0001").await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    server
        .endpoint(&pid, &format!("http://{closed}/hook"), "partner-secret-0002")
        .await;
    let order = server.order(&pid, "on_ramp").await;
    server.event(&order, "payment_received").await;
    receiver.wait_for(1, Duration::from_secs(5)).await;
    wait_until(Duration::from_secs(5), "the delivery to be recorded", || async {
        !server.deliveries(&pid, "status=delivered").await.is_empty()
    })
    .await;
    let delivered = server.deliveries(&pid, "status=delivered").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_until(
        Duration::from_secs(10),
        "the delivered delivery to be purged",
        || async {
            server
                .admin("GET", &format!("/v1/deliveries/{delivered}"), None)
                .await
                .0
                == 404
        },
    )
    .await;
    let left = server.deliveries(&pid, "").await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["status"], "pending", "a pending delivery is never purged");
}
