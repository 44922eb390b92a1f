//! A partner's validation callback: its configuration (PUT / GET / DELETE,
//! credentials never shown back), an explicit check (`/validate`), and the
//! gate the order routes call before they write or show anything.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::endpoints::check_url;
use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, Path};
use super::orders::parse_email;
use super::partners::owned_partner;
use super::AppState;
use crate::domain::ids::new_id;
use crate::domain::time::format_ms;
use crate::store::ValidationRow;
use crate::validation::{Action, Auth, Config, OnError, Outcome};

const DEFAULT_TIMEOUT_MS: i64 = 3000;
const TIMEOUT_MS: std::ops::RangeInclusive<i64> = 100..=10_000;
const CACHE_TTL_SECONDS: std::ops::RangeInclusive<i64> = 0..=3600;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutValidation {
    /// `POST`ed `{"email", "action"}` for every check.
    pub url: String,
    pub auth: Auth,
    /// 100 to 10000; default 3000. Bounds the whole check, token fetch included.
    pub timeout_ms: Option<i64>,
    /// What a failed call means; default `deny`.
    pub on_error: Option<OnError>,
    /// 0 to 3600; default 0 (no caching). Allowed and denied answers are
    /// reused this long per email and action; errors never.
    pub cache_ttl_seconds: Option<i64>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidationView {
    pub partner_id: String,
    pub url: String,
    /// Credentials replaced by `***`.
    pub auth: Auth,
    pub timeout_ms: u64,
    pub on_error: OnError,
    pub cache_ttl_seconds: u32,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Config> for ValidationView {
    fn from(config: &Config) -> Self {
        Self {
            partner_id: config.partner_id.clone(),
            url: config.url.clone(),
            auth: config.auth.redacted(),
            timeout_ms: config.timeout.as_millis() as u64,
            on_error: config.on_error,
            cache_ttl_seconds: config.cache_ttl_seconds,
            created_at: format_ms(config.created_at),
            updated_at: format_ms(config.updated_at),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    pub email: String,
    pub action: Action,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidateAnswer {
    /// The decision, after the `onError` policy.
    pub allowed: bool,
    /// `allowed`, `denied` or `error`: what the partner said.
    pub outcome: String,
    pub detail: String,
    pub duration_ms: u64,
    /// Answered from the cache, without calling the partner.
    pub cached: bool,
}

/// The partner's configuration, if any (one read by primary key).
async fn load(state: &AppState, partner_id: &str) -> ApiResult<Option<Config>> {
    match state.store.get_validation(partner_id).await? {
        Some(row) => Ok(Some(Config::try_from(row)?)),
        None => Ok(None),
    }
}

fn not_configured() -> ApiError {
    ApiError::not_found("no validation callback is configured for this partner")
}

fn bounded(field: &str, value: Option<i64>, default: i64, range: std::ops::RangeInclusive<i64>) -> ApiResult<i64> {
    let value = value.unwrap_or(default);
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::invalid(format!(
            "{field} must be from {} to {}",
            range.start(),
            range.end()
        )))
    }
}

/// Asks the partner's callback; `Err` is the 403 the caller answers.
pub async fn require_allowed(state: &AppState, partner_id: &str, email: &str, action: Action) -> ApiResult<()> {
    let config = load(state, partner_id).await?;
    let verdict = state.validator.check(config.as_ref(), email, action).await;
    match verdict.outcome {
        _ if verdict.allowed => Ok(()),
        Outcome::Error(why) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "callback_unavailable",
            format!("the partner's validation callback could not answer ({why}) and its onError policy is deny"),
        )),
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "user_not_allowed",
            "user not allowed",
        )),
    }
}

