//! `expire_due`: every awaiting order past `expiresAt` gets exactly one
//! `payment_expired` (and its deliveries), also when several schedulers —
//! tasks of one process, or two instances on PostgreSQL — run at once.

use ramphook::domain::order::EventName;
use ramphook::domain::time::now_ms;
use ramphook::store::{AppendOutcome, DeliveryFilter};

use crate::harness::*;

on_both_backends!(
    concurrent_expiry_emits_one_payment_expired_per_order,
    expiry_and_payment_race_for_one_order,
);

async fn concurrent_expiry_emits_one_payment_expired_per_order(db: Db) {
    let stores = db.instances().await;
    let store = &stores[0];
    let p = partner(store).await;
    endpoint(store, &p, None).await;
    let mut due = Vec::new();
    for _ in 0..15 {
        due.push(order_expiring(store, &p, 0).await);
    }
    let not_yet = order_expiring(store, &p, HOUR_MS).await;
    let paid = order_expiring(store, &p, 0).await;
    event(store, &paid, EventName::PaymentReceived).await;
    assert_eq!(store.next_expiry().await.unwrap().map(|at| at <= now_ms()), Some(true));

    let mut tasks = Vec::new();
    for i in 0..6 {
        let store = stores[i % stores.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut expired = 0;
            loop {
                // Small batches, so that the tasks' batches overlap.
                match store.expire_due(now_ms(), 4).await.unwrap() {
                    0 => return expired,
                    n => expired += n,
                }
            }
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    assert_eq!(total, due.len(), "expire_due's counts add up to the orders expired");
    assert_eq!(store.expire_due(now_ms(), 100).await.unwrap(), 0);

    for o in &due {
        let (row, events) = store.get_order(o).await.unwrap().unwrap();
        assert_eq!(row.status, "expired");
        let names: Vec<_> = events.iter().map(|e| e.event_name.as_str()).collect();
        assert_eq!(names, ["payment_expired"], "order {o}");
        let filter = DeliveryFilter {
            order_id: Some(o.clone()),
            ..Default::default()
        };
        let rows = deliveries(store, &p, &filter).await;
        assert_eq!(rows.len(), 1, "order {o}: {rows:?}");
        assert_eq!(
            (rows[0].event_name.as_str(), rows[0].event_id.as_str()),
            ("payment_expired", events[0].id.as_str())
        );
    }
    assert_eq!(
        store.get_order(&not_yet).await.unwrap().unwrap().0.status,
        "awaiting_payment"
    );
    assert_eq!(store.get_order(&paid).await.unwrap().unwrap().0.status, "paid");
    assert!(store.next_expiry().await.unwrap().unwrap() > now_ms());
}

async fn expiry_and_payment_race_for_one_order(db: Db) {
    let stores = db.instances().await;
    let store = &stores[0];
    let p = partner(store).await;
    endpoint(store, &p, None).await;
    for round in 0..8 {
        let o = order_expiring(store, &p, 0).await;
        let expirer = stores[round % stores.len()].clone();
        let payer = stores[(round + 1) % stores.len()].clone();
        let id = o.clone();
        let expire = tokio::spawn(async move { expirer.expire_due(now_ms(), 10).await.unwrap() });
        let pay = tokio::spawn(async move { append(&payer, &id, EventName::PaymentReceived).await });
        let expired = expire.await.unwrap();
        let paid = matches!(pay.await.unwrap(), AppendOutcome::Appended { .. });
        assert!(expired <= 1);
        assert!(paid != (expired == 1), "round {round}: paid {paid}, expired {expired}");

        let (row, events) = store.get_order(&o).await.unwrap().unwrap();
        assert_eq!(events.len(), 1, "round {round}: {events:?}");
        let expected = if paid {
            ("paid", "payment_received")
        } else {
            ("expired", "payment_expired")
        };
        assert_eq!((row.status.as_str(), events[0].event_name.as_str()), expected);
        let filter = DeliveryFilter {
            order_id: Some(o.clone()),
            ..Default::default()
        };
        assert_eq!(deliveries(store, &p, &filter).await.len(), 1);
    }
}
