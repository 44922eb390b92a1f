//! The order writes on SQLite, each one job on the writer thread
//! (sqlite_writer.rs): the same SQL and the same pure planning as the
//! PostgreSQL path in orders.rs, without a thread hand-off per statement.

use rusqlite::{Connection, Row};

use super::deliveries::ClaimedRow;
use super::deliveries_sqlite::read_targets;
use super::handoff::{Appended, Offer};
use super::orders::{
    delivery_id_prefix, lost_race, plan_append, replay_of, subscription_pattern, AppendOutcome, EventRow, Idempotency,
    OrderRow, Replayable, INSERT_EVENT, INSERT_IDEMPOTENCY, INSERT_ORDER, SELECT_IDEMPOTENCY, SELECT_ORDER,
    UPDATE_ORDER_STATUS,
};
use super::sqlite_sql::{execute, query_all, query_first};
use super::{StoreError, StoreResult};
use crate::domain::order::EventName;
use crate::domain::time::now_ms;

/// One statement for the whole fan-out: a delivery per enabled endpoint
/// subscribed to the event (event_types is NULL = all, or a JSON array of
/// names). Delivery ids are the event's id plus the endpoint's seq.
/// "Contains the quoted name" is `replace(…) <> …`; `LIKE $7` would make
/// SQLite re-prepare the statement on every run (a bound LIKE pattern may
/// change its query plan).
const INSERT_DELIVERIES: &str =
    "INSERT INTO deliveries (id, event_id, endpoint_id, partner_id, order_id, event_name, time_stamp, status,
                             next_attempt_at, created_at)
     SELECT $1 || CAST(e.seq AS TEXT), $2, e.id, e.partner_id, $3, $4, $5, 'pending', $5, $5
     FROM endpoints e
     WHERE e.partner_id = $6 AND e.enabled = 1 AND (e.event_types IS NULL OR replace(e.event_types, $7, '') <> e.event_types)
     ORDER BY e.seq";

/// `INSERT_DELIVERIES` that also leases a delivery for this instance's
/// dispatcher (`handoff.rs`) for `$8` ms if its endpoint is not in `$9` (a
/// JSON array) and no earlier delivery of the order to that endpoint is
/// pending; answers what it inserted.
const INSERT_DELIVERIES_LEASING: &str =
    "INSERT INTO deliveries (id, event_id, endpoint_id, partner_id, order_id, event_name, time_stamp, status,
                             next_attempt_at, created_at, locked_until)
     SELECT $1 || CAST(e.seq AS TEXT), $2, e.id, e.partner_id, $3, $4, $5, 'pending', $5, $5,
            CASE WHEN e.id NOT IN (SELECT value FROM json_each($9))
                  AND NOT EXISTS (SELECT 1 FROM deliveries x WHERE x.endpoint_id = e.id AND x.order_id = $3
                                  AND x.status = 'pending')
                 THEN $5 + $8 END
     FROM endpoints e
     WHERE e.partner_id = $6 AND e.enabled = 1 AND (e.event_types IS NULL OR replace(e.event_types, $7, '') <> e.event_types)
     ORDER BY e.seq
     RETURNING id, endpoint_id, locked_until";

pub(super) fn create_order(
    conn: &Connection,
    order: OrderRow,
    idem: Option<&Idempotency>,
    render: &impl Fn(&OrderRow) -> (u16, String),
) -> StoreResult<Replayable<(OrderRow, u16, String)>> {
    if let Some(replay) = stored_answer(conn, idem)? {
        return Ok(replay);
    }
    execute(
        conn,
        INSERT_ORDER,
        &[
            &order.id,
            &order.partner_id,
            &order.email,
            &order.direction,
            &order.status,
            &order.fiat_currency,
            &order.fiat_amount,
            &order.crypto_currency,
            &order.crypto_amount,
            &order.wallet_address,
            &order.created_at,
            &order.updated_at,
            &order.expires_at,
        ],
    )?;
    let (status, body) = render(&order);
    remember(conn, idem, status, &body)?;
    Ok(Replayable::Fresh((order, status, body)))
}

/// An append's answer (or the stored one) and the deliveries it leased.
type AppendAnswer = (Replayable<(AppendOutcome, u16, String)>, Appended);

// The inputs of `Store::append_event` as they arrive, plus the connection
// and the hand-off offer: a struct would only repackage them once.
#[allow(clippy::too_many_arguments)]
pub(super) fn append_event(
    conn: &Connection,
    order_id: &str,
    event_name: EventName,
    tx_hash: Option<String>,
    reason: Option<String>,
    idem: Option<&Idempotency>,
    offer: Option<&Offer>,
    render: &impl Fn(&EventRow, &OrderRow) -> (u16, String),
) -> StoreResult<AppendAnswer> {
    if let Some(replay) = stored_answer(conn, idem)? {
        return Ok((replay, Appended::default()));
    }
    let (outcome, appended) = append_in(conn, order_id, event_name, tx_hash, reason, offer)?;
    let (status, body) = match &outcome {
        AppendOutcome::Appended { event, order } => {
            let (status, body) = render(event, order);
            remember(conn, idem, status, &body)?;
            (status, body)
        }
        // Refusals are not remembered: nothing was written.
        _ => (0, String::new()),
    };
    Ok((Replayable::Fresh((outcome, status, body)), appended))
}

