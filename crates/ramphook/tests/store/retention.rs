//! Retention (`purge_before`): finished deliveries made before the cutoff
//! go with all their attempts; pending ones, later ones and their attempts
//! stay, whatever the attempts' age.

use ramphook::domain::time::now_ms;

use crate::harness::*;

on_both_backends!(a_purge_takes_finished_deliveries_before_the_cutoff_with_their_attempts);

async fn a_purge_takes_finished_deliveries_before_the_cutoff_with_their_attempts(db: Db) {
    let store = db.open().await;
    let p = partner(&store).await;
    endpoint(&store, &p, None).await;
    let ids = paid_order_deliveries(&store, &p, 3).await;
    let [delivered, failed, pending] = [&ids[0], &ids[1], &ids[2]];
    // Each of the three gets two attempts: the first kept on its row, the
    // second a row of `attempts`.
    assert_eq!(claim_ids(&store, LONG_LEASE_MS).await.len(), 3);
    let soon = now_ms();
    store
        .record_attempts(&[
            attempt(delivered, Some(500), "pending", soon),
            attempt(failed, Some(500), "pending", soon),
            attempt(pending, Some(500), "pending", soon),
        ])
        .await
        .unwrap();
    assert_eq!(claim_ids(&store, LONG_LEASE_MS).await.len(), 3);
    store
        .record_attempts(&[
            attempt(delivered, Some(200), "delivered", 0),
            attempt(failed, None, "failed", 0),
            attempt(pending, Some(500), "pending", now_ms() + HOUR_MS),
        ])
        .await
        .unwrap();
    let cutoff = now_ms() + 1;
    // A later delivery, finished too, is younger than the cutoff (made
    // once the clock has reached it).
    while now_ms() < cutoff {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let later = paid_order_deliveries(&store, &p, 1).await.remove(0);
    assert!(ramphook::domain::ids::id_floor("dlv", cutoff) < later);
    claim_ids(&store, LONG_LEASE_MS).await;
    store
        .record_attempts(&[attempt(&later, Some(200), "delivered", 0)])
        .await
        .unwrap();

    // Two deliveries and the two attempts rows beside their own.
    assert_eq!(store.purge_before(cutoff, 100).await.unwrap(), 4);
    assert!(store.get_delivery(delivered).await.unwrap().is_none());
    assert!(store.get_delivery(failed).await.unwrap().is_none());
    let (kept, log) = store.get_delivery(pending).await.unwrap().expect("pending is kept");
    assert_eq!((kept.status.as_str(), log.len()), ("pending", 2));
    let (kept, log) = store.get_delivery(&later).await.unwrap().expect("younger is kept");
    assert_eq!((kept.status.as_str(), log.len()), ("delivered", 1));
    assert_eq!(
        store.purge_before(cutoff, 100).await.unwrap(),
        0,
        "nothing is left to purge"
    );
}
