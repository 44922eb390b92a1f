//! Webhook endpoints of a partner: where events go, which ones, and the
//! secret they are signed with (shown in full only when created).

use std::net::IpAddr;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, PageParams, Path, Query};
use super::partners::owned_partner;
use super::AppState;
use crate::domain::ids::{new_id, random_hex};
use crate::domain::order::EventName;
use crate::domain::time::format_ms;
use crate::net_guard::NetGuard;
use crate::store::{EndpointPatch, EndpointRow, NewEndpoint};

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateEndpoint {
    pub url: String,
    /// At least 16 characters; generated (64 hex characters) if omitted.
    pub secret: Option<String>,
    /// Event names to send; absent or null = all events.
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateEndpoint {
    pub url: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub event_types: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointView {
    pub id: String,
    pub partner_id: String,
    pub url: String,
    /// Only in the answer to the creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
    pub enabled: bool,
    /// Why ramphook disabled the endpoint (410 Gone, or failing too long);
    /// null when enabled or disabled by hand. PATCH `enabled: true` clears it.
    pub disabled_reason: Option<String>,
    /// When the current run of failed attempts began; null while healthy.
    pub failing_since: Option<String>,
    /// Until when the secret before the last rotation still signs.
    pub previous_secret_expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl EndpointView {
    pub fn from_row(row: EndpointRow, show_secret: bool) -> Self {
        let event_types = row.event_types();
        let enabled = row.is_enabled();
        Self {
            id: row.id,
            partner_id: row.partner_id,
            url: row.url,
            secret: show_secret.then_some(row.secret),
            event_types,
            description: row.description,
            enabled,
            disabled_reason: row.disabled_reason,
            failing_since: row.failing_since.map(format_ms),
            previous_secret_expires_at: row
                .previous_secret_expires_at
                .filter(|until| *until > crate::domain::time::now_ms())
                .map(format_ms),
            created_at: format_ms(row.created_at),
            updated_at: format_ms(row.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointList {
    pub data: Vec<EndpointView>,
    pub next_cursor: Option<String>,
}

/// Checks a webhook URL: http(s), a host, and not a refused address.
pub async fn check_url(guard: &NetGuard, text: &str) -> ApiResult<String> {
    let url =
        url::Url::parse(text.trim()).map_err(|e| ApiError::invalid(format!("url {text:?} is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ApiError::invalid("url must use http or https"));
    }
    if url.as_str().len() > 2048 {
        return Err(ApiError::invalid("url must be at most 2048 characters"));
    }
    let refused = |ip: IpAddr| {
        ApiError::invalid(format!(
            "url resolves to {ip}, a private, loopback, link-local or multicast address; allow it with RAMPHOOK_ALLOW_CIDRS"
        ))
    };
    let port = url.port_or_known_default().unwrap_or(80);
    match url.host() {
        None => return Err(ApiError::invalid("url needs a host")),
        Some(url::Host::Ipv4(ip)) if !guard.permits(ip.into()) => return Err(refused(ip.into())),
        Some(url::Host::Ipv6(ip)) if !guard.permits(ip.into()) => return Err(refused(ip.into())),
        Some(url::Host::Domain(name)) => {
            // A name that does not resolve now may later; it is checked again,
            // on the address connected to, at every delivery.
            let lookup = tokio::time::timeout(Duration::from_secs(2), guard.resolve(name, port)).await;
            if let Ok(Err(crate::net_guard::GuardError::Refused(ip))) = lookup {
                return Err(refused(ip));
            }
        }
        Some(_) => {}
    }
    Ok(url.to_string())
}

/// A partner-defined secret (16 to 512 bytes), or a generated one (64 hex characters).
pub fn check_secret(secret: Option<String>) -> ApiResult<String> {
    match secret {
        Some(secret) if secret.chars().count() < 16 => Err(ApiError::invalid("secret must be at least 16 characters")),
        Some(secret) if secret.len() > 512 => Err(ApiError::invalid("secret must be at most 512 bytes")),
        Some(secret) => Ok(secret),
        None => Ok(random_hex(32)),
    }
}

fn check_event_types(types: &Option<Vec<String>>) -> ApiResult<()> {
    let Some(types) = types else { return Ok(()) };
    if types.is_empty() {
        return Err(ApiError::invalid(
            "eventTypes must name at least one event, or be null for every event",
        ));
    }
    for name in types {
        if EventName::parse(name).is_none() {
            return Err(ApiError::invalid(format!("unknown event name {name:?} in eventTypes")));
        }
    }
    Ok(())
}

fn check_description(description: &Option<String>) -> ApiResult<()> {
    match description {
        Some(d) if d.chars().count() > 1024 => Err(ApiError::invalid("description must be at most 1024 characters")),
        _ => Ok(()),
    }
}

#[utoipa::path(post, operation_id = "createEndpoint", path = "/v1/partners/{pid}/endpoints", request_body = CreateEndpoint, tag = "endpoints",
    params(("pid" = String, Path)),
    responses((status = 201, body = EndpointView), (status = 422, body = super::error::Problem)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(pid): Path<String>,
    body: JsonBody<CreateEndpoint>,
) -> ApiResult<(StatusCode, Json<EndpointView>)> {
    owned_partner(&state, &caller, &pid).await?;
    let input = body.value;
    let url = check_url(&state.guard, &input.url).await?;
    let secret = check_secret(input.secret)?;
    check_event_types(&input.event_types)?;
    check_description(&input.description)?;
    let max = state.limits.max_endpoints_per_partner;
    let row = state
        .store
        .create_endpoint(
            NewEndpoint {
                id: new_id("ep"),
                partner_id: pid,
                url,
                secret,
                event_types: input.event_types,
                description: input.description,
            },
            max,
        )
        .await?
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "this partner already has {max} endpoints, the most allowed (RAMPHOOK_MAX_ENDPOINTS_PER_PARTNER); delete one first"
            ))
        })?;
    Ok((StatusCode::CREATED, Json(EndpointView::from_row(row, true))))
}

#[utoipa::path(get, operation_id = "listEndpoints", path = "/v1/partners/{pid}/endpoints", tag = "endpoints",
    params(("pid" = String, Path), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = EndpointList)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(pid): Path<String>,
    Query(page): Query<PageParams>,
) -> ApiResult<Json<EndpointList>> {
    owned_partner(&state, &caller, &pid).await?;
    let page = state.store.list_endpoints(&pid, page.limit()?, page.cursor()?).await?;
    Ok(Json(EndpointList {
        data: page
            .rows
            .into_iter()
            .map(|r| EndpointView::from_row(r, false))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(get, operation_id = "getEndpoint", path = "/v1/partners/{pid}/endpoints/{eid}", tag = "endpoints",
    params(("pid" = String, Path), ("eid" = String, Path)),
    responses((status = 200, body = EndpointView), (status = 404, body = super::error::Problem)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((pid, eid)): Path<(String, String)>,
) -> ApiResult<Json<EndpointView>> {
    owned_partner(&state, &caller, &pid).await?;
    let row = state
        .store
        .get_endpoint(&pid, &eid)
        .await?
        .ok_or_else(|| ApiError::not_found("no such endpoint"))?;
    Ok(Json(EndpointView::from_row(row, false)))
}

#[utoipa::path(patch, operation_id = "updateEndpoint", path = "/v1/partners/{pid}/endpoints/{eid}", request_body = UpdateEndpoint, tag = "endpoints",
    params(("pid" = String, Path), ("eid" = String, Path)),
    responses((status = 200, body = EndpointView), (status = 404, body = super::error::Problem), (status = 422, body = super::error::Problem)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((pid, eid)): Path<(String, String)>,
    body: JsonBody<UpdateEndpoint>,
) -> ApiResult<Json<EndpointView>> {
    owned_partner(&state, &caller, &pid).await?;
    let input = body.value;
    let url = match input.url {
        Some(url) => Some(check_url(&state.guard, &url).await?),
        None => None,
    };
    if let Some(types) = &input.event_types {
        check_event_types(types)?;
    }
    if let Some(description) = &input.description {
        check_description(description)?;
    }
    let patch = EndpointPatch {
        url,
        event_types: input.event_types,
        description: input.description,
        enabled: input.enabled,
    };
    let row = state
        .store
        .update_endpoint(&pid, &eid, patch)
        .await?
        .ok_or_else(|| ApiError::not_found("no such endpoint"))?;
    if row.is_enabled() {
        state.deliveries.wake();
    }
    Ok(Json(EndpointView::from_row(row, false)))
}

#[utoipa::path(delete, operation_id = "deleteEndpoint", path = "/v1/partners/{pid}/endpoints/{eid}", tag = "endpoints",
    params(("pid" = String, Path), ("eid" = String, Path)),
    responses((status = 204), (status = 404, body = super::error::Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((pid, eid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    owned_partner(&state, &caller, &pid).await?;
    if state.store.delete_endpoint(&pid, &eid).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("no such endpoint"))
    }
}
