//! Retention: finished deliveries, their attempts and idempotency records
//! older than the configured age go, in short batches.

use super::{placeholders, Store, StoreResult};

impl Store {
    /// Deletes up to `batch` finished deliveries made before `cutoff`, with
    /// their attempts, and up to `batch` idempotency records older than it
    /// (each in short statements, so the writer is never held long).
    /// Answers how many rows went. Deliveries are cut by id, whose UUIDv7
    /// begins with the time it was made (`ids::id_floor`), on the primary
    /// key's index: an index by age was written with every recorded
    /// outcome for this one query (docs/PERFORMANCE.md). A still-pending
    /// delivery keeps its attempts whatever their age.
    pub async fn purge_before(&self, cutoff: i64, batch: u32) -> StoreResult<u64> {
        let floor = crate::domain::ids::id_floor(crate::domain::ids::DELIVERY_PREFIX, cutoff);
        let mut tx = self.writer.begin().await?;
        let gone: Vec<(String,)> = sqlx::query_as(
            "DELETE FROM deliveries WHERE id IN
                 (SELECT id FROM deliveries WHERE id < $1 AND status <> 'pending' LIMIT $2)
             RETURNING id",
        )
        .bind(&floor)
        .bind(batch as i64)
        .fetch_all(&mut *tx)
        .await?;
        let mut purged = gone.len() as u64;
        if !gone.is_empty() {
            let attempts = format!(
                "DELETE FROM attempts WHERE delivery_id IN ({})",
                placeholders(1, gone.len())
            );
            let mut query = sqlx::query(&attempts);
            for (id,) in &gone {
                query = query.bind(id);
            }
            purged += query.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        purged += sqlx::query(
            "DELETE FROM idempotency WHERE (scope, key) IN
                 (SELECT scope, key FROM idempotency WHERE created_at < $1 LIMIT $2)",
        )
        .bind(cutoff)
        .bind(batch as i64)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(purged)
    }
}
