//! Upgrades: a database an earlier release wrote keeps its data through the
//! migrations since. 0009 rebuilds SQLite's events table and changes the
//! events' keys on PostgreSQL, 0010 the deliveries' and 0011 the attempts'
//! (SQLite's 0010 drops the indexes by age): the history written before
//! must still read back whole and in order, later events follow it, its
//! pending delivery is claimed and its finished one purged with its
//! attempts.

use std::borrow::Cow;

use ramphook::domain::order::EventName;
use ramphook::domain::time::now_ms;
use sqlx::migrate::Migrator;

use crate::harness::*;

on_both_backends!(what_0008_wrote_reads_back_claims_and_purges_after_the_upgrade);

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

/// What release 0008 stored: two orders whose events interleave (by
/// `seq`): `paid` has payment_received then crypto_tx_sent, `rejected` one
/// payment_rejected written between them; an endpoint (its secret still in
/// clear, as written before secrets were sealed); a delivery finished long
/// ago whose two attempts are both rows of `attempts` (as before 0008), and
/// the crypto_tx_sent delivery, pending.
const BEFORE_0009: [&str; 11] = [
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
    "INSERT INTO endpoints (id, partner_id, url, secret, enabled, created_at, updated_at)
     VALUES ('ep_old', 'ptn_old', 'http://127.0.0.1:9/old', 'old-secret', 1, 1, 1)",
    "INSERT INTO deliveries (id, event_id, endpoint_id, partner_id, order_id, event_name, time_stamp, status,
                             attempts, next_attempt_at, last_status_code, created_at)
     VALUES ('dlv_00000000000170008000000000000001_1', 'evt_1', 'ep_old', 'ptn_old', 'ord_paid',
             'payment_received', 1, 'delivered', 2, 1, 200, 1)",
    "INSERT INTO attempts (delivery_id, at, status_code, duration_ms, error)
     VALUES ('dlv_00000000000170008000000000000001_1', 1, NULL, 5, 'connection refused')",
    "INSERT INTO attempts (delivery_id, at, status_code, duration_ms) VALUES ('dlv_00000000000170008000000000000001_1', 2, 200, 7)",
    "INSERT INTO deliveries (id, event_id, endpoint_id, partner_id, order_id, event_name, time_stamp, status,
                             next_attempt_at, created_at)
     VALUES ('dlv_00000000000370008000000000000003_1', 'evt_3', 'ep_old', 'ptn_old', 'ord_paid',
             'crypto_tx_sent', 3, 'pending', 3, 3)",
];

/// The delivery finished long ago, and the pending one.
const OLD_DELIVERED: &str = "dlv_00000000000170008000000000000001_1";
const OLD_PENDING: &str = "dlv_00000000000370008000000000000003_1";

async fn what_0008_wrote_reads_back_claims_and_purges_after_the_upgrade(db: Db) {
    // The database as release 0008 left it, written through sqlx's `Any`
    // driver (as the store talks to both backends).
    let (migrator, url) = if db.is_postgres() {
        (sqlx::migrate!("./migrations/postgres"), db.url().to_owned())
    } else {
        (sqlx::migrate!("./migrations/sqlite"), format!("{}?mode=rwc", db.url()))
    };
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    migrations_until(migrator, 8).run(&pool).await.unwrap();
    for statement in BEFORE_0009 {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    pool.close().await;

    let store = db.open().await;
    // As `serve` does at start-up: the endpoint's secret is sealed.
    assert_eq!(store.seal_plaintext_secrets().await.unwrap(), 1);
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

    // The old delivery's attempts read back in order; the pending one is
    // claimed first in its lane (the new event's delivery waits behind it).
    let (_, log) = store.get_delivery(OLD_DELIVERED).await.unwrap().expect("kept");
    let log: Vec<_> = log.into_iter().map(|a| (a.at, a.status_code)).collect();
    assert_eq!(log, [(1, None), (2, Some(200))]);
    assert_eq!(claim_ids(&store, LONG_LEASE_MS).await, [OLD_PENDING.to_owned()]);

    // Retention takes the finished delivery with both its attempts rows.
    assert_eq!(store.purge_before(now_ms(), 100).await.unwrap(), 3);
    assert!(store.get_delivery(OLD_DELIVERED).await.unwrap().is_none());
    assert!(store.get_delivery(OLD_PENDING).await.unwrap().is_some());
}
