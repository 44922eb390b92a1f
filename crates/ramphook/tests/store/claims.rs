//! Claim leases: a claimed delivery is not claimed again until its lease runs
//! out or it is released, also by another instance at the same moment; and
//! `next_due_at` tells the dispatcher when to look again.

use std::collections::HashSet;

use ramphook::domain::order::EventName;
use ramphook::domain::time::now_ms;
use ramphook::store::Backend;

use crate::harness::*;

on_both_backends!(
    a_leased_delivery_is_not_claimed_again,
    an_expired_lease_makes_it_claimable,
    release_makes_it_claimable_at_once,
    concurrent_claimers_never_share_a_delivery,
    next_due_at_is_the_earliest_future_due_time,
    a_claim_takes_at_most_a_lane_per_endpoint_and_skips_full_lanes,
);

/// A partner with one endpoint and `n` orders, each with a payment_received
/// delivery; returns (partner, endpoint, delivery ids, sorted).
async fn queued(store: &ramphook::store::Store, n: usize) -> (String, String, Vec<String>) {
    let p = partner(store).await;
    let e = endpoint(store, &p, None).await;
    for _ in 0..n {
        let o = order(store, &p).await;
        event(store, &o, EventName::PaymentReceived).await;
    }
    let mut ids: Vec<String> = all_deliveries(store, &p).await.into_iter().map(|d| d.id).collect();
    ids.sort();
    (p, e, ids)
}

async fn a_leased_delivery_is_not_claimed_again(db: Db) {
    let store = db.open().await;
    let (_, _, ids) = queued(&store, 3).await;
    let first = store.claim_due(2, 2, LONG_LEASE_MS, &[]).await.unwrap();
    assert_eq!(first.len(), 2, "claim_due honours its limit");
    let rest = claim_ids(&store, LONG_LEASE_MS).await;
    assert_eq!(rest.len(), 1);
    let mut all: Vec<String> = first.iter().map(|c| c.id.clone()).chain(rest).collect();
    all.sort();
    assert_eq!(all, ids);
    assert!(
        claim(&store, LONG_LEASE_MS).await.is_empty(),
        "leased deliveries were claimed again"
    );
}

async fn an_expired_lease_makes_it_claimable(db: Db) {
    let store = db.open().await;
    let (_, _, ids) = queued(&store, 1).await;
    // A lease of 0 ms has run out by the next claim (times are wall-clock).
    assert_eq!(claim_ids(&store, 0).await, ids);
    assert_eq!(
        claim_ids(&store, LONG_LEASE_MS).await,
        ids,
        "an expired lease still held"
    );
    assert!(claim(&store, LONG_LEASE_MS).await.is_empty());
}

async fn release_makes_it_claimable_at_once(db: Db) {
    let store = db.open().await;
    let (p, _, ids) = queued(&store, 2).await;
    assert_eq!(claim_ids(&store, LONG_LEASE_MS).await, ids);
    store.release(&ids[..1]).await.unwrap();
    assert_eq!(claim_ids(&store, LONG_LEASE_MS).await, ids[..1].to_vec());
    store.release(&[]).await.unwrap();

    // Releasing a finished delivery does not bring it back.
    store
        .record_attempts(&[attempt(&ids[1], Some(200), "delivered", now_ms())])
        .await
        .unwrap();
    store.release(&ids).await.unwrap();
    assert_eq!(claim_ids(&store, LONG_LEASE_MS).await, ids[..1].to_vec());
    let statuses: Vec<_> = all_deliveries(&store, &p).await.into_iter().map(|d| d.status).collect();
    assert_eq!(statuses.iter().filter(|s| *s == "delivered").count(), 1, "{statuses:?}");

    // release_all_leases (SQLite start-up) frees every lease.
    assert!(claim(&store, LONG_LEASE_MS).await.is_empty());
    store.release_all_leases().await.unwrap();
    assert_eq!(claim_ids(&store, LONG_LEASE_MS).await, ids[..1].to_vec());
}

async fn concurrent_claimers_never_share_a_delivery(db: Db) {
    let stores = db.instances().await;
    let (_, _, ids) = queued(&stores[0], 24).await;
    let mut tasks = Vec::new();
    for i in 0..6 {
        let store = stores[i % stores.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store.claim_due(2, 2, LONG_LEASE_MS, &[]).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|c| c.id));
            }
        }));
    }
    let mut seen = HashSet::new();
    for task in tasks {
        for id in task.await.unwrap() {
            assert!(seen.insert(id.clone()), "{id} was claimed twice");
        }
    }
    let expected: HashSet<String> = ids.into_iter().collect();
    assert_eq!(seen, expected);
    for store in &stores {
        assert!(claim(store, LONG_LEASE_MS).await.is_empty());
    }
}

