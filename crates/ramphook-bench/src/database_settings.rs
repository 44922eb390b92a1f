//! The PostgreSQL settings that decide what the database's CPU per delivery
//! covers, reported beside it: with `autovacuum` off (as on some machines'
//! stock configuration) the run's dead rows are never vacuumed while it is
//! measured, with `synchronous_commit` off no commit waits for its WAL
//! flush, a run that writes more WAL than `max_wal_size` pays checkpoints
//! and full-page writes, and so on. Read through `--database-url` after the
//! run.

use std::collections::BTreeMap;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// The settings reported, in this order.
const REPORTED: [&str; 7] = [
    "autovacuum",
    "synchronous_commit",
    "fsync",
    "commit_delay",
    "shared_buffers",
    "max_wal_size",
    "wal_compression",
];

/// The reported settings as the server has them (sizes with their units),
/// or why they could not be read.
pub async fn read(url: &str) -> Result<BTreeMap<String, String>, String> {
    let options: PgConnectOptions = url.parse().map_err(|e| format!("{e}"))?;
    let mut connection = options.connect().await.map_err(|e| format!("{e}"))?;
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, CASE WHEN unit = '8kB' THEN pg_size_pretty(CAST(setting AS bigint) * 8192)
                           ELSE setting || COALESCE(' ' || unit, '') END
         FROM pg_settings WHERE name = ANY($1)",
    )
    .bind(&REPORTED[..])
    .fetch_all(&mut connection)
    .await
    .map_err(|e| format!("{e}"))?;
    let _ = connection.close().await;
    Ok(rows.into_iter().collect())
}

/// `name=value` pairs in `REPORTED`'s order, for the table.
pub fn render(settings: &BTreeMap<String, String>) -> String {
    REPORTED
        .iter()
        .filter_map(|name| settings.get(*name).map(|value| format!("{name}={value}")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_render_in_the_reported_order() {
        let settings: BTreeMap<String, String> = [
            ("shared_buffers", "128 MB"),
            ("autovacuum", "off"),
            ("synchronous_commit", "on"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(
            render(&settings),
            "autovacuum=off synchronous_commit=on shared_buffers=128 MB"
        );
        assert_eq!(render(&BTreeMap::new()), "");
    }
}
