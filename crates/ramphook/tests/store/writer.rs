//! PostgreSQL's writer: attempt results and event appends that wait at the
//! same time are written by one statement. A delivery that statement
//! finishes no longer holds back the next delivery of its order (which is
//! leased and handed over at once); one it schedules for a retry still does.
//! When the statement fails for one append, the results riding with it are
//! still recorded and the other appends still made. New orders are written
//! in the same statements, and one that fails fails alone.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use ramphook::domain::order::EventName;
use ramphook::domain::time::now_ms;
use ramphook::store::{AppendOutcome, EventRow, Idempotency, Replayable, Store};
use sqlx::{PgPool, Postgres, Transaction};
use tokio::task::JoinHandle;

use crate::harness::*;

/// Polls each pinned future once and asserts that it waits (queued behind
/// the stalled writer), so that all of them are queued before it moves.
macro_rules! all_waiting {
    ($($future:ident),+ $(,)?) => {
        poll_fn(|cx| {
            $(assert!($future.as_mut().poll(cx).is_pending(), concat!(stringify!($future), " should wait"));)+
            Poll::Ready(())
        })
        .await
    };
}

/// The writer, stalled: another connection holds one order's row, and an
/// append to that order waits for it inside the writer's statement, so
/// that what is queued meanwhile is written together once it is let go.
struct StalledWriter {
    holding: Transaction<'static, Postgres>,
    append: JoinHandle<EventRow>,
}

impl StalledWriter {
    async fn new(db: &Db, store: &Store, order: &str) -> StalledWriter {
        let holder = PgPool::connect(db.url()).await.unwrap();
        let mut holding = holder.begin().await.unwrap();
        sqlx::query("SELECT 1 FROM orders WHERE id = $1 FOR UPDATE")
            .bind(order)
            .execute(&mut *holding)
            .await
            .unwrap();
        let append = tokio::spawn({
            let (store, order) = (store.clone(), order.to_owned());
            async move { event(&store, &order, EventName::PaymentReceived).await }
        });
        wait_for_a_lock_wait(db.url()).await;
        StalledWriter { holding, append }
    }

