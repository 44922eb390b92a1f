//! Webhook endpoints: where a partner's events go and with which secret.

use super::{Backend, Page, Store, StoreResult};
use crate::domain::time::now_ms;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EndpointRow {
    pub seq: i64,
    pub id: String,
    pub partner_id: String,
    pub url: String,
    pub secret: String,
    pub event_types: Option<String>,
    pub description: Option<String>,
    /// 1 or 0 (an integer on both backends).
    pub enabled: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// The secret before the last rotation, valid until the time beside it.
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<i64>,
    /// When the current run of failures began; `None` while healthy.
    pub failing_since: Option<i64>,
    /// Why ramphook disabled the endpoint (`None`: enabled, or disabled by hand).
    pub disabled_reason: Option<String>,
}

impl EndpointRow {
    pub fn is_enabled(&self) -> bool {
        self.enabled != 0
    }

    /// The subscribed event names; `None` = every event.
    pub fn event_types(&self) -> Option<Vec<String>> {
        self.event_types
            .as_deref()
            .and_then(|json| serde_json::from_str(json).ok())
    }
}

pub struct NewEndpoint {
    pub id: String,
    pub partner_id: String,
    pub url: String,
    pub secret: String,
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
}

/// A PATCH: `None` leaves a field as it is; `Some(None)` clears a nullable one.
#[derive(Default)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub event_types: Option<Option<Vec<String>>>,
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
}

const COLUMNS: &str = "seq, id, partner_id, url, secret, event_types, description, enabled, created_at, updated_at, \
                       previous_secret, previous_secret_expires_at, failing_since, disabled_reason";

/// An endpoint ramphook disabled, for the log, metrics and the operator webhook.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DisabledEndpoint {
    pub id: String,
    pub partner_id: String,
    pub url: String,
    pub disabled_reason: Option<String>,
}

fn to_json(types: &Option<Vec<String>>) -> Option<String> {
    types
        .as_ref()
        .map(|t| serde_json::to_string(t).expect("strings serialise"))
}

