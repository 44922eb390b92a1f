//! Appends through one instance to orders another instance moved meanwhile
//! (PostgreSQL; on SQLite both are the one store): each is accepted or
//! refused as the database has the order, whatever this instance last wrote.

use ramphook::domain::order::{Direction, EventName, OrderStatus};
use ramphook::store::{AppendOutcome, Replayable};

use crate::harness::*;

on_both_backends!(
    an_order_moved_by_another_instance_is_judged_as_the_database_has_it,
    appends_at_once_to_orders_this_instance_never_saw_each_plan_from_their_own_order,
    keyed_appends_at_once_each_find_their_own_stored_answer,
    appends_to_orders_this_instance_never_saw_are_judged_as_the_state_machine_would,
);

async fn an_order_moved_by_another_instance_is_judged_as_the_database_has_it(db: Db) {
    let stores = db.instances().await;
    let (here, elsewhere) = (&stores[0], &stores[stores.len() - 1]);
    let p = partner(here).await;
    endpoint(here, &p, None).await;

    // Created here, so this instance last saw it awaiting payment.
    let paid_elsewhere = order(here, &p).await;
    event(elsewhere, &paid_elsewhere, EventName::PaymentReceived).await;
    // Refused from awaiting payment, allowed from where the order really is.
    event(here, &paid_elsewhere, EventName::CryptoTxSent).await;
    event(here, &paid_elsewhere, EventName::CryptoDelivered).await;

    let also_paid_elsewhere = order(here, &p).await;
    event(elsewhere, &also_paid_elsewhere, EventName::PaymentReceived).await;
    // Allowed from awaiting payment, refused from where the order really is.
    let AppendOutcome::Invalid(refused) = append(here, &also_paid_elsewhere, EventName::PaymentReceived).await else {
        panic!("a second payment_received was not refused");
    };
    assert_eq!(refused.from, OrderStatus::Paid);

    for (order, expected) in [
        (
            &paid_elsewhere,
            &["payment_received", "crypto_tx_sent", "crypto_delivered"][..],
        ),
        (&also_paid_elsewhere, &["payment_received"][..]),
    ] {
        assert_events(here, &p, order, expected).await;
    }
}

/// The other instance kept none of these orders, so each append plans from
/// a read, and reads made at once share statements (`pg_append_reader.rs`):
/// each must still get its own order, and a missing one its absence.
async fn appends_at_once_to_orders_this_instance_never_saw_each_plan_from_their_own_order(db: Db) {
    let stores = db.instances().await;
    let (here, elsewhere) = (&stores[0], &stores[stores.len() - 1]);
    let (p, orders) = partner_with_orders(here, 40).await;
    let appends = orders
        .iter()
        .map(|order| append(elsewhere, order, EventName::PaymentReceived));
    let missing = append(
        elsewhere,
        "0190b8a8-0000-7000-8000-000000000000",
        EventName::PaymentReceived,
    );
    let (outcomes, missing) = futures_util::future::join(futures_util::future::join_all(appends), missing).await;
    for (asked, outcome) in orders.iter().zip(outcomes) {
        let AppendOutcome::Appended { event, order } = outcome else {
            panic!("{asked}: not appended");
        };
        assert_eq!((&order.id, &event.order_id), (asked, asked));
        assert_eq!(order.status, "paid");
        assert_eq!(all_deliveries_of(here, &p, asked).await, 1, "order {asked}");
    }
    assert!(matches!(missing, AppendOutcome::NoSuchOrder));
}

/// Appends at once with keys, through the instance that did not make them:
/// their key lookups share statements too (`pg_append_reader.rs`). Each
/// repeated request is answered with its own stored answer, a key reused
/// for another request is refused, and nothing is written twice.
async fn keyed_appends_at_once_each_find_their_own_stored_answer(db: Db) {
    let stores = db.instances().await;
    let (here, elsewhere) = (&stores[0], &stores[stores.len() - 1]);
    let (p, orders) = partner_with_orders(here, 20).await;
    let key = |order: &str, hash: &str| ramphook::store::Idempotency {
        scope: format!("events:{order}"),
        key: "paid".into(),
        request_hash: hash.into(),
    };
    let keyed = |store: &ramphook::store::Store, order: String, hash: &'static str| {
        let store = store.clone();
        async move {
            let k = key(&order, hash);
            let answer = store
                .append_event(&order, EventName::PaymentReceived, None, None, Some(&k), |e, o| {
                    (201, format!("{} {}", e.id, o.id))
                })
                .await
                .unwrap();
            (order, answer)
        }
    };
    let first = futures_util::future::join_all(orders.iter().map(|o| keyed(here, o.clone(), "a"))).await;
    let bodies: std::collections::HashMap<String, String> = first
        .into_iter()
        .map(|(order, answer)| match answer {
            Replayable::Fresh((AppendOutcome::Appended { .. }, 201, body)) => (order, body),
            _ => panic!("{order}: not appended"),
        })
        .collect();
    // Again at once elsewhere: the same requests, and every other order's
    // key with another request.
    let again = orders
        .iter()
        .enumerate()
        .map(|(n, o)| keyed(elsewhere, o.clone(), if n % 2 == 0 { "a" } else { "b" }));
    for (n, (order, answer)) in futures_util::future::join_all(again).await.into_iter().enumerate() {
        match answer {
            Replayable::Replay { status: 201, body } if n % 2 == 0 => assert_eq!(body, bodies[&order]),
            Replayable::KeyReused if n % 2 == 1 => {}
            _ => panic!("{order}: neither its replay nor a refusal of the reused key"),
        }
        assert!(
            bodies[&order].ends_with(&order),
            "{order}: answered with another order's answer"
        );
        assert_eq!(all_deliveries_of(here, &p, &order).await, 1, "order {order}");
    }
}

