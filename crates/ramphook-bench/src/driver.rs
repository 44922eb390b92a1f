//! The load: creates the orders in a warm-up phase, then has C concurrent
//! clients post each order's on-ramp events in their allowed sequence, as
//! fast as the API answers or paced to a fixed rate, bounded by an event
//! count and a deadline. Every `201` is handed to the latency tracker.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::ProgressBar;

use crate::api::Api;
use crate::metrics::{new_histogram, Tracker};

/// An on-ramp order's events in the only order the state machine allows.
pub const ON_RAMP_STEPS: [&str; 3] = ["payment_received", "crypto_tx_sent", "crypto_delivered"];

/// Stop posting after this many failed calls (something is plainly wrong).
const MAX_ERRORS: u64 = 1_000;

#[derive(Debug, Clone)]
pub struct Order {
    pub id: String,
    /// Webhooks per event that the latency tracker should wait for
    /// (0: not measured, e.g. the slow neighbour's orders).
    pub expected: u32,
}

#[derive(Debug, Clone, Copy)]
pub struct DriveOptions {
    pub concurrency: usize,
    /// Events per second across all clients; `None` = as fast as it goes.
    pub rate: Option<f64>,
    /// Events posted per order (1 to 3 of `ON_RAMP_STEPS`).
    pub steps: usize,
    pub max_events: Option<u64>,
    pub deadline: Duration,
    /// Each event carries an `Idempotency-Key`.
    pub idempotency_keys: bool,
}

#[derive(Debug, Clone)]
pub struct DriveStats {
    pub accepted: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// How long the API took to answer each accepted event, µs.
    pub api_micros: Histogram<u64>,
}

/// When the `k`-th event (0-based) is due after the start, at `rate` per second.
pub fn slot_offset(k: u64, rate: f64) -> Duration {
    Duration::from_secs_f64(k as f64 / rate)
}

/// How many orders `events` events need at `steps` events per order.
pub fn orders_needed(events: u64, steps: usize) -> u64 {
    events.div_ceil(steps.max(1) as u64)
}

/// Deals `n` indices out to `clients` clients, round-robin.
pub fn partition(n: usize, clients: usize) -> Vec<Vec<usize>> {
    let clients = clients.max(1);
    let mut parts = vec![Vec::with_capacity(n / clients + 1); clients];
    for i in 0..n {
        parts[i % clients].push(i);
    }
    parts
}

/// Warm-up: creates `count` orders, order `i` for `partners[i % len]`
/// (a partner id with the webhooks per event it expects).
pub async fn create_orders(
    api: &Api,
    partners: &[(String, u32)],
    count: u64,
    concurrency: usize,
    progress: &ProgressBar,
) -> Result<Vec<Order>, String> {
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let created: Arc<Mutex<Vec<(u64, Order)>>> = Arc::new(Mutex::new(Vec::with_capacity(count as usize)));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (api, next, failed, created, progress) = (
            api.clone(),
            next.clone(),
            failed.clone(),
            created.clone(),
            progress.clone(),
        );
        let partners = partners.to_vec();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count || failed.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let (partner, expected) = &partners[i as usize % partners.len()];
                match api.order(partner, i).await {
                    Ok(id) => {
                        created.lock().expect("never poisoned").push((
                            i,
                            Order {
                                id,
                                expected: *expected,
                            },
                        ));
                        progress.inc(1);
                    }
                    Err(err) => {
                        failed.store(true, Ordering::Relaxed);
                        return Err(err);
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    let mut created = std::mem::take(&mut *created.lock().expect("never poisoned"));
    created.sort_by_key(|(i, _)| *i);
    Ok(created.into_iter().map(|(_, order)| order).collect())
}

/// The measured phase. Each client owns a share of the orders and walks them
/// round by round (every order's first event, then every order's second…),
/// so an order's next event is only posted once its previous one was accepted.
pub async fn drive(
    api: &Api,
    orders: Arc<Vec<Order>>,
    options: DriveOptions,
    tracker: Arc<Tracker>,
    progress: &ProgressBar,
) -> DriveStats {
    let start = Instant::now();
    let slots = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::default();
    let api_micros = Arc::new(Mutex::new(new_histogram()));
    let steps = options.steps.clamp(1, ON_RAMP_STEPS.len());
    let max_events = options
        .max_events
        .unwrap_or(u64::MAX)
        .min(orders.len() as u64 * steps as u64);
    let mut tasks = Vec::new();
    for mine in partition(orders.len(), options.concurrency) {
        let (api, orders, tracker, progress) = (api.clone(), orders.clone(), tracker.clone(), progress.clone());
        let (slots, accepted, errors, first_error, api_micros) = (
            slots.clone(),
            accepted.clone(),
            errors.clone(),
            first_error.clone(),
            api_micros.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut client = api.event_client();
            let mut local = new_histogram();
            // Orders whose event failed: their later steps would only answer 409.
            let mut stuck = std::collections::HashSet::new();
            'rounds: for step in ON_RAMP_STEPS.iter().take(steps) {
                for &index in &mine {
                    if stuck.contains(&index) {
                        continue;
                    }
                    let k = slots.fetch_add(1, Ordering::Relaxed);
                    if k >= max_events
                        || start.elapsed() >= options.deadline
                        || errors.load(Ordering::Relaxed) >= MAX_ERRORS
                    {
                        break 'rounds;
                    }
                    if let Some(rate) = options.rate {
                        let due = slot_offset(k, rate);
                        if due >= options.deadline {
                            break 'rounds;
                        }
                        tokio::time::sleep_until((start + due).into()).await;
                    }
                    let order = &orders[index];
                    let sent = Instant::now();
                    let posted = match &mut client {
                        Ok(client) => client.event(&order.id, step, options.idempotency_keys).await,
                        Err(unusable) => Err(unusable.clone()),
                    };
                    match posted {
                        Ok(event_id) => {
                            let answered = Instant::now();
                            if order.expected > 0 {
                                tracker.sent(event_id, sent, answered, order.expected);
                            }
                            local.saturating_record((answered - sent).as_micros().max(1) as u64);
                            accepted.fetch_add(1, Ordering::Relaxed);
                            progress.inc(1);
                        }
                        Err(err) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            first_error.lock().expect("never poisoned").get_or_insert(err);
                            stuck.insert(index);
                        }
                    }
                }
            }
            api_micros.lock().expect("never poisoned").add(&local).ok();
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let api_micros = api_micros.lock().expect("never poisoned").clone();
    let first_error = first_error.lock().expect("never poisoned").clone();
    DriveStats {
        accepted: accepted.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        first_error,
        elapsed: start.elapsed(),
        api_micros,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_spreads_slots_evenly() {
        assert_eq!(slot_offset(0, 100.0), Duration::ZERO);
        assert_eq!(slot_offset(100, 100.0), Duration::from_secs(1));
        assert_eq!(slot_offset(25, 50.0), Duration::from_millis(500));
    }

    #[test]
    fn orders_cover_the_events() {
        assert_eq!(orders_needed(300, 3), 100);
        assert_eq!(orders_needed(301, 3), 101);
        assert_eq!(orders_needed(5, 1), 5);
        assert_eq!(orders_needed(5, 0), 5);
    }

    #[test]
    fn partition_deals_round_robin() {
        assert_eq!(partition(5, 2), vec![vec![0, 2, 4], vec![1, 3]]);
        assert_eq!(partition(2, 4), vec![vec![0], vec![1], vec![], vec![]]);
        assert_eq!(partition(3, 0), vec![vec![0, 1, 2]]);
    }
}
