//! The dispatcher: claims due deliveries under a lease (or takes those its
//! own instance's appends leased for it: `store::Handoff`), sends each on its
//! own task within per-endpoint lanes under a global in-flight bound, and
//! records the results in batches. A commit wakes it in-process (or by NOTIFY
//! across instances), so a new event goes out within milliseconds; a
//! one-second poll is only the fallback.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::alerts::Alerts;
use super::lanes::Lanes;
use super::retry::{Failure, RetrySchedule};
use super::sender::{AttemptOutcome, Sender, Webhook};
use crate::domain::time::now_ms;
use crate::store::{AttemptResult, Backend, Claim, ClaimedDelivery, Store};

const CLAIM_BATCH: u32 = 256;
const POLL_FALLBACK: Duration = Duration::from_secs(1);
/// On SQLite, appends lease for this dispatcher only while it has at most
/// this many attempts in flight to endpoints with room (a slow partner's
/// full lane does not count: it loads no one). Under more load a claim, which takes many
/// at once, costs the one writer thread less per delivery than a lease and
/// a targets read in every append (docs/PERFORMANCE.md); on PostgreSQL,
/// where claims are the dearer part, appends lease at any load.
const SQLITE_HANDOFF_UNTIL: usize = 8;

/// A handle the API uses to say "there is new work".
#[derive(Clone, Default)]
pub struct Wakeup {
    notify: Arc<Notify>,
    /// Set by `wake`: something may be claimable (cleared by the claim).
    claim_wanted: Arc<AtomicBool>,
    /// When deliveries were last left for a claim anywhere (ms): new work
    /// announced by `wake`, an append that had no room to lease them. While
    /// that is recent, every recorded batch asks for a claim
    /// (`record_results`). Deliveries left behind particular lanes are
    /// tracked per endpoint (`Handoff::left_in_lanes`).
    left_at: Arc<AtomicI64>,
}

impl Wakeup {
    /// Something may be claimable now: wake the dispatcher to claim.
    pub fn wake(&self) {
        self.left_behind();
        self.ask_for_claim();
    }

    fn ask_for_claim(&self) {
        self.claim_wanted.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    fn left_behind(&self) {
        self.left_at.store(now_ms(), Ordering::Relaxed);
    }

    /// An append handed deliveries over (`store::Handoff`) and left none for
    /// a claim: wake the dispatcher to take them, without claiming for it.
    pub fn handed(&self) {
        self.notify.notify_one();
    }
}

pub struct Dispatcher {
    pub store: Store,
    pub sender: Sender,
    pub schedule: RetrySchedule,
    pub wakeup: Wakeup,
    pub alerts: Alerts,
    pub max_in_flight: usize,
    pub max_in_flight_per_endpoint: u32,
    /// The least wait after a timeout or a 429.
    pub throttle_backoff: Duration,
    pub lease: Duration,
    pub shutdown_grace: Duration,
}

/// What the dispatcher's running attempts share.
struct Running {
    permits: Arc<Semaphore>,
    lanes: Arc<Mutex<Lanes>>,
    in_flight: Arc<Mutex<HashSet<String>>>,
    tracker: TaskTracker,
    results: mpsc::UnboundedSender<AttemptResult>,
    /// Cancelled when the shutdown grace is over.
    abort: CancellationToken,
}

/// Claimed deliveries waiting (locally, under their lease) for room in their
/// endpoint's lane, oldest first, with the time they were claimed.
type Waiting = HashMap<String, VecDeque<(ClaimedDelivery, i64)>>;

impl Dispatcher {
    /// Runs until `shutdown` fires, then lets in-flight attempts finish for at
    /// most `shutdown_grace` and gives the rest back to the queue.
    pub async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let (results_tx, results_rx) = mpsc::unbounded_channel();
        let recorder = tokio::spawn(record_results(
            this.store.clone(),
            results_rx,
            this.wakeup.clone(),
            this.lease,
        ));
        let running = Running {
            permits: Arc::new(Semaphore::new(this.max_in_flight)),
            lanes: Arc::new(Mutex::new(Lanes::new(this.max_in_flight_per_endpoint))),
            in_flight: Arc::default(),
            tracker: TaskTracker::new(),
            results: results_tx,
            abort: CancellationToken::new(),
        };
        let (permits, lanes, in_flight, tracker) =
            (&running.permits, &running.lanes, &running.in_flight, &running.tracker);
        let mut waiting: Waiting = HashMap::new();

