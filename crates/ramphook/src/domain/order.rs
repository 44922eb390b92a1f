//! The order state machine of CONTRACT.md §4: which event moves an order from
//! which status to which, and which events only on-ramps know.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    OnRamp,
    OffRamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    AwaitingPayment,
    Paid,
    Rejected,
    Expired,
    CryptoSent,
    Delivered,
    CryptoFailed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventName {
    PaymentReceived,
    PaymentRejected,
    PaymentExpired,
    CryptoTxSent,
    CryptoDelivered,
    CryptoTxFailed,
}

pub const ALL_EVENTS: [EventName; 6] = [
    EventName::PaymentReceived,
    EventName::PaymentRejected,
    EventName::PaymentExpired,
    EventName::CryptoTxSent,
    EventName::CryptoDelivered,
    EventName::CryptoTxFailed,
];

macro_rules! str_enum {
    ($ty:ty { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),* }
            }
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some(Self::$variant),)* _ => None }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

str_enum!(Direction { OnRamp => "on_ramp", OffRamp => "off_ramp" });
str_enum!(OrderStatus {
    AwaitingPayment => "awaiting_payment", Paid => "paid", Rejected => "rejected",
    Expired => "expired", CryptoSent => "crypto_sent", Delivered => "delivered",
    CryptoFailed => "crypto_failed",
});
str_enum!(EventName {
    PaymentReceived => "payment_received", PaymentRejected => "payment_rejected",
    PaymentExpired => "payment_expired", CryptoTxSent => "crypto_tx_sent",
    CryptoDelivered => "crypto_delivered", CryptoTxFailed => "crypto_tx_failed",
});

/// The whole transition table: (from, event, to, on-ramp only).
const TRANSITIONS: [(OrderStatus, EventName, OrderStatus, bool); 7] = {
    use EventName::*;
    use OrderStatus::*;
    [
        (AwaitingPayment, PaymentReceived, Paid, false),
        (AwaitingPayment, PaymentRejected, Rejected, false),
        (AwaitingPayment, PaymentExpired, Expired, false),
        (Paid, CryptoTxSent, CryptoSent, true),
        (CryptoSent, CryptoDelivered, Delivered, true),
        (CryptoSent, CryptoTxFailed, CryptoFailed, true),
        (CryptoFailed, CryptoTxSent, CryptoSent, true),
    ]
};

/// A refused move, naming what would have been allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidTransition {
    pub from: OrderStatus,
    pub event: EventName,
    pub allowed: Vec<EventName>,
}

impl std::fmt::Display for InvalidTransition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let allowed: Vec<&str> = self.allowed.iter().map(|e| e.as_str()).collect();
        if allowed.is_empty() {
            write!(
                f,
                "{} is not allowed: the order is {} (final), no event is allowed",
                self.event, self.from
            )
        } else {
            write!(
                f,
                "{} is not allowed when the order is {}; allowed: {}",
                self.event,
                self.from,
                allowed.join(", ")
            )
        }
    }
}

/// The events an order in `from` may take next.
pub fn allowed_events(direction: Direction, from: OrderStatus) -> Vec<EventName> {
    TRANSITIONS
        .iter()
        .filter(|(f, _, _, on_ramp_only)| *f == from && (!on_ramp_only || direction == Direction::OnRamp))
        .map(|(_, e, _, _)| *e)
        .collect()
}

/// Applies `event` to an order: the new status, or why not.
pub fn apply(direction: Direction, from: OrderStatus, event: EventName) -> Result<OrderStatus, InvalidTransition> {
    TRANSITIONS
        .iter()
        .find(|(f, e, _, on_ramp_only)| *f == from && *e == event && (!on_ramp_only || direction == Direction::OnRamp))
        .map(|(_, _, to, _)| *to)
        .ok_or_else(|| InvalidTransition {
            from,
            event,
            allowed: allowed_events(direction, from),
        })
}