impl Store {
    /// Creates the endpoint unless the partner already has `max_per_partner`
    /// (then `None`, and nothing is written). The count and the insert run
    /// in one transaction, serialised per partner, so a race cannot pass the cap.
    pub async fn create_endpoint(&self, new: NewEndpoint, max_per_partner: u32) -> StoreResult<Option<EndpointRow>> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            // SQLite has one writer; on PostgreSQL the partner row is the lock.
            sqlx::query("SELECT id FROM partners WHERE id = $1 FOR UPDATE")
                .bind(&new.partner_id)
                .execute(&mut *tx)
                .await?;
        }
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM endpoints WHERE partner_id = $1")
            .bind(&new.partner_id)
            .fetch_one(&mut *tx)
            .await?;
        if count >= max_per_partner as i64 {
            return Ok(None);
        }
        let sql = format!(
            "INSERT INTO endpoints (id, partner_id, url, secret, event_types, description, enabled, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8) RETURNING {COLUMNS}"
        );
        let mut row: EndpointRow = sqlx::query_as(&sql)
            .bind(&new.id)
            .bind(&new.partner_id)
            .bind(&new.url)
            .bind(self.seal_in("endpoints", "secret", &new.id, &new.secret))
            .bind(to_json(&new.event_types))
            .bind(&new.description)
            .bind(now)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        row.secret = new.secret;
        Ok(Some(row))
    }

    /// The row with its secret opened.
    fn opened(&self, mut row: EndpointRow) -> StoreResult<EndpointRow> {
        row.secret = self.open_in("endpoints", "secret", &row.id, &row.secret)?;
        Ok(row)
    }

    pub async fn get_endpoint(&self, partner_id: &str, id: &str) -> StoreResult<Option<EndpointRow>> {
        let sql = format!("SELECT {COLUMNS} FROM endpoints WHERE id = $1 AND partner_id = $2");
        let row: Option<EndpointRow> = sqlx::query_as(&sql)
            .bind(id)
            .bind(partner_id)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| self.opened(r)).transpose()
    }

    pub async fn list_endpoints(
        &self,
        partner_id: &str,
        limit: u32,
        after: Option<i64>,
    ) -> StoreResult<Page<EndpointRow>> {
        let sql = format!("SELECT {COLUMNS} FROM endpoints WHERE partner_id = $1 AND seq > $2 ORDER BY seq LIMIT $3");
        let rows: Vec<EndpointRow> = sqlx::query_as(&sql)
            .bind(partner_id)
            .bind(after.unwrap_or(0))
            .bind(limit as i64 + 1)
            .fetch_all(&self.reader)
            .await?;
        let rows = rows.into_iter().map(|r| self.opened(r)).collect::<StoreResult<_>>()?;
        Ok(Page::from_overfetch(rows, limit, |r| r.seq))
    }

    pub async fn update_endpoint(
        &self,
        partner_id: &str,
        id: &str,
        patch: EndpointPatch,
    ) -> StoreResult<Option<EndpointRow>> {
        let mut tx = self.begin_write().await?;
        let sql = format!("SELECT {COLUMNS} FROM endpoints WHERE id = $1 AND partner_id = $2");
        let Some(mut row): Option<EndpointRow> = sqlx::query_as(&sql)
            .bind(id)
            .bind(partner_id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        if let Some(url) = patch.url {
            row.url = url;
        }
        if let Some(types) = patch.event_types {
            row.event_types = to_json(&types);
        }
        if let Some(description) = patch.description {
            row.description = description;
        }
        if let Some(enabled) = patch.enabled {
            row.enabled = enabled as i64;
            // Enabled again (or disabled by hand): forget why and since when it failed.
            row.disabled_reason = None;
            row.failing_since = None;
        }
        row.updated_at = now_ms();
        sqlx::query(
            "UPDATE endpoints SET url = $1, event_types = $2, description = $3, enabled = $4, updated_at = $5,
                 disabled_reason = $6, failing_since = $7 WHERE id = $8",
        )
        .bind(&row.url)
        .bind(&row.event_types)
        .bind(&row.description)
        .bind(row.enabled)
        .bind(row.updated_at)
        .bind(&row.disabled_reason)
        .bind(row.failing_since)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.opened(row).map(Some)
    }

    /// Deletes the endpoint; its pending deliveries end as `failed`.
    pub async fn delete_endpoint(&self, partner_id: &str, id: &str) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query("DELETE FROM endpoints WHERE id = $1 AND partner_id = $2")
            .bind(id)
            .bind(partner_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 1 {
            sqlx::query("UPDATE deliveries SET status = 'failed', locked_until = NULL WHERE endpoint_id = $1 AND status = 'pending'")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(deleted == 1)
    }

    /// Rotates the secret; the old one keeps signing for `keep_previous_ms`
    /// (0 drops it at once). Answers the endpoint as it now is.
    pub async fn rotate_secret(
        &self,
        partner_id: &str,
        id: &str,
        new_secret: &str,
        keep_previous_ms: i64,
    ) -> StoreResult<Option<EndpointRow>> {
        let mut tx = self.begin_write().await?;
        let current: Option<String> =
            sqlx::query_scalar("SELECT secret FROM endpoints WHERE id = $1 AND partner_id = $2")
                .bind(id)
                .bind(partner_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(current) = current else { return Ok(None) };
        // Each column's value is sealed for that column and row.
        let previous = match keep_previous_ms {
            0 => None,
            _ => Some(self.seal_in(
                "endpoints",
                "previous_secret",
                id,
                &self.open_in("endpoints", "secret", id, &current)?,
            )),
        };
        let now = now_ms();
        let sql = format!(
            "UPDATE endpoints SET previous_secret = $1, previous_secret_expires_at = $2, secret = $3, updated_at = $4
             WHERE id = $5 RETURNING {COLUMNS}"
        );
        let row: EndpointRow = sqlx::query_as(&sql)
            .bind(&previous)
            .bind(previous.as_ref().map(|_| now + keep_previous_ms))
            .bind(self.seal_in("endpoints", "secret", id, new_secret))
            .bind(now)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(EndpointRow {
            secret: new_secret.to_owned(),
            previous_secret: None,
            ..row
        }))
    }

    /// Disables an endpoint at once (e.g. it answered 410 Gone).
    pub async fn disable_endpoint(&self, id: &str, reason: &str) -> StoreResult<Option<DisabledEndpoint>> {
        Ok(sqlx::query_as(
            "UPDATE endpoints SET enabled = 0, disabled_reason = $1, updated_at = $2
             WHERE id = $3 AND enabled = 1
             RETURNING id, partner_id, url, disabled_reason",
        )
        .bind(reason)
        .bind(now_ms())
        .bind(id)
        .fetch_optional(&self.writer)
        .await?)
    }

    /// Disables every endpoint failing without a break since before `cutoff`.
    pub async fn disable_failing_since(&self, cutoff: i64, reason: &str) -> StoreResult<Vec<DisabledEndpoint>> {
        Ok(sqlx::query_as(
            "UPDATE endpoints SET enabled = 0, disabled_reason = $1, updated_at = $2
             WHERE enabled = 1 AND failing_since IS NOT NULL AND failing_since <= $3
             RETURNING id, partner_id, url, disabled_reason",
        )
        .bind(reason)
        .bind(now_ms())
        .bind(cutoff)
        .fetch_all(&self.writer)
        .await?)
    }
}
