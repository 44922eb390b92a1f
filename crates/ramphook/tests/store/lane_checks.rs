//! The lane checks read the lane index, whatever PostgreSQL's statistics
//! say: the due index cannot answer them (migration 0007). With both able
//! to, the planner took the due index whenever it had analysed the table
//! with few deliveries pending, and each check read every pending entry of
//! the endpoint. SQLite has no statistics to go wrong with.

use crate::harness::*;

on_both_backends!(the_due_index_cannot_answer_a_lane_check);

/// The appender's lane check (`pg_appender.rs`, inside its group statement),
/// with literals for its correlated values.
const APPEND_LANE_CHECK: &str = "SELECT x.seq FROM deliveries x
     WHERE x.endpoint_id = 'e' AND x.order_id = 'o' AND x.status = 'pending' ORDER BY x.seq LIMIT 1";

async fn the_due_index_cannot_answer_a_lane_check(db: Db) {
    let store = db.open().await;
    if !db.is_postgres() {
        return;
    }
    let p = partner(&store).await;
    endpoint(&store, &p, None).await;
    // Without the lane index (this test's own database), what could the
    // planner use instead?
    let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
    sqlx::query("DROP INDEX deliveries_lane").execute(&pool).await.unwrap();
    let plan: Vec<(String,)> = sqlx::query_as(&format!("EXPLAIN {APPEND_LANE_CHECK}"))
        .fetch_all(&pool)
        .await
        .unwrap();
    let plan: Vec<String> = plan.into_iter().map(|(line,)| line).collect();
    assert!(
        !plan.join("\n").contains("deliveries_endpoint_due"),
        "the append's lane check must not read the endpoint's whole due queue:\n{}",
        plan.join("\n")
    );
    pool.close().await;
    // The claim, as the store plans it: its candidates come from the due
    // index (`deliveries x`), its lane check (`deliveries e`) must not.
    let plan = store.claim_plan(256, 64).await.unwrap().unwrap();
    assert!(plan.contains("using deliveries_endpoint_due on deliveries x"), "{plan}");
    assert!(
        !plan.contains("using deliveries_endpoint_due on deliveries e"),
        "the claim's lane check must not read the endpoint's whole due queue:\n{plan}"
    );
}
