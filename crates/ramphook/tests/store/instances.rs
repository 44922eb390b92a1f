//! Appends through one instance to orders another instance moved meanwhile
//! (PostgreSQL; on SQLite both are the one store): each is accepted or
//! refused as the database has the order, whatever this instance last wrote.

use ramphook::domain::order::{EventName, OrderStatus};
use ramphook::store::AppendOutcome;

use crate::harness::*;

on_both_backends!(an_order_moved_by_another_instance_is_judged_as_the_database_has_it);

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
        let (_, events) = here.get_order(order).await.unwrap().unwrap();
        let names: Vec<_> = events.iter().map(|e| e.event_name.as_str()).collect();
        assert_eq!(names, expected, "order {order}");
        assert_eq!(
            all_deliveries_of(here, &p, order).await,
            expected.len(),
            "order {order}"
        );
    }
}

async fn all_deliveries_of(store: &ramphook::store::Store, partner: &str, order: &str) -> usize {
    let filter = ramphook::store::DeliveryFilter {
        order_id: Some(order.to_owned()),
        ..Default::default()
    };
    deliveries(store, partner, &filter).await.len()
}
