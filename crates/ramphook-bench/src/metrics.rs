//! Latency to the webhook's arrival, from the API's `201` and from the moment
//! the event was posted: pairs each event id the driver got back with the
//! `webhook-id` the receiver saw (whichever comes second records the gaps)
//! into two HDR histograms, and summarises them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Microseconds, up to one hour, three significant figures.
const MAX_MICROS: u64 = 3_600_000_000;

enum Entry {
    /// The event was posted and its `201` came back; this many arrivals
    /// are still expected.
    Sent {
        posted: Instant,
        answered: Instant,
        remaining: u32,
    },
    /// Arrivals seen before the driver recorded the `201`.
    Arrived(Vec<Instant>),
}

/// The latencies recorded so far, in microseconds.
struct Latencies {
    from_answer: Histogram<u64>,
    from_post: Histogram<u64>,
}

impl Latencies {
    fn record(&mut self, posted: Instant, answered: Instant, arrival: Instant) {
        let micros = |since: Instant| (arrival.saturating_duration_since(since).as_micros() as u64).max(1);
        self.from_answer.saturating_record(micros(answered));
        self.from_post.saturating_record(micros(posted));
    }
}

/// Shared by the driver (sent) and the receiver (arrived).
pub struct Tracker {
    entries: Mutex<(HashMap<String, Entry>, Latencies)>,
    /// Arrivals that beat the `201` back to the client: recorded as 0 µs.
    early: AtomicU64,
    /// Arrivals of tracked events (all endpoints).
    matched: AtomicU64,
    /// Arrivals the accepted events should cause on measured endpoints.
    expected: AtomicU64,
}

impl Default for Tracker {
    fn default() -> Self {
        Self {
            entries: Mutex::new((
                HashMap::new(),
                Latencies {
                    from_answer: new_histogram(),
                    from_post: new_histogram(),
                },
            )),
            early: AtomicU64::new(0),
            matched: AtomicU64::new(0),
            expected: AtomicU64::new(0),
        }
    }
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("static bounds are valid")
}

impl Tracker {
    /// The API answered `201` at `answered` for `event_id`, posted at
    /// `posted`, which `expected` endpoints get.
    pub fn sent(&self, event_id: String, posted: Instant, answered: Instant, expected: u32) {
        self.expected.fetch_add(u64::from(expected), Ordering::Relaxed);
        let mut guard = self.entries.lock().expect("never poisoned");
        let (map, latencies) = &mut *guard;
        let mut remaining = expected;
        if let Some(Entry::Arrived(arrivals)) = map.remove(&event_id) {
            for arrival in arrivals {
                if arrival <= answered {
                    self.early.fetch_add(1, Ordering::Relaxed);
                }
                latencies.record(posted, answered, arrival);
                remaining = remaining.saturating_sub(1);
            }
        }
        if remaining > 0 {
            map.insert(
                event_id,
                Entry::Sent {
                    posted,
                    answered,
                    remaining,
                },
            );
        }
    }

    /// A webhook with `webhook-id: event_id` reached a measured endpoint.
    pub fn arrived(&self, event_id: &str, at: Instant) {
        let mut guard = self.entries.lock().expect("never poisoned");
        let (map, latencies) = &mut *guard;
        self.matched.fetch_add(1, Ordering::Relaxed);
        match map.get_mut(event_id) {
            Some(Entry::Sent {
                posted,
                answered,
                remaining,
            }) => {
                latencies.record(*posted, *answered, at);
                *remaining -= 1;
                if *remaining == 0 {
                    map.remove(event_id);
                }
            }
            Some(Entry::Arrived(arrivals)) => arrivals.push(at),
            None => {
                map.insert(event_id.to_owned(), Entry::Arrived(vec![at]));
            }
        }
    }

    pub fn arrivals(&self) -> u64 {
        self.matched.load(Ordering::Relaxed)
    }

    pub fn expected(&self) -> u64 {
        self.expected.load(Ordering::Relaxed)
    }

    pub fn early(&self) -> u64 {
        self.early.load(Ordering::Relaxed)
    }

    /// From the `201` to the arrival.
    pub fn histogram(&self) -> Histogram<u64> {
        self.entries.lock().expect("never poisoned").1.from_answer.clone()
    }

    /// From posting the event to the arrival.
    pub fn histogram_from_post(&self) -> Histogram<u64> {
        self.entries.lock().expect("never poisoned").1.from_post.clone()
    }

    /// A look at the running post → arrival p50/p99 (ms) for the progress
    /// bar: the measure the table leads with and issue 6's target is in.
    pub fn quick(&self) -> (f64, f64) {
        let guard = self.entries.lock().expect("never poisoned");
        let h = &guard.1.from_post;
        (
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
        )
    }
}

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl LatencySummary {
    /// `None` when nothing was recorded.
    pub fn from_histogram(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Some(Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
            mean_ms: h.mean().round() / 1000.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = new_histogram();
        for ms in 1..=100u64 {
            h.record(ms * 1000).unwrap();
        }
        let s = LatencySummary::from_histogram(&h).unwrap();
        assert_eq!(s.count, 100);
        assert!((s.p50_ms - 50.0).abs() < 0.1, "{s:?}");
        assert!((s.p95_ms - 95.0).abs() < 0.1, "{s:?}");
        assert!((s.p99_ms - 99.0).abs() < 0.1, "{s:?}");
        assert!((s.max_ms - 100.0).abs() < 0.1, "{s:?}");
        assert!(LatencySummary::from_histogram(&new_histogram()).is_none());
    }

    #[test]
    fn pairs_sent_and_arrived_in_either_order() {
        let tracker = Tracker::default();
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        // Posted at 0, answered at 2 ms, arrivals at 5 and 7 ms.
        tracker.sent("evt_a".into(), t0, ms(2), 2);
        tracker.arrived("evt_a", ms(5));
        tracker.arrived("evt_a", ms(7));
        // An arrival that beats the 201 counts as 0 (early) from the 201,
        // and as what it took from the post (posted at 10, arrived at 13).
        tracker.arrived("evt_b", ms(13));
        tracker.sent("evt_b".into(), ms(10), ms(14), 1);
        let (from_answer, from_post) = (tracker.histogram(), tracker.histogram_from_post());
        assert_eq!((from_answer.len(), from_post.len()), (3, 3));
        assert_eq!(tracker.early(), 1);
        assert_eq!(tracker.arrivals(), 3);
        let near = |micros: u64, ms: u64| micros >= ms * 1000 && micros < ms * 1000 + 100;
        assert!(near(from_answer.max(), 5), "{}", from_answer.max());
        assert!(near(from_answer.min(), 0), "{}", from_answer.min());
        assert!(near(from_post.max(), 7), "{}", from_post.max());
        assert!(near(from_post.min(), 3), "{}", from_post.min());
        assert!(tracker.entries.lock().unwrap().0.is_empty());
    }
}