        // When the last claim was made (never: claim at once), the next due
        // time it answered, and whether it filled its batch (more may wait).
        let (mut last_claim, mut next_due, mut batch_filled) = (0, i64::MAX, false);
        while !shutdown.is_cancelled() {
            // Start what waits locally first, while its lease is fresh enough:
            // what appends leased for us, then what earlier claims left.
            this.take_handed(&mut waiting);
            let stale = this.start_waiting(&mut waiting, &running);
            this.release(&stale).await;
            this.offer_room(&waiting, &running);
            let queued: usize = waiting.values().map(VecDeque::len).sum();
            let free = permits
                .available_permits()
                .saturating_sub(queued)
                .min(CLAIM_BATCH as usize) as u32;
            // Under load, claim in batches rather than a row per freed slot:
            // wait for a recorded batch (it wakes us) to free a few.
            let min_claim = (this.max_in_flight as u32 / 4).clamp(1, 32);
            let busy = permits.available_permits() < this.max_in_flight;
            if free == 0 || (free < min_claim && busy) {
                this.idle(&shutdown, now_ms() + POLL_FALLBACK.as_millis() as i64).await;
                continue;
            }
            // A claim is wanted after a wake-up that asked for one, an append
            // that left deliveries for one, a claim that filled its batch,
            // at the next due time, and at least once a poll interval
            // (leases of a stopped instance). Other turns only start what
            // appends handed over and offer the room that freed.
            let appends_left = this.store.handoff().take_claim_wanted();
            if appends_left {
                this.wakeup.left_behind();
            }
            let claim_wanted = this.wakeup.claim_wanted.swap(false, Ordering::AcqRel) | appends_left | batch_filled;
            if !claim_wanted && now_ms() < (last_claim + POLL_FALLBACK.as_millis() as i64).min(next_due) {
                this.idle(&shutdown, (last_claim + POLL_FALLBACK.as_millis() as i64).min(next_due))
                    .await;
                continue;
            }
            last_claim = now_ms();
            next_due = i64::MAX;
            let mut skip = lanes.lock().unwrap().full();
            skip.extend(waiting.keys().cloned());
            let lease_ms = this.lease.as_millis() as i64;
            let claiming = this.store.claim(free, this.max_in_flight_per_endpoint, lease_ms, &skip);
            let claim = this.while_claiming(claiming, &mut waiting, &running).await;
            let Claim {
                deliveries: claimed,
                next_due_at,
            } = match claim {
                Ok(claim) => claim,
                Err(err) => {
                    tracing::warn!(error = %err, "claiming deliveries failed; retrying");
                    this.idle(&shutdown, now_ms() + 1000).await;
                    continue;
                }
            };
            let claimed_count = claimed.len();
            batch_filled = claimed_count == free as usize;
            let now = now_ms();
            // Behind what was claimed, or in a skipped lane, more may wait:
            // a claim can take it once that lane moves.
            let claimed_lanes: Vec<&String> = claimed.iter().map(|delivery| &delivery.endpoint_id).collect();
            this.store
                .handoff()
                .left_in_lanes(skip.iter().chain(claimed_lanes), now);
            for delivery in claimed {
                waiting
                    .entry(delivery.endpoint_id.clone())
                    .or_default()
                    .push_back((delivery, now));
            }
            let stale = this.start_waiting(&mut waiting, &running);
            this.release(&stale).await;
            this.offer_room(&waiting, &running);
            if claimed_count == 0 {
                next_due = next_due_at.unwrap_or(i64::MAX);
                // Nothing claimable now: sleep until the next due time the
                // claim answered (or a wake-up). Having claimed some but fewer
                // than asked, recording what was claimed wakes the loop soon.
                let until = next_due_at
                    .unwrap_or(i64::MAX)
                    .max(now_ms() + 5)
                    .min(now_ms() + POLL_FALLBACK.as_millis() as i64);
                this.idle(&shutdown, until).await;
            } else if claimed_count < free as usize {
                this.idle(&shutdown, now_ms() + POLL_FALLBACK.as_millis() as i64).await;
            }
        }

        this.store.handoff().close();
        this.take_handed(&mut waiting);
        let left_waiting: Vec<String> = waiting.values().flatten().map(|(d, _)| d.id.clone()).collect();
        this.release(&left_waiting).await;
        tracker.close();
        if tokio::time::timeout(this.shutdown_grace, tracker.wait()).await.is_err() {
            // Grace is over: stop the attempts still running (they hold the
            // results channel open) and give their deliveries back.
            running.abort.cancel();
            tracker.wait().await;
            let left: Vec<String> = in_flight.lock().unwrap().iter().cloned().collect();
            tracing::warn!(
                count = left.len(),
                "shutdown grace over; leaving unfinished deliveries for the next start"
            );
            this.release(&left).await;
        }
        drop(running);
        let _ = recorder.await;
    }

