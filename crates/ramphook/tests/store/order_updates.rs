//! An order's transitions after it leaves `awaiting_payment` change no
//! indexed column, so PostgreSQL updates it in place (HOT: no new index
//! entries); and expiry, which no longer reads `status`, still finds only
//! awaiting orders (migration 0006).

use std::time::Duration;

use ramphook::domain::order::EventName;
use ramphook::domain::time::now_ms;

use crate::harness::*;

on_both_backends!(later_transitions_write_no_index_entries_and_expiry_skips_moved_orders);

async fn later_transitions_write_no_index_entries_and_expiry_skips_moved_orders(db: Db) {
    let store = db.open().await;
    let p = partner(&store).await;
    endpoint(&store, &p, None).await;
    let moved = order_expiring(&store, &p, 0).await;
    for name in [
        EventName::PaymentReceived,
        EventName::CryptoTxSent,
        EventName::CryptoDelivered,
    ] {
        event(&store, &moved, name).await;
    }
    let awaiting = order_expiring(&store, &p, HOUR_MS).await;
    let next = store.next_expiry().await.unwrap().expect("one order awaits payment");
    assert!(
        next > now_ms(),
        "the moved order, past its expiresAt, is not the next to expire"
    );
    assert_eq!(
        store.expire_due(now_ms(), 100).await.unwrap(),
        0,
        "nothing awaiting is due"
    );
    assert_eq!(
        store.get_order(&awaiting).await.unwrap().unwrap().0.status,
        "awaiting_payment"
    );
    if !db.is_postgres() {
        return;
    }
    // Three updates of one order on a page with room: the first nulls
    // `awaiting_until` (indexed), the next two change nothing indexed. The
    // writers' counts reach the statistics views within seconds.
    let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
    let (updates, hot) = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let (updates, hot): (i64, i64) =
                sqlx::query_as("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'orders'")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            if updates >= 3 {
                return (updates, hot);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the three updates never reached pg_stat_user_tables");
    assert_eq!(
        (updates, hot),
        (3, 2),
        "the two transitions after payment are HOT updates"
    );
    pool.close().await;
}
