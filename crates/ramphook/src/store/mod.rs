//! Durable state behind one API: partners, endpoints, orders, events, the
//! delivery outbox and its attempt log, validation callback configurations —
//! on SQLite (the default) or PostgreSQL, with one set of queries.
//!
//! Queries are written once, in SQL both databases speak (`$1` placeholders,
//! integers for times and flags); the few places that differ ask
//! `self.backend`. On SQLite the hot writes (appends, claims, attempt
//! records) run as whole jobs on one writer thread (`sqlite_writer.rs`,
//! via rusqlite, `*_sqlite.rs`); the other writes go through a sqlx pool of
//! one connection that takes the write lock up front (`BEGIN IMMEDIATE`),
//! and reads through a pool of readers, in WAL mode. On PostgreSQL one sqlx
//! (`Any`) pool serves everything (appends in `orders_postgres.rs`, written
//! in groups by `pg_writer.rs`), and several instances may share the
//! database.

mod claim_floors;
mod deliveries;
mod deliveries_api;
mod deliveries_postgres;
mod deliveries_sqlite;
mod endpoints;
mod handoff;
mod opened_secrets;
mod order_cache;
mod orders;
mod orders_postgres;
mod orders_sqlite;
mod partners;
mod pg_append_reader;
mod pg_writer;
mod planner_statistics;
mod read_cache;
mod retention;
mod secrets;
mod sqlite_checkpointer;
mod sqlite_sql;
mod sqlite_writer;
mod sticky_connection;
mod validation;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Any, AnyPool, Executor, PgPool};
use tokio::sync::Notify;

use crate::secrets::Sealer;
use claim_floors::ClaimFloors;
use opened_secrets::OpenedSecrets;
use order_cache::OrderCache;
use pg_append_reader::PgAppendReader;
use pg_writer::PgWriter;
use read_cache::ReadCache;
use sqlite_writer::SqliteWriter;
use sticky_connection::StickyConnection;

pub use deliveries::{AttemptResult, Claim, ClaimedDelivery, Target};
pub use deliveries_api::{AttemptRow, DeliveryFilter, DeliveryRow};
pub use endpoints::{DisabledEndpoint, EndpointPatch, EndpointRow, NewEndpoint};
pub use handoff::Handoff;
pub use orders::{AppendOutcome, EventRow, Idempotency, NewOrder, OrderRow, Replayable};
pub use partners::PartnerRow;
pub use validation::ValidationRow;

/// How long a validation configuration read is reused: the longest another
/// instance may go on using a configuration changed elsewhere.
pub const VALIDATION_CONFIG_FRESH_FOR: Duration = Duration::from_secs(1);

