//! The credentials a partner's validation callback expects: one type per
//! auth method, as configured through the API and stored as JSON, with the
//! checks that refuse unusable values and the redaction used when showing it.

use axum::http::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What replaces every credential when a configuration is shown.
pub const REDACTED: &str = "***";

const MAX_CREDENTIAL: usize = 4096;

/// Headers ramphook sets itself (or HTTP owns); a `header` auth may not set them.
const RESERVED_HEADERS: [&str; 10] = [
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "user-agent",
    "te",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Auth {
    /// No credentials.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer { token: String },
    /// `Authorization: Basic base64(username:password)`.
    Basic { username: String, password: String },
    /// One custom header, e.g. `X-Api-Key: …`.
    Header { name: String, value: String },
    /// Signed like a webhook: `webhook-id`, `webhook-timestamp` and
    /// `webhook-signature` (Standard Webhooks) over the request body.
    Hmac { secret: String },
    /// OAuth 2.0 client-credentials grant; the token is sent as a bearer token.
    #[serde(rename_all = "camelCase")]
    Oauth2 {
        token_url: String,
        client_id: String,
        client_secret: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
    },
}

impl Auth {
    /// The name used in metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Bearer { .. } => "bearer",
            Auth::Basic { .. } => "basic",
            Auth::Header { .. } => "header",
            Auth::Hmac { .. } => "hmac",
            Auth::Oauth2 { .. } => "oauth2",
        }
    }

    /// Refuses values that could not be sent or are surely mistakes. The
    /// oauth2 `tokenUrl` is checked by the caller, like every URL.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Auth::None => Ok(()),
            Auth::Bearer { token } => {
                credential("auth.token", token)?;
                header_value("auth.token", &format!("Bearer {token}"))
            }
            Auth::Basic { username, password } => {
                credential("auth.username", username)?;
                credential("auth.password", password)?;
                if username.contains(':') {
                    return Err("auth.username must not contain ':'".into());
                }
                Ok(())
            }
            Auth::Header { name, value } => {
                let parsed = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("auth.name {name:?} is not a valid HTTP header name"))?;
                if RESERVED_HEADERS.contains(&parsed.as_str()) || parsed.as_str().starts_with("proxy-") {
                    return Err(format!("auth.name {name:?} is a header ramphook sets itself"));
                }
                credential("auth.value", value)?;
                header_value("auth.value", value)
            }
            Auth::Hmac { secret } => {
                if secret.chars().count() < 16 {
                    return Err("auth.secret must be at least 16 characters".into());
                }
                credential("auth.secret", secret)
            }
            Auth::Oauth2 {
                client_id,
                client_secret,
                scope,
                ..
            } => {
                credential("auth.clientId", client_id)?;
                credential("auth.clientSecret", client_secret)?;
                if let Some(scope) = scope {
                    credential("auth.scope", scope)?;
                }
                Ok(())
            }
        }
    }

    /// The same configuration with every secret replaced by `***`; names,
    /// user names, client ids, scopes and URLs stay readable.
    pub fn redacted(&self) -> Auth {
        let hidden = || REDACTED.to_owned();
        match self.clone() {
            Auth::None => Auth::None,
            Auth::Bearer { .. } => Auth::Bearer { token: hidden() },
            Auth::Basic { username, .. } => Auth::Basic {
                username,
                password: hidden(),
            },
            Auth::Header { name, .. } => Auth::Header { name, value: hidden() },
            Auth::Hmac { .. } => Auth::Hmac { secret: hidden() },
            Auth::Oauth2 {
                token_url,
                client_id,
                scope,
                ..
            } => Auth::Oauth2 {
                token_url,
                client_id,
                client_secret: hidden(),
                scope,
            },
        }
    }
}

