//! Orders and their events. Creating an order and appending an event are the
//! two writes of the platform; both take `Idempotency-Key`, and an event's
//! deliveries are queued in the same transaction as the order's change.
//! Creating an order and listing a user's orders first ask the partner's
//! validation callback.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{IdempotencyKey, JsonBody, Path};
use super::partners::owned_partner;
use super::validation::require_allowed;
use super::AppState;
use crate::domain::order::{Direction, EventName, ALL_EVENTS};
use crate::domain::time::format_ms;
use crate::store::{AppendOutcome, EventRow, Idempotency, NewOrder, OrderRow, Replayable};
use crate::validation::Action;

const MAX_EXPIRES_IN_SECONDS: i64 = 30 * 24 * 3600;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOrder {
    pub partner_id: String,
    pub email: String,
    pub direction: Direction,
    pub fiat_currency: Option<String>,
    /// A decimal string, e.g. "100.50".
    pub fiat_amount: Option<String>,
    pub crypto_currency: Option<String>,
    pub crypto_amount: Option<String>,
    pub wallet_address: Option<String>,
    /// Default 1800.
    pub expires_in_seconds: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppendEvent {
    pub event_name: String,
    pub tx_hash: Option<String>,
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
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
    pub created_at: String,
    pub updated_at: String,
    pub expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<EventView>>,
}

impl OrderView {
    fn from_row(row: &OrderRow, events: Option<Vec<EventView>>) -> Self {
        Self {
            id: row.id.clone(),
            partner_id: row.partner_id.clone(),
            email: row.email.clone(),
            direction: row.direction.clone(),
            status: row.status.clone(),
            fiat_currency: row.fiat_currency.clone(),
            fiat_amount: row.fiat_amount.clone(),
            crypto_currency: row.crypto_currency.clone(),
            crypto_amount: row.crypto_amount.clone(),
            wallet_address: row.wallet_address.clone(),
            created_at: format_ms(row.created_at),
            updated_at: format_ms(row.updated_at),
            expires_at: format_ms(row.expires_at),
            events,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub id: String,
    pub event_name: String,
    pub order_id: String,
    pub time_stamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<&EventRow> for EventView {
    fn from(row: &EventRow) -> Self {
        Self {
            id: row.id.clone(),
            event_name: row.event_name.clone(),
            order_id: row.order_id.clone(),
            time_stamp: format_ms(row.time_stamp),
            tx_hash: row.tx_hash.clone(),
            reason: row.reason.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct EventCreated {
    pub event: EventView,
    pub order: OrderView,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderList {
    pub data: Vec<OrderView>,
    pub next_cursor: Option<String>,
}

/// A stored JSON answer sent back as it was.
fn json_response(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn idempotency(caller: &Caller, route: &str, key: Option<String>, hash: &str) -> Option<Idempotency> {
    key.map(|key| Idempotency {
        scope: format!("{}:{route}", caller.principal()),
        key,
        request_hash: hash.to_owned(),
    })
}

fn key_reused() -> ApiError {
    ApiError::invalid("this Idempotency-Key was already used with a different request")
}

/// An event name of the contract, or 422 listing the known ones.
pub fn parse_event_name(text: &str) -> ApiResult<EventName> {
    EventName::parse(text).ok_or_else(|| {
        let known: Vec<&str> = ALL_EVENTS.iter().map(|e| e.as_str()).collect();
        ApiError::invalid(format!(
            "unknown event name {text:?}; known events: {}",
            known.join(", ")
        ))
    })
}

/// `user@example.com`, trimmed and lower-cased; a light check, not RFC 5322.
pub fn parse_email(text: &str) -> ApiResult<String> {
    let email = text.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
    if valid {
        Ok(email)
    } else {
        Err(ApiError::invalid(format!(
            "email {text:?} is not a valid email address"
        )))
    }
}

fn check_amount(field: &str, value: &Option<String>) -> ApiResult<()> {
    let Some(value) = value else { return Ok(()) };
    let (whole, fraction) = value.split_once('.').unwrap_or((value, "0"));
    let digits = |s: &str| !s.is_empty() && s.len() <= 30 && s.bytes().all(|b| b.is_ascii_digit());
    if digits(whole) && digits(fraction) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "{field} must be a decimal string such as \"100.50\", not {value:?}"
        )))
    }
}

fn check_short_text(field: &str, value: &Option<String>, max: usize) -> ApiResult<()> {
    match value {
        Some(v) if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) => Err(
            ApiError::invalid(format!("{field} must be 1 to {max} printable characters")),
        ),
        _ => Ok(()),
    }
}

#[utoipa::path(post, operation_id = "createOrder", path = "/v1/orders", request_body = CreateOrder, tag = "orders",
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "1 to 255 printable ASCII characters without spaces")),
    responses((status = 201, body = OrderView), (status = 403, body = super::error::Problem), (status = 422, body = super::error::Problem)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    IdempotencyKey(key): IdempotencyKey,
    body: JsonBody<CreateOrder>,
) -> ApiResult<Response> {
    caller.require_admin()?;
    let input = body.value;
    let email = parse_email(&input.email)?;
    check_amount("fiatAmount", &input.fiat_amount)?;
    check_amount("cryptoAmount", &input.crypto_amount)?;
    check_short_text("fiatCurrency", &input.fiat_currency, 16)?;
    check_short_text("cryptoCurrency", &input.crypto_currency, 16)?;
    check_short_text("walletAddress", &input.wallet_address, 256)?;
    let expires_in = input.expires_in_seconds.unwrap_or(1800);
    if !(1..=MAX_EXPIRES_IN_SECONDS).contains(&expires_in) {
        return Err(ApiError::invalid(format!(
            "expiresInSeconds must be from 1 to {MAX_EXPIRES_IN_SECONDS}"
        )));
    }
    if state.store.get_partner(&input.partner_id).await?.is_none() {
        return Err(ApiError::invalid(format!(
            "partnerId {:?} names no partner",
            input.partner_id
        )));
    }
    let idem = idempotency(&caller, "POST /v1/orders", key, &body.hash);
    // A replay answers what it answered the first time, without asking again.
    match state.store.idempotent_answer(idem.as_ref()).await? {
        Some(Replayable::Replay { status, body }) => return Ok(json_response(status, body)),
        Some(_) => return Err(key_reused()),
        None => {}
    }
    let action = match input.direction {
        Direction::OnRamp => Action::Buy,
        Direction::OffRamp => Action::Sell,
    };
    // Before anything is written, and with no transaction open.
    require_allowed(&state, &input.partner_id, &email, action).await?;
    let new = NewOrder {
        partner_id: input.partner_id,
        email,
        direction: input.direction,
        fiat_currency: input.fiat_currency,
        fiat_amount: input.fiat_amount,
        crypto_currency: input.crypto_currency,
        crypto_amount: input.crypto_amount,
        wallet_address: input.wallet_address,
        expires_in_ms: expires_in * 1000,
    };
    let render = |order: &OrderRow| {
        (
            201,
            serde_json::to_string(&OrderView::from_row(order, None)).expect("serialises"),
        )
    };
    match state.store.create_order(new, idem.as_ref(), render).await? {
        Replayable::Fresh((order, status, body)) => {
            state.expiry.order_created(order.expires_at);
            Ok(json_response(status, body))
        }
        Replayable::Replay { status, body } => Ok(json_response(status, body)),
        Replayable::KeyReused => Err(key_reused()),
    }
}

/// The order if the caller may see it (admin, or the partner owning it).
async fn visible_order(state: &AppState, caller: &Caller, id: &str) -> ApiResult<(OrderRow, Vec<EventRow>)> {
    match state.store.get_order(id).await? {
        Some((order, events)) if caller.may_access(&order.partner_id) => Ok((order, events)),
        _ => Err(ApiError::not_found("no such order")),
    }
}

#[utoipa::path(get, operation_id = "getOrder", path = "/v1/orders/{id}", tag = "orders", params(("id" = String, Path)),
    responses((status = 200, body = OrderView), (status = 404, body = super::error::Problem)))]