/// Where `event` applies, for an order not read first: its status is one of
/// `from`, and its direction `direction` when set. The database checks
/// this as it writes (`store/pg_writer.rs`), and `apply` agrees with it
/// for every order (tested below).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventGuard {
    pub from: Vec<OrderStatus>,
    pub to: OrderStatus,
    pub direction: Option<Direction>,
}

/// The guard of `event`: every event leads to one status, from any of its
/// rows of the table.
pub fn guard(event: EventName) -> EventGuard {
    let rows: Vec<_> = TRANSITIONS.iter().filter(|(_, e, _, _)| *e == event).collect();
    let (_, _, to, on_ramp_only) = *rows[0];
    EventGuard {
        from: rows.iter().map(|(from, _, _, _)| *from).collect(),
        to,
        direction: on_ramp_only.then_some(Direction::OnRamp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::*;
    use EventName::*;
    use OrderStatus::*;

    #[test]
    fn every_row_of_the_contract_table_holds() {
        assert_eq!(apply(OnRamp, AwaitingPayment, PaymentReceived), Ok(Paid));
        assert_eq!(apply(OffRamp, AwaitingPayment, PaymentReceived), Ok(Paid));
        assert_eq!(apply(OffRamp, AwaitingPayment, PaymentRejected), Ok(Rejected));
        assert_eq!(apply(OffRamp, AwaitingPayment, PaymentExpired), Ok(Expired));
        assert_eq!(apply(OnRamp, Paid, CryptoTxSent), Ok(CryptoSent));
        assert_eq!(apply(OnRamp, CryptoSent, CryptoDelivered), Ok(Delivered));
        assert_eq!(apply(OnRamp, CryptoSent, CryptoTxFailed), Ok(CryptoFailed));
        assert_eq!(apply(OnRamp, CryptoFailed, CryptoTxSent), Ok(CryptoSent));
    }

    #[test]
    fn on_ramp_only_events_are_refused_on_off_ramps() {
        let err = apply(OffRamp, Paid, CryptoTxSent).unwrap_err();
        assert!(err.allowed.is_empty());
        assert!(allowed_events(OffRamp, CryptoSent).is_empty());
    }

    #[test]
    fn refusals_name_the_allowed_events() {
        let err = apply(OnRamp, AwaitingPayment, CryptoDelivered).unwrap_err();
        assert_eq!(err.allowed, vec![PaymentReceived, PaymentRejected, PaymentExpired]);
        assert!(err
            .to_string()
            .contains("payment_received, payment_rejected, payment_expired"));
    }

    #[test]
    fn final_states_take_no_event() {
        for status in [Rejected, Expired, Delivered] {
            for event in ALL_EVENTS {
                assert!(apply(OnRamp, status, event).is_err(), "{status} took {event}");
            }
        }
    }

    #[test]
    fn an_events_guard_allows_exactly_what_apply_allows() {
        for event in ALL_EVENTS {
            let guard = guard(event);
            for direction in [OnRamp, OffRamp] {
                for from in [
                    AwaitingPayment,
                    Paid,
                    Rejected,
                    Expired,
                    CryptoSent,
                    Delivered,
                    CryptoFailed,
                ] {
                    let guarded = guard.from.contains(&from) && guard.direction.is_none_or(|d| d == direction);
                    let applied = apply(direction, from, event);
                    assert_eq!(guarded, applied.is_ok(), "{direction} {from} {event}");
                    if let Ok(to) = applied {
                        assert_eq!(to, guard.to, "{direction} {from} {event}");
                    }
                }
            }
        }
        assert_eq!(guard(CryptoTxSent).from, vec![Paid, CryptoFailed]);
        assert_eq!(guard(PaymentReceived).direction, None);
    }

    #[test]
    fn names_round_trip() {
        for event in ALL_EVENTS {
            assert_eq!(EventName::parse(event.as_str()), Some(event));
        }
        assert_eq!(EventName::parse("payment_teleported"), None);
    }
}
