//! Partners (admin only): created with a name, answered once with their API key.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, Path};
use super::AppState;
use crate::domain::ids::{hash_api_key, new_api_key, new_id};
use crate::domain::time::format_ms;
use crate::store::PartnerRow;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePartner {
    pub name: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartnerView {
    pub id: String,
    pub name: String,
    /// Only in the answer to the creation; stored hashed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    pub created_at: String,
}

impl PartnerView {
    fn from_row(row: PartnerRow, api_key: Option<String>) -> Self {
        Self {
            id: row.id,
            name: row.name,
            api_key,
            created_at: format_ms(row.created_at),
        }
    }
}

#[utoipa::path(post, operation_id = "createPartner", path = "/v1/partners", request_body = CreatePartner, tag = "partners",
    responses((status = 201, body = PartnerView), (status = 422, body = super::error::Problem)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody<CreatePartner>,
) -> ApiResult<(StatusCode, Json<PartnerView>)> {
    caller.require_admin()?;
    let name = body.value.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::invalid("name must be 1 to 200 characters"));
    }
    let api_key = new_api_key();
    let row = state
        .store
        .create_partner(&new_id("ptn"), name, &hash_api_key(&api_key))
        .await?;
    Ok((StatusCode::CREATED, Json(PartnerView::from_row(row, Some(api_key)))))
}

#[utoipa::path(get, operation_id = "getPartner", path = "/v1/partners/{pid}", tag = "partners",
    params(("pid" = String, Path)), responses((status = 200, body = PartnerView), (status = 404, body = super::error::Problem)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(pid): Path<String>,
) -> ApiResult<Json<PartnerView>> {
    Ok(Json(PartnerView::from_row(
        owned_partner(&state, &caller, &pid).await?,
        None,
    )))
}

/// The partner `pid` if the caller may see it, else 404.
pub async fn owned_partner(state: &AppState, caller: &Caller, pid: &str) -> ApiResult<PartnerRow> {
    if !caller.may_access(pid) {
        return Err(ApiError::not_found("no such partner"));
    }
    state
        .store
        .get_partner(pid)
        .await?
        .ok_or_else(|| ApiError::not_found("no such partner"))
}
