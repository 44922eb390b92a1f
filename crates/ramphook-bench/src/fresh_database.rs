//! `--fresh-database`: the PostgreSQL database named in `--database-url` is
//! dropped and created empty before the run, so that every run starts from
//! the same empty schema. A reused database carries the last run's rows,
//! planner statistics and dead tuples into the next, and two builds
//! compared on it are not measured alike.

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// Drops and creates the database `url` names, through the server's
/// `postgres` database. Refuses to drop `postgres` itself.
pub async fn recreate(url: &str) -> Result<(), String> {
    let options: PgConnectOptions = url.parse().map_err(|e| format!("--database-url {url}: {e}"))?;
    let name = options
        .get_database()
        .ok_or("--fresh-database needs a database name in --database-url")?
        .to_owned();
    if name == "postgres" {
        return Err("--fresh-database will not drop the `postgres` database: name another in --database-url".into());
    }
    let failed = |e: sqlx::Error| format!("--fresh-database: {e}");
    let mut maintenance = options.database("postgres").connect().await.map_err(failed)?;
    let quoted = quote_identifier(&name);
    sqlx::query(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
        .execute(&mut maintenance)
        .await
        .map_err(failed)?;
    sqlx::query(&format!("CREATE DATABASE {quoted}"))
        .execute(&mut maintenance)
        .await
        .map_err(failed)?;
    maintenance.close().await.map_err(failed)
}

/// `name` as an SQL identifier (double quotes, inner ones doubled): DDL
/// takes no bind parameters.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_whole() {
        assert_eq!(quote_identifier("bench"), "\"bench\"");
        assert_eq!(quote_identifier("a\"; DROP"), "\"a\"\"; DROP\"");
    }

    #[tokio::test]
    async fn the_maintenance_database_is_never_dropped() {
        let refused = recreate("postgres://postgres@127.0.0.1:1/postgres").await.unwrap_err();
        assert!(refused.contains("will not drop"), "{refused}");
        let refused = recreate("postgres://postgres@127.0.0.1:1").await.unwrap_err();
        assert!(refused.contains("needs a database name"), "{refused}");
    }
}
