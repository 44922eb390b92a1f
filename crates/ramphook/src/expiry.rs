//! Expires unpaid orders on their own: sleeps until the next `expiresAt`
//! (or a new order that expires sooner wakes it), then emits
//! `payment_expired` through the same outbox path as any other event.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::delivery::dispatcher::Wakeup;
use crate::domain::time::now_ms;
use crate::store::Store;

const MAX_SLEEP: Duration = Duration::from_secs(1);
const BATCH: u32 = 500;

/// When the expiry task will look next, and how to wake it earlier. A new
/// order wakes it only if it expires before that: with the usual expiry of
/// minutes, creating orders costs the task nothing (it used to look at the
/// database once per order).
pub struct ExpiryAlarm {
    next_look_ms: AtomicI64,
    wake: Notify,
}

impl Default for ExpiryAlarm {
    /// Until the task has looked once, every new order wakes it.
    fn default() -> Self {
        Self {
            next_look_ms: AtomicI64::new(i64::MAX),
            wake: Notify::new(),
        }
    }
}

impl ExpiryAlarm {
    /// A new order expires at `expires_at_ms`.
    pub fn order_created(&self, expires_at_ms: i64) {
        if expires_at_ms < self.next_look_ms.load(Ordering::Acquire) {
            self.wake.notify_one();
        }
    }
}

pub async fn run(store: Store, alarm: Arc<ExpiryAlarm>, deliveries: Wakeup, shutdown: CancellationToken) {
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
        // Set before sleeping: an order created from here on that expires
        // sooner wakes the task (the notification is kept if it comes early).
        alarm
            .next_look_ms
            .store(now_ms() + wait.as_millis() as i64, Ordering::Release);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = alarm.wake.notified() => {}
            _ = shutdown.cancelled() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the alarm holds a wake-up (without waiting for one).
    async fn woken(alarm: &ExpiryAlarm) -> bool {
        tokio::time::timeout(Duration::ZERO, alarm.wake.notified())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn only_an_order_expiring_before_the_next_look_wakes_the_task() {
        let alarm = ExpiryAlarm::default();
        alarm.order_created(5_000);
        assert!(woken(&alarm).await, "before the first look every order wakes it");

        alarm.next_look_ms.store(10_000, Ordering::Release);
        alarm.order_created(60_000);
        assert!(!woken(&alarm).await, "a later expiry must not wake it");
        alarm.order_created(9_000);
        assert!(woken(&alarm).await, "a sooner expiry must wake it");
    }
}
