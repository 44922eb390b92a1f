//! Upgrades: a database an earlier release wrote keeps its data through the
//! migrations since. Migration 0009 rebuilds SQLite's events table and
//! changes the events' keys on PostgreSQL; the history written before it
//! must still read back whole and in order, and later events follow it.

use std::borrow::Cow;
use std::str::FromStr;

use ramphook::domain::order::EventName;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

use crate::harness::*;

on_both_backends!(events_written_before_0009_read_back_in_order_and_later_ones_follow);

/// The migrations up to and including version `last`: the schema a release
/// of that time left behind.
fn migrations_until(mut migrator: Migrator, last: i64) -> Migrator {
    migrator.migrations = Cow::Owned(
        migrator
            .migrations
            .iter()
            .filter(|m| m.version <= last)
            .cloned()
            .collect(),
    );
    migrator
}

/// Two orders whose events interleave (by `seq`), as release 0008 stored
/// them: `paid` has payment_received then crypto_tx_sent, `rejected` one
/// payment_rejected written between them.
const BEFORE_0009: [&str; 6] = [
    "INSERT INTO partners (id, name, api_key_hash, created_at) VALUES ('ptn_old', 'Old Ramp', 'hash_old', 1)",
    "INSERT INTO orders (id, partner_id, email, direction, status, created_at, updated_at, expires_at)
     VALUES ('ord_paid', 'ptn_old', 'a@example.com', 'on_ramp', 'crypto_sent', 1, 3, 9000000000000)",
    "INSERT INTO orders (id, partner_id, email, direction, status, created_at, updated_at, expires_at)
     VALUES ('ord_rejected', 'ptn_old', 'b@example.com', 'on_ramp', 'rejected', 1, 2, 9000000000000)",
    "INSERT INTO events (id, order_id, event_name, time_stamp) VALUES ('evt_1', 'ord_paid', 'payment_received', 1)",
    "INSERT INTO events (id, order_id, event_name, reason, time_stamp)
     VALUES ('evt_2', 'ord_rejected', 'payment_rejected', 'card declined', 2)",
    "INSERT INTO events (id, order_id, event_name, tx_hash, time_stamp)
     VALUES ('evt_3', 'ord_paid', 'crypto_tx_sent', '0xabc', 3)",
];

async fn events_written_before_0009_read_back_in_order_and_later_ones_follow(db: Db) {
    if db.is_postgres() {
        let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
        migrations_until(sqlx::migrate!("./migrations/postgres"), 8)
            .run(&pool)
            .await
            .unwrap();
        for statement in BEFORE_0009 {
            sqlx::query(statement).execute(&pool).await.unwrap();
        }
        pool.close().await;
    } else {
        let options = SqliteConnectOptions::from_str(db.url())
            .unwrap()
            .create_if_missing(true)
            .foreign_keys(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        migrations_until(sqlx::migrate!("./migrations/sqlite"), 8)
            .run(&pool)
            .await
            .unwrap();
        for statement in BEFORE_0009 {
            sqlx::query(statement).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }

    let store = db.open().await;
    let history = |order: &'static str| {
        let store = &store;
        async move {
            let (_, events) = store.get_order(order).await.unwrap().expect("the order survived");
            events
                .into_iter()
                .map(|e| (e.id, e.event_name, e.tx_hash, e.reason))
                .collect::<Vec<_>>()
        }
    };
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        history("ord_paid").await,
        [
            ("evt_1".into(), "payment_received".into(), None, None),
            ("evt_3".into(), "crypto_tx_sent".into(), some("0xabc"), None),
        ]
    );
    assert_eq!(
        history("ord_rejected").await,
        [("evt_2".into(), "payment_rejected".into(), None, some("card declined"))]
    );

    let delivered = event(&store, "ord_paid", EventName::CryptoDelivered).await;
    let after: Vec<String> = history("ord_paid").await.into_iter().map(|(id, ..)| id).collect();
    assert_eq!(after, ["evt_1".to_owned(), "evt_3".into(), delivered.id]);
}
