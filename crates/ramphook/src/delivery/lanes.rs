//! Per-endpoint lanes: how many attempts each endpoint may have in flight.
//! A healthy endpoint gets up to `per_endpoint`; one that keeps failing is
//! probed one attempt at a time, so a slow or dead partner can hold only a
//! few of the global slots and never delays the others. Pure bookkeeping:
//! the dispatcher asks, starts and finishes.

use std::collections::HashMap;

/// Consecutive failures after which an endpoint is only probed.
pub const PROBE_AFTER_FAILURES: u32 = 5;

#[derive(Debug, Default, Clone, Copy)]
struct Lane {
    in_flight: u32,
    consecutive_failures: u32,
}

#[derive(Debug)]
pub struct Lanes {
    per_endpoint: u32,
    lanes: HashMap<String, Lane>,
}

impl Lanes {
    pub fn new(per_endpoint: u32) -> Self {
        Self {
            per_endpoint: per_endpoint.max(1),
            lanes: HashMap::new(),
        }
    }

    fn limit(&self, lane: &Lane) -> u32 {
        if lane.consecutive_failures >= PROBE_AFTER_FAILURES {
            1
        } else {
            self.per_endpoint
        }
    }

    /// How many more attempts `endpoint` may start now.
    pub fn room(&self, endpoint: &str) -> u32 {
        match self.lanes.get(endpoint) {
            None => self.per_endpoint,
            Some(lane) => self.limit(lane).saturating_sub(lane.in_flight),
        }
    }

    /// Endpoints with no room: the next claim skips them.
    pub fn full(&self) -> Vec<String> {
        self.lanes
            .iter()
            .filter(|(_, lane)| lane.in_flight >= self.limit(lane))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Attempts in flight to endpoints that still have room: the load a
    /// new delivery would join (full lanes, a slow partner's, are skipped).
    pub fn in_flight_with_room(&self) -> usize {
        self.lanes
            .values()
            .filter(|lane| lane.in_flight < self.limit(lane))
            .map(|lane| lane.in_flight as usize)
            .sum()
    }

    /// Takes a slot if there is room; `false` means hand the delivery back.
    pub fn try_start(&mut self, endpoint: &str) -> bool {
        if self.room(endpoint) == 0 {
            return false;
        }
        self.lanes.entry(endpoint.to_owned()).or_default().in_flight += 1;
        true
    }

    /// Frees the slot and learns from the outcome.
    pub fn finish(&mut self, endpoint: &str, succeeded: bool) {
        let Some(lane) = self.lanes.get_mut(endpoint) else {
            return;
        };
        lane.in_flight = lane.in_flight.saturating_sub(1);
        lane.consecutive_failures = if succeeded {
            0
        } else {
            lane.consecutive_failures.saturating_add(1)
        };
        if lane.in_flight == 0 && lane.consecutive_failures == 0 {
            self.lanes.remove(endpoint); // healthy and idle: nothing to remember
        }
    }

    /// Is `endpoint` in the gentle, one-at-a-time mode?
    pub fn probing(&self, endpoint: &str) -> bool {
        self.lanes
            .get(endpoint)
            .is_some_and(|lane| lane.consecutive_failures >= PROBE_AFTER_FAILURES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_gets_at_most_its_share() {
        let mut lanes = Lanes::new(2);
        assert!(lanes.try_start("a"));
        assert!(lanes.try_start("a"));
        assert!(!lanes.try_start("a"));
        assert_eq!(lanes.full(), vec!["a".to_string()]);
        assert!(lanes.try_start("b"), "another endpoint is not held up");
        lanes.finish("a", true);
        assert_eq!(lanes.room("a"), 1);
        assert!(lanes.full().is_empty());
    }

    #[test]
    fn a_failing_endpoint_is_probed_one_at_a_time_until_it_recovers() {
        let mut lanes = Lanes::new(8);
        for _ in 0..PROBE_AFTER_FAILURES {
            assert!(lanes.try_start("dead"));
            lanes.finish("dead", false);
        }
        assert!(lanes.probing("dead"));
        assert!(lanes.try_start("dead"));
        assert!(!lanes.try_start("dead"), "only one probe in flight");
        lanes.finish("dead", true);
        assert!(!lanes.probing("dead"));
        assert_eq!(lanes.room("dead"), 8);
    }

    #[test]
    fn full_lanes_do_not_count_as_load() {
        let mut lanes = Lanes::new(2);
        assert_eq!(lanes.in_flight_with_room(), 0);
        assert!(lanes.try_start("slow"));
        assert!(lanes.try_start("slow"));
        assert!(lanes.try_start("healthy"));
        assert_eq!(lanes.in_flight_with_room(), 1, "the full lane is left out");
        lanes.finish("slow", true);
        assert_eq!(lanes.in_flight_with_room(), 2, "with room again it counts");
    }

    #[test]
    fn finishing_an_unknown_endpoint_is_harmless() {
        let mut lanes = Lanes::new(1);
        lanes.finish("never-started", false);
        assert_eq!(lanes.room("never-started"), 1);
    }
}
