//! The outbound side of a validation callback: one shared keep-alive HTTP
//! client (SSRF-guarded resolver, no redirects), the request with the
//! configured credentials, and the answer read up to a bound.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use ramphook_signature::standard_signature_header;
use serde::Serialize;

use super::answer::{self, Outcome, MAX_ANSWER_BYTES};
use super::auth::Auth;
use super::oauth2::{Grant, Tokens};
use super::{Action, Config};
use crate::delivery::sender::{classify, USER_AGENT};
use crate::domain::ids::new_id;
use crate::net_guard::{GuardError, NetGuard};

/// The body of every callback, serialised in this field order.
#[derive(Serialize)]
struct CallbackBody<'a> {
    email: &'a str,
    action: &'a str,
}

/// The HTTP client shared by every callback and token request.
pub struct Http {
    client: reqwest::Client,
    guard: NetGuard,
}

impl Http {
    /// Built once at start-up. Per-call time limits are applied by the
    /// caller around the whole check (token fetch and retry included).
    pub fn new(guard: NetGuard) -> Self {
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(32)
            .tcp_nodelay(true)
            .no_proxy()
            .dns_resolver(guard.resolver())
            .build()
            .expect("the HTTP client's settings are valid");
        Self { client, guard }
    }

    /// A POST to `url`, refused here if it names a refused IP literal.
    pub fn post(&self, url: &str) -> Result<reqwest::RequestBuilder, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("request: bad url: {e}"))?;
        if let Some(ip) = self.guard.refused_literal(&parsed) {
            return Err(format!("refused_address: {}", GuardError::Refused(ip)));
        }
        Ok(self.client.post(parsed))
    }

    /// Sends and reads the answer's status and at most `MAX_ANSWER_BYTES + 1`
    /// bytes of its body (enough to tell an over-long one). Errors never
    /// carry the URL, which may hold credentials in its query.
    pub async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), String> {
        let mut response = request.send().await.map_err(|e| classify(&e.without_url()))?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while body.len() <= MAX_ANSWER_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => return Err(classify(&e.without_url())),
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

    fn request(&self, config: &Config, body: &[u8], token: Option<&str>) -> Result<reqwest::RequestBuilder, String> {
        let request = self
            .post(&config.url)?
            .header("content-type", "application/json")
            .body(body.to_vec());
        Ok(match &config.auth {
            Auth::None => request,
            Auth::Bearer { token } => request.bearer_auth(token),
            Auth::Basic { username, password } => request.basic_auth(username, Some(password)),
            Auth::Header { name, value } => {
                let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| "request: bad auth header name")?;
                let mut value = HeaderValue::from_str(value).map_err(|_| "request: bad auth header value")?;
                value.set_sensitive(true);
                request.header(name, value)
            }
            Auth::Hmac { secret } => {
                let id = new_id("vcb");
                let timestamp = chrono::Utc::now().timestamp();
                let signature = standard_signature_header(&[secret.as_bytes()], &id, timestamp, body);
                request
                    .header("webhook-id", id)
                    .header("webhook-timestamp", timestamp.to_string())
                    .header("webhook-signature", signature)
            }
            Auth::Oauth2 { .. } => request.bearer_auth(token.ok_or("oauth2: no token")?),
        })
    }
}
