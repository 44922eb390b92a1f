//! Planner statistics on PostgreSQL follow a fast-growing table: it is
//! analysed once it has doubled since its last analysis, and not before
//! (`store/planner_statistics.rs`). SQLite has nothing to refresh. And
//! autovacuum being off, which leaves statistics and dead rows alone, is
//! told.

use std::time::Duration;

use sqlx::Connection;

use crate::harness::*;

on_both_backends!(a_table_is_analysed_once_it_has_doubled_and_not_before);

async fn a_table_is_analysed_once_it_has_doubled_and_not_before(db: Db) {
    let store = db.open().await;
    let p = partner(&store).await;
    assert!(
        store.refresh_planner_statistics().await.unwrap().is_empty(),
        "tables of a few rows are left alone"
    );
    for _ in 0..1000 {
        order(&store, &p).await;
    }
    if !db.is_postgres() {
        assert!(
            store.refresh_planner_statistics().await.unwrap().is_empty(),
            "SQLite's planner caches no plans to refresh"
        );
        return;
    }
    // Row counts reach PostgreSQL's statistics views within seconds.
    let analysed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let analysed = store.refresh_planner_statistics().await.unwrap();
            if !analysed.is_empty() {
                return analysed;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("1,000 new orders were never analysed");
    assert_eq!(analysed, ["orders"]);
    assert!(
        store.refresh_planner_statistics().await.unwrap().is_empty(),
        "not again until the table doubles"
    );
}

on_both_backends!(autovacuum_being_off_is_told);

async fn autovacuum_being_off_is_told(db: Db) {
    let store = db.open().await;
    let off = store.autovacuum_is_off().await.unwrap();
    if !db.is_postgres() {
        assert!(!off, "SQLite has no autovacuum to be off");
        return;
    }
    let mut connection = sqlx::PgConnection::connect(db.url()).await.unwrap();
    let (setting,): (String,) = sqlx::query_as("SHOW autovacuum")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(off, setting == "off", "SHOW autovacuum says {setting}");
}
