//! Orders: the state machine through the API, idempotency, expiry, and that
//! a refused request leaves nothing behind.

use std::time::Duration;

use serde_json::json;

use crate::common::{wait_until, Backend, Receiver, TestServer};

on_both_backends!(
    an_on_ramp_order_walks_the_whole_state_machine,
    refused_events_name_what_is_allowed_and_write_nothing,
    bad_orders_are_refused,
    idempotency_keys_replay_the_first_answer_and_refuse_other_bodies,
    unpaid_orders_expire_on_their_own_and_are_announced,
    events_after_a_restart_answer_the_order_as_stored_and_are_judged_as_before,
);

async fn an_on_ramp_order_walks_the_whole_state_machine(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (pid, _) = server.partner().await;
    let (status, order) = server
        .admin(
            "POST",
            "/v1/orders",
            Some(json!({"partnerId": pid, "email": "Alice@Example.com", "direction": "on_ramp",
                        "fiatCurrency": "EUR", "fiatAmount": "100.50", "cryptoCurrency": "BTC", "cryptoAmount": "0.0021",
                        "walletAddress": "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh"})),
        )
        .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "awaiting_payment");
    assert_eq!(order["email"], "alice@example.com");
    assert_eq!(order["fiatAmount"], "100.50");
    let id = order["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok());
    // CONTRACT: a UUID as in the seed, lowercase and hyphenated (ids are v7
    // now, time-ordered, but keep that form).
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().hyphenated().to_string(), id);

    for (event, status) in [
        ("payment_received", "paid"),
        ("crypto_tx_sent", "crypto_sent"),
        ("crypto_tx_failed", "crypto_failed"),
        ("crypto_tx_sent", "crypto_sent"),
        ("crypto_delivered", "delivered"),
    ] {
        let (code, body) = server
            .admin(
                "POST",
                &format!("/v1/orders/{id}/events"),
                Some(json!({"eventName": event, "txHash": "0xabc"})),
            )
            .await;
        assert_eq!(code, 201, "{event}: {body}");
        assert_eq!(body["order"]["status"], status);
        assert_eq!(body["event"]["eventName"], event);
        assert_eq!(body["event"]["orderId"], id);
        let ts = body["event"]["timeStamp"].as_str().unwrap();
        assert!(ts.len() == 24 && ts.ends_with('Z'), "{ts}");
    }
    let (code, problem) = server.post_event(id, "payment_received").await;
    assert_eq!((code, problem["code"].as_str()), (409, Some("invalid_transition")));

    let (_, full) = server.admin("GET", &format!("/v1/orders/{id}"), None).await;
    let names: Vec<&str> = full["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "payment_received",
            "crypto_tx_sent",
            "crypto_tx_failed",
            "crypto_tx_sent",
            "crypto_delivered"
        ]
    );
}

async fn refused_events_name_what_is_allowed_and_write_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let receiver = Receiver::ok().await;
    let (pid, _) = server.partner().await;
    server.endpoint(&pid, &receiver.url(), "partner-secret-0001").await;
    let off = server.order(&pid, "off_ramp").await;
    server.event(&off, "payment_received").await;

    let (code, problem) = server.post_event(&off, "crypto_tx_sent").await;
    assert_eq!(
        (code, problem["code"].as_str()),
        (409, Some("invalid_transition")),
        "on-ramp only event on an off-ramp"
    );
    let (code, problem) = server.post_event(&off, "payment_teleported").await;
    assert_eq!((code, problem["code"].as_str()), (422, Some("invalid_input")));
    assert!(problem["detail"].as_str().unwrap().contains("payment_received"));

    let on = server.order(&pid, "on_ramp").await;
    let (code, problem) = server.post_event(&on, "crypto_delivered").await;
    assert_eq!(code, 409);
    let detail = problem["detail"].as_str().unwrap();
    for allowed in ["payment_received", "payment_rejected", "payment_expired"] {
        assert!(detail.contains(allowed), "{detail}");
    }
    let (code, _) = server
        .admin(
            "POST",
            "/v1/orders/5a3288ea-0bd4-44d2-af11-aae1f88bbd61/events",
            Some(json!({"eventName": "payment_received"})),
        )
        .await;
    assert_eq!(code, 404);

    let (_, full) = server.admin("GET", &format!("/v1/orders/{on}"), None).await;
    assert_eq!(full["events"], json!([]));
    assert_eq!(full["status"], "awaiting_payment");
    receiver.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(
        server.deliveries(&pid, "").await.len(),
        1,
        "only the accepted event was queued"
    );
}

