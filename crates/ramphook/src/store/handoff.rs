//! Deliveries leased by the very append that created them and handed to
//! this instance's dispatcher, so that while the dispatcher has room a new
//! delivery needs no claim: on PostgreSQL claims were a fifth of the
//! database's statement time in `single` and wrote a second version of each
//! delivery row (docs/PERFORMANCE.md). On SQLite the dispatcher offers
//! room only while it is nearly idle: there the lease and the targets read
//! land on the one writer thread, and under load batched claims cost it less
//! (measured, in the same document).
//!
//! The dispatcher says how much it can take (`open`, after every turn of its
//! loop) and which endpoints not to lease for (full lanes, deliveries already
//! waiting locally). An append leases only a delivery that is the first
//! pending one of its order's lane to its endpoint, so an order's events
//! still reach each endpoint in order; the rest wait for a claim, as before.
//! The room is a hint: appends running at once may each take it, and what
//! the dispatcher cannot start at once waits locally under its lease (and is
//! released if that grows old), exactly like an over-full claim.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::deliveries::{ClaimedDelivery, ClaimedRow, TargetRow};

/// An append's deliveries as its statement answered them: those leased at
/// once for this instance's dispatcher, and those left for a claim.
#[derive(Default)]
pub(super) struct Appended {
    pub leased: Vec<ClaimedRow>,
    /// The leased deliveries' endpoints (matched to them by id).
    pub targets: Vec<TargetRow>,
    /// Deliveries were left with no offer to lease them (the dispatcher had
    /// no room, or there is none), or behind an earlier delivery of their
    /// order that may have finished meanwhile: a claim is wanted.
    pub left_for_claim: bool,
    /// The endpoints of deliveries left because the offer skipped them
    /// (full lanes, deliveries waiting locally): a claim finds them only
    /// once that lane moves.
    pub left_in_lanes: Vec<String>,
}

#[derive(Default)]
pub struct Handoff {
    /// Deliveries the dispatcher can take now; 0 when it cannot (or there is
    /// no dispatcher: then nothing is ever leased at append).
    room: AtomicUsize,
    lease_ms: AtomicI64,
    /// Endpoints not to lease for, as a JSON array of ids (bound to SQL)
    /// and as ids.
    skip: Mutex<(Arc<str>, Arc<[String]>)>,
    handed: Mutex<Vec<ClaimedDelivery>>,
    /// An append left deliveries for a claim (not leased, or not handed).
    claim_wanted: AtomicBool,
    /// Endpoints behind whose lanes deliveries were left for a claim, with
    /// when (ms): a result from one of them may have made room for them.
    lanes_left: Mutex<LanesLeft>,
}

#[derive(Default)]
struct LanesLeft {
    at: HashMap<String, i64>,
    /// When entries older than a lease were last dropped.
    pruned_at: i64,
}

/// What an append may lease: for how long, and for which endpoints not.
#[derive(Debug, Clone)]
pub struct Offer {
    pub lease_ms: i64,
    /// JSON array of endpoint ids.
    pub skip: Arc<str>,
    /// The same ids.
    pub skipped: Arc<[String]>,
}

impl Offer {
    /// Whether deliveries to `endpoint` are not leased under this offer.
    pub fn skips(&self, endpoint: &str) -> bool {
        self.skipped.iter().any(|skipped| skipped == endpoint)
    }
}

impl Handoff {
    /// The dispatcher's turn: it can take `room` more deliveries, under
    /// leases of `lease_ms`, for any endpoint but `skip`. Appends leave
    /// deliveries to those behind their lanes, so the lanes are marked
    /// (`left_in_lanes`) now, before any append can see this offer: a
    /// result recorded from one of them while such an append is on its way
    /// then asks for a claim.
    pub fn open(&self, room: usize, lease_ms: i64, skip: &[&String]) {
        let json: Arc<str> = serde_json::to_string(skip).expect("ids serialize").into();
        let skipped: Arc<[String]> = skip.iter().map(|id| (*id).clone()).collect();
        self.left_in_lanes(skipped.iter(), crate::domain::time::now_ms());
        *self.skip.lock().unwrap() = (json, skipped);
        self.lease_ms.store(lease_ms, Ordering::Relaxed);
        self.room.store(room, Ordering::Relaxed);
    }

    /// No more leases at append (the dispatcher is stopping).
    pub fn close(&self) {
        self.room.store(0, Ordering::Relaxed);
    }

    /// What an append starting now may lease, if anything.
    pub fn offer(&self) -> Option<Offer> {
        if self.room.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let (skip, skipped) = self.skip.lock().unwrap().clone();
        Some(Offer {
            lease_ms: self.lease_ms.load(Ordering::Relaxed),
            skip,
            skipped,
        })
    }

