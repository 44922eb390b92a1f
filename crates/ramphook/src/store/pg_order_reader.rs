//! Order reads on PostgreSQL for appends that plan from the database (the
//! order was not kept in `order_cache.rs`), grouped: one task per instance
//! reads every order asked for meanwhile with one statement on a kept
//! connection. Taken from the pool, each read cost a second round trip
//! (sqlx checks a connection going back to its pool: `sticky_connection.rs`),
//! and with orders older than the cache, nearly every event's append began
//! with one (docs/PERFORMANCE.md).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::orders::{OrderRow, SELECT_ORDERS_BY_IDS};
use super::sticky_connection::StickyConnection;

/// Orders read by one statement at most.
const MAX_GROUP: usize = 128;

type ReadAnswer = Result<Option<OrderRow>, sqlx::Error>;

struct Read {
    order_id: String,
    answer: oneshot::Sender<ReadAnswer>,
}

/// The handle reads are queued on; the task ends with the last handle.
#[derive(Clone)]
pub(super) struct PgOrderReader {
    reads: mpsc::UnboundedSender<Read>,
}

impl PgOrderReader {
    pub fn start(connection: Arc<StickyConnection>) -> Self {
        let (reads, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(connection, queue));
        Self { reads }
    }

    /// The order as the database has it now, read with whatever else is asked for.
    pub async fn read(&self, order_id: &str) -> ReadAnswer {
        let (answer, answered) = oneshot::channel();
        self.reads
            .send(Read {
                order_id: order_id.to_owned(),
                answer,
            })
            .map_err(|_| sqlx::Error::PoolClosed)?;
        answered.await.map_err(|_| sqlx::Error::PoolClosed)?
    }
}

async fn run(connection: Arc<StickyConnection>, mut queue: mpsc::UnboundedReceiver<Read>) {
    let mut group: Vec<Read> = Vec::with_capacity(MAX_GROUP);
    while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
        let ids: Vec<&str> = group.iter().map(|read| read.order_id.as_str()).collect();
        match read_all(&connection, &ids).await {
            Ok(found) => {
                for read in group.drain(..) {
                    // Asked for twice in one group: each asker gets its copy.
                    let order = found.get(&read.order_id).cloned();
                    let _ = read.answer.send(Ok(order));
                }
            }
            // Each read again alone, so that each gets its own error.
            Err(_) => {
                for read in group.drain(..) {
                    let alone = read_all(&connection, &[&read.order_id])
                        .await
                        .map(|mut found| found.remove(&read.order_id));
                    let _ = read.answer.send(alone);
                }
            }
        }
    }
}

/// The orders of `ids` that exist, by id.
async fn read_all(connection: &StickyConnection, ids: &[&str]) -> Result<HashMap<String, OrderRow>, sqlx::Error> {
    let ids = serde_json::to_string(ids).map_err(|err| sqlx::Error::Encode(Box::new(err)))?;
    let mut kept = connection.get().await?;
    let rows: Result<Vec<OrderRow>, _> = sqlx::query_as(SELECT_ORDERS_BY_IDS)
        .bind(ids)
        .fetch_all(&mut *kept)
        .await;
    drop(kept);
    let rows = connection.checked(rows).await?;
    Ok(rows.into_iter().map(|order| (order.id.clone(), order)).collect())
}
