//! What a partner does to an endpoint beyond editing it: rotate its secret,
//! send it a test webhook, and re-queue its failed deliveries after an outage.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::endpoints::{check_secret, EndpointView};
use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, Path};
use super::partners::owned_partner;
use super::AppState;
use crate::config::parse_duration;
use crate::domain::time::{now_ms, parse_rfc3339_ms};

/// The longest overlap during which the old secret keeps signing.
const MAX_KEEP_PREVIOUS_MS: i64 = 7 * 24 * 3600 * 1000;

#[derive(Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateSecret {
    /// The new secret (at least 16 characters); generated if omitted.
    pub secret: Option<String>,
    /// How long the old secret keeps signing beside the new one, e.g. "24h"
    /// (the default); "0s" drops it at once. At most 7d.
    pub keep_previous_for: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RotatedSecret {
    pub secret: String,
    pub endpoint: EndpointView,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestWebhook {
    pub event_name: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestQueued {
    pub delivery_id: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Recover {
    /// RFC 3339; failed deliveries created at or after this are re-queued.
    pub since: String,
    /// RFC 3339, exclusive; default now.
    pub until: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Recovered {
    pub requeued: u64,
}

async fn check_endpoint(state: &AppState, caller: &Caller, pid: &str, eid: &str) -> ApiResult<()> {
    owned_partner(state, caller, pid).await?;
    match state.store.get_endpoint(pid, eid).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found("no such endpoint")),
    }
}

#[utoipa::path(post, operation_id = "rotateEndpointSecret", path = "/v1/partners/{pid}/endpoints/{eid}/rotate-secret",
    request_body = RotateSecret, tag = "endpoints", params(("pid" = String, Path), ("eid" = String, Path)),
    responses((status = 200, body = RotatedSecret), (status = 404, body = super::error::Problem), (status = 422, body = super::error::Problem)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path((pid, eid)): Path<(String, String)>,
    body: Option<JsonBody<RotateSecret>>,
) -> ApiResult<Json<RotatedSecret>> {
    owned_partner(&state, &caller, &pid).await?;
    let input = body.map(|b| b.value).unwrap_or_default();
    let keep = match input.keep_previous_for.as_deref() {
        None => 24 * 3600 * 1000,
        Some(text) => parse_duration(text)
            .map_err(|e| ApiError::invalid(format!("keepPreviousFor: {e}")))?
            .as_millis() as i64,
    };
    if keep > MAX_KEEP_PREVIOUS_MS {
        return Err(ApiError::invalid("keepPreviousFor must be at most 7d"));
    }
    let secret = check_secret(input.secret)?;
    let row = state
        .store
        .rotate_secret(&pid, &eid, &secret, keep)
        .await?
        .ok_or_else(|| ApiError::not_found("no such endpoint"))?;
    Ok(Json(RotatedSecret {
        secret,
        endpoint: EndpointView::from_row(row, false),
    }))
}

#[utoipa::path(post, operation_id = "sendTestWebhook", path = "/v1/partners/{pid}/endpoints/{eid}/test",
    request_body = TestWebhook, tag = "endpoints", params(("pid" = String, Path), ("eid" = String, Path)),
    responses((status = 202, body = TestQueued), (status = 404, body = super::error::Problem), (status = 422, body = super::error::Problem)))]
pub async fn send_test(
    State(state): State<AppState>,
    caller: Caller,
    Path((pid, eid)): Path<(String, String)>,
    body: JsonBody<TestWebhook>,
) -> ApiResult<(StatusCode, Json<TestQueued>)> {
    check_endpoint(&state, &caller, &pid, &eid).await?;
    let event = super::orders::parse_event_name(&body.value.event_name)?;
    let delivery_id = state.store.create_test_delivery(&pid, &eid, event.as_str()).await?;
    state.deliveries.wake();
    Ok((StatusCode::ACCEPTED, Json(TestQueued { delivery_id })))
}

#[utoipa::path(post, operation_id = "recoverEndpoint", path = "/v1/partners/{pid}/endpoints/{eid}/recover",
    request_body = Recover, tag = "endpoints", params(("pid" = String, Path), ("eid" = String, Path)),
    responses((status = 202, body = Recovered), (status = 404, body = super::error::Problem), (status = 422, body = super::error::Problem)))]
pub async fn recover(
    State(state): State<AppState>,
    caller: Caller,
    Path((pid, eid)): Path<(String, String)>,
    body: JsonBody<Recover>,
) -> ApiResult<(StatusCode, Json<Recovered>)> {
    check_endpoint(&state, &caller, &pid, &eid).await?;
    let time = |field: &str, text: &str| {
        parse_rfc3339_ms(text)
            .ok_or_else(|| ApiError::invalid(format!("{field} must be an RFC 3339 time, not {text:?}")))
    };
    let since = time("since", &body.value.since)?;
    let until = match &body.value.until {
        Some(text) => time("until", text)?,
        None => now_ms() + 1,
    };
    if until <= since {
        return Err(ApiError::invalid("until must be after since"));
    }
    let requeued = state.store.recover_failed(&pid, &eid, since, until).await?;
    state.deliveries.wake();
    Ok((StatusCode::ACCEPTED, Json(Recovered { requeued })))
}
