//! PostgreSQL's writer: attempt results and event appends that wait at the
//! same time are written by one statement. A delivery that statement
//! finishes no longer holds back the next delivery of its order (which is
//! leased and handed over at once); one it schedules for a retry still does.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use ramphook::domain::order::EventName;
use ramphook::domain::time::now_ms;
use sqlx::{Connection, PgConnection};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn results_and_appends_waiting_together_are_one_statement() {
    let Some(db) = Db::postgres().await else { return };
    let store = db.open().await;
    let p = partner(&store).await;
    endpoint(&store, &p, None).await;
    let (finished, retried, stalled) = (
        order(&store, &p).await,
        order(&store, &p).await,
        order(&store, &p).await,
    );
    let finished_first = delivery_of(&store, &p, &event(&store, &finished, EventName::PaymentReceived).await).await;
    let retried_first = delivery_of(&store, &p, &event(&store, &retried, EventName::PaymentReceived).await).await;
    assert_eq!(
        claim_ids(&store, LONG_LEASE_MS).await,
        sorted(&[&finished_first.id, &retried_first.id])
    );
    store.handoff().open(10, LONG_LEASE_MS, &[]);

    // Stall the writer: another connection holds one order's row, and an
    // append to that order waits for it inside the writer's statement.
    let mut holder = PgConnection::connect(db.url()).await.unwrap();
    let mut holding = holder.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM orders WHERE id = $1 FOR UPDATE")
        .bind(&stalled)
        .execute(&mut *holding)
        .await
        .unwrap();
    let stalled_append = tokio::spawn({
        let store = store.clone();
        let stalled = stalled.clone();
        async move { event(&store, &stalled, EventName::PaymentReceived).await }
    });
    wait_for_a_lock_wait(db.url()).await;

    // Queue, behind it, the two deliveries' results and their orders' next
    // events: one poll each puts them in the writer's queue.
    let results = [
        attempt(&finished_first.id, Some(204), "delivered", now_ms()),
        attempt(&retried_first.id, Some(500), "pending", now_ms() + HOUR_MS),
    ];
    let mut record = pin!(store.record_attempts(&results));
    let mut finished_next = pin!(append(&store, &finished, EventName::CryptoTxSent));
    let mut retried_next = pin!(append(&store, &retried, EventName::CryptoTxSent));
    poll_fn(|cx| {
        assert!(record.as_mut().poll(cx).is_pending());
        assert!(finished_next.as_mut().poll(cx).is_pending());
        assert!(retried_next.as_mut().poll(cx).is_pending());
        Poll::Ready(())
    })
    .await;
    holding.rollback().await.unwrap();

    stalled_append.await.unwrap();
    let (recorded, _, _) = tokio::join!(record, finished_next, retried_next);
    recorded.unwrap();
    let mut handed: Vec<String> = store.handoff().take().into_iter().map(|d| d.order_id).collect();
    handed.sort();
    assert_eq!(
        handed,
        sorted(&[&stalled, &finished]),
        "the finished delivery's successor is leased in the same statement; the retried one's waits"
    );
    assert!(
        claim(&store, LONG_LEASE_MS).await.is_empty(),
        "the retried delivery's successor waits behind its retry"
    );
    let statuses: Vec<(String, String, i64)> = all_deliveries(&store, &p)
        .await
        .into_iter()
        .map(|d| (d.order_id, d.status, d.attempts))
        .collect();
    for (order, status, attempts) in [
        (&finished, "delivered", 1),
        (&finished, "pending", 0),
        (&retried, "pending", 1),
        (&retried, "pending", 0),
        (&stalled, "pending", 0),
    ] {
        assert!(
            statuses.contains(&(order.clone(), status.to_owned(), attempts)),
            "{order} {status} {attempts}: {statuses:?}"
        );
    }
    assert_eq!(statuses.len(), 5, "{statuses:?}");
}

/// Waits (at most 10 s) until a backend of the database waits for a lock.
async fn wait_for_a_lock_wait(url: &str) {
    let mut watcher = PgConnection::connect(url).await.unwrap();
    for _ in 0..1000 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut watcher)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no append waited for the held order");
}
