//! The reads an append on PostgreSQL makes, grouped: its order when this
//! instance did not keep it (`order_cache.rs`) and its event was not let
//! through unread (`orders_postgres.rs`), and, before a refusal or an
//! order's creation, an `Idempotency-Key`'s stored answer.
//! One task per instance reads everything asked for meanwhile, a statement
//! for the keys and one for the orders, on a kept connection. Taken from
//! the pool, each read cost a second round trip (sqlx checks a connection
//! going back to its pool: `sticky_connection.rs`), and with orders older
//! than the cache, or a platform that sends keys, nearly every append
//! began with one or two (docs/PERFORMANCE.md).

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::orders::{OrderRow, Remembered, SELECT_ORDERS_BY_IDS};
use super::sticky_connection::StickyConnection;

/// Reads served by one turn at most.
const MAX_GROUP: usize = 128;

/// The stored answers of a JSON array of `{scope, key}`, each found by the
/// primary key (`LIMIT 1` keeps the planner from joining the whole table to
/// what it guesses are 100 input rows).
const SELECT_KEYS: &str = "SELECT i.scope, i.key, k.request_hash, k.status, k.body
     FROM json_to_recordset(CAST($1 AS json)) AS i(scope text, key text),
          LATERAL (SELECT request_hash, status, body FROM idempotency x
                   WHERE x.scope = i.scope AND x.key = i.key LIMIT 1) k";

type Answer<T> = oneshot::Sender<Result<Option<T>, sqlx::Error>>;

enum Read {
    Order { id: String, answer: Answer<OrderRow> },
    Key { key: ScopedKey, answer: Answer<Remembered> },
}

#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
struct ScopedKey {
    scope: String,
    key: String,
}

/// The handle reads are queued on; the task ends with the last handle.
#[derive(Clone)]
pub(super) struct PgAppendReader {
    reads: mpsc::UnboundedSender<Read>,
}

impl PgAppendReader {
    pub fn start(connection: Arc<StickyConnection>) -> Self {
        let (reads, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(connection, queue));
        Self { reads }
    }

    /// The order as the database has it now.
    pub async fn order(&self, id: &str) -> Result<Option<OrderRow>, sqlx::Error> {
        let (answer, answered) = oneshot::channel();
        let id = id.to_owned();
        self.send(Read::Order { id, answer })?;
        answered.await.map_err(|_| sqlx::Error::PoolClosed)?
    }

    /// The answer stored under `key` in `scope`, if any.
    pub async fn remembered(&self, scope: &str, key: &str) -> Result<Option<Remembered>, sqlx::Error> {
        let (answer, answered) = oneshot::channel();
        let key = ScopedKey {
            scope: scope.to_owned(),
            key: key.to_owned(),
        };
        self.send(Read::Key { key, answer })?;
        answered.await.map_err(|_| sqlx::Error::PoolClosed)?
    }

    fn send(&self, read: Read) -> Result<(), sqlx::Error> {
        self.reads.send(read).map_err(|_| sqlx::Error::PoolClosed)
    }
}

async fn run(connection: Arc<StickyConnection>, mut queue: mpsc::UnboundedReceiver<Read>) {
    let mut group: Vec<Read> = Vec::with_capacity(MAX_GROUP);
    while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
        let mut orders = Vec::new();
        let mut keys = Vec::new();
        for read in group.drain(..) {
            match read {
                Read::Order { id, answer } => orders.push((id, answer)),
                Read::Key { key, answer } => keys.push((key, answer)),
            }
        }
        answer_all(&connection, keys, read_keys).await;
        answer_all(&connection, orders, read_orders).await;
    }
}

/// Answers every read of one kind with one statement; if that fails, each
/// is read again alone, so that each gets its own error.
async fn answer_all<K, T, F>(connection: &StickyConnection, reads: Vec<(K, Answer<T>)>, read: F)
where
    K: Eq + std::hash::Hash,
    T: Clone,
    F: AsyncFn(&StickyConnection, &[&K]) -> Result<HashMap<K, T>, sqlx::Error>,
{
    if reads.is_empty() {
        return;
    }
    let wanted: Vec<&K> = reads.iter().map(|(wanted, _)| wanted).collect();
    match read(connection, &wanted).await {
        // Asked for twice in one group: each asker gets its copy.
        Ok(found) => {
            for (wanted, answer) in reads {
                let _ = answer.send(Ok(found.get(&wanted).cloned()));
            }
        }
        Err(_) => {
            for (wanted, answer) in reads {
                let alone = read(connection, &[&wanted])
                    .await
                    .map(|mut found| found.remove(&wanted));
                let _ = answer.send(alone);
            }
        }
    }
}

/// The orders of `ids` that exist, by id.
async fn read_orders(connection: &StickyConnection, ids: &[&String]) -> Result<HashMap<String, OrderRow>, sqlx::Error> {
    let rows: Vec<OrderRow> = fetch(connection, SELECT_ORDERS_BY_IDS, ids).await?;
    Ok(rows.into_iter().map(|order| (order.id.clone(), order)).collect())
}

/// The stored answers of `keys` that exist, by key.
async fn read_keys(
    connection: &StickyConnection,
    keys: &[&ScopedKey],
) -> Result<HashMap<ScopedKey, Remembered>, sqlx::Error> {
    let rows: Vec<(String, String, String, i64, String)> = fetch(connection, SELECT_KEYS, keys).await?;
    Ok(rows
        .into_iter()
        .map(|(scope, key, hash, status, body)| (ScopedKey { scope, key }, (hash, status, body)))
        .collect())
}

/// Runs `sql` with `input` as its JSON `$1` on the kept connection.
async fn fetch<I: Serialize + ?Sized, T>(
    connection: &StickyConnection,
    sql: &str,
    input: &I,
) -> Result<Vec<T>, sqlx::Error>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let input = serde_json::to_string(input).map_err(|err| sqlx::Error::Encode(Box::new(err)))?;
    let mut kept = connection.get().await?;
    let rows = sqlx::query_as(sql).bind(input).fetch_all(&mut *kept).await;
    drop(kept);
    connection.checked(rows).await
}