    /// Awaits a claim, and meanwhile starts what appends hand over: a claim
    /// that walks a slow partner's pile (100–200 ms on PostgreSQL) must not
    /// hold up deliveries that need none. A wake-up taken here is given
    /// back afterwards, so one that asked for a claim is not lost.
    async fn while_claiming(
        self: &Arc<Self>,
        claiming: impl std::future::Future<Output = crate::store::StoreResult<Claim>>,
        waiting: &mut Waiting,
        running: &Running,
    ) -> crate::store::StoreResult<Claim> {
        tokio::pin!(claiming);
        let mut woken = false;
        let claim = loop {
            tokio::select! {
                claim = &mut claiming => break claim,
                _ = self.wakeup.notify.notified() => {
                    woken = true;
                    if self.take_handed(waiting) > 0 {
                        let stale = self.start_waiting(waiting, running);
                        self.release(&stale).await;
                    }
                }
            }
        };
        if woken {
            self.wakeup.notify.notify_one();
        }
        claim
    }

    /// Queues what appends leased for this dispatcher (`store::Handoff`);
    /// answers how many.
    fn take_handed(&self, waiting: &mut Waiting) -> usize {
        let now = now_ms();
        let handed = self.store.handoff().take();
        let count = handed.len();
        for delivery in handed {
            waiting
                .entry(delivery.endpoint_id.clone())
                .or_default()
                .push_back((delivery, now));
        }
        count
    }

    /// Tells appends how many deliveries they may lease for this dispatcher
    /// now, and for which endpoints not: those whose lanes are full or that
    /// have deliveries waiting here already (theirs would only wait too).
    fn offer_room(&self, waiting: &Waiting, running: &Running) {
        let queued: usize = waiting.values().map(VecDeque::len).sum();
        let lanes = running.lanes.lock().unwrap();
        let room = if self.store.backend() == Backend::Sqlite && lanes.in_flight_with_room() > SQLITE_HANDOFF_UNTIL {
            0
        } else {
            running.permits.available_permits().saturating_sub(queued)
        };
        let full = lanes.full();
        drop(lanes);
        let skip: Vec<&String> = full.iter().chain(waiting.keys()).collect();
        self.store.handoff().open(room, self.lease.as_millis() as i64, &skip);
    }

    /// Starts waiting deliveries where their lane and the global bound have
    /// room; answers the ones whose lease is too old to start (to release).
    fn start_waiting(self: &Arc<Self>, waiting: &mut Waiting, running: &Running) -> Vec<String> {
        let Running {
            permits,
            lanes,
            in_flight,
            tracker,
            results,
            abort,
        } = running;
        let mut stale = Vec::new();
        // An attempt must end (timeout) well inside the lease it was claimed under.
        let oldest_claim = now_ms() - (self.lease.saturating_sub(self.sender.timeout())).as_millis() as i64 / 2;
        waiting.retain(|endpoint, queue| {
            while let Some((delivery, claimed_at)) = queue.front() {
                if *claimed_at < oldest_claim {
                    stale.push(delivery.id.clone());
                    queue.pop_front();
                    continue;
                }
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    break;
                };
                if !lanes.lock().unwrap().try_start(endpoint) {
                    break;
                }
                let (delivery, _) = queue.pop_front().expect("front exists");
                in_flight.lock().unwrap().insert(delivery.id.clone());
                let (this, lanes, in_flight, results) =
                    (self.clone(), lanes.clone(), in_flight.clone(), results.clone());
                let abort = abort.clone();
                tracker.spawn(async move {
                    tokio::select! {
                        (result, succeeded) = this.attempt(&delivery) => {
                            lanes.lock().unwrap().finish(&delivery.endpoint_id, succeeded);
                            in_flight.lock().unwrap().remove(&delivery.id);
                            let _ = results.send(result);
                        }
                        // Left in `in_flight`: released once the grace period is over.
                        _ = abort.cancelled() => {}
                    }
                    drop(permit);
                });
            }
            !queue.is_empty()
        });
        stale
    }

    async fn release(&self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        if let Err(err) = self.store.release(ids).await {
            tracing::warn!(error = %err, count = ids.len(), "could not release deliveries; their lease will expire");
        }
    }

    /// Waits until `until_ms`, a wake-up, or shutdown.
    async fn idle(&self, shutdown: &CancellationToken, until_ms: i64) {
        let wait = Duration::from_millis((until_ms - now_ms()).max(0) as u64);
        tokio::select! {
            _ = self.wakeup.notify.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => {}
        }
    }

    /// Sends one delivery and decides what it becomes; `true` if delivered.
    async fn attempt(&self, delivery: &ClaimedDelivery) -> (AttemptResult, bool) {
        let at = now_ms();
        let Some(target) = &delivery.target else {
            let gone = AttemptOutcome {
                status_code: None,
                duration: Duration::ZERO,
                error: Some("endpoint_gone: the endpoint was deleted or disabled".into()),
                response_body: None,
                retry_after: None,
            };
            return (self.result(delivery, at, gone, "failed", at), false);
        };
        let secrets: Vec<&str> = target.secrets.iter().map(|secret| &**secret).collect();
        let outcome = self
            .sender
            .send(&Webhook {
                url: &target.url,
                secrets: &secrets,
                event_id: &delivery.event_id,
                event_name: &delivery.event_name,
                order_id: &delivery.order_id,
                time_stamp_ms: delivery.time_stamp,
            })
            .await;
        metrics::histogram!("ramphook_delivery_attempt_duration_seconds").record(outcome.duration.as_secs_f64());
        let succeeded = outcome.succeeded();
        let attempts_made = delivery.attempts as u32 + 1;
        let (new_status, next_attempt_at) = if succeeded {
            ("delivered", at)
        } else if outcome.status_code == Some(410) {
            // Standard Webhooks: 410 Gone means "stop sending here", now.
            self.alerts.endpoint_gone(&self.store, &delivery.endpoint_id).await;
            ("failed", at)
        } else {
            let failure = Failure {
                status: outcome.status_code,
                timed_out: outcome.timed_out(),
                retry_after: outcome.retry_after,
            };
            match self
                .schedule
                .after_failure(attempts_made, rand::random::<f64>(), failure, self.throttle_backoff)
            {
                Some(delay) => ("pending", now_ms() + delay.as_millis() as i64),
                None => ("failed", at),
            }
        };
        let outcome_label = if new_status == "pending" {
            "retrying"
        } else {
            new_status
        };
        metrics::counter!("ramphook_deliveries_total", "outcome" => outcome_label).increment(1);
        if let Some(error) = &outcome.error {
            tracing::info!(delivery = %delivery.id, endpoint = %delivery.endpoint_id, attempt = attempts_made,
                %error, next = new_status, "delivery attempt failed");
        }
        (
            self.result(delivery, at, outcome, new_status, next_attempt_at),
            succeeded,
        )
    }

    fn result(
        &self,
        delivery: &ClaimedDelivery,
        at: i64,
        outcome: AttemptOutcome,
        new_status: &'static str,
        next_attempt_at: i64,
    ) -> AttemptResult {
        AttemptResult {
            delivery_id: delivery.id.clone(),
            endpoint_id: delivery.endpoint_id.clone(),
            at,
            status_code: outcome.status_code,
            duration_ms: outcome.duration.as_millis() as i64,
            error: outcome.error,
            response_body: outcome.response_body,
            new_status,
            next_attempt_at,
        }
    }
}

