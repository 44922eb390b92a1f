//! Orders, their events and the transactional outbox: an order's change, its
//! event and one delivery per subscribed endpoint commit together or not at
//! all. Idempotency records live in the same transaction.

use sqlx::Any;

use super::{Store, StoreError, StoreResult};
use crate::domain::ids::new_id;
use crate::domain::order::{apply, Direction, EventName, InvalidTransition, OrderStatus};
use crate::domain::time::now_ms;

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct OrderRow {
    pub id: String,
    pub partner_id: String,
    pub email: String,
    pub direction: String,
    pub status: String,
    pub fiat_currency: Option<String>,
    pub fiat_amount: Option<String>,
    pub crypto_currency: Option<String>,
    pub crypto_amount: Option<String>,
    pub wallet_address: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct EventRow {
    pub id: String,
    pub order_id: String,
    pub event_name: String,
    pub tx_hash: Option<String>,
    pub reason: Option<String>,
    pub time_stamp: i64,
}

pub struct NewOrder {
    pub partner_id: String,
    pub email: String,
    pub direction: Direction,
    pub fiat_currency: Option<String>,
    pub fiat_amount: Option<String>,
    pub crypto_currency: Option<String>,
    pub crypto_amount: Option<String>,
    pub wallet_address: Option<String>,
    pub expires_in_ms: i64,
}

/// An `Idempotency-Key` as the store sees it: where it applies (scope: the
/// caller and the route), the key, and a hash of the request it came with.
#[derive(Clone)]
pub struct Idempotency {
    pub scope: String,
    pub key: String,
    pub request_hash: String,
}

/// The result of a write that may be a replay of an earlier one.
pub enum Replayable<T> {
    /// Done now; the stored answer is what the caller's renderer produced.
    Fresh(T),
    /// Done before under the same key and request: the stored answer.
    Replay { status: u16, body: String },
    /// The key was used before with another request.
    KeyReused,
}

// Built once per request and matched at once: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum AppendOutcome {
    Appended { event: EventRow, order: OrderRow },
    NoSuchOrder,
    Invalid(InvalidTransition),
}

const ORDER_COLUMNS: &str = "id, partner_id, email, direction, status, fiat_currency, fiat_amount, crypto_currency, crypto_amount, wallet_address, created_at, updated_at, expires_at";
const EVENT_COLUMNS: &str = "id, order_id, event_name, tx_hash, reason, time_stamp";

/// An `Idempotency-Key`'s stored answer: the request's hash, the status and the body.
pub(super) type Remembered = (String, i64, String);

pub(super) const SELECT_IDEMPOTENCY: &str =
    "SELECT request_hash, status, body FROM idempotency WHERE scope = $1 AND key = $2";
pub(super) const INSERT_IDEMPOTENCY: &str =
    "INSERT INTO idempotency (scope, key, request_hash, status, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (scope, key) DO NOTHING";
/// A new order awaits payment: `awaiting_until` is its `expires_at` (see
/// `next_expiry`).
pub(super) const INSERT_ORDER: &str = "INSERT INTO orders (id, partner_id, email, direction, status, fiat_currency, \
     fiat_amount, crypto_currency, crypto_amount, wallet_address, created_at, updated_at, expires_at, awaiting_until) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)";
pub(super) const SELECT_ORDER: &str = "SELECT id, partner_id, email, direction, status, fiat_currency, fiat_amount, \
     crypto_currency, crypto_amount, wallet_address, created_at, updated_at, expires_at FROM orders WHERE id = $1";
/// The orders of a JSON array of ids (`pg_append_reader.rs`).
pub(super) const SELECT_ORDERS_BY_IDS: &str = "SELECT id, partner_id, email, direction, status, fiat_currency, \
     fiat_amount, crypto_currency, crypto_amount, wallet_address, created_at, updated_at, expires_at FROM orders \
     WHERE id = ANY(ARRAY(SELECT json_array_elements_text(CAST($1 AS json))))";
/// Every event moves its order on from `awaiting_payment`, if it was there.
pub(super) const UPDATE_ORDER_STATUS: &str =
    "UPDATE orders SET status = $1, updated_at = $2, awaiting_until = NULL WHERE id = $3 AND status = $4";
pub(super) const INSERT_EVENT: &str =
    "INSERT INTO events (id, order_id, event_name, tx_hash, reason, time_stamp) VALUES ($1, $2, $3, $4, $5, $6)";

