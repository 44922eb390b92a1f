//! Idempotency keys in the store: the same key and request replay the stored
//! answer without writing again, another request under the key is
//! `KeyReused`, keys are scoped, and concurrent requests with one key create
//! one thing.

use ramphook::domain::order::EventName;
use ramphook::store::{AppendOutcome, Idempotency, Replayable, Store};
use sqlx::Connection;

use crate::harness::*;

on_both_backends!(
    create_order_replays_the_same_request_and_refuses_another,
    append_event_replays_without_a_second_event,
    a_replay_answers_even_where_its_event_is_allowed_again,
    concurrent_requests_with_one_key_create_one_order,
    concurrent_appends_to_many_orders_each_happen_once,
    a_keyed_append_to_an_order_not_kept_replays_its_first_answer,
);

fn key(scope: &str, key: &str, hash: &str) -> Idempotency {
    Idempotency {
        scope: scope.into(),
        key: key.into(),
        request_hash: hash.into(),
    }
}

async fn create_order_replays_the_same_request_and_refuses_another(db: Db) {
    let store = db.open().await;
    let p = partner(&store).await;
    let k = key("orders:admin", "k-1", "hash-a");
    let (order, status, body) = fresh(
        store
            .create_order(new_order(&p, HOUR_MS), Some(&k), |o| (201, format!("order {}", o.id)))
            .await
            .unwrap(),
    );
    assert_eq!((status, body.clone()), (201, format!("order {}", order.id)));

    match store
        .create_order(new_order(&p, HOUR_MS), Some(&k), |_| panic!("a replay is not rendered"))
        .await
        .unwrap()
    {
        Replayable::Replay { status, body: again } => assert_eq!((status, again), (201, body.clone())),
        _ => panic!("the same key and request did not replay"),
    }
    let other = key("orders:admin", "k-1", "hash-b");
    assert!(matches!(
        store
            .create_order(new_order(&p, HOUR_MS), Some(&other), |_| (201, String::new()))
            .await
            .unwrap(),
        Replayable::KeyReused
    ));
    assert!(matches!(
        store.idempotent_answer(Some(&k)).await.unwrap(),
        Some(Replayable::Replay { status: 201, .. })
    ));
    assert!(matches!(
        store.idempotent_answer(Some(&other)).await.unwrap(),
        Some(Replayable::KeyReused)
    ));
    assert!(store
        .idempotent_answer(Some(&key("orders:admin", "k-2", "hash-a")))
        .await
        .unwrap()
        .is_none());
    assert!(store.idempotent_answer(None).await.unwrap().is_none());
    assert_eq!(store.user_orders(&p, "alice@example.com", 10).await.unwrap().len(), 1);

    // The same key in another scope (another caller) is another request.
    let elsewhere = key("orders:ptn_other", "k-1", "hash-b");
    fresh(
        store
            .create_order(new_order(&p, HOUR_MS), Some(&elsewhere), |_| (201, String::new()))
            .await
            .unwrap(),
    );
    assert_eq!(store.user_orders(&p, "alice@example.com", 10).await.unwrap().len(), 2);
}

async fn append_event_replays_without_a_second_event(db: Db) {
    let store = db.open().await;
    let p = partner(&store).await;
    endpoint(&store, &p, None).await;
    let o = order(&store, &p).await;
    let k = key(&format!("events:{o}"), "e-1", "hash-a");
    let render = |e: &ramphook::store::EventRow, o: &ramphook::store::OrderRow| (201, format!("{} {}", e.id, o.status));
    let (outcome, status, body) = fresh(
        store
            .append_event(&o, EventName::PaymentReceived, None, None, Some(&k), render)
            .await
            .unwrap(),
    );
    let AppendOutcome::Appended { event, .. } = outcome else {
        panic!("payment_received refused")
    };
    assert_eq!((status, body.clone()), (201, format!("{} paid", event.id)));

    // Replayed, although payment_received would now be refused.
    assert_eq!(
        append_keyed(&store, &o, EventName::PaymentReceived, &k).await,
        Some((201, body))
    );
    let reused = key(&format!("events:{o}"), "e-1", "hash-b");
    assert!(matches!(
        store
            .append_event(&o, EventName::CryptoTxSent, None, None, Some(&reused), render)
            .await
            .unwrap(),
        Replayable::KeyReused
    ));
    let (row, events) = store.get_order(&o).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), events.len()), ("paid", 1));
    assert_eq!(all_deliveries(&store, &p).await.len(), 1);
}

