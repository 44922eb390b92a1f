//! /healthz, /readyz, /metrics and /openapi.json.

use std::time::Duration;

use crate::common::{wait_until, Backend, Receiver, TestServer};

on_both_backends!(health_readiness_metrics_and_openapi,);

async fn health_readiness_metrics_and_openapi(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (status, body) = server.call("GET", "/healthz", None, None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, _) = server.call("GET", "/readyz", None, None).await;
    assert_eq!(status, 200);

    let receiver = Receiver::ok().await;
    let (pid, _) = server.partner().await;
    server.endpoint(&pid, &receiver.url(), "partner-secret-0001").await;
    let order = server.order(&pid, "on_ramp").await;
    server.event(&order, "payment_received").await;
    receiver.wait_for(1, Duration::from_secs(5)).await;
    // Arrival at the receiver comes before ramphook has read the answer.
    wait_until(Duration::from_secs(5), "the delivery to be counted", || async {
        let text = server.metrics().await;
        text.contains("ramphook_deliveries_total{outcome=\"delivered\"} 1")
    })
    .await;

    let metrics = server.metrics().await;
    for needle in [
        "ramphook_deliveries_total{outcome=\"delivered\"} 1",
        "ramphook_delivery_attempt_duration_seconds_bucket",
        "ramphook_pending_deliveries",
        "ramphook_api_requests_total{route=\"/v1/orders/{id}/events\",method=\"POST\",status=\"201\"} 1",
    ] {
        assert!(metrics.contains(needle), "/metrics lacks {needle}:\n{metrics}");
    }

    let (status, doc) = server.call("GET", "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/v1/partners",
        "/v1/partners/{pid}/endpoints/{eid}",
        "/v1/orders/{id}/events",
        "/v1/partners/{pid}/deliveries",
        "/v1/deliveries/{did}/retry",
        "/v1/partners/{pid}/validation",
        "/v1/partners/{pid}/validate",
    ] {
        assert!(doc["paths"].get(path).is_some(), "openapi.json lacks {path}");
    }
    let mut operation_ids: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| {
            item.as_object()
                .unwrap()
                .values()
                .filter_map(|op| op["operationId"].as_str())
        })
        .collect();
    let count = operation_ids.len();
    operation_ids.sort();
    operation_ids.dedup();
    assert_eq!(operation_ids.len(), count, "operationIds are unique");
}
