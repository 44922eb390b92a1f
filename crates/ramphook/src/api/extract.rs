//! Request extractors that turn every malformed input into a clear problem:
//! JSON bodies (400 malformed, 422 wrong shape, 413 too large), list
//! paging, and `Idempotency-Key`.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::error::ApiError;

/// A JSON body, accepted whatever the content type says (curl users forget it).
pub struct JsonBody<T> {
    pub value: T,
    /// SHA-256 of the raw body, for idempotency checks.
    pub hash: String,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state).await?;
        let value = parse_json(&bytes)?;
        Ok(Self {
            value,
            hash: hex::encode(Sha256::digest(&bytes)),
        })
    }
}

/// For routes whose body may be left out entirely (`Option<JsonBody<T>>`).
impl<S: Send + Sync, T: DeserializeOwned> axum::extract::OptionalFromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let value = parse_json(&bytes)?;
        Ok(Some(Self {
            value,
            hash: hex::encode(Sha256::digest(&bytes)),
        }))
    }
}

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large("the request body is larger than the configured limit (RAMPHOOK_MAX_BODY_BYTES)")
        } else {
            ApiError::bad_request(format!("could not read the request body: {}", rejection.body_text()))
        }
    })
}

/// 400 for malformed JSON, 422 for JSON of the wrong shape.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the request body is empty; a JSON object is expected",
        ));
    }
    // Syntax first, over the whole body: a typed pass alone would stop at
    // the first value of the wrong type (`0:` is 422 to it) or call an
    // extra array element a syntax error.
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::invalid(inner.to_string())
        } else {
            ApiError::invalid(format!("{path}: {inner}"))
        }
    })
}

/// `?limit=&cursor=` of every list.
#[derive(Debug, Deserialize)]
pub struct PageParams {
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

impl PageParams {
    pub fn limit(&self) -> Result<u32, ApiError> {
        match &self.limit {
            None => Ok(50),
            Some(text) => match text.parse::<u32>() {
                Ok(n) if (1..=500).contains(&n) => Ok(n),
                _ => Err(ApiError::invalid(format!(
                    "limit must be a whole number from 1 to 500, not {text:?}"
                ))),
            },
        }
    }

    pub fn cursor(&self) -> Result<Option<i64>, ApiError> {
        match self.cursor.as_deref() {
            None | Some("") => Ok(None),
            Some(text) => crate::store::parse_cursor(Some(text))
                .map(Some)
                .ok_or_else(|| ApiError::invalid(format!("cursor {text:?} is not one this API handed out"))),
        }
    }
}

/// Query strings parsed leniently into `T`, with a problem on failure.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded_parse(query).map(Query)
    }
}

fn serde_urlencoded_parse<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let pairs: serde_json::Map<String, serde_json::Value> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), serde_json::Value::String(v.into_owned())))
        .collect();
    serde_json::from_value(serde_json::Value::Object(pairs)).map_err(|e| ApiError::invalid(format!("bad query: {e}")))
}

/// The optional `Idempotency-Key` header (1–255 printable ASCII characters).
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(Self(None));
        };
        let text = parse_idempotency_key(value.as_bytes())?;
        Ok(Self(Some(text)))
    }
}

/// Checks an `Idempotency-Key` header's bytes: 1 to 255 printable ASCII
/// characters without spaces.
pub fn parse_idempotency_key(value: &[u8]) -> Result<String, ApiError> {
    std::str::from_utf8(value)
        .ok()
        .filter(|t| !t.is_empty() && t.len() <= 255 && t.bytes().all(|b| (0x21..0x7f).contains(&b)))
        .map(str::to_owned)
        .ok_or_else(|| ApiError::invalid("Idempotency-Key must be 1 to 255 printable ASCII characters without spaces"))
}

/// Path parameters; a malformed one answers a problem, not plain text.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| ApiError::bad_request(format!("bad path: {}", e.body_text())))
    }
}
