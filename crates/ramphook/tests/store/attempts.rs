//! Attempt results as the dispatcher records them (delivered, pending with
//! the next time, failed; the attempts log) and `retry_now`, the manual retry.

use ramphook::domain::order::EventName;
use ramphook::domain::time::now_ms;
use ramphook::store::AttemptResult;

use crate::harness::*;

on_both_backends!(
    record_attempts_moves_deliveries_and_logs_every_attempt,
    a_recorded_attempt_ends_the_lease,
    retry_now_makes_any_delivery_due_at_once,
    retry_now_refuses_a_delivery_whose_endpoint_was_deleted,
    a_late_result_leaves_a_failed_delivery_failed_and_the_last_outcome_sets_health,
);

async fn record_attempts_moves_deliveries_and_logs_every_attempt(db: Db) {
    let store = db.open().await;
    let p = partner(&store).await;
    endpoint(&store, &p, None).await;
    let ids = paid_order_deliveries(&store, &p, 3).await;
    assert_eq!(claim_ids(&store, LONG_LEASE_MS).await.len(), 3);

    // One batch, three outcomes.
    let retry_at = now_ms() + HOUR_MS;
    let batch = [
        attempt(&ids[0], Some(200), "delivered", 0),
        attempt(&ids[1], Some(500), "pending", retry_at),
        attempt(&ids[2], None, "failed", 0),
    ];
    store.record_attempts(&batch).await.unwrap();

    let (delivered, log) = store.get_delivery(&ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (
            delivered.status.as_str(),
            delivered.attempts,
            delivered.last_status_code
        ),
        ("delivered", 1, Some(200))
    );
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].at, batch[0].at);
    assert_eq!(log[0].status_code, Some(200));
    assert_eq!(log[0].duration_ms, 12);
    assert_eq!(log[0].error, None);
    assert_eq!(log[0].response_body.as_deref(), Some("answered 200"));

    let (pending, log) = store.get_delivery(&ids[1]).await.unwrap().unwrap();
    assert_eq!(
        (
            pending.status.as_str(),
            pending.attempts,
            pending.next_attempt_at,
            pending.last_status_code
        ),
        ("pending", 1, retry_at, Some(500))
    );
    assert_eq!(log.len(), 1);

    let (failed, log) = store.get_delivery(&ids[2]).await.unwrap().unwrap();
    assert_eq!(
        (failed.status.as_str(), failed.attempts, failed.last_status_code),
        ("failed", 1, None)
    );
    assert_eq!(log[0].status_code, None);
    assert_eq!(log[0].error.as_deref(), Some("connection refused"));
    assert_eq!(log[0].response_body, None);

    // Nothing is due: delivered and failed are done, the retry is in an hour.
    assert!(claim(&store, 0).await.is_empty());
    assert_eq!(store.pending_count().await.unwrap(), 1);
    assert_eq!(store.next_due_at(&[]).await.unwrap(), Some(retry_at));

    // The second attempt of the retried one: the log keeps both, oldest first.
    assert!(store.retry_now(&ids[1]).await.unwrap());
    let claimed = claim(&store, LONG_LEASE_MS).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!((claimed[0].id.as_str(), claimed[0].attempts), (ids[1].as_str(), 1));
    let second = attempt(&ids[1], Some(201), "delivered", 0);
    store.record_attempts(std::slice::from_ref(&second)).await.unwrap();
    let (row, log) = store.get_delivery(&ids[1]).await.unwrap().unwrap();
    assert_eq!(
        (row.status.as_str(), row.attempts, row.last_status_code),
        ("delivered", 2, Some(201))
    );
    let codes: Vec<_> = log.iter().map(|a| a.status_code).collect();
    assert_eq!(codes, [Some(500), Some(201)]);
    assert!(log[0].at <= log[1].at);
    assert_eq!(store.pending_count().await.unwrap(), 0);
}

async fn a_recorded_attempt_ends_the_lease(db: Db) {
    let store = db.open().await;
    let p = partner(&store).await;
    endpoint(&store, &p, None).await;
    let o = order(&store, &p).await;
    let d = delivery_of(&store, &p, &event(&store, &o, EventName::PaymentReceived).await).await;
    assert_eq!(claim_ids(&store, LONG_LEASE_MS).await, vec![d.id.clone()]);
    // Failed with an immediate retry: due now although the lease had a minute left.
    store
        .record_attempts(&[attempt(&d.id, Some(503), "pending", now_ms())])
        .await
        .unwrap();
    let again = claim(&store, LONG_LEASE_MS).await;
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id.as_str(), again[0].attempts), (d.id.as_str(), 1));
}