/// What a stored key means for this request: its answer (same request) or a
/// refusal (another request under the same key).
pub(super) fn replay_of<T>(found: Option<Remembered>, idem: &Idempotency) -> Option<Replayable<T>> {
    found.map(|(hash, status, body)| {
        if hash == idem.request_hash {
            Replayable::Replay {
                status: status as u16,
                body,
            }
        } else {
            Replayable::KeyReused
        }
    })
}

/// Looks the key up inside the write transaction. Two requests with one key
/// can both miss only on PostgreSQL (SQLite writes are serialised); then the
/// later one's `remember` finds the key taken and the request is replayed.
pub(super) async fn idempotent_replay<'e, T, E: sqlx::Executor<'e, Database = Any>>(
    executor: E,
    idem: Option<&Idempotency>,
) -> StoreResult<Option<Replayable<T>>> {
    let Some(idem) = idem else { return Ok(None) };
    let found: Option<Remembered> = sqlx::query_as(SELECT_IDEMPOTENCY)
        .bind(&idem.scope)
        .bind(&idem.key)
        .fetch_optional(executor)
        .await?;
    Ok(replay_of(found, idem))
}

impl Store {
    /// The answer of the concurrent request that stored the key first.
    pub(super) async fn replay_race_winner<T>(&self, idem: Option<&Idempotency>) -> StoreResult<Replayable<T>> {
        idempotent_replay(&self.writer, idem)
            .await?
            .ok_or_else(|| StoreError::Other("idempotency key vanished after a conflict".into()))
    }

    /// A read-only look at an `Idempotency-Key`: the stored answer if this
    /// request was already made. Lets a replay skip work that must precede
    /// the write (the validation callback); the write re-checks the key.
    pub async fn idempotent_answer(&self, idem: Option<&Idempotency>) -> StoreResult<Option<Replayable<()>>> {
        idempotent_replay(&self.reader, idem).await
    }

    /// Creates an order; `render` gives the answer stored for replays.
    pub async fn create_order(
        &self,
        new: NewOrder,
        idem: Option<&Idempotency>,
        render: impl Fn(&OrderRow) -> (u16, String) + Send + 'static,
    ) -> StoreResult<Replayable<(OrderRow, u16, String)>> {
        let order = new_order_row(new, now_ms());
        if let Some(writer) = &self.sqlite {
            let idem = idem.cloned();
            return writer
                .write(move |conn| super::orders_sqlite::create_order(conn, order.clone(), idem.as_ref(), &render))
                .await;
        }
        super::orders_postgres::create_order(self, order, idem, render).await
    }

    pub async fn get_order(&self, id: &str) -> StoreResult<Option<(OrderRow, Vec<EventRow>)>> {
        let order: Option<OrderRow> = sqlx::query_as(SELECT_ORDER)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        let Some(order) = order else { return Ok(None) };
        let events = sqlx::query_as(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE order_id = $1 ORDER BY seq"
        ))
        .bind(id)
        .fetch_all(&self.reader)
        .await?;
        Ok(Some((order, events)))
    }

    /// A user's orders with one partner, newest first.
    pub async fn user_orders(&self, partner_id: &str, email: &str, limit: u32) -> StoreResult<Vec<OrderRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE partner_id = $1 AND email = $2 ORDER BY created_at DESC LIMIT $3"
        ))
        .bind(partner_id)
        .bind(email)
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await?)
    }

    /// Applies an event to an order and queues its deliveries, atomically.
    /// `render` gives the answer stored under `idem`; it must depend on the
    /// event and the order alone, for on PostgreSQL a keyed append to an
    /// order this instance did not keep stores the two instead, and its
    /// replays are rendered from them (`orders_postgres.rs`).
    pub async fn append_event(
        &self,
        order_id: &str,
        event_name: EventName,
        tx_hash: Option<String>,
        reason: Option<String>,
        idem: Option<&Idempotency>,
        render: impl Fn(&EventRow, &OrderRow) -> (u16, String) + Send + 'static,
    ) -> StoreResult<Replayable<(AppendOutcome, u16, String)>> {
        if let Some(writer) = &self.sqlite {
            let (order_id, idem, offer) = (order_id.to_owned(), idem.cloned(), self.handoff.offer());
            let (answer, appended) = writer
                .write(move |conn| {
                    super::orders_sqlite::append_event(
                        conn,
                        &order_id,
                        event_name,
                        tx_hash.clone(),
                        reason.clone(),
                        idem.as_ref(),
                        offer.as_ref(),
                        &render,
                    )
                })
                .await?;
            self.hand_off(appended);
            return Ok(answer);
        }
        super::orders_postgres::append_event(self, order_id, event_name, tx_hash, reason, idem, render).await
    }

    /// When the next awaiting order expires, if any. An order awaiting
    /// payment has `awaiting_until` = `expires_at`; every event that moves it
    /// nulls it. Its index is not on `status`, so that PostgreSQL updates an
    /// order in place (HOT) once it has left `awaiting_payment` (migration
    /// 0006); `status` is still checked on the rows the index finds.
    pub async fn next_expiry(&self) -> StoreResult<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(awaiting_until) FROM orders WHERE awaiting_until IS NOT NULL AND status = 'awaiting_payment'",
        )
        .fetch_one(&self.reader)
        .await?)
    }

    /// Emits `payment_expired` for up to `limit` orders past `expiresAt`.
    /// The transition is a conditional update, so an order expires once.
    pub async fn expire_due(&self, now: i64, limit: u32) -> StoreResult<usize> {
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM orders WHERE awaiting_until <= $1 AND status = 'awaiting_payment'
             ORDER BY awaiting_until LIMIT $2",
        )
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await?;
        if due.is_empty() {
            return Ok(0);
        }
        if let Some(writer) = &self.sqlite {
            return writer.write(move |conn| super::orders_sqlite::expire(conn, &due)).await;
        }
        super::orders_postgres::expire(self, &due).await
    }
}

