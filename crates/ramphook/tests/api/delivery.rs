//! Delivery: fan-out to subscribed endpoints, retries on the schedule, the
//! attempt log with error kinds, manual retry, list filters, per-order order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{wait_until, Backend, Receiver, TestServer};

on_both_backends!(
    events_fan_out_to_subscribed_enabled_endpoints_only,
    a_new_event_goes_out_within_milliseconds,
    failures_are_retried_on_the_schedule_and_every_attempt_is_logged,
    timeouts_and_refused_connections_are_named_then_fail_and_can_be_retried_by_hand,
    redirects_are_not_followed,
    an_https_endpoint_is_called_over_tls_and_a_failed_handshake_is_named,
    a_later_event_of_an_order_waits_while_an_earlier_one_is_retried,
);

async fn events_fan_out_to_subscribed_enabled_endpoints_only(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (pid, _) = server.partner().await;
    let all = Receiver::ok().await;
    let only_delivered = Receiver::ok().await;
    let disabled = Receiver::ok().await;
    server.endpoint(&pid, &all.url(), "secret-for-all-000").await;
    let path = format!("/v1/partners/{pid}/endpoints");
    server
        .admin(
            "POST",
            &path,
            Some(json!({"url": only_delivered.url(), "eventTypes": ["crypto_delivered"]})),
        )
        .await;
    let off = server.endpoint(&pid, &disabled.url(), "secret-disabled-00").await;
    server
        .admin("PATCH", &format!("{path}/{off}"), Some(json!({"enabled": false})))
        .await;

    let order = server.order(&pid, "on_ramp").await;
    for event in ["payment_received", "crypto_tx_sent", "crypto_delivered"] {
        server.event(&order, event).await;
    }
    let got = all.wait_for(3, Duration::from_secs(5)).await;
    let names: Vec<_> = got
        .iter()
        .map(|r| r.json()["eventName"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        ["payment_received", "crypto_tx_sent", "crypto_delivered"],
        "in the order they happened"
    );
    let got = only_delivered.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got[0].json()["eventName"], "crypto_delivered");
    // The same event carries the same webhook-id to every endpoint.
    assert_eq!(got[0].webhook_id(), all.received()[2].webhook_id());
    assert_eq!(
        server.deliveries(&pid, "").await.len(),
        4,
        "3 + 1, none for the disabled endpoint"
    );
    assert!(disabled.received().is_empty());
    assert_eq!(only_delivered.received().len(), 1);
}

async fn a_new_event_goes_out_within_milliseconds(backend: Backend) {
    let server = TestServer::start(backend).await;
    let receiver = Receiver::ok().await;
    let (pid, _) = server.partner().await;
    server.endpoint(&pid, &receiver.url(), "partner-secret-0001").await;
    let order = server.order(&pid, "on_ramp").await;
    // Warm the connection, then time one event from its 201 to its arrival.
    server.event(&order, "payment_received").await;
    receiver.wait_for(1, Duration::from_secs(5)).await;
    server.event(&order, "crypto_tx_sent").await;
    let answered = Instant::now();
    receiver.wait_for(2, Duration::from_secs(5)).await;
    // Far below the 1 s poll fallback: the commit wakes the dispatcher.
    assert!(
        answered.elapsed() < Duration::from_millis(500),
        "took {:?}",
        answered.elapsed()
    );
}

