//! Orders as this instance last wrote them, so that an event append on
//! PostgreSQL plans from memory instead of reading the order first: that
//! read was five of every six statements in `single` (docs/PERFORMANCE.md).
//!
//! An entry is a hint, never an answer. The append's status change is
//! guarded by the status it was planned from, so a plan from an entry that
//! another instance has outdated changes nothing and is made again from the
//! database; and a refusal planned from an entry is checked against the
//! database before it is given (`orders_postgres.rs`). Orders with no event
//! left to take are dropped; the rest are bounded by `quick_cache`'s
//! eviction.

use quick_cache::sync::Cache;

use super::orders::OrderRow;
use crate::domain::order::{allowed_events, Direction, OrderStatus};

/// Orders kept: enough for every order between its creation and its last
/// event at thousands of orders a second (a few hundred bytes each).
const CAPACITY: usize = 20_000;

pub(super) struct OrderCache {
    orders: Cache<String, OrderRow>,
}

impl OrderCache {
    pub fn new() -> Self {
        Self {
            orders: Cache::new(CAPACITY),
        }
    }

    /// The order as this instance last wrote it, if kept.
    pub fn get(&self, id: &str) -> Option<OrderRow> {
        self.orders.get(id)
    }

    /// Keeps `order` as just written, unless no event can follow.
    pub fn remember(&self, order: &OrderRow) {
        if can_move(order) {
            self.orders.insert(order.id.clone(), order.clone());
        } else {
            self.forget(&order.id);
        }
    }

    /// Drops `id`: the database knows better.
    pub fn forget(&self, id: &str) {
        self.orders.remove(id);
    }
}

fn can_move(order: &OrderRow) -> bool {
    match (Direction::parse(&order.direction), OrderStatus::parse(&order.status)) {
        (Some(direction), Some(status)) => !allowed_events(direction, status).is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(direction: &str, status: &str) -> OrderRow {
        OrderRow {
            id: "ord_1".into(),
            partner_id: "ptn_1".into(),
            email: "alice@example.com".into(),
            direction: direction.into(),
            status: status.into(),
            fiat_currency: None,
            fiat_amount: None,
            crypto_currency: None,
            crypto_amount: None,
            wallet_address: None,
            created_at: 1,
            updated_at: 1,
            expires_at: 2,
        }
    }

    #[test]
    fn an_order_that_can_still_move_is_kept_as_last_written() {
        let cache = OrderCache::new();
        cache.remember(&order("on_ramp", "awaiting_payment"));
        cache.remember(&order("on_ramp", "paid"));
        assert_eq!(cache.get("ord_1").map(|o| o.status).as_deref(), Some("paid"));
        cache.forget("ord_1");
        assert!(cache.get("ord_1").is_none());
    }

    #[test]
    fn an_order_with_no_event_left_is_dropped() {
        let cache = OrderCache::new();
        cache.remember(&order("on_ramp", "crypto_sent"));
        cache.remember(&order("on_ramp", "delivered"));
        assert!(cache.get("ord_1").is_none());
        // Off-ramps end once paid.
        cache.remember(&order("off_ramp", "paid"));
        assert!(cache.get("ord_1").is_none());
    }
}