/// The pure half of an append: the order's next status and the event row,
/// or why the event does not apply. Updates `order` to what it becomes.
pub(super) fn plan_append(
    order: &mut OrderRow,
    event_name: EventName,
    tx_hash: Option<String>,
    reason: Option<String>,
    now: i64,
) -> Result<(OrderStatus, EventRow), InvalidTransition> {
    let direction = Direction::parse(&order.direction).expect("stored directions are valid");
    let from = OrderStatus::parse(&order.status).expect("stored statuses are valid");
    let to = apply(direction, from, event_name)?;
    order.status = to.as_str().to_owned();
    order.updated_at = now;
    Ok((from, new_event(&order.id, event_name, tx_hash, reason, now)))
}

/// A new event's row, stamped `now`.
pub(super) fn new_event(
    order_id: &str,
    event_name: EventName,
    tx_hash: Option<String>,
    reason: Option<String>,
    now: i64,
) -> EventRow {
    EventRow {
        id: new_id("evt"),
        order_id: order_id.to_owned(),
        event_name: event_name.as_str().to_owned(),
        tx_hash,
        reason,
        time_stamp: now,
    }
}

/// The refusal when someone else moved the order first (another instance):
/// as the state machine would have seen it.
pub(super) fn lost_race(from: OrderStatus, event: EventName) -> AppendOutcome {
    AppendOutcome::Invalid(InvalidTransition {
        from,
        event,
        allowed: vec![],
    })
}

/// The prefix of an event's delivery ids (the endpoint's seq follows).
pub(super) fn delivery_id_prefix(event: &EventRow) -> String {
    let event_uuid = event.id.trim_start_matches("evt_");
    format!("{}_{event_uuid}_", crate::domain::ids::DELIVERY_PREFIX)
}

/// The event's name as it appears in an endpoint's JSON array of event types.
pub(super) fn subscription_pattern(event: &EventRow) -> String {
    format!("\"{}\"", event.event_name)
}

/// Builds a new order's row (status `awaiting_payment`). Its id is a
/// UUIDv7: time-ordered, so the orders being paid (the recent ones) sit
/// together in the orders table and in every index keyed by order, and a
/// commit dirties a few pages instead of one random page per order.
fn new_order_row(new: NewOrder, now: i64) -> OrderRow {
    OrderRow {
        id: uuid::Uuid::now_v7().to_string(),
        partner_id: new.partner_id,
        email: new.email,
        direction: new.direction.as_str().to_owned(),
        status: OrderStatus::AwaitingPayment.as_str().to_owned(),
        fiat_currency: new.fiat_currency,
        fiat_amount: new.fiat_amount,
        crypto_currency: new.crypto_currency,
        crypto_amount: new.crypto_amount,
        wallet_address: new.wallet_address,
        created_at: now,
        updated_at: now,
        expires_at: now + new.expires_in_ms,
    }
}