async fn failures_are_retried_on_the_schedule_and_every_attempt_is_logged(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (pid, _) = server.partner().await;
    let flaky = Receiver::start(Arc::new(|n, _| {
        if n < 2 {
            (503, Duration::ZERO)
        } else {
            (204, Duration::ZERO)
        }
    }))
    .await;
    server.endpoint(&pid, &flaky.url(), "partner-secret-0001").await;
    let order = server.order(&pid, "on_ramp").await;
    server.event(&order, "payment_received").await;

    let got = flaky.wait_for(3, Duration::from_secs(5)).await;
    assert!(
        got.iter().all(|r| r.webhook_id() == got[0].webhook_id()),
        "same webhook-id on every attempt"
    );
    assert!(got.iter().all(|r| r.body == got[0].body), "same body on every attempt");
    wait_until(
        Duration::from_secs(5),
        "the delivery to be recorded as delivered",
        || async { server.deliveries(&pid, "").await[0]["status"] == "delivered" },
    )
    .await;
    let delivery = server.deliveries(&pid, "").await[0].clone();
    assert_eq!(delivery["attempts"], 3);
    assert_eq!(delivery["lastStatusCode"], 204);
    let (_, detail) = server
        .admin(
            "GET",
            &format!("/v1/deliveries/{}", delivery["id"].as_str().unwrap()),
            None,
        )
        .await;
    let attempts = detail["attempts"].as_array().unwrap();
    let codes: Vec<_> = attempts.iter().map(|a| a["statusCode"].as_i64().unwrap()).collect();
    assert_eq!(codes, [503, 503, 204]);
    assert_eq!(attempts[0]["error"], "http_status: 503");
    assert_eq!(attempts[0]["responseBody"], "received");
    assert_eq!(attempts[2]["error"], json!(null));
    assert!(attempts
        .iter()
        .all(|a| a["durationMs"].is_i64() && a["at"].as_str().unwrap().ends_with('Z')));
}

async fn timeouts_and_refused_connections_are_named_then_fail_and_can_be_retried_by_hand(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        &[
            ("RAMPHOOK_DELIVERY_TIMEOUT", "300ms"),
            ("RAMPHOOK_RETRY_SCHEDULE", "0s,10ms"),
        ],
    )
    .await;
    let (pid, _) = server.partner().await;
    let slow = Receiver::start(Arc::new(|n, _| {
        if n < 2 {
            (200, Duration::from_secs(3))
        } else {
            (200, Duration::ZERO)
        }
    }))
    .await;
    let slow_ep = server.endpoint(&pid, &slow.url(), "partner-secret-0001").await;
    // A port nobody listens on: bind, note the port, close.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dead_ep = server
        .endpoint(&pid, &format!("http://{closed}/hook"), "partner-secret-0002")
        .await;
    let order = server.order(&pid, "on_ramp").await;
    server.event(&order, "payment_received").await;

    wait_until(Duration::from_secs(10), "both deliveries to fail", || async {
        server.deliveries(&pid, "status=failed").await.len() == 2
    })
    .await;
    let failed = server.deliveries(&pid, "status=failed").await;
    let error_of = |endpoint: &str| {
        let delivery = failed.iter().find(|d| d["endpointId"] == endpoint).unwrap().clone();
        let server = &server;
        async move {
            let (_, detail) = server
                .admin(
                    "GET",
                    &format!("/v1/deliveries/{}", delivery["id"].as_str().unwrap()),
                    None,
                )
                .await;
            assert_eq!(detail["attempts"].as_array().unwrap().len(), 2, "{detail}");
            (
                delivery["id"].as_str().unwrap().to_owned(),
                detail["attempts"][1]["error"].as_str().unwrap().to_owned(),
            )
        }
    };
    let (slow_delivery, slow_error) = error_of(&slow_ep).await;
    assert!(slow_error.starts_with("timeout"), "{slow_error}");
    let (_, dead_error) = error_of(&dead_ep).await;
    assert!(dead_error.starts_with("connect"), "{dead_error}");

    let (status, _) = server
        .admin("POST", &format!("/v1/deliveries/{slow_delivery}/retry"), None)
        .await;
    assert_eq!(status, 202);
    slow.wait_for(3, Duration::from_secs(5)).await;
    wait_until(Duration::from_secs(5), "the manual retry to succeed", || async {
        server.deliveries(&pid, &format!("endpointId={slow_ep}")).await[0]["status"] == "delivered"
    })
    .await;
    let filtered = server.deliveries(&pid, &format!("status=failed&orderId={order}")).await;
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0]["endpointId"], dead_ep.as_str());
    assert!(server
        .deliveries(&pid, "orderId=5a3288ea-0bd4-44d2-af11-aae1f88bbd61")
        .await
        .is_empty());
}