/// Emits `payment_expired` for each of `order_ids` still awaiting payment.
pub(super) fn expire(conn: &Connection, order_ids: &[String]) -> StoreResult<usize> {
    let mut expired = 0;
    for id in order_ids {
        if let (AppendOutcome::Appended { .. }, _) = append_in(conn, id, EventName::PaymentExpired, None, None, None)? {
            expired += 1;
        }
    }
    Ok(expired)
}

/// The outbox write: the order's guarded status change, its event and its
/// deliveries (leased under `offer`, if any).
fn append_in(
    conn: &Connection,
    order_id: &str,
    event_name: EventName,
    tx_hash: Option<String>,
    reason: Option<String>,
    offer: Option<&Offer>,
) -> StoreResult<(AppendOutcome, Appended)> {
    let Some(mut order) = query_first(conn, SELECT_ORDER, &[&order_id], order_from_row)? else {
        return Ok((AppendOutcome::NoSuchOrder, Appended::default()));
    };
    let (from, event) = match plan_append(&mut order, event_name, tx_hash, reason, now_ms()) {
        Ok(planned) => planned,
        Err(invalid) => return Ok((AppendOutcome::Invalid(invalid), Appended::default())),
    };
    let changed = execute(
        conn,
        UPDATE_ORDER_STATUS,
        &[&order.status, &order.updated_at, &order_id, &from.as_str()],
    )?;
    if changed != 1 {
        return Ok((lost_race(from, event_name), Appended::default()));
    }
    execute(
        conn,
        INSERT_EVENT,
        &[
            &event.id,
            &event.order_id,
            &event.event_name,
            &event.tx_hash,
            &event.reason,
            &event.time_stamp,
        ],
    )?;
    let (prefix, pattern) = (delivery_id_prefix(&event), subscription_pattern(&event));
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![
        &prefix,
        &event.id,
        &order_id,
        &event.event_name,
        &event.time_stamp,
        &order.partner_id,
        &pattern,
    ];
    let appended = match offer {
        None => Appended {
            leased: Vec::new(),
            targets: Vec::new(),
            left_for_claim: execute(conn, INSERT_DELIVERIES, &values)? > 0,
            left_in_lanes: Vec::new(),
        },
        Some(offer) => {
            let skip: &str = &offer.skip;
            values.extend([&offer.lease_ms as &dyn rusqlite::ToSql, &skip]);
            let inserted = query_all(conn, INSERT_DELIVERIES_LEASING, &values, |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
            leased_with_targets(conn, &event, offer, inserted)?
        }
    };
    Ok((AppendOutcome::Appended { event, order }, appended))
}

/// The deliveries an append leased under `offer`, their endpoints' targets
/// (read in the same transaction), and what it left: for endpoints the
/// offer skipped, behind their lanes; others (behind an earlier delivery of
/// their order), for a claim.
fn leased_with_targets(
    conn: &Connection,
    event: &EventRow,
    offer: &Offer,
    inserted: Vec<(String, String, Option<i64>)>,
) -> StoreResult<Appended> {
    let (leased, left): (Vec<_>, Vec<_>) = inserted
        .into_iter()
        .partition(|(_, _, locked_until)| locked_until.is_some());
    let (left_in_lanes, left_for_claim): (Vec<String>, Vec<String>) = left
        .into_iter()
        .map(|(_, endpoint_id, _)| endpoint_id)
        .partition(|endpoint_id| offer.skips(endpoint_id));
    let leased: Vec<ClaimedRow> = leased
        .into_iter()
        .map(|(id, endpoint_id, _)| {
            (
                id,
                event.id.clone(),
                event.order_id.clone(),
                event.event_name.clone(),
                event.time_stamp,
                0,
                endpoint_id,
            )
        })
        .collect();
    let targets = if leased.is_empty() {
        Vec::new()
    } else {
        read_targets(conn, &leased)?
    };
    Ok(Appended {
        leased,
        targets,
        left_for_claim: !left_for_claim.is_empty(),
        left_in_lanes,
    })
}

fn stored_answer<T>(conn: &Connection, idem: Option<&Idempotency>) -> StoreResult<Option<Replayable<T>>> {
    let Some(idem) = idem else { return Ok(None) };
    let found = query_first(conn, SELECT_IDEMPOTENCY, &[&idem.scope, &idem.key], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?;
    Ok(replay_of(found, idem))
}

/// Stores the answer under the key. Writes are serialised on SQLite and the
/// key was looked up in this same transaction, so it cannot be taken.
fn remember(conn: &Connection, idem: Option<&Idempotency>, status: u16, body: &str) -> StoreResult<()> {
    let Some(idem) = idem else { return Ok(()) };
    let stored = execute(
        conn,
        INSERT_IDEMPOTENCY,
        &[
            &idem.scope,
            &idem.key,
            &idem.request_hash,
            &i64::from(status),
            &body,
            &now_ms(),
        ],
    )?;
    if stored != 1 {
        return Err(StoreError::Other(
            "idempotency key taken inside a serialised write".into(),
        ));
    }
    Ok(())
}

fn order_from_row(r: &Row<'_>) -> rusqlite::Result<OrderRow> {
    Ok(OrderRow {
        id: r.get(0)?,
        partner_id: r.get(1)?,
        email: r.get(2)?,
        direction: r.get(3)?,
        status: r.get(4)?,
        fiat_currency: r.get(5)?,
        fiat_amount: r.get(6)?,
        crypto_currency: r.get(7)?,
        crypto_amount: r.get(8)?,
        wallet_address: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
        expires_at: r.get(12)?,
    })
}