async fn next_due_at_is_the_earliest_future_due_time(db: Db) {
    let store = db.open().await;
    assert_eq!(store.next_due_at(&[]).await.unwrap(), None);
    let p = partner(&store).await;
    let e = endpoint(&store, &p, None).await;
    let o = order(&store, &p).await;
    let received = event(&store, &o, EventName::PaymentReceived).await;
    let d1 = delivery_of(&store, &p, &received).await;
    // Due now: the claim takes it; there is nothing to wait for.
    assert_eq!(store.next_due_at(&[]).await.unwrap(), None);
    assert_eq!(claim_ids(&store, LONG_LEASE_MS).await, vec![d1.id.clone()]);

    // Retry scheduled in an hour; the next event of the order waits behind
    // it (due now, not claimable): the hour is when to look again.
    let later = now_ms() + HOUR_MS;
    store
        .record_attempts(&[attempt(&d1.id, Some(503), "pending", later)])
        .await
        .unwrap();
    event(&store, &o, EventName::CryptoTxSent).await;
    let empty = store.claim(100, 100, LONG_LEASE_MS, &[]).await.unwrap();
    assert!(empty.deliveries.is_empty());
    assert_eq!(
        empty.next_due_at,
        Some(later),
        "an empty claim answers when to look again"
    );
    assert_eq!(store.next_due_at(&[]).await.unwrap(), Some(later));
    assert_eq!(
        store.next_due_at(std::slice::from_ref(&e)).await.unwrap(),
        None,
        "a skipped endpoint is not read"
    );

    // Once the first is delivered, the second is claimable at once.
    store
        .record_attempts(&[attempt(&d1.id, Some(200), "delivered", later)])
        .await
        .unwrap();
    assert_eq!(store.next_due_at(&[]).await.unwrap(), None);
    let d2 = store.claim(100, 100, LONG_LEASE_MS, &[]).await.unwrap();
    assert_eq!(d2.next_due_at, None, "a claim that took something does not look ahead");
    let d2 = d2.deliveries;
    assert_eq!(d2.len(), 1);
    store
        .record_attempts(&[attempt(&d2[0].id, None, "failed", now_ms())])
        .await
        .unwrap();
    assert_eq!(store.next_due_at(&[]).await.unwrap(), None, "nothing is pending");
}

async fn a_claim_takes_at_most_a_lane_per_endpoint_and_skips_full_lanes(db: Db) {
    let store = db.open().await;
    let p = partner(&store).await;
    let first = endpoint(&store, &p, None).await;
    let second = endpoint(&store, &p, None).await;
    for _ in 0..5 {
        let o = order(&store, &p).await;
        event(&store, &o, EventName::PaymentReceived).await;
    }
    // Ten due (five per endpoint). SQLite takes at most a lane's room (two)
    // per endpoint; PostgreSQL's claim has no per-endpoint cap.
    let claimed = store.claim_due(4, 2, LONG_LEASE_MS, &[]).await.unwrap();
    let per = |e: &str| claimed.iter().filter(|c| c.endpoint_id == e).count();
    if store.backend() == Backend::Sqlite {
        assert_eq!((per(&first), per(&second)), (2, 2), "{claimed:?}");
    } else {
        assert_eq!(claimed.len(), 4, "{claimed:?}");
    }
    let left_for_second = 5 - per(&second);
    let left_for_first = 5 - per(&first);

    // A skipped endpoint (its lane is full) gives nothing, the other its room.
    let claimed = store
        .claim_due(10, 10, LONG_LEASE_MS, std::slice::from_ref(&first))
        .await
        .unwrap();
    assert!(claimed.iter().all(|c| c.endpoint_id == second), "{claimed:?}");
    assert_eq!(claimed.len(), left_for_second);
    let both = [first.clone(), second.clone()];
    assert_eq!(
        store.next_due_at(&both).await.unwrap(),
        None,
        "skipped endpoints' rows (some due now) must not count"
    );
    let rest = store.claim_due(10, 10, LONG_LEASE_MS, &[]).await.unwrap();
    assert_eq!(rest.len(), left_for_first);
    assert!(rest.iter().all(|c| c.endpoint_id == first));
}
