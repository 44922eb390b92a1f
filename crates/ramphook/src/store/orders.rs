//! Orders, their events and the transactional outbox: an order's change, its
//! event and one delivery per subscribed endpoint commit together or not at
//! all. Idempotency records live in the same transaction.

use sqlx::{Any, Transaction};

use super::{Backend, Store, StoreError, StoreResult};
use crate::domain::ids::new_id;
use crate::domain::order::{apply, Direction, EventName, InvalidTransition, OrderStatus};
use crate::domain::time::now_ms;

#[derive(Debug, Clone, sqlx::FromRow)]
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

#[derive(Debug, Clone, sqlx::FromRow)]
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

pub(super) const SELECT_IDEMPOTENCY: &str =
    "SELECT request_hash, status, body FROM idempotency WHERE scope = $1 AND key = $2";
pub(super) const INSERT_IDEMPOTENCY: &str =
    "INSERT INTO idempotency (scope, key, request_hash, status, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (scope, key) DO NOTHING";
pub(super) const INSERT_ORDER: &str = "INSERT INTO orders (id, partner_id, email, direction, status, fiat_currency, \
     fiat_amount, crypto_currency, crypto_amount, wallet_address, created_at, updated_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
pub(super) const SELECT_ORDER: &str = "SELECT id, partner_id, email, direction, status, fiat_currency, fiat_amount, \
     crypto_currency, crypto_amount, wallet_address, created_at, updated_at, expires_at FROM orders WHERE id = $1";
pub(super) const UPDATE_ORDER_STATUS: &str =
    "UPDATE orders SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4";
pub(super) const INSERT_EVENT: &str =
    "INSERT INTO events (id, order_id, event_name, tx_hash, reason, time_stamp) VALUES ($1, $2, $3, $4, $5, $6)";
/// One statement for the whole fan-out: a delivery per enabled endpoint
/// subscribed to the event (event_types is NULL = all, or a JSON array of
/// names). Delivery ids are the event's id plus the endpoint's seq.
/// "Contains the quoted name" is `replace(…) <> …`, which both databases
/// speak; `LIKE $7` would make SQLite re-prepare the statement on every run
/// (a bound LIKE pattern may change its query plan).
pub(super) const INSERT_DELIVERIES: &str =
    "INSERT INTO deliveries (id, event_id, endpoint_id, partner_id, order_id, event_name, time_stamp, status,
                             next_attempt_at, created_at)
     SELECT $1 || CAST(e.seq AS TEXT), $2, e.id, e.partner_id, $3, $4, $5, 'pending', $5, $5
     FROM endpoints e
     WHERE e.partner_id = $6 AND e.enabled = 1 AND (e.event_types IS NULL OR replace(e.event_types, $7, '') <> e.event_types)
     ORDER BY e.seq";

