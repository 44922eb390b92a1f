//! The partner's own answer time in the validation scenario: the receiver
//! notes, per email, how long it took from a callback's arrival to its answer;
//! the client takes that note back to subtract it from what it observed.

use std::collections::HashMap;
use std::sync::Mutex;

use hdrhistogram::Histogram;

use crate::metrics::new_histogram;

/// Shared by the receiver (answered) and the validation clients (take).
pub struct PartnerTimes {
    inner: Mutex<(HashMap<String, u64>, Histogram<u64>)>,
}

impl Default for PartnerTimes {
    fn default() -> Self {
        Self {
            inner: Mutex::new((HashMap::new(), new_histogram())),
        }
    }
}

impl PartnerTimes {
    /// The receiver answered the callback for `email` after `micros` µs.
    pub fn answered(&self, email: &str, micros: u64) {
        let mut guard = self.inner.lock().expect("never poisoned");
        let (map, histogram) = &mut *guard;
        histogram.saturating_record(micros.max(1));
        map.insert(email.to_owned(), micros);
    }

    /// The partner-side time of the (last) callback for `email`, once.
    pub fn take(&self, email: &str) -> Option<u64> {
        self.inner.lock().expect("never poisoned").0.remove(email)
    }

    /// Every answer time recorded, µs.
    pub fn histogram(&self) -> Histogram<u64> {
        self.inner.lock().expect("never poisoned").1.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_taken_once() {
        let times = PartnerTimes::default();
        times.answered("user-1@example.com", 40);
        times.answered("user-2@example.com", 0);
        assert_eq!(times.take("user-1@example.com"), Some(40));
        assert_eq!(times.take("user-1@example.com"), None);
        assert_eq!(times.take("user-2@example.com"), Some(0));
        let h = times.histogram();
        assert_eq!(h.len(), 2);
        assert_eq!(h.min(), 1);
    }
}
