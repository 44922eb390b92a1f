//! Durable state behind one API: partners, endpoints, orders, events, the
//! delivery outbox and its attempt log, validation callback configurations.
//! Today one backend (SQLite); the API is shaped so a PostgreSQL backend can
//! sit behind the same methods.
//!
//! SQLite writes go through a pool of exactly one connection, so writers
//! queue in-process instead of meeting "database is locked"; reads use a
//! separate pool in WAL mode and never wait on writers.

mod deliveries;
mod endpoints;
mod orders;
mod partners;
mod validation;

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

pub use deliveries::{AttemptResult, AttemptRow, ClaimedDelivery, DeliveryFilter, DeliveryRow};
pub use endpoints::{EndpointPatch, EndpointRow, NewEndpoint};
pub use orders::{AppendOutcome, EventRow, Idempotency, NewOrder, OrderRow, Replayable};
pub use partners::PartnerRow;
pub use validation::ValidationRow;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is too busy to answer in time.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Other(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => {
                StoreError::Unavailable(err.to_string())
            }
            sqlx::Error::Database(db) if db.message().contains("locked") || db.message().contains("busy") => {
                StoreError::Unavailable(err.to_string())
            }
            _ => StoreError::Other(err.to_string()),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A page of a list: the rows and the cursor of the next page, if any.
pub struct Page<T> {
    pub rows: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows, `seq` giving the cursor.
    fn from_overfetch(mut rows: Vec<T>, limit: u32, seq: impl Fn(&T) -> i64) -> Self {
        let next_cursor = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|r| seq(r).to_string())
        } else {
            None
        };
        Page { rows, next_cursor }
    }
}

/// Parses a list cursor (the `seq` of the last row seen); anything else is `None`.
pub fn parse_cursor(cursor: Option<&str>) -> Option<i64> {
    cursor.and_then(|c| c.parse::<i64>().ok()).filter(|c| *c > 0)
}

#[derive(Clone)]
pub struct Store {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl Store {
    /// Opens (creating if missing) the database and runs the migrations.
    pub async fn open(url: &str) -> StoreResult<Self> {
        if !url.starts_with("sqlite:") {
            return Err(StoreError::Other(format!(
                "unsupported database URL {url:?}: this build speaks sqlite://PATH"
            )));
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("bad database URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self { writer, reader })
    }

    /// Is the database reachable?
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}
