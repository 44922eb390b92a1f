//! Expires unpaid orders on their own: sleeps until the next `expiresAt`
//! (or a new order wakes it), then emits `payment_expired` through the same
//! outbox path as any other event.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::delivery::dispatcher::Wakeup;
use crate::domain::time::now_ms;
use crate::store::Store;

const MAX_SLEEP: Duration = Duration::from_secs(1);
const BATCH: u32 = 500;

pub async fn run(store: Store, new_order: Arc<Notify>, deliveries: Wakeup, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        match store.expire_due(now_ms(), BATCH).await {
            Ok(0) => {}
            Ok(count) => {
                tracing::info!(count, "orders expired");
                deliveries.wake();
                if count as u32 == BATCH {
                    continue;
                }
            }
            Err(err) => tracing::warn!(error = %err, "expiring orders failed; retrying"),
        }
        let next = store.next_expiry().await.ok().flatten();
        let wait = next
            .map(|at| Duration::from_millis((at - now_ms()).max(0) as u64))
            .unwrap_or(MAX_SLEEP)
            .clamp(Duration::from_millis(5), MAX_SLEEP);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = new_order.notified() => {}
            _ = shutdown.cancelled() => {}
        }
    }
}
