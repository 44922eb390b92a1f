//! The outbound side of a validation callback: one shared keep-alive HTTP
//! client (`outbound`: SSRF-guarded resolver, no redirects), the request
//! with the configured credentials, and the answer read up to a bound.

use std::time::Duration;

use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT as USER_AGENT_HEADER};
use axum::http::{request, HeaderName, HeaderValue, Method, Request};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use ramphook_signature::standard_signature_header;
use serde::Serialize;

use super::answer::{self, Outcome, MAX_ANSWER_BYTES};
use super::auth::Auth;
use super::oauth2::{Grant, Tokens};
use super::{Action, Config};
use crate::domain::ids::new_id;
use crate::net_guard::{GuardError, NetGuard};
use crate::outbound::{self, classify, error_chain, target_uri, OutboundClient, USER_AGENT};

/// The body of every callback, serialised in this field order.
#[derive(Serialize)]
struct CallbackBody<'a> {
    email: &'a str,
    action: &'a str,
}

/// The HTTP client shared by every callback and token request.
pub struct Http {
    client: OutboundClient,
    guard: NetGuard,
}

impl Http {
    /// Built once at start-up. Per-call time limits are applied by the
    /// caller around the whole check (token fetch and retry included).
    pub fn new(guard: NetGuard) -> Self {
        let client = outbound::client(&guard, Duration::from_secs(5), 32);
        Self { client, guard }
    }

    /// A POST to `url`, refused here if it names a refused IP literal.
    pub fn post(&self, url: &str) -> Result<request::Builder, String> {
        let uri = target_uri(url)?;
        if let Some(ip) = uri.host().and_then(|host| self.guard.refused_literal_host(host)) {
            return Err(format!("refused_address: {}", GuardError::Refused(ip)));
        }
        Ok(Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(USER_AGENT_HEADER, HeaderValue::from_static(USER_AGENT)))
    }

    /// Sends and reads the answer's status and at most `MAX_ANSWER_BYTES + 1`
    /// bytes of its body (enough to tell an over-long one). Errors never
    /// carry the URL, which may hold credentials in its query.
    pub async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<(u16, Vec<u8>), String> {
        let response = self.client.request(request).await.map_err(|e| classify(&e))?;
        let status = response.status().as_u16();
        let mut answer = response.into_body();
        let mut body = Vec::new();
        while body.len() <= MAX_ANSWER_BYTES {
            match answer.frame().await {
                Some(Ok(frame)) => {
                    if let Some(chunk) = frame.data_ref() {
                        body.extend_from_slice(chunk);
                    }
                }
                None => break,
                Some(Err(e)) => return Err(format!("request: reading the answer: {}", error_chain(&e))),
            }
        }
        body.truncate(MAX_ANSWER_BYTES + 1);
        Ok((status, body))
    }

    /// Asks the partner about `email` doing `action`. With oauth2, a 401
    /// answer gets one new token and one retry.
    pub async fn ask(&self, tokens: &Tokens, config: &Config, email: &str, action: Action) -> Outcome {
        let body = serde_json::to_vec(&CallbackBody {
            email,
            action: action.as_str(),
        })
        .expect("strings serialise");
        let grant = match &config.auth {
            Auth::Oauth2 {
                token_url,
                client_id,
                client_secret,
                scope,
            } => Some(Grant {
                partner_id: &config.partner_id,
                config_id: &config.id,
                token_url,
                client_id,
                client_secret,
                scope: scope.as_deref(),
            }),
            _ => None,
        };
        let mut token = match &grant {
            Some(grant) => match tokens.token(self, grant, None).await {
                Ok(token) => Some(token),
                Err(why) => return Outcome::Error(why),
            },
            None => None,
        };
        let mut retried = false;
        loop {
            let request = match self.request(config, &body, token.as_deref()) {
                Ok(request) => request,
                Err(why) => return Outcome::Error(why),
            };
            let (status, answer) = match self.exchange(request).await {
                Ok(exchanged) => exchanged,
                Err(why) => return Outcome::Error(why),
            };
            if let (401, Some(grant), false) = (status, &grant, retried) {
                retried = true;
                let fresh = tokens.token(self, grant, token.as_deref()).await;
                match fresh {
                    Ok(fresh) => token = Some(fresh),
                    Err(why) => return Outcome::Error(why),
                }
                continue;
            }
            return answer::read(status, &answer);
        }
    }

    fn request(&self, config: &Config, body: &[u8], token: Option<&str>) -> Result<Request<Full<Bytes>>, String> {
        let request = self
            .post(&config.url)?
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let request = match &config.auth {
            Auth::None => request,
            Auth::Bearer { token } => request.header(AUTHORIZATION, bearer(token)?),
            Auth::Basic { username, password } => request.header(AUTHORIZATION, basic(username, password)?),
            Auth::Header { name, value } => {
                let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| "request: bad auth header name")?;
                let value = sensitive(value.clone()).map_err(|_| "request: bad auth header value")?;
                request.header(name, value)
            }
            Auth::Hmac { secret } => {
                let id = new_id("vcb");
                let timestamp = chrono::Utc::now().timestamp();
                let signature = standard_signature_header(&[secret.as_bytes()], &id, timestamp, body);
                request
                    .header("webhook-id", id)
                    .header("webhook-timestamp", timestamp)
                    .header("webhook-signature", signature)
            }
            Auth::Oauth2 { .. } => request.header(AUTHORIZATION, bearer(token.ok_or("oauth2: no token")?)?),
        };
        request
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|e| format!("request: {e}"))
    }
}

/// `Authorization: Bearer …`, kept out of logs and debug output.
fn bearer(token: &str) -> Result<HeaderValue, String> {
    sensitive(format!("Bearer {token}"))
}

/// `Authorization: Basic …` (RFC 7617), kept out of logs and debug output.
pub(super) fn basic(username: &str, password: &str) -> Result<HeaderValue, String> {
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    sensitive(format!("Basic {credentials}"))
}

/// `text` as a header value kept out of logs and debug output.
fn sensitive(text: String) -> Result<HeaderValue, String> {
    let mut value = HeaderValue::try_from(text).map_err(|_| "request: credentials not valid in a header".to_owned())?;
    value.set_sensitive(true);
    Ok(value)
}
