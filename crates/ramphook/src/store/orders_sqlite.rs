//! The order writes on SQLite, each one job on the writer thread
//! (sqlite_writer.rs): the same SQL and the same pure planning as the
//! PostgreSQL path in orders.rs, without a thread hand-off per statement.

use rusqlite::{Connection, Row};

use super::orders::{
    delivery_id_prefix, lost_race, plan_append, replay_of, subscription_pattern, AppendOutcome, EventRow, Idempotency,
    OrderRow, Replayable, INSERT_DELIVERIES, INSERT_EVENT, INSERT_IDEMPOTENCY, INSERT_ORDER, SELECT_IDEMPOTENCY,
    SELECT_ORDER, UPDATE_ORDER_STATUS,
};
use super::sqlite_sql::{execute, query_first};
use super::{StoreError, StoreResult};
use crate::domain::order::EventName;
use crate::domain::time::now_ms;

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

pub(super) fn append_event(
    conn: &Connection,
    order_id: &str,
    event_name: EventName,
    tx_hash: Option<String>,
    reason: Option<String>,
    idem: Option<&Idempotency>,
    render: &impl Fn(&EventRow, &OrderRow) -> (u16, String),
) -> StoreResult<Replayable<(AppendOutcome, u16, String)>> {
    if let Some(replay) = stored_answer(conn, idem)? {
        return Ok(replay);
    }
    let outcome = append_in(conn, order_id, event_name, tx_hash, reason)?;
    let (status, body) = match &outcome {
        AppendOutcome::Appended { event, order } => {
            let (status, body) = render(event, order);
            remember(conn, idem, status, &body)?;
            (status, body)
        }
        // Refusals are not remembered: nothing was written.
        _ => (0, String::new()),
    };
    Ok(Replayable::Fresh((outcome, status, body)))
}

/// Emits `payment_expired` for each of `order_ids` still awaiting payment.
pub(super) fn expire(conn: &Connection, order_ids: &[String]) -> StoreResult<usize> {
    let mut expired = 0;
    for id in order_ids {
        if let AppendOutcome::Appended { .. } = append_in(conn, id, EventName::PaymentExpired, None, None)? {
            expired += 1;
        }
    }
    Ok(expired)
}

/// The outbox write, as `orders::append_in` does it.
fn append_in(
    conn: &Connection,
    order_id: &str,
    event_name: EventName,
    tx_hash: Option<String>,
    reason: Option<String>,
) -> StoreResult<AppendOutcome> {
    let Some(mut order) = query_first(conn, SELECT_ORDER, &[&order_id], order_from_row)? else {
        return Ok(AppendOutcome::NoSuchOrder);
    };
    let (from, event) = match plan_append(&mut order, event_name, tx_hash, reason, now_ms()) {
        Ok(planned) => planned,
        Err(invalid) => return Ok(AppendOutcome::Invalid(invalid)),
    };
    let changed = execute(
        conn,
        UPDATE_ORDER_STATUS,
        &[&order.status, &order.updated_at, &order_id, &from.as_str()],
    )?;
    if changed != 1 {
        return Ok(lost_race(from, event_name));
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
    execute(
        conn,
        INSERT_DELIVERIES,
        &[
            &delivery_id_prefix(&event),
            &event.id,
            &order_id,
            &event.event_name,
            &event.time_stamp,
            &order.partner_id,
            &subscription_pattern(&event),
        ],
    )?;
    Ok(AppendOutcome::Appended { event, order })
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