pub async fn get(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<OrderView>> {
    let (order, events) = visible_order(&state, &caller, &id).await?;
    Ok(Json(OrderView::from_row(
        &order,
        Some(events.iter().map(EventView::from).collect()),
    )))
}

#[utoipa::path(post, operation_id = "appendEvent", path = "/v1/orders/{id}/events", request_body = AppendEvent, tag = "orders",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "1 to 255 printable ASCII characters without spaces")),
    responses((status = 201, body = EventCreated), (status = 404, body = super::error::Problem),
        (status = 409, body = super::error::Problem), (status = 422, body = super::error::Problem)))]
pub async fn append_event(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
    body: JsonBody<AppendEvent>,
) -> ApiResult<Response> {
    caller.require_admin()?;
    let input = body.value;
    let event_name = parse_event_name(&input.event_name)?;
    check_short_text("txHash", &input.tx_hash, 256)?;
    check_short_text("reason", &input.reason, 1024)?;
    let idem = idempotency(&caller, &format!("POST /v1/orders/{id}/events"), key, &body.hash);
    let render = |event: &EventRow, order: &OrderRow| {
        let created = EventCreated {
            event: event.into(),
            order: OrderView::from_row(order, None),
        };
        (201, serde_json::to_string(&created).expect("serialises"))
    };
    match state
        .store
        .append_event(&id, event_name, input.tx_hash, input.reason, idem.as_ref(), render)
        .await?
    {
        Replayable::Fresh((AppendOutcome::Appended { .. }, status, body)) => {
            // Whether a claim is needed too, the store's hand-off says.
            state.deliveries.handed();
            Ok(json_response(status, body))
        }
        Replayable::Fresh((AppendOutcome::NoSuchOrder, ..)) => Err(ApiError::not_found("no such order")),
        Replayable::Fresh((AppendOutcome::Invalid(invalid), ..)) => {
            Err(ApiError::invalid_transition(invalid.to_string()))
        }
        Replayable::Replay { status, body } => Ok(json_response(status, body)),
        Replayable::KeyReused => Err(key_reused()),
    }
}