fn credential(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_CREDENTIAL {
        return Err(format!("{field} must be 1 to {MAX_CREDENTIAL} bytes"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{field} must not contain control characters"));
    }
    Ok(())
}

fn header_value(field: &str, value: &str) -> Result<(), String> {
    HeaderValue::from_str(value)
        .map(|_| ())
        .map_err(|_| format!("{field} cannot be sent in an HTTP header"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Auth, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn every_type_parses_and_unknown_ones_do_not() {
        assert_eq!(parse(r#"{"type":"none"}"#).unwrap(), Auth::None);
        assert_eq!(parse(r#"{"type":"bearer","token":"t"}"#).unwrap().kind(), "bearer");
        assert_eq!(
            parse(r#"{"type":"basic","username":"u","password":"p"}"#)
                .unwrap()
                .kind(),
            "basic"
        );
        assert_eq!(
            parse(r#"{"type":"header","name":"X-Key","value":"v"}"#).unwrap().kind(),
            "header"
        );
        assert_eq!(parse(r#"{"type":"hmac","secret":"s"}"#).unwrap().kind(), "hmac");
        let oauth = parse(r#"{"type":"oauth2","tokenUrl":"https://a/t","clientId":"c","clientSecret":"s"}"#).unwrap();
        assert!(matches!(&oauth, Auth::Oauth2 { scope: None, .. }));
        for bad in [
            r#"{"type":"kerberos"}"#,
            r#"{"type":"bearer"}"#,
            r#"{"type":"basic","username":"u"}"#,
            r#"{"token":"t"}"#,
            r#"{"type":"bearer","token":"t","extra":1}"#,
            r#"{"type":"oauth2","token_url":"https://a/t","clientId":"c","clientSecret":"s"}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn checks_refuse_unsendable_values() {
        let good = [
            Auth::None,
            Auth::Bearer {
                token: "abc.def".into(),
            },
            Auth::Header {
                name: "X-Api-Key".into(),
                value: "k".into(),
            },
            Auth::Hmac {
                secret: "0123456789abcdef".into(),
            },
        ];
        for auth in good {
            assert!(auth.check().is_ok(), "{auth:?}");
        }
        let bad = [
            Auth::Bearer { token: "".into() },
            Auth::Bearer { token: "a\nb".into() },
            Auth::Basic {
                username: "a:b".into(),
                password: "p".into(),
            },
            Auth::Header {
                name: "Bad Name".into(),
                value: "v".into(),
            },
            Auth::Header {
                name: "Content-Type".into(),
                value: "v".into(),
            },
            Auth::Header {
                name: "webhook-signature".into(),
                value: "v".into(),
            },
            Auth::Hmac { secret: "short".into() },
            Auth::Oauth2 {
                token_url: "https://a/t".into(),
                client_id: "".into(),
                client_secret: "s".into(),
                scope: None,
            },
        ];
        for auth in bad {
            assert!(auth.check().is_err(), "{auth:?} passed");
        }
    }

    #[test]
    fn redaction_hides_every_secret_and_nothing_else() {
        let all = [
            Auth::Bearer {
                token: "tok-SECRET".into(),
            },
            Auth::Basic {
                username: "user".into(),
                password: "pw-SECRET".into(),
            },
            Auth::Header {
                name: "X-Key".into(),
                value: "val-SECRET".into(),
            },
            Auth::Hmac {
                secret: "hmac-SECRET-0123456".into(),
            },
            Auth::Oauth2 {
                token_url: "https://a/t".into(),
                client_id: "client".into(),
                client_secret: "cs-SECRET".into(),
                scope: Some("read".into()),
            },
        ];
        for auth in all {
            let shown = serde_json::to_string(&auth.redacted()).unwrap();
            assert!(!shown.contains("SECRET"), "{shown}");
            assert!(shown.contains(REDACTED), "{shown}");
        }
        let shown = serde_json::to_value(
            Auth::Oauth2 {
                token_url: "https://a/t".into(),
                client_id: "client".into(),
                client_secret: "x".into(),
                scope: Some("read".into()),
            }
            .redacted(),
        )
        .unwrap();
        assert_eq!(shown["clientId"], "client");
        assert_eq!(shown["tokenUrl"], "https://a/t");
        assert_eq!(shown["scope"], "read");
    }
}