/// An on-ramp's `crypto_tx_sent` is allowed again after `crypto_tx_failed`:
/// replaying the first one must still answer as it did, and write nothing.
async fn a_replay_answers_even_where_its_event_is_allowed_again(db: Db) {
    let store = db.open().await;
    let p = partner(&store).await;
    endpoint(&store, &p, None).await;
    let o = order(&store, &p).await;
    event(&store, &o, EventName::PaymentReceived).await;
    let k = key(&format!("events:{o}"), "sent-1", "hash-a");
    let render = |e: &ramphook::store::EventRow, o: &ramphook::store::OrderRow| (201, format!("{} {}", e.id, o.status));
    let (_, _, body) = fresh(
        store
            .append_event(&o, EventName::CryptoTxSent, None, None, Some(&k), render)
            .await
            .unwrap(),
    );
    event(&store, &o, EventName::CryptoTxFailed).await;

    let replayed = Some((201, body));
    assert_eq!(append_keyed(&store, &o, EventName::CryptoTxSent, &k).await, replayed);
    let reused = key(&format!("events:{o}"), "sent-1", "hash-b");
    assert_eq!(append_keyed(&store, &o, EventName::CryptoTxSent, &reused).await, None);
    let (row, events) = store.get_order(&o).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), events.len()), ("crypto_failed", 3));
    assert_eq!(all_deliveries(&store, &p).await.len(), 3);

    // A stored key answers before anything else, a missing order included.
    assert_eq!(
        append_keyed(&store, "no-such-order", EventName::CryptoTxSent, &k).await,
        replayed
    );
}

/// Appends `name` under the key `k`, which must have been used: the stored
/// answer for a replay, `None` for another request under it.
async fn append_keyed(store: &Store, order: &str, name: EventName, k: &Idempotency) -> Option<(u16, String)> {
    match store
        .append_event(order, name, None, None, Some(k), |_, _| (201, "a new answer".into()))
        .await
        .unwrap()
    {
        Replayable::Replay { status, body } => Some((status, body)),
        Replayable::KeyReused => None,
        Replayable::Fresh(_) => panic!("{name} under a used key was made"),
    }
}

async fn concurrent_requests_with_one_key_create_one_order(db: Db) {
    let stores = db.instances().await;
    let p = partner(&stores[0]).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = stores[i % stores.len()].clone();
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            let k = key("orders:admin", "same-key", "same-hash");
            store
                .create_order(new_order(&p, HOUR_MS), Some(&k), |o| (201, o.id.clone()))
                .await
                .unwrap()
        }));
    }
    let (mut fresh_ids, mut replayed) = (Vec::new(), Vec::new());
    for task in tasks {
        match task.await.unwrap() {
            Replayable::Fresh((order, _, body)) => {
                assert_eq!(order.id, body);
                fresh_ids.push(body)
            }
            Replayable::Replay { status, body } => {
                assert_eq!(status, 201);
                replayed.push(body)
            }
            Replayable::KeyReused => panic!("the same request was called KeyReused"),
        }
    }
    assert_eq!(fresh_ids.len(), 1, "{fresh_ids:?}");
    assert!(
        replayed.iter().all(|b| *b == fresh_ids[0]),
        "{replayed:?} vs {fresh_ids:?}"
    );
    let orders = stores[0].user_orders(&p, "alice@example.com", 10).await.unwrap();
    let ids: Vec<_> = orders.iter().map(|o| o.id.clone()).collect();
    assert_eq!(ids, fresh_ids, "one order exists, the one answered");
}