/// Results recorded by one transaction at most.
const RECORD_BATCH: usize = 512;

/// A batch smaller than this waits up to `RECORD_GATHER` for company. At a
/// steady 1,000 deliveries a second nearly every result was a statement and
/// a commit of its own; under load batches fill while the previous one is
/// written and never wait. Nothing waits on a record but a later delivery
/// of the same order to the same endpoint (and a `GET` of the delivery).
const RECORD_GATHER_BELOW: usize = 16;
const RECORD_GATHER: Duration = Duration::from_millis(2);

/// Writes attempt results in batches (one transaction each), then wakes the
/// dispatcher to offer the room that freed. It asks for a claim as well if,
/// within a lease, deliveries were left for one with no room to lease them,
/// or left behind the lane of an endpoint in the batch (a finished delivery
/// may have been what the next event of its order, or a full lane, waited
/// for: any attempt in flight then has ended within its lease), or if a
/// retry was scheduled (the next due time moved). Otherwise appends hand
/// over everything and a claim would find nothing: on PostgreSQL such
/// claims were over half the statements in `single`, and in
/// `slow-neighbour` a full lane's leftovers made every healthy result ask
/// for one.
async fn record_results(
    store: Store,
    mut results: mpsc::UnboundedReceiver<AttemptResult>,
    wakeup: Wakeup,
    lease: Duration,
) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while results.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        if batch.len() < RECORD_GATHER_BELOW {
            // recv_many is cancel-safe: what arrived before the deadline is kept.
            let _ = tokio::time::timeout(RECORD_GATHER, async {
                while batch.len() < RECORD_GATHER_BELOW && results.recv_many(&mut batch, RECORD_BATCH).await > 0 {}
            })
            .await;
        }
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
        let now = now_ms();
        let since = now - lease.as_millis() as i64;
        let left_recently = wakeup.left_at.load(Ordering::Relaxed) >= since
            || store
                .handoff()
                .left_in_any_lane(batch.iter().map(|result| result.endpoint_id.as_str()), since, now);
        if left_recently || batch.iter().any(|result| result.new_status == "pending") {
            wakeup.ask_for_claim();
        } else {
            wakeup.notify.notify_one();
        }
        batch.clear();
    }
}