async fn redirects_are_not_followed(backend: Backend) {
    let server = TestServer::start_with(backend, &[("RAMPHOOK_RETRY_SCHEDULE", "0s")]).await;
    let (pid, _) = server.partner().await;
    let target = Receiver::ok().await;
    let target_url = target.url();
    let redirecting = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let to = target_url.clone();
            async move { (axum::http::StatusCode::TEMPORARY_REDIRECT, [("location", to)]) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, redirecting).await.unwrap() });
    server
        .endpoint(&pid, &format!("http://{addr}/hook"), "partner-secret-0001")
        .await;
    let order = server.order(&pid, "on_ramp").await;
    server.event(&order, "payment_received").await;
    wait_until(Duration::from_secs(5), "the delivery to fail", || async {
        server.deliveries(&pid, "").await[0]["status"] == "failed"
    })
    .await;
    assert_eq!(server.deliveries(&pid, "").await[0]["lastStatusCode"], 307);
    assert!(target.received().is_empty(), "the redirect was followed");
}

async fn an_https_endpoint_is_called_over_tls_and_a_failed_handshake_is_named(backend: Backend) {
    let server = TestServer::start_with(backend, &[("RAMPHOOK_RETRY_SCHEDULE", "0s")]).await;
    let (pid, _) = server.partner().await;
    // A plain-HTTP receiver behind an https URL: ramphook must open TLS (no
    // certificate here is trusted, nor could be), so the handshake fails
    // and no webhook request ever reaches it.
    let plain = Receiver::ok().await;
    let https_url = plain.url().replacen("http://", "https://", 1);
    server.endpoint(&pid, &https_url, "partner-secret-0001").await;
    let order = server.order(&pid, "on_ramp").await;
    server.event(&order, "payment_received").await;
    wait_until(Duration::from_secs(5), "the delivery to fail", || async {
        server.deliveries(&pid, "").await[0]["status"] == "failed"
    })
    .await;
    let delivery = server.deliveries(&pid, "").await[0]["id"].as_str().unwrap().to_owned();
    let (_, detail) = server.admin("GET", &format!("/v1/deliveries/{delivery}"), None).await;
    let error = detail["attempts"][0]["error"].as_str().unwrap();
    assert!(error.starts_with("connect"), "{error}");
    assert_eq!(detail["attempts"][0]["statusCode"], json!(null), "{detail}");
    assert!(plain.received().is_empty(), "a request went out in clear");
}

async fn a_later_event_of_an_order_waits_while_an_earlier_one_is_retried(backend: Backend) {
    let server = TestServer::start_with(backend, &[("RAMPHOOK_RETRY_SCHEDULE", "0s,300ms,300ms")]).await;
    let (pid, _) = server.partner().await;
    let slow_order = server.order(&pid, "on_ramp").await;
    let other_order = server.order(&pid, "on_ramp").await;
    // Fails the slow order's payment_received twice; everything else succeeds.
    let failing_twice = Receiver::start(Arc::new({
        let failures = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let slow_order = slow_order.clone();
        move |_, r| {
            let body = r.json();
            if body["orderId"] == slow_order.as_str()
                && body["eventName"] == "payment_received"
                && failures.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2
            {
                (500, Duration::ZERO)
            } else {
                (200, Duration::ZERO)
            }
        }
    }))
    .await;
    server.endpoint(&pid, &failing_twice.url(), "partner-secret-0001").await;
    server.event(&slow_order, "payment_received").await;
    server.event(&slow_order, "crypto_tx_sent").await;
    server.event(&other_order, "payment_received").await;

    let got = failing_twice.wait_for(5, Duration::from_secs(10)).await;
    let seen: Vec<(String, String)> = got
        .iter()
        .map(|r| {
            (
                r.json()["orderId"].as_str().unwrap().to_owned(),
                r.json()["eventName"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let slow_seen: Vec<&str> = seen
        .iter()
        .filter(|(o, _)| *o == slow_order)
        .map(|(_, e)| e.as_str())
        .collect();
    assert_eq!(
        slow_seen,
        [
            "payment_received",
            "payment_received",
            "payment_received",
            "crypto_tx_sent"
        ]
    );
    // The other order did not wait for the slow one's retries.
    let other_at = seen.iter().position(|(o, _)| *o == other_order).unwrap();
    let tx_sent_at = seen.iter().position(|(_, e)| e == "crypto_tx_sent").unwrap();
    assert!(other_at < tx_sent_at, "{seen:?}");
}