    /// Deliveries an append leased (committed) for the dispatcher to send.
    pub fn hand(&self, deliveries: Vec<ClaimedDelivery>) {
        if deliveries.is_empty() {
            return;
        }
        let count = deliveries.len();
        let _ = self.room.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |room| {
            Some(room.saturating_sub(count))
        });
        self.handed.lock().unwrap().extend(deliveries);
    }

    /// An append left deliveries that only a claim will find.
    pub fn want_claim(&self) {
        self.claim_wanted.store(true, Ordering::Release);
    }

    /// Deliveries to these endpoints were left behind their lanes at `now`:
    /// a claim is worth making once one of those lanes moves.
    pub fn left_in_lanes<'a>(&self, endpoints: impl IntoIterator<Item = &'a String>, now: i64) {
        let mut lanes = self.lanes_left.lock().unwrap();
        for endpoint in endpoints {
            match lanes.at.get_mut(endpoint) {
                Some(at) => *at = now,
                None => {
                    lanes.at.insert(endpoint.clone(), now);
                }
            }
        }
    }

    /// Whether deliveries were left behind the lane of any of `endpoints`
    /// since `since` (ms). Forgets, once per `since`'s distance from `now`,
    /// the lanes left before it.
    pub fn left_in_any_lane<'a>(&self, endpoints: impl IntoIterator<Item = &'a str>, since: i64, now: i64) -> bool {
        let mut lanes = self.lanes_left.lock().unwrap();
        if lanes.pruned_at < since {
            lanes.at.retain(|_, at| *at >= since);
            lanes.pruned_at = now;
        }
        endpoints
            .into_iter()
            .any(|endpoint| lanes.at.get(endpoint).is_some_and(|at| *at >= since))
    }

    /// Whether a claim was wanted since the last call.
    pub fn take_claim_wanted(&self) -> bool {
        self.claim_wanted.swap(false, Ordering::AcqRel)
    }

    /// Everything handed over since the last call.
    pub fn take(&self) -> Vec<ClaimedDelivery> {
        std::mem::take(&mut *self.handed.lock().unwrap())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(id: &str) -> ClaimedDelivery {
        ClaimedDelivery {
            id: id.into(),
            event_id: "evt".into(),
            order_id: "o".into(),
            event_name: "payment_received".into(),
            time_stamp: 0,
            attempts: 0,
            endpoint_id: "ep".into(),
            target: None,
        }
    }

    #[test]
    fn nothing_is_offered_until_the_dispatcher_opens_or_after_it_closes() {
        let handoff = Handoff::default();
        assert!(handoff.offer().is_none());
        let slow = "ep_slow".to_owned();
        handoff.open(2, 20_000, &[&slow]);
        let offer = handoff.offer().expect("open with room");
        assert_eq!((offer.lease_ms, &*offer.skip), (20_000, r#"["ep_slow"]"#));
        handoff.close();
        assert!(handoff.offer().is_none());
    }

    #[test]
    fn handed_deliveries_use_up_the_room_and_are_taken_once() {
        let handoff = Handoff::default();
        handoff.open(2, 20_000, &[]);
        handoff.hand(vec![delivery("a")]);
        assert!(handoff.offer().is_some(), "one place left");
        handoff.hand(vec![delivery("b"), delivery("c")]);
        assert!(handoff.offer().is_none(), "the room is used up, not below zero");
        let taken: Vec<String> = handoff.take().into_iter().map(|d| d.id).collect();
        assert_eq!(taken, ["a", "b", "c"]);
        assert!(handoff.take().is_empty());
    }

    #[test]
    fn a_lane_counts_as_left_behind_from_its_last_leftover_until_it_grows_old() {
        let handoff = Handoff::default();
        let (slow, other) = ("ep_slow".to_owned(), "ep_other".to_owned());
        handoff.left_in_lanes([&slow], 1_000);
        assert!(handoff.left_in_any_lane(["ep_other", "ep_slow"], 500, 1_000));
        assert!(
            !handoff.left_in_any_lane(["ep_other"], 500, 1_000),
            "only the lanes named"
        );
        handoff.left_in_lanes([&slow, &other], 5_000);
        assert!(
            handoff.left_in_any_lane(["ep_slow"], 2_000, 5_000),
            "the latest leftover counts"
        );
        assert!(
            !handoff.left_in_any_lane(["ep_slow", "ep_other"], 6_000, 9_000),
            "too old"
        );
        assert!(
            handoff.lanes_left.lock().unwrap().at.is_empty(),
            "old lanes are forgotten"
        );
    }

    #[test]
    fn a_wanted_claim_is_reported_once() {
        let handoff = Handoff::default();
        assert!(!handoff.take_claim_wanted());
        handoff.want_claim();
        assert!(handoff.take_claim_wanted());
        assert!(!handoff.take_claim_wanted());
    }
}