/// On PostgreSQL an append without a key to an order this instance did not
/// keep is not planned from a read: the statement checks the event's guard
/// (which statuses it leaves, which direction it needs) and answers the
/// order. Each refusal and acceptance must still be the state machine's,
/// with nothing written for a refusal, and the answer rendered from the
/// order as stored.
async fn appends_to_orders_this_instance_never_saw_are_judged_as_the_state_machine_would(db: Db) {
    let stores = db.instances().await;
    let (here, elsewhere) = (&stores[0], &stores[stores.len() - 1]);
    let p = partner(elsewhere).await;
    endpoint(elsewhere, &p, None).await;
    let awaiting = order(elsewhere, &p).await;
    let off_ramp_paid = fresh(
        elsewhere
            .create_order(
                ramphook::store::NewOrder {
                    direction: Direction::OffRamp,
                    ..new_order(&p, HOUR_MS)
                },
                None,
                |_| (201, String::new()),
            )
            .await
            .unwrap(),
    )
    .0
    .id;
    event(elsewhere, &off_ramp_paid, EventName::PaymentReceived).await;
    let failed = order(elsewhere, &p).await;
    for name in [
        EventName::PaymentReceived,
        EventName::CryptoTxSent,
        EventName::CryptoTxFailed,
    ] {
        event(elsewhere, &failed, name).await;
    }

    // Not from awaiting payment: refused, naming what is allowed.
    let AppendOutcome::Invalid(refused) = append(here, &awaiting, EventName::CryptoDelivered).await else {
        panic!("crypto_delivered on an order awaiting payment was not refused");
    };
    assert_eq!(refused.from, OrderStatus::AwaitingPayment);
    assert_eq!(
        refused.allowed,
        [
            EventName::PaymentReceived,
            EventName::PaymentRejected,
            EventName::PaymentExpired
        ]
    );
    // An off-ramp's paid is final: crypto_tx_sent leaves "paid" on on-ramps only.
    let AppendOutcome::Invalid(refused) = append(here, &off_ramp_paid, EventName::CryptoTxSent).await else {
        panic!("crypto_tx_sent on a paid off-ramp was not refused");
    };
    assert_eq!((refused.from, refused.allowed.len()), (OrderStatus::Paid, 0));
    assert!(matches!(
        append(here, "0190b8a8-0000-7000-8000-000000000000", EventName::PaymentReceived).await,
        AppendOutcome::NoSuchOrder
    ));

    // Sent again after failing: one of the two statuses crypto_tx_sent leaves.
    let answer = here
        .append_event(&failed, EventName::CryptoTxSent, None, None, None, |e, o| {
            (
                201,
                format!("{} {} {} {} {}", e.id, o.id, o.status, o.email, o.updated_at),
            )
        })
        .await
        .unwrap();
    let (
        AppendOutcome::Appended {
            event: sent,
            order: answered,
        },
        201,
        body,
    ) = fresh(answer)
    else {
        panic!("crypto_tx_sent after crypto_tx_failed was not appended");
    };
    let (stored, _) = here.get_order(&failed).await.unwrap().unwrap();
    assert_eq!(stored.status, "crypto_sent");
    assert_eq!(
        body,
        format!(
            "{} {failed} crypto_sent alice@example.com {}",
            sent.id, stored.updated_at
        )
    );
    assert_eq!(
        (
            &answered.partner_id,
            &answered.direction,
            &answered.fiat_amount,
            answered.created_at,
            answered.expires_at
        ),
        (
            &stored.partner_id,
            &stored.direction,
            &stored.fiat_amount,
            stored.created_at,
            stored.expires_at
        )
    );
    assert_eq!(sent.time_stamp, stored.updated_at);

    for (order, expected) in [
        (&awaiting, &[][..]),
        (&off_ramp_paid, &["payment_received"][..]),
        (
            &failed,
            &[
                "payment_received",
                "crypto_tx_sent",
                "crypto_tx_failed",
                "crypto_tx_sent",
            ][..],
        ),
    ] {
        assert_events(here, &p, order, expected).await;
    }
    let (refused_order, _) = here.get_order(&awaiting).await.unwrap().unwrap();
    assert_eq!(refused_order.status, "awaiting_payment");
}

/// A partner with one endpoint and `count` orders, made through `store`.
async fn partner_with_orders(store: &ramphook::store::Store, count: usize) -> (String, Vec<String>) {
    let p = partner(store).await;
    endpoint(store, &p, None).await;
    let mut orders = Vec::with_capacity(count);
    for _ in 0..count {
        orders.push(order(store, &p).await);
    }
    (p, orders)
}

/// `order` has exactly the events `expected`, each with its one delivery.
async fn assert_events(store: &ramphook::store::Store, partner: &str, order: &str, expected: &[&str]) {
    let (_, events) = store.get_order(order).await.unwrap().unwrap();
    let names: Vec<_> = events.iter().map(|e| e.event_name.as_str()).collect();
    assert_eq!(names, expected, "order {order}");
    assert_eq!(
        all_deliveries_of(store, partner, order).await,
        expected.len(),
        "order {order}"
    );
}

async fn all_deliveries_of(store: &ramphook::store::Store, partner: &str, order: &str) -> usize {
    let filter = ramphook::store::DeliveryFilter {
        order_id: Some(order.to_owned()),
        ..Default::default()
    };
    deliveries(store, partner, &filter).await.len()
}