#[utoipa::path(put, operation_id = "putValidation", path = "/v1/partners/{pid}/validation", request_body = PutValidation, tag = "validation",
    params(("pid" = String, Path)),
    responses((status = 200, body = ValidationView), (status = 404, body = super::error::Problem), (status = 422, body = super::error::Problem)))]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(pid): Path<String>,
    body: JsonBody<PutValidation>,
) -> ApiResult<Json<ValidationView>> {
    owned_partner(&state, &caller, &pid).await?;
    let input = body.value;
    let url = check_url(&state.guard, &input.url).await?;
    input.auth.check().map_err(ApiError::invalid)?;
    let auth = match input.auth {
        Auth::Oauth2 {
            token_url,
            client_id,
            client_secret,
            scope,
        } => Auth::Oauth2 {
            token_url: check_url(&state.guard, &token_url)
                .await
                .map_err(|e| ApiError::invalid(format!("auth.tokenUrl: {}", e.detail)))?,
            client_id,
            client_secret,
            scope,
        },
        other => other,
    };
    let timeout_ms = bounded("timeoutMs", input.timeout_ms, DEFAULT_TIMEOUT_MS, TIMEOUT_MS)?;
    let cache_ttl_seconds = bounded("cacheTtlSeconds", input.cache_ttl_seconds, 0, CACHE_TTL_SECONDS)?;
    let row = state
        .store
        .put_validation(ValidationRow {
            partner_id: pid.clone(),
            id: new_id("vcfg"),
            url,
            auth: serde_json::to_string(&auth).expect("auth serialises"),
            timeout_ms,
            on_error: input.on_error.unwrap_or_default().as_str().to_owned(),
            cache_ttl_seconds,
            created_at: 0,
            updated_at: 0,
        })
        .await?;
    state.validator.forget_partner(&pid);
    let config = Config::try_from(row)?;
    Ok(Json(ValidationView::from(&config)))
}

#[utoipa::path(get, operation_id = "getValidation", path = "/v1/partners/{pid}/validation", tag = "validation",
    params(("pid" = String, Path)),
    responses((status = 200, body = ValidationView), (status = 404, body = super::error::Problem)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(pid): Path<String>,
) -> ApiResult<Json<ValidationView>> {
    owned_partner(&state, &caller, &pid).await?;
    let config = load(&state, &pid).await?.ok_or_else(not_configured)?;
    Ok(Json(ValidationView::from(&config)))
}

#[utoipa::path(delete, operation_id = "deleteValidation", path = "/v1/partners/{pid}/validation", tag = "validation",
    params(("pid" = String, Path)),
    responses((status = 204), (status = 404, body = super::error::Problem)))]
pub async fn delete(State(state): State<AppState>, caller: Caller, Path(pid): Path<String>) -> ApiResult<StatusCode> {
    owned_partner(&state, &caller, &pid).await?;
    let deleted = state.store.delete_validation(&pid).await?;
    state.validator.forget_partner(&pid);
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_configured())
    }
}

#[utoipa::path(post, operation_id = "validateUser", path = "/v1/partners/{pid}/validate", request_body = ValidateRequest, tag = "validation",
    params(("pid" = String, Path)),
    responses((status = 200, body = ValidateAnswer), (status = 404, body = super::error::Problem), (status = 422, body = super::error::Problem)))]
pub async fn validate(
    State(state): State<AppState>,
    caller: Caller,
    Path(pid): Path<String>,
    body: JsonBody<ValidateRequest>,
) -> ApiResult<Json<ValidateAnswer>> {
    owned_partner(&state, &caller, &pid).await?;
    let email = parse_email(&body.value.email)?;
    let config = load(&state, &pid).await?;
    let verdict = state.validator.check(config.as_ref(), &email, body.value.action).await;
    let detail = match (&verdict.outcome, &config) {
        (_, None) => "no validation callback is configured: everyone is allowed".to_owned(),
        (Outcome::Allowed, _) => "the partner allowed this user".to_owned(),
        (Outcome::Denied, _) => "user not allowed".to_owned(),
        (Outcome::Error(why), Some(config)) => format!("{why} (onError: {})", config.on_error.as_str()),
    };
    Ok(Json(ValidateAnswer {
        allowed: verdict.allowed,
        outcome: verdict.outcome.as_str().to_owned(),
        detail,
        duration_ms: verdict.duration.as_millis() as u64,
        cached: verdict.cached,
    }))
}
