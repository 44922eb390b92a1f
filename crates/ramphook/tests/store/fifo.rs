//! Per-order FIFO: the later delivery of an order to an endpoint is not
//! claimable while an earlier one is pending — leased, due, or scheduled for
//! a retry in the future — and other orders and other endpoints never wait.

use ramphook::domain::order::EventName;
use ramphook::domain::time::now_ms;

use crate::harness::*;

on_both_backends!(
    a_later_delivery_waits_for_the_earlier_one,
    a_retry_in_the_future_still_blocks_its_order,
    a_finally_failed_delivery_unblocks_the_next,
    each_endpoint_has_its_own_lane,
);

async fn a_later_delivery_waits_for_the_earlier_one(db: Db) {
    let store = db.open().await;
    let p = partner(&store).await;
    endpoint(&store, &p, None).await;
    let o1 = order(&store, &p).await;
    let o2 = order(&store, &p).await;
    let first = delivery_of(&store, &p, &event(&store, &o1, EventName::PaymentReceived).await).await;
    let second = delivery_of(&store, &p, &event(&store, &o1, EventName::CryptoTxSent).await).await;
    let other = delivery_of(&store, &p, &event(&store, &o2, EventName::PaymentReceived).await).await;

    // Both due; only the first of o1 (and o2's, which does not wait) go out.
    assert_eq!(claim_ids(&store, LONG_LEASE_MS).await, sorted(&[&first.id, &other.id]));
    // In flight (leased), or given back: the second still waits.
    assert!(claim(&store, LONG_LEASE_MS).await.is_empty());
    store.release(std::slice::from_ref(&first.id)).await.unwrap();
    assert_eq!(claim_ids(&store, LONG_LEASE_MS).await, vec![first.id.clone()]);

    store
        .record_attempts(&[attempt(&first.id, Some(204), "delivered", now_ms())])
        .await
        .unwrap();
    assert_eq!(claim_ids(&store, LONG_LEASE_MS).await, vec![second.id.clone()]);
}

async fn a_retry_in_the_future_still_blocks_its_order(db: Db) {
    let store = db.open().await;
    let p = partner(&store).await;
    endpoint(&store, &p, None).await;
    let o1 = order(&store, &p).await;
    let first = delivery_of(&store, &p, &event(&store, &o1, EventName::PaymentReceived).await).await;
    assert_eq!(claim_ids(&store, LONG_LEASE_MS).await, vec![first.id.clone()]);
    store
        .record_attempts(&[attempt(&first.id, Some(500), "pending", now_ms() + HOUR_MS)])
        .await
        .unwrap();

    // Appended while the first waits for its retry: due now, yet blocked.
    let second = delivery_of(&store, &p, &event(&store, &o1, EventName::CryptoTxSent).await).await;
    assert!(second.next_attempt_at <= now_ms());
    assert!(
        claim(&store, LONG_LEASE_MS).await.is_empty(),
        "overtook a retrying delivery"
    );

    // Another order of the same partner and endpoint is not held up.
    let o2 = order(&store, &p).await;
    let other = delivery_of(&store, &p, &event(&store, &o2, EventName::PaymentReceived).await).await;
    assert_eq!(claim_ids(&store, LONG_LEASE_MS).await, vec![other.id.clone()]);

    // The retry made due now (a manual retry): first, then second.
    assert!(store.retry_now(&first.id).await.unwrap());
    assert_eq!(claim_ids(&store, LONG_LEASE_MS).await, vec![first.id.clone()]);
    store
        .record_attempts(&[attempt(&first.id, Some(200), "delivered", now_ms())])
        .await
        .unwrap();
    assert_eq!(claim_ids(&store, LONG_LEASE_MS).await, vec![second.id]);
}

async fn a_finally_failed_delivery_unblocks_the_next(db: Db) {
    let store = db.open().await;
    let p = partner(&store).await;
    endpoint(&store, &p, None).await;
    let o = order(&store, &p).await;
    let first = delivery_of(&store, &p, &event(&store, &o, EventName::PaymentReceived).await).await;
    let second = delivery_of(&store, &p, &event(&store, &o, EventName::CryptoTxSent).await).await;
    assert_eq!(claim_ids(&store, LONG_LEASE_MS).await, vec![first.id.clone()]);
    store
        .record_attempts(&[attempt(&first.id, Some(410), "failed", now_ms())])
        .await
        .unwrap();
    assert_eq!(claim_ids(&store, LONG_LEASE_MS).await, vec![second.id.clone()]);
    store
        .record_attempts(&[attempt(&second.id, Some(200), "delivered", now_ms())])
        .await
        .unwrap();

    // Retrying the failed one by hand later does not pull the order back:
    // it is the only pending delivery of its lane, so it goes at once.
    assert!(store.retry_now(&first.id).await.unwrap());
    assert_eq!(claim_ids(&store, LONG_LEASE_MS).await, vec![first.id]);
}

async fn each_endpoint_has_its_own_lane(db: Db) {
    let store = db.open().await;
    let p = partner(&store).await;
    let a = endpoint(&store, &p, None).await;
    let b = endpoint(&store, &p, None).await;
    let o = order(&store, &p).await;
    let received = event(&store, &o, EventName::PaymentReceived).await;
    let sent = event(&store, &o, EventName::CryptoTxSent).await;
    let rows = all_deliveries(&store, &p).await;
    let find = |event_id: &str, endpoint: &str| {
        rows.iter()
            .find(|d| d.event_id == event_id && d.endpoint_id == endpoint)
            .unwrap()
            .id
            .clone()
    };
    let (a1, a2, b1, b2) = (
        find(&received.id, &a),
        find(&sent.id, &a),
        find(&received.id, &b),
        find(&sent.id, &b),
    );
    assert_eq!(claim_ids(&store, LONG_LEASE_MS).await, sorted(&[&a1, &b1]));
    // A's first is delivered, B's first is retried in an hour: A moves on, B waits.
    store
        .record_attempts(&[
            attempt(&a1, Some(200), "delivered", now_ms()),
            attempt(&b1, Some(502), "pending", now_ms() + HOUR_MS),
        ])
        .await
        .unwrap();
    assert_eq!(claim_ids(&store, LONG_LEASE_MS).await, vec![a2]);
    assert!(claim(&store, LONG_LEASE_MS).await.is_empty(), "{b2} overtook {b1}");
}
