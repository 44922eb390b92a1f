//! The order writes on PostgreSQL, each one statement after its reads: the
//! order's guarded status change, its event, the fan-out of deliveries and
//! the idempotency record are one chain of CTEs, atomic as any statement.
//! An append costs two round trips (three with an `Idempotency-Key`) instead
//! of a transaction of eight, which is what PostgreSQL's time went to.
//!
//! Concurrency: the status change is conditional on the status the plan was
//! made from. If another request (or instance) moved the order first, the
//! statement changes nothing and the append is planned again from the new
//! status; a concurrent request with the same key fails on the idempotency
//! primary key and is answered with the winner's stored answer.

use super::orders::{
    delivery_id_prefix, idempotent_replay, lost_race, plan_append, subscription_pattern, AppendOutcome, EventRow,
    Idempotency, OrderRow, Replayable, INSERT_ORDER, SELECT_ORDER,
};
use super::{Store, StoreResult};
use crate::domain::order::EventName;
use crate::domain::time::now_ms;

/// Plans made again after losing a race before the event is refused.
const MAX_PLANS: usize = 4;

const APPEND: &str = "WITH moved AS (
         UPDATE orders SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4 RETURNING partner_id
     ), event AS (
         INSERT INTO events (id, order_id, event_name, tx_hash, reason, time_stamp)
         SELECT $5, $3, $6, $7, $8, $2 FROM moved
     ), fanout AS (
         INSERT INTO deliveries (id, event_id, endpoint_id, partner_id, order_id, event_name, time_stamp, status,
                                 next_attempt_at, created_at)
         SELECT $9 || CAST(e.seq AS TEXT), $5, e.id, e.partner_id, $3, $6, $2, 'pending', $2, $2
         FROM endpoints e JOIN moved m ON e.partner_id = m.partner_id
         WHERE e.enabled = 1 AND (e.event_types IS NULL OR replace(e.event_types, $10, '') <> e.event_types)
         ORDER BY e.seq
     ), remembered AS (
         INSERT INTO idempotency (scope, key, request_hash, status, body, created_at)
         SELECT $11, $12, $13, $14, $15, $2 FROM moved WHERE CAST($11 AS TEXT) IS NOT NULL
     )
     SELECT COUNT(*) FROM moved";

const CREATE_REMEMBERED: &str = "WITH created AS (
         INSERT INTO orders (id, partner_id, email, direction, status, fiat_currency, fiat_amount, crypto_currency,
                             crypto_amount, wallet_address, created_at, updated_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id
     )
     INSERT INTO idempotency (scope, key, request_hash, status, body, created_at)
     SELECT $14, $15, $16, $17, $18, $11 FROM created";

pub(super) async fn create_order(
    store: &Store,
    order: OrderRow,
    idem: Option<&Idempotency>,
    render: impl Fn(&OrderRow) -> (u16, String),
) -> StoreResult<Replayable<(OrderRow, u16, String)>> {
    if let Some(replay) = idempotent_replay(&store.writer, idem).await? {
        return Ok(replay);
    }
    let (status, body) = render(&order);
    let query = sqlx::query(if idem.is_some() {
        CREATE_REMEMBERED
    } else {
        INSERT_ORDER
    })
    .bind(&order.id)
    .bind(&order.partner_id)
    .bind(&order.email)
    .bind(&order.direction)
    .bind(&order.status)
    .bind(&order.fiat_currency)
    .bind(&order.fiat_amount)
    .bind(&order.crypto_currency)
    .bind(&order.crypto_amount)
    .bind(&order.wallet_address)
    .bind(order.created_at)
    .bind(order.updated_at)
    .bind(order.expires_at);
    let query = match idem {
        Some(idem) => query
            .bind(&idem.scope)
            .bind(&idem.key)
            .bind(&idem.request_hash)
            .bind(i64::from(status))
            .bind(&body),
        None => query,
    };
    match query.execute(&store.writer).await {
        Ok(_) => Ok(Replayable::Fresh((order, status, body))),
        Err(err) if idem.is_some() && is_unique_violation(&err) => store.replay_race_winner(idem).await,
        Err(err) => Err(err.into()),
    }
}

pub(super) async fn append_event(
    store: &Store,
    order_id: &str,
    event_name: EventName,
    tx_hash: Option<String>,
    reason: Option<String>,
    idem: Option<&Idempotency>,
    render: impl Fn(&EventRow, &OrderRow) -> (u16, String),
) -> StoreResult<Replayable<(AppendOutcome, u16, String)>> {
    let mut last_from = None;
    for _ in 0..MAX_PLANS {
        if let Some(replay) = idempotent_replay(&store.writer, idem).await? {
            return Ok(replay);
        }
        let order: Option<OrderRow> = sqlx::query_as(SELECT_ORDER)
            .bind(order_id)
            .fetch_optional(&store.writer)
            .await?;
        let Some(mut order) = order else {
            return Ok(Replayable::Fresh((AppendOutcome::NoSuchOrder, 0, String::new())));
        };
        let (from, event) = match plan_append(&mut order, event_name, tx_hash.clone(), reason.clone(), now_ms()) {
            Ok(planned) => planned,
            Err(invalid) => {
                // A concurrent request with this key may have moved the order
                // after the key was looked up: its answer is this one's.
                if let Some(replay) = idempotent_replay(&store.writer, idem).await? {
                    return Ok(replay);
                }
                // Refusals are not remembered: nothing was written.
                return Ok(Replayable::Fresh((AppendOutcome::Invalid(invalid), 0, String::new())));
            }
        };
        let (status, body) = render(&event, &order);
        let moved: Result<i64, sqlx::Error> = sqlx::query_scalar(APPEND)
            .bind(&order.status)
            .bind(order.updated_at)
            .bind(order_id)
            .bind(from.as_str())
            .bind(&event.id)
            .bind(&event.event_name)
            .bind(&event.tx_hash)
            .bind(&event.reason)
            .bind(delivery_id_prefix(&event))
            .bind(subscription_pattern(&event))
            .bind(idem.map(|i| i.scope.as_str()))
            .bind(idem.map(|i| i.key.as_str()))
            .bind(idem.map(|i| i.request_hash.as_str()))
            .bind(i64::from(status))
            .bind(&body)
            .fetch_one(&store.writer)
            .await;
        match moved {
            Ok(1) => {
                store.notify_dispatchers();
                return Ok(Replayable::Fresh((
                    AppendOutcome::Appended { event, order },
                    status,
                    body,
                )));
            }
            // The order moved meanwhile: plan again from where it is now.
            Ok(_) => last_from = Some(from),
            Err(err) if idem.is_some() && is_unique_violation(&err) => return store.replay_race_winner(idem).await,
            Err(err) => return Err(err.into()),
        }
    }
    let from = last_from.expect("every lost race records its status");
    Ok(Replayable::Fresh((lost_race(from, event_name), 0, String::new())))
}

/// Emits `payment_expired` for each of `order_ids` still awaiting payment.
pub(super) async fn expire(store: &Store, order_ids: &[String]) -> StoreResult<usize> {
    let mut expired = 0;
    for id in order_ids {
        let appended = append_event(store, id, EventName::PaymentExpired, None, None, None, |_, _| {
            (0, String::new())
        })
        .await?;
        if let Replayable::Fresh((AppendOutcome::Appended { .. }, ..)) = appended {
            expired += 1;
        }
    }
    Ok(expired)
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}
