//! Where each endpoint's claim scan may start on PostgreSQL. A delivered
//! row leaves its entry in `deliveries_endpoint_due` (a partial index keeps
//! the old row version's entry until vacuum), all of them below the due
//! rows, so a claim scanning an endpoint from its oldest entry walked every
//! delivery drained since the last vacuum: 1,045 buffers for 64 rows at
//! 61 % of a 1,000,000 drain (docs/PERFORMANCE.md). A floor is an index
//! bound below which no pending row of the endpoint lies.
//!
//! Why a floor holds: it is the lowest `next_attempt_at` of the endpoint's
//! pending rows (leased and lane-blocked ones included), or now if that is
//! lower, as seen at a refresh, minus `MARGIN_MS`. Every later change to a
//! pending row sets `next_attempt_at` to its writer's now or later (new
//! deliveries, retries, manual retries, recovery) or keeps a value that was
//! above the floor (releases, expired leases); the margin covers a row
//! committed late and an instance whose clock lags. All floors are dropped
//! every `RESET_MS`, so that a row that came in below one anyway waits at
//! most that long. Pure: the store runs the statements.

use std::collections::HashMap;

/// How far below the lowest pending `next_attempt_at` a floor is set.
pub(super) const MARGIN_MS: i64 = 2_000;
/// How often the floors are raised to where the pending rows now start.
pub(super) const REFRESH_MS: i64 = 1_000;
/// How often every floor is dropped (the next claims scan from the start).
pub(super) const RESET_MS: i64 = 30_000;

#[derive(Default)]
pub(super) struct ClaimFloors {
    by_endpoint: HashMap<String, i64>,
    refreshed_at: i64,
    reset_at: i64,
}

impl ClaimFloors {
    /// The floors a claim at `now` may use, as a JSON array of `{id, floor}`
    /// (none after a reset).
    pub fn for_claim(&mut self, now: i64) -> String {
        if now - self.reset_at >= RESET_MS {
            self.by_endpoint.clear();
            self.reset_at = now;
        }
        self.current()
    }

    /// Whether the floors are due to be raised at `now`.
    pub fn refresh_due(&self, now: i64) -> bool {
        now - self.refreshed_at >= REFRESH_MS
    }

    /// The floors as a refresh reads from (the same JSON as `for_claim`).
    pub fn current(&self) -> String {
        let rows: Vec<serde_json::Value> = self
            .by_endpoint
            .iter()
            .map(|(id, floor)| serde_json::json!({"id": id, "floor": floor}))
            .collect();
        serde_json::Value::Array(rows).to_string()
    }

    /// A refresh read at `read_at`: per endpoint, its lowest pending
    /// `next_attempt_at` at or above its floor (`None`: nothing pending).
    pub fn refreshed(&mut self, read_at: i64, lowest: Vec<(String, Option<i64>)>) {
        for (endpoint, lowest) in lowest {
            let floor = lowest.unwrap_or(read_at).min(read_at) - MARGIN_MS;
            self.by_endpoint.insert(endpoint, floor);
        }
        self.refreshed_at = read_at;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floors_of(json: &str) -> HashMap<String, i64> {
        let rows: Vec<serde_json::Value> = serde_json::from_str(json).unwrap();
        rows.iter()
            .map(|r| (r["id"].as_str().unwrap().to_owned(), r["floor"].as_i64().unwrap()))
            .collect()
    }

    #[test]
    fn a_floor_is_the_lowest_pending_due_time_or_now_minus_the_margin() {
        let mut floors = ClaimFloors::default();
        let now = 100_000;
        assert!(
            floors_of(&floors.for_claim(now)).is_empty(),
            "no floor before a refresh"
        );
        assert!(floors.refresh_due(now));
        floors.refreshed(
            now,
            vec![
                ("old".into(), Some(40_000)),
                ("future".into(), Some(160_000)),
                ("empty".into(), None),
            ],
        );
        let claimed = floors_of(&floors.for_claim(now + 10));
        assert_eq!(claimed["old"], 40_000 - MARGIN_MS);
        assert_eq!(
            claimed["future"],
            now - MARGIN_MS,
            "retries due later do not lift a floor above what arrives now"
        );
        assert_eq!(claimed["empty"], now - MARGIN_MS);
        assert!(!floors.refresh_due(now + REFRESH_MS - 1));
        assert!(floors.refresh_due(now + REFRESH_MS));
    }

    #[test]
    fn every_floor_is_dropped_after_the_reset_interval() {
        let mut floors = ClaimFloors::default();
        let start = 1_000_000;
        floors.for_claim(start);
        floors.refreshed(start, vec![("ep".into(), Some(start))]);
        assert_eq!(floors_of(&floors.for_claim(start + RESET_MS - 1)).len(), 1);
        assert!(floors_of(&floors.for_claim(start + RESET_MS)).is_empty());
        assert!(floors_of(&floors.current()).is_empty());
    }
}
