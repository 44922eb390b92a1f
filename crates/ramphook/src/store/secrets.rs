//! The store's boundary for secrets at rest: which columns hold secrets, how
//! each value is sealed and opened (bound to its row), the start-up pass that
//! seals values an older version left in clear, and re-keying — each a
//! single transaction, so a failure leaves every value as it was.

use std::sync::Arc;

use super::{Store, StoreError, StoreResult};
use crate::secrets::{OpenError, Sealer};

/// A column holding a secret: `table.column`, keyed by `key`.
struct SecretColumn {
    table: &'static str,
    key: &'static str,
    column: &'static str,
}

/// Every secret column. A new one (e.g. a previous secret kept during a
/// rotation) is added here and sealed/opened with `seal_in`/`open_in`.
const SECRET_COLUMNS: [SecretColumn; 3] = [
    SecretColumn {
        table: "endpoints",
        key: "id",
        column: "secret",
    },
    SecretColumn {
        table: "endpoints",
        key: "id",
        column: "previous_secret",
    },
    SecretColumn {
        table: "validation_configs",
        key: "partner_id",
        column: "auth",
    },
];

/// The associated data binding a sealed value to its row.
fn context(table: &str, column: &str, key: &str) -> String {
    format!("{table}.{column}:{key}")
}

impl Store {
    /// Seals `plain` for `table.column` of the row `key`.
    pub(crate) fn seal_in(&self, table: &str, column: &str, key: &str, plain: &str) -> String {
        self.sealer.seal(&context(table, column, key), plain)
    }

    /// Opens the sealed `stored` value of `table.column` of the row `key`.
    pub(crate) fn open_in(&self, table: &str, column: &str, key: &str, stored: &str) -> StoreResult<String> {
        self.sealer
            .open(&context(table, column, key), stored)
            .map_err(|e| StoreError::Other(format!("{table}.{column} of {key}: {e}")))
    }

    /// Opens the sealed `stored` value of `column` of endpoint `id`, once
    /// for each sealed value (`opened_secrets.rs`).
    pub(super) fn open_endpoint_secret(&self, column: &'static str, id: &str, stored: &str) -> StoreResult<Arc<str>> {
        if let Some(plain) = self.opened_secrets.get(column, id, stored) {
            return Ok(plain);
        }
        let plain: Arc<str> = self.open_in("endpoints", column, id, stored)?.into();
        self.opened_secrets.keep(column, id, stored, plain.clone());
        Ok(plain)
    }

    /// At start-up: seals every secret still in clear (written before
    /// secrets were sealed) and checks that every sealed one opens with this
    /// master key, so a wrong key stops start-up instead of failing deliveries.
    /// Answers how many values were sealed.
    pub async fn seal_plaintext_secrets(&self) -> StoreResult<usize> {
        let current = self.sealer.clone();
        self.reseal_all(|ctx, stored| {
            if Sealer::is_sealed(stored) {
                current.open(ctx, stored).map(|_| None)
            } else {
                Ok(Some(stored.to_owned()))
            }
        })
        .await
        .map_err(|e| match e {
            StoreError::Other(why) => StoreError::Other(format!(
                "{why}; is this the master key the database was written with (RAMPHOOK_MASTER_KEY / RAMPHOOK_MASTER_KEY_FILE)?"
            )),
            other => other,
        })
    }

    /// Re-seals every secret, sealed under `old`, under this store's key, in
    /// one transaction. Answers how many values were re-sealed.
    pub async fn rekey(&self, old: &Sealer) -> StoreResult<usize> {
        self.reseal_all(|ctx, stored| {
            if Sealer::is_sealed(stored) {
                old.open(ctx, stored).map(Some)
            } else {
                Ok(Some(stored.to_owned()))
            }
        })
        .await
    }

    /// For every secret value, `plain_of` answers its plaintext if it is to
    /// be (re)sealed under this store's key, `None` to leave it.
    async fn reseal_all<F>(&self, plain_of: F) -> StoreResult<usize>
    where
        F: Fn(&str, &str) -> Result<Option<String>, OpenError>,
    {
        let mut tx = self.begin_write().await?;
        let mut changed = 0;
        for col in &SECRET_COLUMNS {
            let (table, key, column) = (col.table, col.key, col.column);
            let rows: Vec<(String, String)> = sqlx::query_as(&format!(
                "SELECT {key}, {column} FROM {table} WHERE {column} IS NOT NULL"
            ))
            .fetch_all(&mut *tx)
            .await?;
            for (id, stored) in rows {
                let ctx = context(table, column, &id);
                let plain =
                    plain_of(&ctx, &stored).map_err(|e| StoreError::Other(format!("{table}.{column} of {id}: {e}")))?;
                if let Some(plain) = plain {
                    sqlx::query(&format!("UPDATE {table} SET {column} = $1 WHERE {key} = $2"))
                        .bind(self.sealer.seal(&ctx, &plain))
                        .bind(&id)
                        .execute(&mut *tx)
                        .await?;
                    changed += 1;
                }
            }
        }
        tx.commit().await?;
        Ok(changed)
    }
}
