//! An instance on PostgreSQL opens at most `max_connections` connections,
//! the writer's and the append reader's kept ones included (they come from
//! a pool of their own: `store/sticky_connection.rs`).

use std::sync::Arc;
use std::time::Duration;

use ramphook::domain::order::EventName;
use ramphook::store::{DeliveryFilter, PoolSettings, Store};
use sqlx::Connection;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_opens_at_most_its_setting_of_connections() {
    let Some(db) = Db::postgres().await else { return };
    let settings = PoolSettings {
        max_connections: 5,
        acquire_timeout: Duration::from_secs(10),
    };
    let key = ramphook::secrets::MasterKey::from_base64("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=").unwrap();
    let store = Arc::new(
        Store::open(db.url(), settings, ramphook::secrets::Sealer::new(&key))
            .await
            .unwrap(),
    );
    let p = partner(&store).await;
    endpoint(&store, &p, None).await;
    // Appends (the writer's kept connection) and reads, many at once (the
    // shared pool, to its size).
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (store, p) = (store.clone(), p.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                let order = order(&store, &p).await;
                append(&store, &order, EventName::PaymentReceived).await;
                store
                    .list_deliveries(&p, &DeliveryFilter::default(), 50, None)
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut outside = sqlx::PgConnection::connect(db.url()).await.unwrap();
    let (open,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_one(&mut outside)
    .await
    .unwrap();
    assert!(open <= 5, "{open} connections open for a setting of 5");
    assert!(
        open >= 4,
        "the load opened only {open}: the writer's and the pool's were not all used"
    );
}
