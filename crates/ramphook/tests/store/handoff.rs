//! Hand-off: while the dispatcher offers room, an append leases the
//! deliveries it creates and hands them over with their targets, so no claim
//! is needed — but never one queued behind an earlier pending delivery of its
//! order to that endpoint, nor one for an endpoint the dispatcher skips.
//! Those for a skipped endpoint wait for its lane to move; the others ask
//! for a claim at once.

use ramphook::domain::order::EventName;
use ramphook::domain::time::now_ms;

use crate::harness::*;

on_both_backends!(
    an_append_hands_over_what_it_leased_and_a_claim_finds_nothing,
    nothing_is_leased_without_room,
    a_delivery_behind_a_pending_one_of_its_order_is_left_for_a_claim,
    skipped_endpoints_are_left_for_a_claim,
);

async fn an_append_hands_over_what_it_leased_and_a_claim_finds_nothing(db: Db) {
    let store = db.open().await;
    let p = partner(&store).await;
    let (a, b) = (endpoint(&store, &p, None).await, endpoint(&store, &p, None).await);
    let o = order(&store, &p).await;
    store.handoff().open(10, LONG_LEASE_MS, &[]);
    let e = event(&store, &o, EventName::PaymentReceived).await;
    let mut handed = store.handoff().take();
    handed.sort_by(|x, y| x.endpoint_id.cmp(&y.endpoint_id));
    let mut endpoints = vec![a.clone(), b.clone()];
    endpoints.sort();
    assert_eq!(
        handed.iter().map(|d| d.endpoint_id.clone()).collect::<Vec<_>>(),
        endpoints
    );
    for d in &handed {
        assert_eq!((d.event_id.as_str(), d.order_id.as_str()), (e.id.as_str(), o.as_str()));
        assert_eq!(
            (d.event_name.as_str(), d.time_stamp, d.attempts),
            ("payment_received", e.time_stamp, 0)
        );
        let target = d.target.as_ref().expect("an enabled endpoint's target");
        assert!(target.url.ends_with(&d.endpoint_id), "{}", target.url);
        assert_eq!(
            target.secrets,
            [format!("secret-of-{}", d.endpoint_id).into()],
            "secrets are opened"
        );
    }
    assert!(
        !store.handoff().take_claim_wanted(),
        "all were handed over: no claim is asked for"
    );
    assert!(
        claim(&store, LONG_LEASE_MS).await.is_empty(),
        "handed deliveries are leased"
    );
    assert!(store.handoff().take().is_empty(), "handed once");
}

async fn nothing_is_leased_without_room(db: Db) {
    let store = db.open().await;
    let p = partner(&store).await;
    endpoint(&store, &p, None).await;
    let o = order(&store, &p).await;
    event(&store, &o, EventName::PaymentReceived).await;
    assert!(
        store.handoff().take().is_empty(),
        "no dispatcher opened: nothing leased"
    );
    assert!(store.handoff().take_claim_wanted(), "a claim is asked for at once");
    assert_eq!(claim(&store, LONG_LEASE_MS).await.len(), 1);

    store.handoff().open(10, LONG_LEASE_MS, &[]);
    store.handoff().close();
    let o = order(&store, &p).await;
    event(&store, &o, EventName::PaymentReceived).await;
    assert!(store.handoff().take().is_empty(), "closed: nothing leased");
    assert!(store.handoff().take_claim_wanted(), "a claim is asked for at once");
    assert_eq!(claim(&store, LONG_LEASE_MS).await.len(), 1);
}

async fn a_delivery_behind_a_pending_one_of_its_order_is_left_for_a_claim(db: Db) {
    let store = db.open().await;
    let p = partner(&store).await;
    let ep = endpoint(&store, &p, None).await;
    let o = order(&store, &p).await;
    let first = event(&store, &o, EventName::PaymentReceived).await;
    assert!(store.handoff().take_claim_wanted(), "no room offered: a claim at once");
    assert_eq!(
        claim(&store, LONG_LEASE_MS).await.len(),
        1,
        "the first goes out by claim"
    );

    store.handoff().open(10, LONG_LEASE_MS, &[]);
    let second = event(&store, &o, EventName::CryptoTxSent).await;
    assert!(
        store.handoff().take().is_empty(),
        "the first is still pending: the second must wait its turn"
    );
    assert!(
        store.handoff().take_claim_wanted(),
        "a claim is asked for at once: the first may have finished meanwhile"
    );
    assert!(
        !store.handoff().left_in_any_lane([ep.as_str()], 0, now_ms()),
        "its lane was not skipped"
    );
    let first_delivery = delivery_of(&store, &p, &first).await;
    store
        .record_attempts(&[attempt(&first_delivery.id, Some(200), "delivered", 0)])
        .await
        .unwrap();
    let claimed = claim(&store, LONG_LEASE_MS).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].event_id, second.id, "then a claim takes it");
}

async fn skipped_endpoints_are_left_for_a_claim(db: Db) {
    let store = db.open().await;
    let p = partner(&store).await;
    let (open, skipped) = (endpoint(&store, &p, None).await, endpoint(&store, &p, None).await);
    store.handoff().open(10, LONG_LEASE_MS, &[&skipped]);
    let o = order(&store, &p).await;
    event(&store, &o, EventName::PaymentReceived).await;
    let handed: Vec<String> = store.handoff().take().into_iter().map(|d| d.endpoint_id).collect();
    assert_eq!(handed, std::slice::from_ref(&open));
    assert!(
        !store.handoff().take_claim_wanted(),
        "no claim at once: the skipped lane has no room"
    );
    assert!(
        store.handoff().left_in_any_lane([skipped.as_str()], 0, now_ms()),
        "its lane is marked: a result from it asks for a claim"
    );
    assert!(
        !store.handoff().left_in_any_lane([open.as_str()], 0, now_ms()),
        "the other lane is not"
    );
    let claimed: Vec<String> = claim(&store, LONG_LEASE_MS)
        .await
        .into_iter()
        .map(|d| d.endpoint_id)
        .collect();
    assert_eq!(claimed, [skipped]);
}