async fn retry_now_makes_any_delivery_due_at_once(db: Db) {
    let store = db.open().await;
    let p = partner(&store).await;
    endpoint(&store, &p, None).await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let o = order(&store, &p).await;
        ids.push(
            delivery_of(&store, &p, &event(&store, &o, EventName::PaymentReceived).await)
                .await
                .id,
        );
    }
    assert_eq!(claim_ids(&store, LONG_LEASE_MS).await.len(), 4);
    // ids[0] failed, ids[1] delivered, ids[2] retrying in an hour, ids[3] leased.
    store
        .record_attempts(&[
            attempt(&ids[0], Some(500), "failed", 0),
            attempt(&ids[1], Some(200), "delivered", 0),
            attempt(&ids[2], Some(500), "pending", now_ms() + HOUR_MS),
        ])
        .await
        .unwrap();
    assert!(claim(&store, LONG_LEASE_MS).await.is_empty());

    for id in &ids {
        assert!(store.retry_now(id).await.unwrap(), "{id}");
    }
    assert!(!store.retry_now("dlv_does_not_exist").await.unwrap());
    for id in &ids {
        let (row, _) = store.get_delivery(id).await.unwrap().unwrap();
        assert_eq!(row.status, "pending", "{id}");
        assert!(row.next_attempt_at <= now_ms(), "{id}");
    }
    // The leased one keeps its lease: a retry does not double an attempt in flight.
    let mut expected = ids[..3].to_vec();
    expected.sort();
    assert_eq!(claim_ids(&store, LONG_LEASE_MS).await, expected);
}

async fn retry_now_refuses_a_delivery_whose_endpoint_was_deleted(db: Db) {
    let store = db.open().await;
    let p = partner(&store).await;
    let e = endpoint(&store, &p, None).await;
    let o = order(&store, &p).await;
    let d = delivery_of(&store, &p, &event(&store, &o, EventName::PaymentReceived).await)
        .await
        .id;
    assert_eq!(claim_ids(&store, LONG_LEASE_MS).await, vec![d.clone()]);
    assert!(store.delete_endpoint(&p, &e).await.unwrap());
    // The in-flight attempt's result must not revive it.
    store
        .record_attempts(&[attempt(&d, Some(500), "pending", now_ms())])
        .await
        .unwrap();
    let (row, _) = store.get_delivery(&d).await.unwrap().unwrap();
    assert_eq!(row.status, "failed");
    assert!(!store.retry_now(&d).await.unwrap());
    assert_eq!(store.get_delivery(&d).await.unwrap().unwrap().0.status, "failed");
}

async fn a_late_result_leaves_a_failed_delivery_failed_and_the_last_outcome_sets_health(db: Db) {
    let store = db.open().await;
    let p = partner(&store).await;
    let (sick, healthy, gone) = (
        endpoint(&store, &p, None).await,
        endpoint(&store, &p, None).await,
        endpoint(&store, &p, None).await,
    );
    let o = order(&store, &p).await;
    store
        .append_event(&o, EventName::PaymentReceived, None, None, None, |_, _| {
            (201, String::new())
        })
        .await
        .unwrap();
    let claimed = claim(&store, LONG_LEASE_MS).await;
    assert_eq!(claimed.len(), 3);
    let of = |endpoint: &str| claimed.iter().find(|d| d.endpoint_id == endpoint).unwrap().id.clone();
    // Its endpoint deleted while the attempt ran: the delivery failed.
    assert!(store.delete_endpoint(&p, &gone).await.unwrap());

    let result = |delivery: String, endpoint: &str, code: Option<u16>, status| AttemptResult {
        endpoint_id: endpoint.to_owned(),
        ..attempt(&delivery, code, status, now_ms() + HOUR_MS)
    };
    // One batch: `sick` failed twice, `healthy` failed and then succeeded.
    store
        .record_attempts(&[
            result(of(&healthy), &healthy, Some(500), "pending"),
            result(of(&sick), &sick, Some(500), "pending"),
            result(of(&gone), &gone, Some(200), "delivered"),
            result(of(&healthy), &healthy, Some(200), "delivered"),
        ])
        .await
        .unwrap();

    let (late, log) = store.get_delivery(&of(&gone)).await.unwrap().unwrap();
    assert_eq!(late.status, "failed", "a late success does not revive it");
    assert_eq!(log.len(), 1, "the attempt is still logged");
    // Two results of one delivery in one batch (its lease ran out while the
    // first was in flight): both logged, in order, the last one decides.
    let (twice, log) = store.get_delivery(&of(&healthy)).await.unwrap().unwrap();
    assert_eq!((twice.status.as_str(), twice.attempts), ("delivered", 2));
    let codes: Vec<_> = log.iter().map(|a| a.status_code).collect();
    assert_eq!(codes, [Some(500), Some(200)]);
    let health = |id: String| {
        let (store, p) = (store.clone(), p.clone());
        async move { store.get_endpoint(&p, &id).await.unwrap().unwrap().failing_since }
    };
    assert!(
        health(sick.clone()).await.is_some(),
        "a failure starts a run of failures"
    );
    assert_eq!(health(healthy.clone()).await, None, "the last outcome counts");

    // A later batch: `sick` answers at last, and its run of failures ends.
    store
        .record_attempts(&[result(of(&sick), &sick, Some(200), "delivered")])
        .await
        .unwrap();
    assert_eq!(health(sick.clone()).await, None, "a success ends a run of failures");
}