/// What a stored key means for this request: its answer (same request) or a
/// refusal (another request under the same key).
pub(super) fn replay_of<T>(found: Option<(String, i64, String)>, idem: &Idempotency) -> Option<Replayable<T>> {
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
async fn idempotent_replay<'e, T, E: sqlx::Executor<'e, Database = Any>>(
    executor: E,
    idem: Option<&Idempotency>,
) -> StoreResult<Option<Replayable<T>>> {
    let Some(idem) = idem else { return Ok(None) };
    let found: Option<(String, i64, String)> = sqlx::query_as(SELECT_IDEMPOTENCY)
        .bind(&idem.scope)
        .bind(&idem.key)
        .fetch_optional(executor)
        .await?;
    Ok(replay_of(found, idem))
}

/// Stores the answer under the key; `false` if a concurrent request with the
/// same key committed first (the caller rolls back and replays that one).
async fn remember(
    tx: &mut Transaction<'_, Any>,
    idem: Option<&Idempotency>,
    status: u16,
    body: &str,
) -> StoreResult<bool> {
    if let Some(idem) = idem {
        let stored = sqlx::query(INSERT_IDEMPOTENCY)
            .bind(&idem.scope)
            .bind(&idem.key)
            .bind(&idem.request_hash)
            .bind(status as i64)
            .bind(body)
            .bind(now_ms())
            .execute(&mut **tx)
            .await?
            .rows_affected();
        return Ok(stored == 1);
    }
    Ok(true)
}

impl Store {
    /// The answer of the concurrent request that stored the key first.
    async fn replay_race_winner<T>(&self, idem: Option<&Idempotency>) -> StoreResult<Replayable<T>> {
        let mut tx = self.begin_write().await?;
        idempotent_replay(&mut *tx, idem)
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
        let mut tx = self.begin_write().await?;
        if let Some(replay) = idempotent_replay(&mut *tx, idem).await? {
            return Ok(replay);
        }
        sqlx::query(INSERT_ORDER)
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
            .bind(order.expires_at)
            .execute(&mut *tx)
            .await?;
        let (status, body) = render(&order);
        if !remember(&mut tx, idem, status, &body).await? {
            drop(tx);
            return self.replay_race_winner(idem).await;
        }
        tx.commit().await?;
        Ok(Replayable::Fresh((order, status, body)))
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
            let (order_id, idem) = (order_id.to_owned(), idem.cloned());
            return writer
                .write(move |conn| {
                    super::orders_sqlite::append_event(
                        conn,
                        &order_id,
                        event_name,
                        tx_hash.clone(),
                        reason.clone(),
                        idem.as_ref(),
                        &render,
                    )
                })
                .await;
        }
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            // Concurrent events of one order (several instances) queue here,
            // so each sees the status (and idempotency key) the last one left.
            sqlx::query("SELECT id FROM orders WHERE id = $1 FOR UPDATE")
                .bind(order_id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(replay) = idempotent_replay(&mut *tx, idem).await? {
            return Ok(replay);
        }
        let outcome = append_in(&mut tx, order_id, event_name, tx_hash, reason).await?;
        let (status, body) = match &outcome {
            AppendOutcome::Appended { event, order } => {
                let (status, body) = render(event, order);
                if !remember(&mut tx, idem, status, &body).await? {
                    drop(tx);
                    return self.replay_race_winner(idem).await;
                }
                self.notify_dispatchers(&mut *tx).await?;
                tx.commit().await?;
                (status, body)
            }
            // Refusals are not remembered: nothing was written.
            _ => (0, String::new()),
        };
        Ok(Replayable::Fresh((outcome, status, body)))
    }

    /// When the next awaiting order expires, if any.
    pub async fn next_expiry(&self) -> StoreResult<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT MIN(expires_at) FROM orders WHERE status = 'awaiting_payment'")
                .fetch_one(&self.reader)
                .await?,
        )
    }

    /// Emits `payment_expired` for up to `limit` orders past `expiresAt`.
    /// The transition is a conditional update, so an order expires once.
    pub async fn expire_due(&self, now: i64, limit: u32) -> StoreResult<usize> {
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM orders WHERE status = 'awaiting_payment' AND expires_at <= $1 ORDER BY expires_at LIMIT $2",
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
        let mut tx = self.begin_write().await?;
        let mut expired = 0;
        for id in &due {
            if let AppendOutcome::Appended { .. } =
                append_in(&mut tx, id, EventName::PaymentExpired, None, None).await?
            {
                expired += 1;
            }
        }
        if expired > 0 {
            self.notify_dispatchers(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(expired)
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
    let event = EventRow {
        id: new_id("evt"),
        order_id: order.id.clone(),
        event_name: event_name.as_str().to_owned(),
        tx_hash,
        reason,
        time_stamp: now,
    };
    Ok((from, event))
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
    format!("dlv_{}_", event.id.trim_start_matches("evt_"))
}

/// The event's name as it appears in an endpoint's JSON array of event types.
pub(super) fn subscription_pattern(event: &EventRow) -> String {
    format!("\"{}\"", event.event_name)
}

/// Builds a new order's row (status `awaiting_payment`).
fn new_order_row(new: NewOrder, now: i64) -> OrderRow {
    OrderRow {
        id: uuid::Uuid::new_v4().to_string(),
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

/// The outbox write: order update (conditional on its current status), event
/// row, and a delivery per enabled endpoint subscribed to the event.
async fn append_in(
    tx: &mut Transaction<'_, Any>,
    order_id: &str,
    event_name: EventName,
    tx_hash: Option<String>,
    reason: Option<String>,
) -> StoreResult<AppendOutcome> {
    let order: Option<OrderRow> = sqlx::query_as(SELECT_ORDER)
        .bind(order_id)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(mut order) = order else {
        return Ok(AppendOutcome::NoSuchOrder);
    };
    let (from, event) = match plan_append(&mut order, event_name, tx_hash, reason, now_ms()) {
        Ok(planned) => planned,
        Err(invalid) => return Ok(AppendOutcome::Invalid(invalid)),
    };
    let changed = sqlx::query(UPDATE_ORDER_STATUS)
        .bind(&order.status)
        .bind(order.updated_at)
        .bind(order_id)
        .bind(from.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if changed != 1 {
        return Ok(lost_race(from, event_name));
    }
    sqlx::query(INSERT_EVENT)
        .bind(&event.id)
        .bind(&event.order_id)
        .bind(&event.event_name)
        .bind(&event.tx_hash)
        .bind(&event.reason)
        .bind(event.time_stamp)
        .execute(&mut **tx)
        .await?;
    sqlx::query(INSERT_DELIVERIES)
        .bind(delivery_id_prefix(&event))
        .bind(&event.id)
        .bind(order_id)
        .bind(&event.event_name)
        .bind(event.time_stamp)
        .bind(&order.partner_id)
        .bind(subscription_pattern(&event))
        .execute(&mut **tx)
        .await?;
    Ok(AppendOutcome::Appended { event, order })
}