/// Many orders at once, each appended to by three requests at a time, on
/// two instances where PostgreSQL is used: appends to different orders share
/// a statement there, the same order's wait for the next one, and a key
/// another instance stored first re-runs the append alone. Without a key,
/// one request per order wins and the others are refused; with one, every
/// request gets the winner's answer. Each event is written once.
async fn concurrent_appends_to_many_orders_each_happen_once(db: Db) {
    let stores = db.instances().await;
    let p = partner(&stores[0]).await;
    endpoint(&stores[0], &p, None).await;
    let mut orders = Vec::new();
    for _ in 0..12 {
        orders.push(order(&stores[0], &p).await);
    }
    let three_at_once = |event: EventName, keyed: bool| {
        let mut tasks = Vec::new();
        for copy in 0..3 {
            for (i, o) in orders.iter().enumerate() {
                let store = stores[(i + copy) % stores.len()].clone();
                let o = o.clone();
                tasks.push(tokio::spawn(async move {
                    let k = keyed.then(|| key(&format!("events:{o}"), event.as_str(), "same-hash"));
                    let answer = store
                        .append_event(&o, event, None, None, k.as_ref(), |e, _| (201, e.id.clone()))
                        .await
                        .unwrap();
                    let body = match answer {
                        Replayable::Fresh((AppendOutcome::Appended { event, .. }, _, body)) => {
                            assert_eq!(event.id, body);
                            Some(body)
                        }
                        Replayable::Fresh(_) => None,
                        Replayable::Replay { status, body } => {
                            assert_eq!(status, 201);
                            Some(body)
                        }
                        Replayable::KeyReused => panic!("order {o}: the same request was called KeyReused"),
                    };
                    (o, body)
                }));
            }
        }
        tasks
    };
    let mut answers = std::collections::HashMap::<String, Vec<Option<String>>>::new();
    for task in three_at_once(EventName::PaymentReceived, false) {
        let (o, body) = task.await.unwrap();
        answers.entry(o).or_default().push(body);
    }
    for task in three_at_once(EventName::CryptoTxSent, true) {
        let (o, body) = task.await.unwrap();
        answers.entry(o).or_default().push(body);
    }
    let store = &stores[0];
    for o in &orders {
        let (row, events) = store.get_order(o).await.unwrap().unwrap();
        assert_eq!(row.status, "crypto_sent");
        let ids: Vec<Option<String>> = events.iter().map(|e| Some(e.id.clone())).collect();
        assert_eq!(ids.len(), 2, "order {o}: {ids:?}");
        let (unkeyed, keyed) = answers[o].split_at(3);
        let winners: Vec<_> = unkeyed.iter().filter(|body| body.is_some()).collect();
        assert_eq!(
            winners,
            [&ids[0]],
            "order {o}: one request appends, the others are refused"
        );
        assert!(
            keyed.iter().all(|body| *body == ids[1]),
            "order {o}: {keyed:?} vs {ids:?}"
        );
        let filter = ramphook::store::DeliveryFilter {
            order_id: Some(o.clone()),
            ..Default::default()
        };
        assert_eq!(deliveries(store, &p, &filter).await.len(), 2, "order {o}");
    }
}

/// An instance appends to an order another instance made without reading
/// it first, keyed or not; on PostgreSQL the key then stores the event and
/// the order as the statement left it, and replays (on either instance,
/// after the order moved on) render from them the answer first given.
async fn a_keyed_append_to_an_order_not_kept_replays_its_first_answer(db: Db) {
    let stores = db.instances().await;
    let (maker, appender) = (&stores[0], stores.last().unwrap());
    let p = partner(maker).await;
    endpoint(maker, &p, None).await;
    let o = order(maker, &p).await;
    let k = key(&format!("events:{o}"), "paid-1", "hash-a");
    // Every field of both, so that a replay rendered from anything else differs.
    let render = |e: &ramphook::store::EventRow, o: &ramphook::store::OrderRow| (201, format!("{e:?} {o:?}"));
    let (outcome, status, body) = fresh(
        appender
            .append_event(&o, EventName::PaymentReceived, None, None, Some(&k), render)
            .await
            .unwrap(),
    );
    let AppendOutcome::Appended { event: paid, order } = outcome else {
        panic!("payment_received refused")
    };
    assert_eq!((status, body.clone()), render(&paid, &order));
    assert_eq!(order.status, "paid");
    if db.is_postgres() {
        let mut outside = sqlx::PgConnection::connect(db.url()).await.unwrap();
        let (stored,): (i64,) = sqlx::query_as("SELECT status FROM idempotency WHERE key = 'paid-1'")
            .fetch_one(&mut outside)
            .await
            .unwrap();
        assert_eq!(stored, 0, "the answer is stored to be rendered at replay");
    }
    event(maker, &o, EventName::CryptoTxSent).await;

    for store in [maker, appender] {
        let replay = store
            .append_event(&o, EventName::PaymentReceived, None, None, Some(&k), render)
            .await
            .unwrap();
        assert!(
            matches!(&replay, Replayable::Replay { status: 201, body: again } if *again == body),
            "the replay answered otherwise than the first time"
        );
    }
    let reused = key(&format!("events:{o}"), "paid-1", "hash-b");
    assert_eq!(
        append_keyed(appender, &o, EventName::CryptoDelivered, &reused).await,
        None
    );
    let (row, events) = maker.get_order(&o).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), events.len()), ("crypto_sent", 2));
    assert_eq!(all_deliveries(maker, &p).await.len(), 2);
}
