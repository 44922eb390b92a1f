//! Partners and the hashes of their API keys.

use std::time::Instant;

use super::{Store, StoreResult};
use crate::domain::time::now_ms;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PartnerRow {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

impl Store {
    pub async fn create_partner(&self, id: &str, name: &str, api_key_hash: &str) -> StoreResult<PartnerRow> {
        let created_at = now_ms();
        sqlx::query("INSERT INTO partners (id, name, api_key_hash, created_at) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(name)
            .bind(api_key_hash)
            .bind(created_at)
            .execute(&self.writer)
            .await?;
        Ok(PartnerRow {
            id: id.to_owned(),
            name: name.to_owned(),
            created_at,
        })
    }

    /// The partner, from memory once read (partners never change and are
    /// never deleted; one not found is looked for again next time).
    pub async fn get_partner(&self, id: &str) -> StoreResult<Option<PartnerRow>> {
        if let Some(partner) = self.partners.get(id, Instant::now()) {
            return Ok(Some(partner));
        }
        let generation = self.partners.generation();
        let partner: Option<PartnerRow> = sqlx::query_as("SELECT id, name, created_at FROM partners WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        if let Some(partner) = &partner {
            self.partners.put(id, partner.clone(), generation, Instant::now());
        }
        Ok(partner)
    }

    /// The partner owning the API key with this hash.
    pub async fn partner_by_key_hash(&self, api_key_hash: &str) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar("SELECT id FROM partners WHERE api_key_hash = $1")
            .bind(api_key_hash)
            .fetch_optional(&self.reader)
            .await?)
    }
}