#[utoipa::path(get, operation_id = "listUserOrders", path = "/v1/partners/{pid}/users/{email}/orders", tag = "orders",
    params(("pid" = String, Path), ("email" = String, Path)),
    responses((status = 200, body = OrderList), (status = 403, body = super::error::Problem), (status = 404, body = super::error::Problem)))]
pub async fn user_orders(
    State(state): State<AppState>,
    caller: Caller,
    Path((pid, email)): Path<(String, String)>,
) -> ApiResult<Json<OrderList>> {
    owned_partner(&state, &caller, &pid).await?;
    let email = parse_email(&email)?;
    require_allowed(&state, &pid, &email, Action::PrivateInfo).await?;
    let rows = state.store.user_orders(&pid, &email, 500).await?;
    Ok(Json(OrderList {
        data: rows.iter().map(|r| OrderView::from_row(r, None)).collect(),
        next_cursor: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(parse_email("  Alice@Example.COM ").unwrap(), "alice@example.com");
        for bad in ["", "alice", "@example.com", "alice@", "a b@example.com", "a@b@c"] {
            assert!(parse_email(bad).is_err(), "{bad:?} passed");
        }
    }

    #[test]
    fn amounts_are_decimal_strings() {
        for good in ["100", "100.50", "0.00000001"] {
            assert!(check_amount("x", &Some(good.into())).is_ok(), "{good}");
        }
        for bad in ["", "1e5", "-1", "1.", ".5", "12,5", "NaN"] {
            assert!(check_amount("x", &Some(bad.into())).is_err(), "{bad}");
        }
    }
}
