//! OAuth 2.0 client-credentials tokens for validation callbacks: fetched
//! from the partner's token URL (client authenticated with HTTP Basic, as
//! RFC 6749 §2.3.1 requires every server to accept), cached per partner
//! until shortly before `expires_in`, fetched by one caller at a time, and
//! replaced when the partner refuses the one it was sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use bytes::Bytes;
use http_body_util::Full;
use serde_json::Value;

use super::client::{basic, Http};
use crate::domain::time::now_ms;

/// Lifetime assumed when the token endpoint does not say (`expires_in`
/// absent); a refusal (401) still replaces the token at once.
const DEFAULT_LIFETIME_SECONDS: u64 = 3600;
/// A token is dropped this long before it expires (at most a tenth of its life).
const MAX_MARGIN_SECONDS: u64 = 30;

/// Until when (epoch ms) a token obtained at `obtained_ms` is used.
pub fn usable_until(obtained_ms: i64, expires_in: Option<u64>) -> i64 {
    let lifetime = expires_in.unwrap_or(DEFAULT_LIFETIME_SECONDS).min(10 * 365 * 24 * 3600);
    let margin = (lifetime / 10).min(MAX_MARGIN_SECONDS);
    obtained_ms + ((lifetime - margin) * 1000) as i64
}

/// The token and its `expires_in` from a token endpoint's JSON answer.
pub fn parse_token_answer(body: &[u8]) -> Result<(String, Option<u64>), String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|_| "oauth2: the token endpoint's answer is not JSON".to_owned())?;
    let token = value
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or("oauth2: the token endpoint's answer has no access_token")?;
    if let Some(kind) = value.get("token_type").and_then(Value::as_str) {
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(format!("oauth2: token_type {kind:?} is not bearer"));
        }
    }
    // Some servers send the number as a string.
    let expires_in = match value.get("expires_in") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    Ok((token.to_owned(), expires_in))
}

/// Where and as whom to ask for a token.
pub struct Grant<'a> {
    pub partner_id: &'a str,
    /// Changes at every configuration PUT: a token of an old one is not used.
    pub config_id: &'a str,
    pub token_url: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub scope: Option<&'a str>,
}

struct Cached {
    config_id: String,
    token: String,
    until_ms: i64,
}

type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// One slot per partner; its async lock makes concurrent checks wait for
/// one token fetch instead of each fetching their own.
#[derive(Default)]
pub struct Tokens {
    slots: Mutex<HashMap<String, Slot>>,
}

impl Tokens {
    /// A usable token: the cached one, unless it is `rejected` (the partner
    /// answered 401 to it), expired, or of another configuration.
    pub async fn token(&self, http: &Http, grant: &Grant<'_>, rejected: Option<&str>) -> Result<String, String> {
        let slot = self
            .slots
            .lock()
            .expect("token lock")
            .entry(grant.partner_id.to_owned())
            .or_default()
            .clone();
        let mut cached = slot.lock().await;
        if let Some(c) = cached.as_ref() {
            if c.config_id == grant.config_id && now_ms() < c.until_ms && Some(c.token.as_str()) != rejected {
                return Ok(c.token.clone());
            }
        }
        *cached = None;
        let obtained = now_ms();
        let (token, expires_in) = fetch(http, grant).await?;
        *cached = Some(Cached {
            config_id: grant.config_id.to_owned(),
            token: token.clone(),
            until_ms: usable_until(obtained, expires_in),
        });
        Ok(token)
    }

    pub fn forget_partner(&self, partner_id: &str) {
        self.slots.lock().expect("token lock").remove(partner_id);
    }
}

async fn fetch(http: &Http, grant: &Grant<'_>) -> Result<(String, Option<u64>), String> {
    let form = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if let Some(scope) = grant.scope {
            form.append_pair("scope", scope);
        }
        form.finish()
    };
    let request = http
        .post(grant.token_url)
        .map_err(|e| format!("oauth2: {e}"))?
        .header(
            AUTHORIZATION,
            basic(grant.client_id, grant.client_secret).map_err(|e| format!("oauth2: {e}"))?,
        )
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json")
        .body(Full::new(Bytes::from(form)))
        .map_err(|e| format!("oauth2: request: {e}"))?;
    let (status, body) = http.exchange(request).await.map_err(|e| format!("oauth2: {e}"))?;
    if !(200..300).contains(&status) {
        return Err(format!("oauth2: the token endpoint answered {status}"));
    }
    parse_token_answer(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_dropped_shortly_before_they_expire() {
        assert_eq!(usable_until(0, Some(3600)), 3_570_000);
        assert_eq!(usable_until(1_000, Some(60)), 1_000 + 54_000);
        assert_eq!(usable_until(0, Some(5)), 5_000);
        assert_eq!(usable_until(0, Some(0)), 0);
        assert_eq!(usable_until(0, None), 3_570_000);
        assert!(usable_until(0, Some(u64::MAX)) > 0, "no overflow");
    }

    #[test]
    fn token_answers_are_read_leniently_but_need_a_bearer_token() {
        assert_eq!(
            parse_token_answer(br#"{"access_token":"t1","token_type":"Bearer","expires_in":3600}"#).unwrap(),
            ("t1".into(), Some(3600))
        );
        assert_eq!(
            parse_token_answer(br#"{"access_token":"t1","expires_in":"120"}"#).unwrap(),
            ("t1".into(), Some(120))
        );
        assert_eq!(
            parse_token_answer(br#"{"access_token":"t1"}"#).unwrap(),
            ("t1".into(), None)
        );
        for bad in [
            &br#"{"token":"t1"}"#[..],
            br#"{"access_token":""}"#,
            br#"{"access_token":"t","token_type":"mac"}"#,
            b"t1",
        ] {
            assert!(parse_token_answer(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
