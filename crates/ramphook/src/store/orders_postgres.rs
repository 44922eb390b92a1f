//! The order writes on PostgreSQL, each one statement after its reads: a
//! new order and its idempotency record, or an append's guarded status
//! change, its event, the fan-out of deliveries and the idempotency record,
//! are one chain of CTEs, atomic as any statement, which they share with
//! whatever else is waiting (`pg_writer.rs`). An append costs a share of
//! its group's statement instead of a transaction of eight; a new order,
//! which had a statement and a commit of its own (and the pool's check of
//! its connection), costs a share too.
//!
//! Concurrency: the status change is conditional on the status the plan was
//! made from. If another request (or instance) moved the order first, the
//! statement changes nothing and the append is planned again from the new
//! status; a concurrent request with the same key fails on the idempotency
//! primary key and is answered with the winner's stored answer.
//!
//! Keys: an append with an `Idempotency-Key` does not look its key up
//! first. If the key was used, the statement's insert of the answer fails
//! on the key's primary key, nothing of it is written, and the stored answer
//! is given (a replay, or `KeyReused` for another request); before a refusal
//! (no such order, an event not allowed now, as a replayed event usually is)
//! the key is looked up, so that a replay still gets its answer. The lookup
//! before every keyed append was a statement on the reader's connection
//! each time: a quarter of the database's CPU per keyed delivery
//! (docs/PERFORMANCE.md).
//!
//! The plan starts from the order as this instance last wrote it, if it
//! kept it (`order_cache.rs`). Otherwise an append without a key is not
//! planned from the order at all: the statement changes the order only if
//! its status is one the event may leave (`domain::order::guard`) and
//! answers the order as it left it, for the API's answer. Orders are
//! usually paid long after they were made, when this instance no longer
//! keeps them, and the read before such an append was a statement of its
//! own: with 40,000 orders in `single`, taking it away cut the database's
//! and the server's CPU per delivery by 13 % (docs/PERFORMANCE.md). A
//! keyed append is not read first either: its answer, which must be stored
//! with it, cannot be rendered before the statement has the order, so the
//! statement stores the event and the order as it left it, and a replay
//! renders the answer from them, as it was first given (`rendered`). An
//! append the guard did not let through plans from a read (grouped with
//! other appends' reads: `pg_append_reader.rs`), which also finds a
//! refusal's reason, or a key's stored answer. The guard makes a plan from
//! an outdated entry harmless, and a refusal planned from an entry is
//! planned again from a read before it is given.

use super::handoff::Appended;
use super::order_cache::OrderCache;
use super::orders::{
    delivery_id_prefix, lost_race, new_event, plan_append, replay_of, subscription_pattern, AppendOutcome, EventRow,
    Idempotency, OrderRow, Replayable,
};
use super::pg_append_reader::PgAppendReader;
use super::pg_writer::{PgWriter, PlannedAppend, PlannedOrder, RememberedAnswer, RENDERED_AT_REPLAY};
use super::{Store, StoreResult};
use crate::domain::order::{guard, EventName};
use crate::domain::time::now_ms;

/// Plans made again after losing a race before the event is refused.
const MAX_PLANS: usize = 4;

