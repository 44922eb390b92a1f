//! A pool connection kept by one busy task between its statements. sqlx
//! checks every connection that goes back to its pool with a round trip
//! (a `Sync`, and a wait for PostgreSQL's answer), so a statement taken
//! from the pool cost two round trips and two wake-ups of the database
//! process. The writer and the append reader each run one statement
//! after another on PostgreSQL, so each keeps its connection. Written by
//! hand: sqlx has no setting to skip that check. The connections speak
//! sqlx's native PostgreSQL driver, not the `Any` one the rest of the store
//! speaks: `Any` copies every answer row into its own values before it is
//! decoded, which the writer's answers (a row per delivery) paid for.

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

pub(super) struct StickyConnection {
    pool: PgPool,
    kept: Mutex<Option<PoolConnection<Postgres>>>,
}

impl StickyConnection {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            kept: Mutex::new(None),
        }
    }

    /// The kept connection, taken from the pool first if none is kept.
    pub async fn get(&self) -> Result<MappedMutexGuard<'_, PgConnection>, sqlx::Error> {
        let mut kept = self.kept.lock().await;
        if kept.is_none() {
            *kept = Some(self.pool.acquire().await?);
        }
        Ok(MutexGuard::map(kept, |kept| {
            &mut **kept.as_mut().expect("a connection was just kept")
        }))
    }

    /// Runs `statement`'s outcome through: after an error the connection
    /// goes back to the pool (which checks it, and drops it if broken).
    pub async fn checked<T>(&self, outcome: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        if outcome.is_err() {
            self.give_back().await;
        }
        outcome
    }

    /// Gives the kept connection back to the pool: after an error, and
    /// before the pool closes (which waits for every connection taken).
    pub async fn give_back(&self) {
        self.kept.lock().await.take();
    }
}