/// The channel on which PostgreSQL instances wake each other's dispatchers.
pub const WAKE_CHANNEL: &str = "ramphook_wake";

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
        let unavailable = match &err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => true,
            sqlx::Error::Database(db) => {
                let message = db.message();
                // SQLite busy/locked; PostgreSQL shutting down or refusing (class 57, 08).
                message.contains("locked")
                    || message.contains("busy")
                    || db.code().is_some_and(|c| c.starts_with("57") || c.starts_with("08"))
            }
            _ => false,
        };
        if unavailable {
            StoreError::Unavailable(err.to_string())
        } else {
            StoreError::Other(err.to_string())
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

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

/// `$start, $start+1, …` for `count` values (sqlx's `QueryBuilder` writes
/// `?` for the `Any` driver, which PostgreSQL does not take).
fn placeholders(start: usize, count: usize) -> String {
    (start..start + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// PostgreSQL: the connections the writer and the append reader keep.
const KEPT_CONNECTIONS: u32 = 2;

#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// Connections to PostgreSQL per instance (SQLite: one writer, four readers).
    pub max_connections: u32,
    /// How long a request waits for a connection before answering 503.
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

#[derive(Clone)]
pub struct Store {
    backend: Backend,
    writer: AnyPool,
    reader: AnyPool,
    /// SQLite only: the thread that runs the hot writes (appends, claims,
    /// attempt records) as whole transactions, committing them in groups.
    sqlite: Option<SqliteWriter>,
    /// PostgreSQL only: wakes the task that sends `NOTIFY` to every
    /// instance. Writes in quick succession share one notification.
    pg_wake: Option<Arc<Notify>>,
    /// Names this instance in its notifications, so that it can ignore its
    /// own: its dispatcher hears of its own work directly.
    instance_id: Arc<str>,
    /// PostgreSQL only: the task that writes concurrent event appends and
    /// the dispatcher's attempt results as one statement.
    pg_writer: Option<PgWriter>,
    /// PostgreSQL only: the task that makes the reads an append needs (its
    /// order when not kept in `recent_orders`; before a refusal, its key's
    /// stored answer), many with one statement.
    pg_append_reader: Option<PgAppendReader>,
    /// PostgreSQL only: the connections the writer and the append reader
    /// keep (given back when the store closes).
    pg_writer_connection: Option<Arc<StickyConnection>>,
    pg_append_reader_connection: Option<Arc<StickyConnection>>,
    /// PostgreSQL only: the pool those two connections come from.
    pg_kept_pool: Option<PgPool>,
    /// PostgreSQL only: orders as this instance last wrote them, which its
    /// appends plan from instead of reading the order first.
    recent_orders: Option<Arc<OrderCache>>,
    /// Partners as read (they never change and are never deleted).
    partners: Arc<ReadCache<PartnerRow>>,
    /// Validation configurations as read (or their absence), for
    /// `VALIDATION_CONFIG_FRESH_FOR`; a change made here drops its entry.
    validation_configs: Arc<ReadCache<Option<ValidationRow>>>,
    /// Seals secrets on the way in and opens them on the way out, so the
    /// rest of the code sees plaintext and the database never does.
    sealer: Sealer,
    /// Endpoint secrets opened for signing deliveries.
    opened_secrets: Arc<OpenedSecrets>,
    /// Deliveries leased by their append for this instance's dispatcher.
    handoff: Arc<Handoff>,
    /// PostgreSQL: where each endpoint's claim scan may start.
    claim_floors: Arc<std::sync::Mutex<ClaimFloors>>,
}

impl Store {
    /// Opens the database named by `url` (`sqlite://PATH`, created if
    /// missing, or `postgres://…`) and runs that backend's migrations.
    /// Secrets are sealed under `sealer`'s master key.
    pub async fn open(url: &str, settings: PoolSettings, sealer: Sealer) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        if url.starts_with("sqlite:") {
            Self::open_sqlite(url, settings, sealer).await
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Self::open_postgres(url, settings, sealer).await
        } else {
            Err(StoreError::Other(format!(
                "unsupported database URL {url:?}: use sqlite://PATH or postgres://…"
            )))
        }
    }

    async fn open_sqlite(url: &str, settings: PoolSettings, sealer: Sealer) -> StoreResult<Self> {
        // Create the file, set WAL (a property of the file) and migrate with
        // the native driver; then serve through `Any` pools.
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("bad database URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        let native = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&native)
            .await
            .map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
        native.close().await;

        let pragmas = "PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;";
        let pool = |max: u32| {
            AnyPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(settings.acquire_timeout)
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        conn.execute(pragmas).await?;
                        Ok(())
                    })
                })
        };
        let writer = pool(1).connect(url).await?;
        let reader = pool(4).connect(url).await?;
        let hot_writer = SqliteWriter::start(options.get_filename())?;
        let handoff = Arc::new(Handoff::default());
        Ok(Self {
            backend: Backend::Sqlite,
            writer,
            reader,
            sqlite: Some(hot_writer),
            pg_wake: None,
            instance_id: new_instance_id(),
            pg_writer: None,
            pg_writer_connection: None,
            pg_append_reader: None,
            pg_append_reader_connection: None,
            pg_kept_pool: None,
            recent_orders: None,
            partners: Arc::new(ReadCache::new(Duration::MAX)),
            validation_configs: Arc::new(ReadCache::new(VALIDATION_CONFIG_FRESH_FOR)),
            sealer,
            opened_secrets: Arc::default(),
            handoff,
            claim_floors: Arc::default(),
        })
    }

    async fn open_postgres(url: &str, settings: PoolSettings, sealer: Sealer) -> StoreResult<Self> {
        let options =
            PgConnectOptions::from_str(url).map_err(|e| StoreError::Other(format!("bad database URL: {e}")))?;
        let native = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/postgres")
            .run(&native)
            .await
            .map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
        native.close().await;
        // sqlx pings a connection (a round trip) each time it is taken from
        // the pool unless told not to: that doubled the round trips of every
        // statement. A connection that broke meanwhile fails its statement
        // instead (503 for that request) and is dropped from the pool.
        // Two connections are kept, by the writer and the append reader
        // (`sticky_connection.rs`: the native driver, in a pool of their
        // own); requests and the dispatcher need at least three more.
        let total = settings.max_connections.max(5);
        let kept_pool = PgPoolOptions::new()
            .max_connections(KEPT_CONNECTIONS)
            .acquire_timeout(settings.acquire_timeout)
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        let pool = AnyPoolOptions::new()
            .max_connections(total - KEPT_CONNECTIONS)
            .acquire_timeout(settings.acquire_timeout)
            .test_before_acquire(false)
            .connect(url)
            .await?;
        let pg_wake = Arc::new(Notify::new());
        let instance_id = new_instance_id();
        tokio::spawn(announce_new_work(pool.clone(), pg_wake.clone(), instance_id.clone()));
        let handoff = Arc::new(Handoff::default());
        let pg_writer_connection = Arc::new(StickyConnection::new(kept_pool.clone()));
        let pg_writer = PgWriter::start(pg_writer_connection.clone(), handoff.clone());
        let pg_append_reader_connection = Arc::new(StickyConnection::new(kept_pool.clone()));
        let pg_append_reader = PgAppendReader::start(pg_append_reader_connection.clone());
        Ok(Self {
            backend: Backend::Postgres,
            writer: pool.clone(),
            reader: pool,
            sqlite: None,
            pg_wake: Some(pg_wake),
            instance_id,
            pg_writer: Some(pg_writer),
            pg_writer_connection: Some(pg_writer_connection),
            pg_append_reader: Some(pg_append_reader),
            pg_append_reader_connection: Some(pg_append_reader_connection),
            pg_kept_pool: Some(kept_pool),
            recent_orders: Some(Arc::new(OrderCache::new())),
            partners: Arc::new(ReadCache::new(Duration::MAX)),
            validation_configs: Arc::new(ReadCache::new(VALIDATION_CONFIG_FRESH_FOR)),
            sealer,
            opened_secrets: Arc::default(),
            handoff,
            claim_floors: Arc::default(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The payload of this instance's notifications on `WAKE_CHANNEL`.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// Where this instance's dispatcher offers room and takes deliveries
    /// leased by their append.
    pub fn handoff(&self) -> &Handoff {
        &self.handoff
    }

    /// Begins a transaction for writing. On SQLite it takes the write lock
    /// at once (`BEGIN IMMEDIATE`), so that it waits its turn behind the hot
    /// writer thread instead of failing when its snapshot turns stale.
    async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.writer.begin().await?,
        })
    }

    /// Is the database reachable?
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    /// On PostgreSQL, tells every instance's dispatcher that there is new
    /// work, once the write has committed (in-process wake-ups cover
    /// SQLite, where there is one process). Coalesced: see `pg_wake`.
    fn notify_dispatchers(&self) {
        if let Some(wake) = &self.pg_wake {
            wake.notify_one();
        }
    }

    pub async fn close(&self) {
        for kept in [&self.pg_writer_connection, &self.pg_append_reader_connection]
            .into_iter()
            .flatten()
        {
            kept.give_back().await;
        }
        if let Some(kept_pool) = &self.pg_kept_pool {
            kept_pool.close().await;
        }
        self.writer.close().await;
        self.reader.close().await;
    }
}

fn new_instance_id() -> Arc<str> {
    uuid::Uuid::new_v4().simple().to_string().into()
}

/// Sends `NOTIFY` on the wake channel, signed `instance_id`, each time it is
/// woken. While one is on its way, further wake-ups collapse into the next
/// one, so a burst of events costs a notification or two, not a round trip
/// each.
async fn announce_new_work(pool: AnyPool, wake: Arc<Notify>, instance_id: Arc<str>) {
    loop {
        wake.notified().await;
        if pool.is_closed() {
            return;
        }
        if let Err(err) = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(WAKE_CHANNEL)
            .bind(&*instance_id)
            .execute(&pool)
            .await
        {
            // Other instances still poll every second.
            tracing::warn!(error = %err, "could not notify other instances of new work");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_from_start() {
        assert_eq!(placeholders(1, 3), "$1, $2, $3");
        assert_eq!(placeholders(4, 1), "$4");
    }
}