pub(super) async fn create_order(
    store: &Store,
    order: OrderRow,
    idem: Option<&Idempotency>,
    render: impl Fn(&OrderRow) -> (u16, String),
) -> StoreResult<Replayable<(OrderRow, u16, String)>> {
    if let Some(replay) = remembered_replay(store, idem).await? {
        return Ok(replay);
    }
    let (status, body) = render(&order);
    let planned = PlannedOrder {
        order: order.clone(),
        remember: idem.map(|i| remembered(i, i64::from(status), body.clone())),
    };
    match writer(store).create(planned).await {
        Ok(()) => {
            recent_orders(store).remember(&order);
            Ok(Replayable::Fresh((order, status, body)))
        }
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
    let recent = recent_orders(store);
    let mut read_first = false;
    let mut last_from = None;
    for _ in 0..MAX_PLANS {
        let kept = recent.get(order_id);
        if kept.is_none() && !read_first {
            read_first = true;
            let unread = append_unread(
                store,
                order_id,
                event_name,
                (tx_hash.clone(), reason.clone()),
                idem,
                &render,
            );
            match unread.await? {
                Some(accepted) => return Ok(accepted),
                // Not there, or not where the event applies: read it.
                None => continue,
            }
        }
        let planned_from_kept = kept.is_some();
        let order: Option<OrderRow> = match kept {
            Some(order) => Some(order),
            None => reader(store).order(order_id).await?,
        };
        let Some(mut order) = order else {
            // A stored key's answer comes first, as it does for any refusal.
            if let Some(replay) = appended_replay(store, idem, &render).await? {
                return Ok(replay);
            }
            return Ok(Replayable::Fresh((AppendOutcome::NoSuchOrder, 0, String::new())));
        };
        let (from, event) = match plan_append(&mut order, event_name, tx_hash.clone(), reason.clone(), now_ms()) {
            Ok(planned) => planned,
            // Another instance may have moved the order since this one
            // wrote it: only the database's status may refuse.
            Err(_) if planned_from_kept => {
                recent.forget(order_id);
                continue;
            }
            Err(invalid) => {
                // A concurrent request with this key may have moved the order
                // after the key was looked up: its answer is this one's.
                if let Some(replay) = appended_replay(store, idem, &render).await? {
                    return Ok(replay);
                }
                // Refusals are not remembered: nothing was written.
                return Ok(Replayable::Fresh((AppendOutcome::Invalid(invalid), 0, String::new())));
            }
        };
        let (status, body) = render(&event, &order);
        let planned = PlannedAppend {
            remember: idem.map(|i| remembered(i, i64::from(status), body.clone())),
            ..planned_append(&event, from.as_str().to_owned(), order.status.clone())
        };
        match writer(store).append(planned).await {
            Ok(Some(moved)) => return Ok(accepted(store, event, order, moved.deliveries, status, body)),
            // The order moved meanwhile: plan again from where it is now.
            Ok(None) => {
                recent.forget(order_id);
                last_from = Some(from);
            }
            Err(err) if idem.is_some() && is_unique_violation(&err) => {
                return rendered(store.replay_race_winner(idem).await?, &render)
            }
            Err(err) => return Err(err.into()),
        }
    }
    // Refused after losing every race: a stored key's answer first.
    if let Some(replay) = appended_replay(store, idem, &render).await? {
        return Ok(replay);
    }
    let from = last_from.expect("every lost race records its status");
    Ok(Replayable::Fresh((lost_race(from, event_name), 0, String::new())))
}

/// Appends `event_name` (with its tx hash and reason) to an order this
/// instance did not keep, without reading it: the statement checks the
/// event's guard and answers the order. Under a key, the statement stores
/// the event and the order as it left it, to render the answer from at
/// replay (`RENDERED_AT_REPLAY`). `None` if the order is not there or the
/// guard did not let it through.
async fn append_unread(
    store: &Store,
    order_id: &str,
    event_name: EventName,
    (tx_hash, reason): (Option<String>, Option<String>),
    idem: Option<&Idempotency>,
    render: &impl Fn(&EventRow, &OrderRow) -> (u16, String),
) -> StoreResult<Option<Replayable<(AppendOutcome, u16, String)>>> {
    let guard = guard(event_name);
    let event = new_event(order_id, event_name, tx_hash, reason, now_ms());
    let from: Vec<&str> = guard.from.iter().map(|status| status.as_str()).collect();
    // Only a keyed append stores the event for its replays.
    let remember = match idem {
        Some(idem) => {
            let event_json = serde_json::to_string(&event).map_err(|err| sqlx::Error::Encode(Box::new(err)))?;
            Some(remembered(idem, RENDERED_AT_REPLAY, event_json))
        }
        None => None,
    };
    let planned = PlannedAppend {
        only_direction: guard.direction.map(|direction| direction.as_str().to_owned()),
        answer_order: true,
        remember,
        ..planned_append(&event, from.join(","), guard.to.as_str().to_owned())
    };
    let moved = match writer(store).append(planned).await {
        Ok(Some(moved)) => moved,
        Ok(None) => return Ok(None),
        Err(err) if idem.is_some() && is_unique_violation(&err) => {
            return Ok(Some(rendered(store.replay_race_winner(idem).await?, render)?))
        }
        Err(err) => return Err(err.into()),
    };
    let json = moved.order_json.unwrap_or_default();
    let order: OrderRow = serde_json::from_str(&json).map_err(|err| sqlx::Error::Decode(Box::new(err)))?;
    let (status, body) = render(&event, &order);
    Ok(Some(accepted(store, event, order, moved.deliveries, status, body)))
}

/// The write of `event`, moving its order from any of `from_statuses`
/// (comma-separated) to `new_status`, with no key and no order to answer.
fn planned_append(event: &EventRow, from_statuses: String, new_status: String) -> PlannedAppend {
    PlannedAppend {
        order_id: event.order_id.clone(),
        from_statuses,
        only_direction: None,
        answer_order: false,
        new_status,
        at: event.time_stamp,
        event_id: event.id.clone(),
        event_name: event.event_name.clone(),
        tx_hash: event.tx_hash.clone(),
        reason: event.reason.clone(),
        delivery_prefix: delivery_id_prefix(event),
        pattern: subscription_pattern(event),
        remember: None,
    }
}

/// What a keyed write stores for its replays.
fn remembered(idem: &Idempotency, status: i64, body: String) -> RememberedAnswer {
    RememberedAnswer {
        idem_scope: idem.scope.clone(),
        idem_key: idem.key.clone(),
        idem_request_hash: idem.request_hash.clone(),
        answer_status: status,
        answer_body: body,
    }
}

/// What a keyed append planned without its order stores for its replays
/// to render their answer from (`RENDERED_AT_REPLAY`).
#[derive(serde::Deserialize)]
struct StoredAppend {
    event: EventRow,
    order: OrderRow,
}

/// `replay` with its answer rendered by `render` if it was stored to be
/// (`RENDERED_AT_REPLAY`): as it was first given, for the event and the
/// order are as they were then.
fn rendered<T>(
    replay: Replayable<T>,
    render: &impl Fn(&EventRow, &OrderRow) -> (u16, String),
) -> StoreResult<Replayable<T>> {
    match replay {
        Replayable::Replay { status, body } if i64::from(status) == RENDERED_AT_REPLAY => {
            let stored: StoredAppend = serde_json::from_str(&body).map_err(|err| sqlx::Error::Decode(Box::new(err)))?;
            let (status, body) = render(&stored.event, &stored.order);
            Ok(Replayable::Replay { status, body })
        }
        replay => Ok(replay),
    }
}

/// The stored answer of this append's key, rendered if it was stored to be.
async fn appended_replay<T>(
    store: &Store,
    idem: Option<&Idempotency>,
    render: &impl Fn(&EventRow, &OrderRow) -> (u16, String),
) -> StoreResult<Option<Replayable<T>>> {
    remembered_replay(store, idem)
        .await?
        .map(|replay| rendered(replay, render))
        .transpose()
}

/// An append written: the order is kept as it now is and its deliveries
/// are handed to the dispatcher.
fn accepted(
    store: &Store,
    event: EventRow,
    order: OrderRow,
    deliveries: Appended,
    status: u16,
    body: String,
) -> Replayable<(AppendOutcome, u16, String)> {
    recent_orders(store).remember(&order);
    // What was left with no room here may find room on another instance.
    // What was left behind a lane waits for that lane to move: other
    // instances take it at their next claim, or poll.
    if store.hand_off(deliveries) {
        store.notify_dispatchers();
    }
    Replayable::Fresh((AppendOutcome::Appended { event, order }, status, body))
}

/// Emits `payment_expired` for each of `order_ids` still awaiting payment.
/// All at once, so that the writer writes them in a few groups rather than
/// a round trip each.
pub(super) async fn expire(store: &Store, order_ids: &[String]) -> StoreResult<usize> {
    let appends = order_ids.iter().map(|id| {
        append_event(store, id, EventName::PaymentExpired, None, None, None, |_, _| {
            (0, String::new())
        })
    });
    let mut expired = 0;
    for appended in futures_util::future::join_all(appends).await {
        if let Replayable::Fresh((AppendOutcome::Appended { .. }, ..)) = appended? {
            expired += 1;
        }
    }
    Ok(expired)
}

/// The stored answer of this request's key, read with other appends' reads
/// (`pg_append_reader.rs`).
async fn remembered_replay<T>(store: &Store, idem: Option<&Idempotency>) -> StoreResult<Option<Replayable<T>>> {
    let Some(idem) = idem else { return Ok(None) };
    let found = reader(store).remembered(&idem.scope, &idem.key).await?;
    Ok(replay_of(found, idem))
}

fn writer(store: &Store) -> &PgWriter {
    store.pg_writer.as_ref().expect("PostgreSQL stores have a writer")
}

fn reader(store: &Store) -> &PgAppendReader {
    store
        .pg_append_reader
        .as_ref()
        .expect("PostgreSQL stores have an append reader")
}

fn recent_orders(store: &Store) -> &OrderCache {
    store
        .recent_orders
        .as_deref()
        .expect("PostgreSQL stores keep recent orders")
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}
