//! Validation callbacks (CONTRACT.md §4): before an order is created or a
//! user's private information is shown, the partner is asked whether that
//! user may do it. This module turns a stored configuration, an email and an
//! action into a verdict: cached answer, or an authenticated POST with a
//! tight time limit, read by `answer::read`, then the `onError` policy.

pub mod answer;
pub mod auth;
pub mod cache;
pub mod client;
pub mod oauth2;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::time::now_ms;
use crate::net_guard::NetGuard;
use crate::store::{StoreError, ValidationRow};
pub use answer::Outcome;
pub use auth::Auth;

/// What the user is about to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Create an on-ramp order.
    Buy,
    /// Create an off-ramp order.
    Sell,
    /// See their orders.
    PrivateInfo,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Buy => "buy",
            Action::Sell => "sell",
            Action::PrivateInfo => "private_info",
        }
    }
}

/// What an unanswerable callback (timeout, 5xx, unreadable body…) means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    #[default]
    Deny,
    Allow,
}

impl OnError {
    pub fn as_str(self) -> &'static str {
        match self {
            OnError::Deny => "deny",
            OnError::Allow => "allow",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "deny" => Some(OnError::Deny),
            "allow" => Some(OnError::Allow),
            _ => None,
        }
    }
}

/// A partner's validation callback, as stored.
#[derive(Debug, Clone)]
pub struct Config {
    /// New at every PUT; keys the caches so a new configuration starts afresh.
    pub id: String,
    pub partner_id: String,
    pub url: String,
    pub auth: Auth,
    pub timeout: Duration,
    pub on_error: OnError,
    pub cache_ttl_seconds: u32,
    pub created_at: i64,
    pub updated_at: i64,
}

impl TryFrom<ValidationRow> for Config {
    type Error = StoreError;

    fn try_from(row: ValidationRow) -> Result<Self, StoreError> {
        let bad = |what: &str| StoreError::Other(format!("validation config of {} has a bad {what}", row.partner_id));
        Ok(Config {
            auth: serde_json::from_str(&row.auth).map_err(|_| bad("auth"))?,
            timeout: Duration::from_millis(u64::try_from(row.timeout_ms).map_err(|_| bad("timeout"))?),
            on_error: OnError::parse(&row.on_error).ok_or_else(|| bad("onError"))?,
            cache_ttl_seconds: u32::try_from(row.cache_ttl_seconds).map_err(|_| bad("cacheTtlSeconds"))?,
            id: row.id,
            partner_id: row.partner_id,
            url: row.url,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// Whether the user may go on, given what the partner said and the policy.
pub fn decide(outcome: &Outcome, on_error: OnError) -> bool {
    match outcome {
        Outcome::Allowed => true,
        Outcome::Denied => false,
        Outcome::Error(_) => on_error == OnError::Allow,
    }
}

/// The result of one check.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub outcome: Outcome,
    /// After the `onError` policy.
    pub allowed: bool,
    /// Answered from the cache, without calling the partner.
    pub cached: bool,
    pub duration: Duration,
}

/// Shared by every request: the HTTP client, tokens and cached answers.
#[derive(Clone)]
pub struct Validator {
    inner: Arc<Inner>,
}

struct Inner {
    http: client::Http,
    tokens: oauth2::Tokens,
    answers: cache::AnswerCache,
}

impl Validator {
    pub fn new(guard: NetGuard) -> Self {
        Self {
            inner: Arc::new(Inner {
                http: client::Http::new(guard),
                tokens: oauth2::Tokens::default(),
                answers: cache::AnswerCache::default(),
            }),
        }
    }

    /// Checks `email` doing `action` against `config`; no configuration
    /// means everyone is allowed, without a call. Holds no database handle.
    pub async fn check(&self, config: Option<&Config>, email: &str, action: Action) -> Verdict {
        let started = Instant::now();
        let Some(config) = config else {
            return Verdict {
                outcome: Outcome::Allowed,
                allowed: true,
                cached: false,
                duration: started.elapsed(),
            };
        };
        let key = cache::Key {
            partner_id: config.partner_id.clone(),
            config_id: config.id.clone(),
            email: email.to_owned(),
            action,
        };
        if let Some(outcome) = self.inner.answers.get(&key, now_ms()) {
            metrics::counter!("ramphook_validation_cache_hits_total").increment(1);
            return Verdict {
                allowed: decide(&outcome, config.on_error),
                outcome,
                cached: true,
                duration: started.elapsed(),
            };
        }
        let asked = self.inner.http.ask(&self.inner.tokens, config, email, action);
        let outcome = match tokio::time::timeout(config.timeout, asked).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Error(format!("timeout: no answer within {} ms", config.timeout.as_millis())),
        };
        let duration = started.elapsed();
        let auth = config.auth.kind();
        metrics::counter!("ramphook_validation_calls_total", "outcome" => outcome.as_str(), "auth" => auth)
            .increment(1);
        metrics::histogram!("ramphook_validation_duration_seconds").record(duration.as_secs_f64());
        if let Outcome::Error(why) = &outcome {
            // No URL, email or credential: the detail is built without them.
            tracing::warn!(partner = %config.partner_id, action = action.as_str(), auth, error = %why,
                on_error = config.on_error.as_str(), "validation callback failed");
        }
        self.inner
            .answers
            .put(key, &outcome, config.cache_ttl_seconds, now_ms());
        Verdict {
            allowed: decide(&outcome, config.on_error),
            outcome,
            cached: false,
            duration,
        }
    }

    /// Drops cached answers and tokens of `partner_id` (its configuration
    /// was replaced or removed).
    pub fn forget_partner(&self, partner_id: &str) {
        self.inner.answers.forget_partner(partner_id);
        self.inner.tokens.forget_partner(partner_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_error_decides_only_errors() {
        for policy in [OnError::Deny, OnError::Allow] {
            assert!(decide(&Outcome::Allowed, policy));
            assert!(!decide(&Outcome::Denied, policy));
        }
        assert!(!decide(&Outcome::Error("timeout".into()), OnError::Deny));
        assert!(decide(&Outcome::Error("timeout".into()), OnError::Allow));
    }

    #[test]
    fn actions_and_policies_have_their_wire_names() {
        assert_eq!(serde_json::to_value(Action::PrivateInfo).unwrap(), "private_info");
        assert_eq!(serde_json::from_str::<Action>("\"buy\"").unwrap(), Action::Buy);
        assert_eq!(OnError::parse("allow"), Some(OnError::Allow));
        assert_eq!(OnError::parse("Allow"), None);
        assert_eq!(OnError::default(), OnError::Deny);
    }
}
