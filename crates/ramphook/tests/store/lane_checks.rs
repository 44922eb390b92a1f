//! The lane checks read the lane index, whatever PostgreSQL's statistics
//! say: the due index cannot answer them (migration 0007). With both able
//! to, the planner took the due index whenever it had analysed the table
//! with few deliveries pending, and each check read every pending entry of
//! the endpoint. SQLite has no statistics to go wrong with.

use sqlx::Connection;

use crate::harness::*;

on_both_backends!(the_due_index_cannot_answer_a_lane_check);

/// The lane checks as the appender (`pg_appender.rs`) and the claim
/// (`first_in_lane`) ask them, with literals for their correlated values.
const LANE_CHECKS: [&str; 2] = [
    "SELECT x.seq FROM deliveries x WHERE x.endpoint_id = 'e' AND x.order_id = 'o' AND x.status = 'pending'
     ORDER BY x.seq LIMIT 1",
    "SELECT MIN(e.seq) FROM deliveries e WHERE e.endpoint_id = 'e' AND e.order_id = 'o' AND e.status = 'pending'",
];

async fn the_due_index_cannot_answer_a_lane_check(db: Db) {
    let store = db.open().await;
    if !db.is_postgres() {
        return;
    }
    let p = partner(&store).await;
    endpoint(&store, &p, None).await;
    let mut connection = sqlx::PgConnection::connect(db.url()).await.unwrap();
    // Without the lane index, what could the planner use instead?
    let mut transaction = connection.begin().await.unwrap();
    sqlx::query("DROP INDEX deliveries_lane")
        .execute(&mut *transaction)
        .await
        .unwrap();
    for check in LANE_CHECKS {
        let plan: Vec<(String,)> = sqlx::query_as(&format!("EXPLAIN {check}"))
            .fetch_all(&mut *transaction)
            .await
            .unwrap();
        let plan: Vec<String> = plan.into_iter().map(|(line,)| line).collect();
        assert!(
            !plan.join("\n").contains("deliveries_endpoint_due"),
            "a lane check must not read the endpoint's whole due queue:\n{}",
            plan.join("\n")
        );
    }
    transaction.rollback().await.unwrap();
    // The claim still reads the due index (`claim_plan.rs` checks it on a
    // full queue).
    let plan = store.claim_plan(256, 64).await.unwrap().unwrap();
    assert!(plan.contains("deliveries_endpoint_due"), "{plan}");
}
