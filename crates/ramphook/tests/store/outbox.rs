//! The transactional outbox: an accepted event writes the order's change, the
//! event and exactly one pending delivery per enabled endpoint subscribed to
//! it; a refused one writes nothing at all.

use ramphook::domain::order::EventName;
use ramphook::domain::time::now_ms;
use ramphook::store::{AppendOutcome, DeliveryFilter, Idempotency};

use crate::harness::*;

on_both_backends!(
    one_pending_delivery_per_enabled_subscribed_endpoint,
    a_refused_transition_writes_nothing,
    an_endpoint_disabled_after_queueing_holds_its_deliveries,
);

async fn one_pending_delivery_per_enabled_subscribed_endpoint(db: Db) {
    let store = db.open().await;
    let p = partner(&store).await;
    let all = endpoint(&store, &p, None).await;
    let received_only = endpoint(&store, &p, Some(&["payment_received"])).await;
    let sent_only = endpoint(&store, &p, Some(&["crypto_tx_sent"])).await;
    let disabled = endpoint(&store, &p, None).await;
    set_enabled(&store, &p, &disabled, false).await;
    let other = partner(&store).await;
    endpoint(&store, &other, None).await;
    let o = order(&store, &p).await;

    let before = now_ms();
    let received = event(&store, &o, EventName::PaymentReceived).await;
    let rows = deliveries(
        &store,
        &p,
        &DeliveryFilter {
            order_id: Some(o.clone()),
            ..Default::default()
        },
    )
    .await;
    let mut targets: Vec<String> = rows.iter().map(|d| d.endpoint_id.clone()).collect();
    targets.sort();
    assert_eq!(targets, sorted(&[&all, &received_only]), "{rows:?}");
    for d in &rows {
        assert_eq!(d.event_id, received.id);
        assert_eq!(d.order_id, o);
        assert_eq!(d.partner_id, p);
        assert_eq!(d.event_name, "payment_received");
        assert_eq!(d.status, "pending");
        assert_eq!(d.attempts, 0);
        assert_eq!(d.last_status_code, None);
        assert_eq!(d.is_test, 0);
        // Due at once.
        assert!(d.next_attempt_at >= before && d.next_attempt_at <= now_ms(), "{d:?}");
    }
    assert!(all_deliveries(&store, &other).await.is_empty());

    let sent = event(&store, &o, EventName::CryptoTxSent).await;
    let mut targets: Vec<String> = all_deliveries(&store, &p)
        .await
        .into_iter()
        .filter(|d| d.event_id == sent.id)
        .map(|d| d.endpoint_id)
        .collect();
    targets.sort();
    assert_eq!(targets, sorted(&[&all, &sent_only]));
    assert_eq!(all_deliveries(&store, &p).await.len(), 4);
    assert_eq!(store.pending_count().await.unwrap(), 4);

    let (order_row, events) = store.get_order(&o).await.unwrap().unwrap();
    assert_eq!(order_row.status, "crypto_sent");
    let names: Vec<_> = events.iter().map(|e| e.event_name.as_str()).collect();
    assert_eq!(names, ["payment_received", "crypto_tx_sent"]);
}

async fn a_refused_transition_writes_nothing(db: Db) {
    let store = db.open().await;
    let p = partner(&store).await;
    endpoint(&store, &p, None).await;
    let o = order(&store, &p).await;
    let (before, _) = store.get_order(&o).await.unwrap().unwrap();

    // Not allowed from awaiting_payment, even with an idempotency key.
    let key = Idempotency {
        scope: "events:admin".into(),
        key: "refused-1".into(),
        request_hash: "h".into(),
    };
    let (outcome, _, _) = fresh(
        store
            .append_event(&o, EventName::CryptoDelivered, None, None, Some(&key), |_, _| {
                panic!("a refused event is not rendered")
            })
            .await
            .unwrap(),
    );
    let AppendOutcome::Invalid(invalid) = outcome else {
        panic!("crypto_delivered was accepted from awaiting_payment")
    };
    assert_eq!(invalid.event, EventName::CryptoDelivered);
    assert!(invalid.allowed.contains(&EventName::PaymentReceived), "{invalid:?}");
    let (after, events) = store.get_order(&o).await.unwrap().unwrap();
    assert_eq!(
        (after.status.as_str(), after.updated_at),
        ("awaiting_payment", before.updated_at)
    );
    assert!(events.is_empty(), "{events:?}");
    assert!(all_deliveries(&store, &p).await.is_empty());
    assert_eq!(store.pending_count().await.unwrap(), 0);
    // The refusal is not remembered under the key: a later valid request may use it.
    assert!(store.idempotent_answer(Some(&key)).await.unwrap().is_none());

    // An unknown order writes nothing either.
    assert!(matches!(
        append(
            &store,
            "00000000-0000-0000-0000-000000000000",
            EventName::PaymentReceived
        )
        .await,
        AppendOutcome::NoSuchOrder
    ));

    // A final status refuses everything, and still writes nothing.
    event(&store, &o, EventName::PaymentRejected).await;
    let queued = all_deliveries(&store, &p).await.len();
    for name in [
        EventName::PaymentReceived,
        EventName::PaymentExpired,
        EventName::PaymentRejected,
    ] {
        assert!(
            matches!(append(&store, &o, name).await, AppendOutcome::Invalid(_)),
            "{name}"
        );
    }
    let (after, events) = store.get_order(&o).await.unwrap().unwrap();
    assert_eq!(after.status, "rejected");
    assert_eq!(events.len(), 1);
    assert_eq!(all_deliveries(&store, &p).await.len(), queued);
}

async fn an_endpoint_disabled_after_queueing_holds_its_deliveries(db: Db) {
    let store = db.open().await;
    let p = partner(&store).await;
    let e = endpoint(&store, &p, None).await;
    let o = order(&store, &p).await;
    let received = event(&store, &o, EventName::PaymentReceived).await;
    let d = delivery_of(&store, &p, &received).await;

    set_enabled(&store, &p, &e, false).await;
    assert!(claim(&store, LONG_LEASE_MS).await.is_empty());
    assert_eq!(store.next_due_at(&[]).await.unwrap(), None);
    assert_eq!(store.get_delivery(&d.id).await.unwrap().unwrap().0.status, "pending");

    set_enabled(&store, &p, &e, true).await;
    let claimed = claim(&store, LONG_LEASE_MS).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, d.id);
    assert_eq!(claimed[0].event_id, received.id);
    assert_eq!(claimed[0].time_stamp, received.time_stamp);
    assert_eq!(claimed[0].attempts, 0);
    let target = claimed[0].target.as_ref().expect("the endpoint is enabled");
    assert_eq!(target.url, format!("http://127.0.0.1:9/{e}"));
    assert_eq!(target.secrets, vec![format!("secret-of-{e}").into()]);

    // Deleting the endpoint ends its pending deliveries as failed.
    assert!(store.delete_endpoint(&p, &e).await.unwrap());
    assert_eq!(store.get_delivery(&d.id).await.unwrap().unwrap().0.status, "failed");
    assert_eq!(store.pending_count().await.unwrap(), 0);
}
