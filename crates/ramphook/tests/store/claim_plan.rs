//! A claim on a full queue reads each endpoint's due deliveries in due order
//! and stops at its limit, also once PostgreSQL's statistics know the queue
//! is full (a plan that read and sorted every due row made a 100,000-row
//! backlog drain at less than half its speed; see `first_in_lane`).

use std::time::Duration;

use ramphook::domain::order::EventName;

use crate::harness::*;

on_both_backends!(a_full_queue_is_claimed_through_the_due_index_up_to_the_limit);

async fn a_full_queue_is_claimed_through_the_due_index_up_to_the_limit(db: Db) {
    let store = db.open().await;
    if !db.is_postgres() {
        assert!(
            store.claim_plan(256, 64).await.unwrap().is_none(),
            "SQLite has no plan to show"
        );
        return;
    }
    let p = partner(&store).await;
    endpoint(&store, &p, None).await;
    for _ in 0..2000 {
        let o = order(&store, &p).await;
        event(&store, &o, EventName::PaymentReceived).await;
    }
    // As the maintenance task does once the queue has grown: row counts
    // reach PostgreSQL's statistics views within seconds.
    tokio::time::timeout(Duration::from_secs(30), async {
        while !store
            .refresh_planner_statistics()
            .await
            .unwrap()
            .contains(&"deliveries")
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("2,000 pending deliveries were never analysed");
    let plan = store.claim_plan(256, 64).await.unwrap().unwrap();
    assert!(
        plan.contains("Index Scan using deliveries_endpoint_due on deliveries x") && !plan.contains("Sort Key: x."),
        "the claim reads the due index in order and stops at the limit, not every due row sorted:\n{plan}"
    );
    assert_eq!(store.claim_due(256, 64, LONG_LEASE_MS, &[]).await.unwrap().len(), 64);
}
