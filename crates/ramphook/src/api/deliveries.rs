//! Deliveries: one per (event, endpoint), with the log of every attempt and
//! a manual retry.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{PageParams, Path, Query};
use super::partners::owned_partner;
use super::AppState;
use crate::domain::time::format_ms;
use crate::store::{AttemptRow, DeliveryFilter, DeliveryRow};

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub id: String,
    pub event_id: String,
    pub endpoint_id: String,
    pub event_name: String,
    pub order_id: String,
    /// pending | delivered | failed
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub last_status_code: Option<i64>,
    pub test: bool,
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    pub at: String,
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    pub error: Option<String>,
    /// The first 1 KiB of the answer.
    pub response_body: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: DeliveryView,
    #[serde(rename = "attempts")]
    pub attempt_log: Vec<AttemptView>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryList {
    pub data: Vec<DeliveryView>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryQuery {
    pub status: Option<String>,
    pub order_id: Option<String>,
    pub endpoint_id: Option<String>,
    #[serde(flatten)]
    pub page: PageParams,
}

impl From<DeliveryRow> for DeliveryView {
    fn from(row: DeliveryRow) -> Self {
        Self {
            next_attempt_at: (row.status == "pending").then(|| format_ms(row.next_attempt_at)),
            id: row.id,
            event_id: row.event_id,
            endpoint_id: row.endpoint_id,
            event_name: row.event_name,
            order_id: row.order_id,
            status: row.status,
            attempts: row.attempts,
            last_status_code: row.last_status_code,
            test: row.is_test != 0,
            created_at: format_ms(row.created_at),
        }
    }
}

impl From<AttemptRow> for AttemptView {
    fn from(row: AttemptRow) -> Self {
        Self {
            at: format_ms(row.at),
            status_code: row.status_code,
            duration_ms: row.duration_ms,
            error: row.error,
            response_body: row.response_body,
        }
    }
}

#[utoipa::path(get, operation_id = "listDeliveries", path = "/v1/partners/{pid}/deliveries", tag = "deliveries",
    params(("pid" = String, Path), ("status" = Option<String>, Query), ("orderId" = Option<String>, Query),
        ("endpointId" = Option<String>, Query), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = DeliveryList), (status = 404, body = super::error::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(pid): Path<String>,
    Query(query): Query<DeliveryQuery>,
) -> ApiResult<Json<DeliveryList>> {
    owned_partner(&state, &caller, &pid).await?;
    if let Some(status) = &query.status {
        if !matches!(status.as_str(), "pending" | "delivered" | "failed") {
            return Err(ApiError::invalid("status must be pending, delivered or failed"));
        }
    }
    let filter = DeliveryFilter {
        status: query.status,
        order_id: query.order_id,
        endpoint_id: query.endpoint_id,
    };
    let page = state
        .store
        .list_deliveries(&pid, &filter, query.page.limit()?, query.page.cursor()?)
        .await?;
    Ok(Json(DeliveryList {
        data: page.rows.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

async fn visible_delivery(state: &AppState, caller: &Caller, id: &str) -> ApiResult<(DeliveryRow, Vec<AttemptRow>)> {
    match state.store.get_delivery(id).await? {
        Some((row, attempts)) if caller.may_access(&row.partner_id) => Ok((row, attempts)),
        _ => Err(ApiError::not_found("no such delivery")),
    }
}

#[utoipa::path(get, operation_id = "getDelivery", path = "/v1/deliveries/{did}", tag = "deliveries", params(("did" = String, Path)),
    responses((status = 200, body = DeliveryDetail), (status = 404, body = super::error::Problem)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(did): Path<String>,
) -> ApiResult<Json<DeliveryDetail>> {
    let (row, attempts) = visible_delivery(&state, &caller, &did).await?;
    Ok(Json(DeliveryDetail {
        delivery: row.into(),
        attempt_log: attempts.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(post, operation_id = "retryDelivery", path = "/v1/deliveries/{did}/retry", tag = "deliveries", params(("did" = String, Path)),
    responses((status = 202), (status = 404, body = super::error::Problem)))]
pub async fn retry(State(state): State<AppState>, caller: Caller, Path(did): Path<String>) -> ApiResult<StatusCode> {
    visible_delivery(&state, &caller, &did).await?;
    if !state.store.retry_now(&did).await? {
        return Err(ApiError::invalid(
            "the delivery's endpoint was deleted; it cannot be sent again",
        ));
    }
    state.deliveries.wake();
    Ok(StatusCode::ACCEPTED)
}
