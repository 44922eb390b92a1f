//! The delivery outbox seen from the dispatcher (claim due work under a
//! lease, record attempt results in batches) and from the API (list, show,
//! retry by hand).

use super::{placeholders, Backend, Page, Store, StoreResult};
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

/// A delivery the dispatcher holds a lease on, with what it needs to send it.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: String,
    pub event_id: String,
    pub order_id: String,
    pub event_name: String,
    pub time_stamp: i64,
    pub attempts: i64,
    pub endpoint_id: String,
    /// `None` when the endpoint is gone or disabled.
    pub target: Option<(String, String)>,
}

/// What one attempt came to, and what the delivery becomes.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub delivery_id: String,
    pub at: i64,
    pub status_code: Option<u16>,
    pub duration_ms: i64,
    pub error: Option<String>,
    pub response_body: Option<String>,
    /// `delivered`, `failed`, or `pending` with the next try's time.
    pub new_status: &'static str,
    pub next_attempt_at: i64,
}

#[derive(Default)]
pub struct DeliveryFilter {
    pub status: Option<String>,
    pub order_id: Option<String>,
    pub endpoint_id: Option<String>,
}

const COLUMNS: &str = "seq, id, event_id, endpoint_id, partner_id, order_id, event_name, status, attempts, next_attempt_at, last_status_code, is_test, created_at";

impl Store {
    /// Leases up to `limit` due deliveries. A delivery waits while an earlier
    /// one of the same order to the same endpoint is still pending, so an
    /// order's events reach each endpoint in order, also across retries.
    pub async fn claim_due(&self, limit: u32, lease_ms: i64) -> StoreResult<Vec<ClaimedDelivery>> {
        let now = now_ms();
        // On PostgreSQL several instances claim at once: skip rows another
        // instance is claiming instead of waiting for it.
        let lock = match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE deliveries SET locked_until = $1 + $2
             WHERE seq IN (
                 SELECT d.seq FROM deliveries d
                 WHERE d.status = 'pending' AND d.next_attempt_at <= $1
                   AND (d.locked_until IS NULL OR d.locked_until <= $1)
                   AND NOT EXISTS (SELECT 1 FROM deliveries e
                                   WHERE e.endpoint_id = d.endpoint_id AND e.order_id = d.order_id
                                     AND e.status = 'pending' AND e.seq < d.seq)
                   AND EXISTS (SELECT 1 FROM endpoints p WHERE p.id = d.endpoint_id AND p.enabled = 1)
                 ORDER BY d.next_attempt_at, d.seq
                 LIMIT $3 {lock})
             RETURNING id, event_id, order_id, event_name, time_stamp, attempts, endpoint_id"
        );
        let claimed: Vec<(String, String, String, String, i64, i64, String)> = sqlx::query_as(&sql)
            .bind(now)
            .bind(lease_ms)
            .bind(limit as i64)
            .fetch_all(&self.writer)
            .await?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT id, url, secret FROM endpoints WHERE enabled = 1 AND id IN ({})",
            placeholders(1, claimed.len())
        );
        let mut query = sqlx::query_as(&sql);
        for row in &claimed {
            query = query.bind(&row.6);
        }
        let targets: Vec<(String, String, String)> = query.fetch_all(&self.reader).await?;
        let targets = targets
            .into_iter()
            .map(|(id, url, secret)| {
                let secret = self.open_in("endpoints", "secret", &id, &secret)?;
                Ok((id, url, secret))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(claimed
            .into_iter()
            .map(
                |(id, event_id, order_id, event_name, time_stamp, attempts, endpoint_id)| {
                    let target = targets
                        .iter()
                        .find(|t| t.0 == endpoint_id)
                        .map(|t| (t.1.clone(), t.2.clone()));
                    ClaimedDelivery {
                        id,
                        event_id,
                        order_id,
                        event_name,
                        time_stamp,
                        attempts,
                        endpoint_id,
                        target,
                    }
                },
            )
            .collect())
    }

    /// Records a batch of attempt results in one transaction.
    pub async fn record_attempts(&self, results: &[AttemptResult]) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        for r in results {
            sqlx::query(
                "INSERT INTO attempts (delivery_id, at, status_code, duration_ms, error, response_body) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&r.delivery_id)
            .bind(r.at)
            .bind(r.status_code.map(i64::from))
            .bind(r.duration_ms)
            .bind(&r.error)
            .bind(&r.response_body)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE deliveries SET status = $1, attempts = attempts + 1, next_attempt_at = $2, locked_until = NULL,
                 last_status_code = $3 WHERE id = $4",
            )
            .bind(r.new_status)
            .bind(r.next_attempt_at)
            .bind(r.status_code.map(i64::from))
            .bind(&r.delivery_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Gives leased deliveries back (shutdown) so the next start sends them at once.
    pub async fn release(&self, ids: &[String]) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "UPDATE deliveries SET locked_until = NULL WHERE status = 'pending' AND id IN ({})",
            placeholders(1, ids.len())
        );
        let mut query = sqlx::query(&sql);
        for id in ids {
            query = query.bind(id);
        }
        query.execute(&self.writer).await?;
        Ok(())
    }

    /// SQLite is one process's database: at start-up no lease can be alive.
    pub async fn release_all_leases(&self) -> StoreResult<()> {
        sqlx::query("UPDATE deliveries SET locked_until = NULL WHERE status = 'pending' AND locked_until IS NOT NULL")
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// The earliest time a pending, unleased delivery becomes due.
    pub async fn next_due_at(&self) -> StoreResult<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(CASE WHEN d.locked_until > d.next_attempt_at THEN d.locked_until ELSE d.next_attempt_at END)
             FROM deliveries d
             WHERE d.status = 'pending'
               AND NOT EXISTS (SELECT 1 FROM deliveries e
                               WHERE e.endpoint_id = d.endpoint_id AND e.order_id = d.order_id
                                 AND e.status = 'pending' AND e.seq < d.seq)
               AND EXISTS (SELECT 1 FROM endpoints p WHERE p.id = d.endpoint_id AND p.enabled = 1)",
        )
        .fetch_one(&self.reader)
        .await?)
    }

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
        let attempts = sqlx::query_as(
            "SELECT at, status_code, duration_ms, error, response_body FROM attempts WHERE delivery_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.reader)
        .await?;
        Ok(Some((row, attempts)))
    }

    /// Makes a delivery due now, whatever its status (a manual retry).
    pub async fn retry_now(&self, id: &str) -> StoreResult<bool> {
        let changed = sqlx::query(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = $1, locked_until = NULL WHERE id = $2",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&self.writer)
        .await?
        .rows_affected();
        self.notify_dispatchers(&self.writer).await?;
        Ok(changed == 1)
    }
}