    /// Lets the writer go on; its stalled append is made.
    async fn release(self) {
        self.holding.rollback().await.unwrap();
        self.append.await.unwrap();
    }
}

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

    let stall = StalledWriter::new(&db, &store, &stalled).await;

    // Queue, behind it, the two deliveries' results and their orders' next
    // events: one poll each puts them in the writer's queue.
    let results = [
        attempt(&finished_first.id, Some(204), "delivered", now_ms()),
        attempt(&retried_first.id, Some(500), "pending", now_ms() + HOUR_MS),
    ];
    let mut record = pin!(store.record_attempts(&results));
    let mut finished_next = pin!(append(&store, &finished, EventName::CryptoTxSent));
    let mut retried_next = pin!(append(&store, &retried, EventName::CryptoTxSent));
    all_waiting!(record, finished_next, retried_next);
    stall.release().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_that_fails_for_one_append_still_records_its_results_and_makes_the_others() {
    let Some(db) = Db::postgres().await else { return };
    let store = db.open().await;
    let p = partner(&store).await;
    endpoint(&store, &p, None).await;
    let (sent, x, y, stalled) = (
        order(&store, &p).await,
        order(&store, &p).await,
        order(&store, &p).await,
        order(&store, &p).await,
    );
    let delivery = delivery_of(&store, &p, &event(&store, &sent, EventName::PaymentReceived).await).await;
    assert_eq!(claim_ids(&store, LONG_LEASE_MS).await, vec![delivery.id.clone()]);

    // Behind the stalled writer: a batch of results, and two appends to
    // two orders under one Idempotency-Key (two requests: the second
    // stored answer breaks the key's uniqueness, and the statement fails).
    let stall = StalledWriter::new(&db, &store, &stalled).await;
    let keyed = |order: &str, hash: &str| {
        let (store, order) = (store.clone(), order.to_owned());
        let key = Idempotency {
            scope: "events:admin".into(),
            key: "one-key".into(),
            request_hash: hash.into(),
        };
        tokio::spawn(async move {
            store
                .append_event(&order, EventName::PaymentReceived, None, None, Some(&key), |_, _| {
                    (201, String::new())
                })
                .await
                .unwrap()
        })
    };
    let (on_x, on_y) = (keyed(&x, "hash-x"), keyed(&y, "hash-y"));
    let record = tokio::spawn({
        let (store, id) = (store.clone(), delivery.id.clone());
        async move {
            store
                .record_attempts(&[attempt(&id, Some(204), "delivered", now_ms())])
                .await
        }
    });
    // Each keyed append reads its key first (on another connection), then
    // joins the writer's queue: nothing outside the store shows when it
    // has, so the writer is let go a moment later. Whatever the grouping,
    // what follows must hold.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stall.release().await;

    record.await.unwrap().unwrap();
    let answers = [on_x.await.unwrap(), on_y.await.unwrap()];
    let made = answers
        .iter()
        .filter(|answer| matches!(answer, Replayable::Fresh((AppendOutcome::Appended { .. }, 201, _))))
        .count();
    let refused = answers
        .iter()
        .filter(|answer| matches!(answer, Replayable::KeyReused))
        .count();
    assert_eq!(
        (made, refused),
        (1, 1),
        "one append per key; the other request is refused"
    );
    let rows = all_deliveries(&store, &p).await;
    let recorded = rows.iter().find(|d| d.id == delivery.id).unwrap();
    assert_eq!((recorded.status.as_str(), recorded.attempts), ("delivered", 1));
    let mut orders: Vec<&str> = rows.iter().map(|d| d.order_id.as_str()).collect();
    orders.sort();
    let one_of_x_and_y = if orders.contains(&x.as_str()) { &x } else { &y };
    assert_eq!(orders, sorted(&[&sent, one_of_x_and_y, &stalled]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_orders_queued_with_appends_are_written_and_a_bad_one_fails_alone() {
    let Some(db) = Db::postgres().await else { return };
    let store = db.open().await;
    let p = partner(&store).await;
    endpoint(&store, &p, None).await;
    let (paid, stalled) = (order(&store, &p).await, order(&store, &p).await);
    let stall = StalledWriter::new(&db, &store, &stalled).await;

    // Behind the stalled writer: two new orders, one of a partner that does
    // not exist (its foreign key fails the statement), and an append.
    let create = |partner: &str| store.create_order(new_order(partner, HOUR_MS), None, |order| (201, order.id.clone()));
    let mut first = pin!(create(&p));
    let mut orphan = pin!(create("ptn_nobody"));
    let mut second = pin!(create(&p));
    let mut payment = pin!(append(&store, &paid, EventName::PaymentReceived));
    all_waiting!(first, orphan, second, payment);
    stall.release().await;
    let (first, orphan, second, payment) = tokio::join!(first, orphan, second, payment);

    assert!(orphan.is_err(), "an order of no partner was written");
    assert!(matches!(payment, AppendOutcome::Appended { .. }));
    for made in [first, second] {
        let (order, status, body) = fresh(made.unwrap());
        assert_eq!((status, &body), (201, &order.id));
        let (stored, events) = store.get_order(&order.id).await.unwrap().expect("written");
        assert_eq!((stored.status.as_str(), events.len()), ("awaiting_payment", 0));
    }
    let (_, events) = store.get_order(&paid).await.unwrap().unwrap();
    assert_eq!(events.len(), 1);
    // Each awaits payment until it expires: past that, the two new ones
    // (the others are paid) expire.
    assert_eq!(store.expire_due(now_ms() + 2 * HOUR_MS, 100).await.unwrap(), 2);
}

/// Waits (at most 10 s) until a backend of the database waits for a lock.
async fn wait_for_a_lock_wait(url: &str) {
    let watcher = PgPool::connect(url).await.unwrap();
    for _ in 0..1000 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&watcher)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no append waited for the held order");
}
