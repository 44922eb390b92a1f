//! The delivery log as the API shows and steers it: one partner's
//! deliveries page by page, one delivery with its attempts, a retry by
//! hand, a test delivery, the re-queueing of an endpoint's failures.

use super::{Page, Store, StoreResult};
use crate::domain::time::now_ms;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub seq: i64,
    pub id: String,
    pub event_id: String,
    pub endpoint_id: String,
    pub partner_id: String,
    pub order_id: String,
    pub event_name: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_status_code: Option<i64>,
    /// 1 for a test delivery (an integer on both backends).
    pub is_test: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    pub at: i64,
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    pub error: Option<String>,
    pub response_body: Option<String>,
}

#[derive(Default)]
pub struct DeliveryFilter {
    pub status: Option<String>,
    pub order_id: Option<String>,
    pub endpoint_id: Option<String>,
}

const COLUMNS: &str = "seq, id, event_id, endpoint_id, partner_id, order_id, event_name, status, attempts, next_attempt_at, last_status_code, is_test, created_at";

impl Store {
    pub async fn pending_count(&self) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE status = 'pending'")
                .fetch_one(&self.reader)
                .await?,
        )
    }

    pub async fn list_deliveries(
        &self,
        partner_id: &str,
        filter: &DeliveryFilter,
        limit: u32,
        before: Option<i64>,
    ) -> StoreResult<Page<DeliveryRow>> {
        let mut sql = format!("SELECT {COLUMNS} FROM deliveries WHERE partner_id = $1");
        let mut binds: Vec<&str> = vec![partner_id];
        for (column, value) in [
            ("status", &filter.status),
            ("order_id", &filter.order_id),
            ("endpoint_id", &filter.endpoint_id),
        ] {
            if let Some(value) = value {
                binds.push(value);
                sql.push_str(&format!(" AND {column} = ${}", binds.len()));
            }
        }
        let n = binds.len();
        sql.push_str(&format!(" AND seq < ${} ORDER BY seq DESC LIMIT ${}", n + 1, n + 2));
        let mut query = sqlx::query_as(&sql);
        for value in binds {
            query = query.bind(value);
        }
        let rows: Vec<DeliveryRow> = query
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit as i64 + 1)
            .fetch_all(&self.reader)
            .await?;
        Ok(Page::from_overfetch(rows, limit, |r| r.seq))
    }

    pub async fn get_delivery(&self, id: &str) -> StoreResult<Option<(DeliveryRow, Vec<AttemptRow>)>> {
        let row: Option<DeliveryRow> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM deliveries WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        let Some(row) = row else { return Ok(None) };
        // The first attempt is on the delivery row (migration 0008), the
        // others are in `attempts`, whose seq starts at 1.
        let attempts = sqlx::query_as(
            "SELECT first_attempt_at AS at, first_status_code AS status_code, first_duration_ms AS duration_ms,
                    first_error AS error, first_response_body AS response_body, 0 AS n
             FROM deliveries WHERE id = $1 AND first_attempt_at IS NOT NULL
             UNION ALL
             SELECT at, status_code, duration_ms, error, response_body, seq AS n FROM attempts WHERE delivery_id = $1
             ORDER BY n",
        )
        .bind(id)
        .fetch_all(&self.reader)
        .await?;
        Ok(Some((row, attempts)))
    }

    /// Makes a delivery due now, whatever its status (a manual retry).
    /// `false` if there is no such delivery or its endpoint was deleted. A
    /// live lease is kept: an attempt in flight is not doubled.
    pub async fn retry_now(&self, id: &str) -> StoreResult<bool> {
        let changed = sqlx::query(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = $1,
                 locked_until = CASE WHEN locked_until > $1 THEN locked_until ELSE NULL END
             WHERE id = $2 AND EXISTS (SELECT 1 FROM endpoints e WHERE e.id = deliveries.endpoint_id)",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&self.writer)
        .await?
        .rows_affected();
        self.notify_dispatchers();
        Ok(changed == 1)
    }

    /// Queues a test delivery of `event_name` for a made-up order id.
    pub async fn create_test_delivery(
        &self,
        partner_id: &str,
        endpoint_id: &str,
        event_name: &str,
    ) -> StoreResult<String> {
        let now = now_ms();
        let id = crate::domain::ids::new_id(crate::domain::ids::DELIVERY_PREFIX);
        sqlx::query(
            "INSERT INTO deliveries (id, event_id, endpoint_id, partner_id, order_id, event_name, time_stamp, status,
                                     next_attempt_at, is_test, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $7, 1, $7)",
        )
        .bind(&id)
        .bind(crate::domain::ids::new_id("evt"))
        .bind(endpoint_id)
        .bind(partner_id)
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(event_name)
        .bind(now)
        .execute(&self.writer)
        .await?;
        self.notify_dispatchers();
        Ok(id)
    }

    /// Re-queues an endpoint's failed deliveries created in `[since, until)`.
    pub async fn recover_failed(
        &self,
        partner_id: &str,
        endpoint_id: &str,
        since: i64,
        until: i64,
    ) -> StoreResult<u64> {
        let requeued = sqlx::query(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = $1, locked_until = NULL
             WHERE endpoint_id = $2 AND partner_id = $3 AND status = 'failed' AND created_at >= $4 AND created_at < $5",
        )
        .bind(now_ms())
        .bind(endpoint_id)
        .bind(partner_id)
        .bind(since)
        .bind(until)
        .execute(&self.writer)
        .await?
        .rows_affected();
        self.notify_dispatchers();
        Ok(requeued)
    }
}
