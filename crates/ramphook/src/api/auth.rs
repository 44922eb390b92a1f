//! Who is calling: the admin (every resource) or one partner (only its own;
//! anything else answers 404 as if it did not exist).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::AppState;
use crate::domain::ids::hash_api_key;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Admin,
    Partner(String),
}

impl Caller {
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self {
            Caller::Admin => Ok(()),
            // A partner key must not learn that admin routes exist.
            Caller::Partner(_) => Err(ApiError::not_found("no such resource")),
        }
    }

    /// May this caller touch resources of `partner_id`?
    pub fn may_access(&self, partner_id: &str) -> bool {
        match self {
            Caller::Admin => true,
            Caller::Partner(own) => own == partner_id,
        }
    }

    /// A stable name for idempotency scopes.
    pub fn principal(&self) -> String {
        match self {
            Caller::Admin => "admin".into(),
            Caller::Partner(id) => id.clone(),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        if bool::from(token.as_bytes().ct_eq(state.admin_token.as_bytes())) {
            return Ok(Caller::Admin);
        }
        // Looked up by hash: the comparison happens on a digest of a
        // high-entropy key, so its timing reveals nothing useful.
        match state.store.partner_by_key_hash(&hash_api_key(token)).await? {
            Some(partner_id) => {
                // Per key (one per partner); the admin token is not limited.
                if let Some(limiter) = &state.limits.rate_limiter {
                    limiter.check(&partner_id).map_err(ApiError::rate_limited)?;
                }
                Ok(Caller::Partner(partner_id))
            }
            None => Err(ApiError::unauthorized()),
        }
    }
}
