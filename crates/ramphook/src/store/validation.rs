//! Validation callback configurations: one row per partner, needed on every
//! check and kept in memory for `VALIDATION_CONFIG_FRESH_FOR` once read (a
//! change made through this store drops it at once). Portable SQL with `$n`
//! placeholders (PostgreSQL-ready).

use std::time::Instant;

use super::{Store, StoreResult};
use crate::domain::time::now_ms;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ValidationRow {
    pub partner_id: String,
    pub id: String,
    pub url: String,
    /// JSON of `validation::Auth`, credentials included (sealed in the
    /// database, in clear here).
    pub auth: String,
    pub timeout_ms: i64,
    pub on_error: String,
    pub cache_ttl_seconds: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "partner_id, id, url, auth, timeout_ms, on_error, cache_ttl_seconds, created_at, updated_at";

impl Store {
    /// Creates or replaces the partner's configuration (`created_at` is kept
    /// on a replace); answers the stored row.
    pub async fn put_validation(&self, row: ValidationRow) -> StoreResult<ValidationRow> {
        let now = now_ms();
        let sql = format!(
            "INSERT INTO validation_configs ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (partner_id) DO UPDATE SET id = excluded.id, url = excluded.url, auth = excluded.auth,
                 timeout_ms = excluded.timeout_ms, on_error = excluded.on_error,
                 cache_ttl_seconds = excluded.cache_ttl_seconds, updated_at = excluded.updated_at
             RETURNING {COLUMNS}"
        );
        let stored: ValidationRow = sqlx::query_as(&sql)
            .bind(&row.partner_id)
            .bind(&row.id)
            .bind(&row.url)
            .bind(self.seal_in("validation_configs", "auth", &row.partner_id, &row.auth))
            .bind(row.timeout_ms)
            .bind(&row.on_error)
            .bind(row.cache_ttl_seconds)
            .bind(now)
            .bind(now)
            .fetch_one(&self.writer)
            .await?;
        self.validation_configs.invalidate(&row.partner_id);
        Ok(ValidationRow {
            auth: row.auth,
            ..stored
        })
    }

    pub async fn get_validation(&self, partner_id: &str) -> StoreResult<Option<ValidationRow>> {
        if let Some(config) = self.validation_configs.get(partner_id, Instant::now()) {
            return Ok(config);
        }
        let generation = self.validation_configs.generation();
        let config = self.read_validation(partner_id).await?;
        self.validation_configs
            .put(partner_id, config.clone(), generation, Instant::now());
        Ok(config)
    }

    async fn read_validation(&self, partner_id: &str) -> StoreResult<Option<ValidationRow>> {
        let sql = format!("SELECT {COLUMNS} FROM validation_configs WHERE partner_id = $1");
        let row: Option<ValidationRow> = sqlx::query_as(&sql)
            .bind(partner_id)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|mut r| {
            r.auth = self.open_in("validation_configs", "auth", &r.partner_id, &r.auth)?;
            Ok(r)
        })
        .transpose()
    }

    /// Removes the configuration; `false` if there was none.
    pub async fn delete_validation(&self, partner_id: &str) -> StoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM validation_configs WHERE partner_id = $1")
            .bind(partner_id)
            .execute(&self.writer)
            .await?
            .rows_affected();
        self.validation_configs.invalidate(partner_id);
        Ok(deleted == 1)
    }
}
