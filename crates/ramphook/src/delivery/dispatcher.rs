//! The dispatcher: claims due deliveries under a lease, sends each on its own
//! task (bounded by a global in-flight limit), and records the results in
//! batches. A commit wakes it in-process, so a new event goes out within
//! milliseconds; a one-second poll is only the fallback.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::retry::RetrySchedule;
use super::sender::{Sender, Webhook};
use crate::domain::time::now_ms;
use crate::store::{AttemptResult, ClaimedDelivery, Store};

const CLAIM_BATCH: u32 = 256;
const POLL_FALLBACK: Duration = Duration::from_secs(1);

/// A handle the API uses to say "there is new work".
#[derive(Clone, Default)]
pub struct Wakeup(Arc<Notify>);

impl Wakeup {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

pub struct Dispatcher {
    pub store: Store,
    pub sender: Sender,
    pub schedule: RetrySchedule,
    pub wakeup: Wakeup,
    pub max_in_flight: usize,
    pub lease: Duration,
    pub shutdown_grace: Duration,
}

impl Dispatcher {
    /// Runs until `shutdown` fires, then lets in-flight attempts finish for at
    /// most `shutdown_grace` and gives the rest back to the queue.
    pub async fn run(self, shutdown: CancellationToken) {
        let permits = Arc::new(Semaphore::new(self.max_in_flight));
        let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
        let tracker = TaskTracker::new();
        let (results_tx, results_rx) = mpsc::unbounded_channel();
        let recorder = tokio::spawn(record_results(self.store.clone(), results_rx, self.wakeup.clone()));

        while !shutdown.is_cancelled() {
            let free = permits.available_permits().min(CLAIM_BATCH as usize) as u32;
            if free == 0 {
                tokio::select! {
                    _ = permits.clone().acquire_owned() => {}
                    _ = shutdown.cancelled() => break,
                }
                continue;
            }
            let claimed = match self.store.claim_due(free, self.lease.as_millis() as i64).await {
                Ok(claimed) => claimed,
                Err(err) => {
                    tracing::warn!(error = %err, "claiming deliveries failed; retrying");
                    self.idle(&shutdown, now_ms() + 1000).await;
                    continue;
                }
            };
            let claimed_count = claimed.len();
            for delivery in claimed {
                let permit = permits.clone().acquire_owned().await.expect("never closed");
                in_flight.lock().unwrap().insert(delivery.id.clone());
                let sender = self.sender.clone();
                let schedule = self.schedule.clone();
                let results = results_tx.clone();
                let in_flight = in_flight.clone();
                tracker.spawn(async move {
                    let result = attempt(&sender, &schedule, &delivery).await;
                    let _ = results.send(result);
                    in_flight.lock().unwrap().remove(&delivery.id);
                    drop(permit);
                });
            }
            if claimed_count < free as usize {
                let next = self.store.next_due_at().await.ok().flatten();
                let floor = if claimed_count == 0 { now_ms() + 5 } else { now_ms() };
                let until = next
                    .unwrap_or(i64::MAX)
                    .max(floor)
                    .min(now_ms() + POLL_FALLBACK.as_millis() as i64);
                self.idle(&shutdown, until).await;
            }
        }

        tracker.close();
        if tokio::time::timeout(self.shutdown_grace, tracker.wait()).await.is_err() {
            let left: Vec<String> = in_flight.lock().unwrap().iter().cloned().collect();
            tracing::warn!(
                count = left.len(),
                "shutdown grace over; leaving unfinished deliveries for the next start"
            );
            if let Err(err) = self.store.release(&left).await {
                tracing::warn!(error = %err, "could not release unfinished deliveries; their lease will expire");
            }
        }
        drop(results_tx);
        let _ = recorder.await;
    }

    /// Waits until `until_ms`, a wake-up, or shutdown.
    async fn idle(&self, shutdown: &CancellationToken, until_ms: i64) {
        let wait = Duration::from_millis((until_ms - now_ms()).max(0) as u64);
        tokio::select! {
            _ = self.wakeup.0.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}

/// Sends one delivery and decides what it becomes.
async fn attempt(sender: &Sender, schedule: &RetrySchedule, delivery: &ClaimedDelivery) -> AttemptResult {
    let at = now_ms();
    let Some((url, secret)) = &delivery.target else {
        return AttemptResult {
            delivery_id: delivery.id.clone(),
            at,
            status_code: None,
            duration_ms: 0,
            error: Some("endpoint_gone: the endpoint was deleted or disabled".into()),
            response_body: None,
            new_status: "failed",
            next_attempt_at: at,
        };
    };
    let outcome = sender
        .send(&Webhook {
            url,
            secret,
            event_id: &delivery.event_id,
            event_name: &delivery.event_name,
            order_id: &delivery.order_id,
            time_stamp_ms: delivery.time_stamp,
        })
        .await;
    metrics::histogram!("ramphook_delivery_attempt_duration_seconds").record(outcome.duration.as_secs_f64());
    let attempts_made = delivery.attempts as u32 + 1;
    let (new_status, next_attempt_at) = if outcome.succeeded() {
        ("delivered", at)
    } else {
        match schedule.next_delay(attempts_made, rand::random::<f64>()) {
            Some(delay) => ("pending", now_ms() + delay.as_millis() as i64),
            None => ("failed", at),
        }
    };
    let outcome_label = match new_status {
        "pending" => "retrying",
        other => other,
    };
    metrics::counter!("ramphook_deliveries_total", "outcome" => outcome_label).increment(1);
    if let Some(error) = &outcome.error {
        tracing::info!(delivery = %delivery.id, endpoint = %delivery.endpoint_id, attempt = attempts_made, %error, next = new_status, "delivery attempt failed");
    }
    AttemptResult {
        delivery_id: delivery.id.clone(),
        at,
        status_code: outcome.status_code,
        duration_ms: outcome.duration.as_millis() as i64,
        error: outcome.error,
        response_body: outcome.response_body,
        new_status,
        next_attempt_at,
    }
}

/// Writes attempt results in batches (one transaction each), then wakes the
/// dispatcher: a finished delivery may unblock the next event of its order.
async fn record_results(store: Store, mut results: mpsc::UnboundedReceiver<AttemptResult>, wakeup: Wakeup) {
    let mut batch = Vec::with_capacity(512);
    while results.recv_many(&mut batch, 512).await > 0 {
        let mut backoff = Duration::from_millis(50);
        loop {
            match store.record_attempts(&batch).await {
                Ok(()) => break,
                Err(err) => {
                    // Not recorded means sent again after the lease: at least once.
                    tracing::warn!(error = %err, count = batch.len(), "recording attempts failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    if backoff >= Duration::from_secs(5) && results.is_closed() {
                        break;
                    }
                }
            }
        }
        batch.clear();
        wakeup.wake();
    }
}
