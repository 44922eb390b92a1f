//! Throwaway PostgreSQL databases for tests, shared by the `api` and `store`
//! test binaries (each includes this file with `#[path]`): whether the local
//! PostgreSQL answers, and one uniquely named database per test, dropped after.

use std::time::Duration;

/// Where the PostgreSQL tests create their databases (one per test, dropped after).
pub fn admin_url() -> String {
    std::env::var("RAMPHOOK_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Does PostgreSQL answer? If not, says the test was skipped (or fails, when
/// `RAMPHOOK_REQUIRE_POSTGRES=1`, as in CI).
pub async fn available() -> bool {
    use sqlx::Connection;
    let url = admin_url();
    let reachable = tokio::time::timeout(Duration::from_secs(3), sqlx::PgConnection::connect(&url)).await;
    match reachable {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            true
        }
        _ if std::env::var("RAMPHOOK_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") => {
            panic!("PostgreSQL is required (RAMPHOOK_REQUIRE_POSTGRES=1) but {url} does not answer")
        }
        _ => {
            eprintln!(
                "SKIPPED: PostgreSQL suite: {url} does not answer. Start PostgreSQL (or set \
                 RAMPHOOK_TEST_POSTGRES_URL) to run it."
            );
            false
        }
    }
}

/// A database of its own on the local PostgreSQL, dropped (forcibly,
/// whatever is still connected) when this value is.
pub struct PostgresDatabase {
    name: String,
}

impl PostgresDatabase {
    pub async fn create() -> Self {
        use sqlx::{Connection, Executor};
        let name = format!("ramphook_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url()).await.unwrap();
        admin.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
        admin.close().await.unwrap();
        Self { name }
    }

    pub fn url(&self) -> String {
        let mut url = url::Url::parse(&admin_url()).unwrap();
        url.set_path(&self.name);
        url.to_string()
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async; a short-lived runtime on its own thread.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    use sqlx::{Connection, Executor};
                    if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url()).await {
                        let _ = admin
                            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                            .await;
                    }
                })
        })
        .join();
    }
}