/// After a restart the server keeps no order in memory: on PostgreSQL an
/// event without a key is then written without reading its order first,
/// and its answer's order comes back from the write. That answer must be
/// the order as stored, and refusals must be the state machine's, with
/// nothing written.
async fn events_after_a_restart_answer_the_order_as_stored_and_are_judged_as_before(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let receiver = Receiver::ok().await;
    let (pid, _) = server.partner().await;
    server.endpoint(&pid, &receiver.url(), "partner-secret-0001").await;
    let (status, created) = server
        .admin(
            "POST",
            "/v1/orders",
            Some(
                json!({"partnerId": pid, "email": "bob@example.com", "direction": "on_ramp",
                        "fiatCurrency": "EUR", "fiatAmount": "42.00", "cryptoCurrency": "ETH",
                        "cryptoAmount": "0.013", "walletAddress": "0x52908400098527886E0F7030069857D2E4169EE7"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let on = created["id"].as_str().unwrap().to_owned();
    let off = server.order(&pid, "off_ramp").await;
    server.event(&off, "payment_received").await;
    receiver.wait_for(1, Duration::from_secs(5)).await;

    server.kill().await;
    server.launch().await;

    let (code, body) = server.post_event(&on, "payment_received").await;
    assert_eq!(code, 201, "{body}");
    let answered = &body["order"];
    for field in [
        "id",
        "partnerId",
        "email",
        "direction",
        "fiatCurrency",
        "fiatAmount",
        "cryptoCurrency",
        "cryptoAmount",
        "walletAddress",
        "createdAt",
        "expiresAt",
    ] {
        assert_eq!(answered[field], created[field], "{field}: {body}");
    }
    assert_eq!(answered["status"], "paid");
    assert_eq!(answered["updatedAt"], body["event"]["timeStamp"]);
    let (_, stored) = server.admin("GET", &format!("/v1/orders/{on}"), None).await;
    assert_eq!(
        (&stored["status"], &stored["updatedAt"]),
        (&answered["status"], &answered["updatedAt"])
    );
    // Its webhook arrives (the one before the kill may arrive again: at
    // least once).
    let event_id = body["event"]["id"].as_str().unwrap();
    wait_until(Duration::from_secs(10), "the new event's webhook", || async {
        receiver.received().iter().any(|r| r.webhook_id() == event_id)
    })
    .await;

    // An off-ramp's paid is final; crypto_tx_sent leaves "paid" on on-ramps only.
    let (code, problem) = server.post_event(&off, "crypto_tx_sent").await;
    assert_eq!(
        (code, problem["code"].as_str()),
        (409, Some("invalid_transition")),
        "{problem}"
    );
    let (_, full) = server.admin("GET", &format!("/v1/orders/{off}"), None).await;
    assert_eq!(full["events"].as_array().map(Vec::len), Some(1), "{full}");
    assert_eq!(full["status"], "paid");
    assert_eq!(
        server.deliveries(&pid, "").await.len(),
        2,
        "only the accepted events were queued"
    );
}

async fn bad_orders_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (pid, _) = server.partner().await;
    for body in [
        json!({"partnerId": pid, "email": "nope", "direction": "on_ramp"}),
        json!({"partnerId": pid, "email": "a@b.co", "direction": "sideways"}),
        json!({"partnerId": "ptn_missing", "email": "a@b.co", "direction": "on_ramp"}),
        json!({"partnerId": pid, "email": "a@b.co", "direction": "on_ramp", "fiatAmount": "1e9"}),
        json!({"partnerId": pid, "email": "a@b.co", "direction": "on_ramp", "fiatAmount": 100}),
        json!({"partnerId": pid, "email": "a@b.co", "direction": "on_ramp", "expiresInSeconds": 0}),
        json!({"email": "a@b.co", "direction": "on_ramp"}),
    ] {
        let (code, problem) = server.admin("POST", "/v1/orders", Some(body.clone())).await;
        assert_eq!((code, problem["code"].as_str()), (422, Some("invalid_input")), "{body}");
    }
    let (_, orders) = server
        .admin("GET", &format!("/v1/partners/{pid}/users/a@b.co/orders"), None)
        .await;
    assert_eq!(orders["data"], json!([]));
}

async fn idempotency_keys_replay_the_first_answer_and_refuse_other_bodies(backend: Backend) {
    let server = TestServer::start(backend).await;
    let receiver = Receiver::ok().await;
    let (pid, _) = server.partner().await;
    server.endpoint(&pid, &receiver.url(), "partner-secret-0001").await;
    let send = |path: String, key: &'static str, body: serde_json::Value| {
        server
            .client
            .post(format!("{}{path}", server.base))
            .bearer_auth(crate::common::ADMIN)
            .header("idempotency-key", key)
            .body(body.to_string())
            .send()
    };
    let order_body = json!({"partnerId": pid, "email": "a@b.co", "direction": "on_ramp"});
    let first = send("/v1/orders".into(), "order-1", order_body.clone()).await.unwrap();
    assert_eq!(first.status(), 201);
    let first = first.text().await.unwrap();
    let again = send("/v1/orders".into(), "order-1", order_body.clone()).await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.text().await.unwrap(), first, "the same answer, no second order");
    let other = send(
        "/v1/orders".into(),
        "order-1",
        json!({"partnerId": pid, "email": "b@b.co", "direction": "on_ramp"}),
    )
    .await
    .unwrap();
    assert_eq!(other.status(), 422);

    let order_id = serde_json::from_str::<serde_json::Value>(&first).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/orders/{order_id}/events");
    let a = send(path.clone(), "evt-1", json!({"eventName": "payment_received"}))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let b = send(path.clone(), "evt-1", json!({"eventName": "payment_received"}))
        .await
        .unwrap();
    assert_eq!(b.status(), 201);
    assert_eq!(b.text().await.unwrap(), a);
    let c = send(path.clone(), "evt-1", json!({"eventName": "payment_rejected"}))
        .await
        .unwrap();
    assert_eq!(c.status(), 422);
    // Another body whose event is allowed now: refused by the key all the same.
    let d = send(path.clone(), "evt-1", json!({"eventName": "crypto_tx_sent"}))
        .await
        .unwrap();
    assert_eq!(d.status(), 422);

    let (_, full) = server.admin("GET", &format!("/v1/orders/{order_id}"), None).await;
    assert_eq!(full["events"].as_array().unwrap().len(), 1);
    receiver.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(server.deliveries(&pid, "").await.len(), 1, "one event, one delivery");
    let (_, orders) = server
        .admin("GET", &format!("/v1/partners/{pid}/users/a@b.co/orders"), None)
        .await;
    assert_eq!(orders["data"].as_array().unwrap().len(), 1);
}

async fn unpaid_orders_expire_on_their_own_and_are_announced(backend: Backend) {
    let server = TestServer::start(backend).await;
    let receiver = Receiver::ok().await;
    let (pid, _) = server.partner().await;
    server.endpoint(&pid, &receiver.url(), "partner-secret-0001").await;
    let (_, order) = server
        .admin(
            "POST",
            "/v1/orders",
            Some(json!({"partnerId": pid, "email": "a@b.co", "direction": "off_ramp", "expiresInSeconds": 1})),
        )
        .await;
    let id = order["id"].as_str().unwrap().to_owned();
    let paid = server.order(&pid, "on_ramp").await;
    server.event(&paid, "payment_received").await;

    let got = receiver.wait_for(2, Duration::from_secs(5)).await;
    let expired: Vec<_> = got
        .iter()
        .filter(|r| r.json()["eventName"] == "payment_expired")
        .collect();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].json()["orderId"], id.as_str());
    let (_, full) = server.admin("GET", &format!("/v1/orders/{id}"), None).await;
    assert_eq!(full["status"], "expired");
    let deadline = chrono::DateTime::parse_from_rfc3339(full["expiresAt"].as_str().unwrap()).unwrap();
    let happened = chrono::DateTime::parse_from_rfc3339(full["events"][0]["timeStamp"].as_str().unwrap()).unwrap();
    let late = happened - deadline;
    assert!(
        late >= chrono::TimeDelta::zero() && late < chrono::TimeDelta::milliseconds(1500),
        "expired {late} after expiresAt"
    );
    let (_, still) = server.admin("GET", &format!("/v1/orders/{paid}"), None).await;
    assert_eq!(still["status"], "paid", "a paid order never expires");
}
