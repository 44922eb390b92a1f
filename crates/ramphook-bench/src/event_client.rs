//! The measured phase's client: each driver task posts its events on one
//! HTTP/1.1 keep-alive connection of its own (hyper's connection API) and
//! reads only the event id from the answer. The bench shares the machine
//! with the server, so every microsecond it spends is one the server's
//! figures lose: reqwest's pool checkout, URL parsing and header map, and
//! parsing every answer into a `serde_json::Value`, cost the bench about
//! 40 % more CPU per event than this (see the commit that brought it).
//! Setup calls (partners, endpoints, orders) still go through `api.rs`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpStream;

/// What the bench needs of `POST /v1/orders/{id}/events`'s answer.
#[derive(Deserialize)]
struct Appended {
    event: EventId,
}

#[derive(Deserialize)]
struct EventId {
    id: String,
}

/// One connection's event poster; it connects on first use and again after
/// any error.
pub struct EventClient {
    /// `host:port` to connect to, also sent as `Host`.
    authority: String,
    host: HeaderValue,
    /// The base URL's path, without its trailing slash (usually empty).
    prefix: String,
    authorization: HeaderValue,
    connection: Option<SendRequest<Full<Bytes>>>,
}

impl EventClient {
    /// A client for the server at `base` (`http://host[:port][/prefix]`).
    pub fn new(base: &str, token: &str) -> Result<Self, String> {
        let uri: Uri = base.parse().map_err(|e| format!("{base}: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("{base}: the bench speaks plain http"));
        }
        let host = uri.host().ok_or_else(|| format!("{base}: no host"))?;
        let authority = format!("{host}:{}", uri.port_u16().unwrap_or(80));
        Ok(Self {
            host: HeaderValue::from_str(&authority).map_err(|e| e.to_string())?,
            authority,
            prefix: uri.path().trim_end_matches('/').to_owned(),
            authorization: HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| e.to_string())?,
            connection: None,
        })
    }

    /// Posts `event_name` to `order_id` (with `Idempotency-Key:
    /// <order_id>:<event_name>` if `keyed`); answers the event id (the
    /// webhooks' `webhook-id`) or a one-line error.
    pub async fn event(&mut self, order_id: &str, event_name: &str, keyed: bool) -> Result<String, String> {
        let outcome = self.post(order_id, event_name, keyed).await;
        if outcome.is_err() {
            // The connection may be broken or mid-answer: start afresh.
            self.connection = None;
        }
        outcome
    }

    async fn post(&mut self, order_id: &str, event_name: &str, keyed: bool) -> Result<String, String> {
        let path = format!("{}/v1/orders/{order_id}/events", self.prefix);
        let mut request = Request::post(path.as_str());
        if keyed {
            request = request.header("idempotency-key", format!("{order_id}:{event_name}"));
        }
        let request = request
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(Full::new(Bytes::from(
                serde_json::json!({ "eventName": event_name }).to_string(),
            )))
            .map_err(|e| format!("{path}: {e}"))?;
        let connection = self.connected().await?;
        connection.ready().await.map_err(|e| format!("{path}: {e}"))?;
        let response = connection
            .send_request(request)
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{path}: {e}"))?
            .to_bytes();
        if status != 201 {
            return Err(format!(
                "POST {path} answered {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        serde_json::from_slice::<Appended>(&body)
            .map(|appended| appended.event.id)
            .map_err(|e| format!("POST {path}: no event id in the answer ({e})"))
    }

    async fn connected(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, String> {
        if self.connection.as_ref().is_none_or(SendRequest::is_closed) {
            let stream = TcpStream::connect(&self.authority)
                .await
                .map_err(|e| format!("{}: {e}", self.authority))?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            let (sender, connection) = http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("{}: {e}", self.authority))?;
            tokio::spawn(connection);
            self.connection = Some(sender);
        }
        Ok(self.connection.as_mut().expect("connected just above"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_url_gives_the_address_host_and_prefix() {
        let client = EventClient::new("http://127.0.0.1:8080/", "t").unwrap();
        assert_eq!(
            (client.authority.as_str(), client.prefix.as_str()),
            ("127.0.0.1:8080", "")
        );
        let client = EventClient::new("http://hooks.internal/ramphook", "t").unwrap();
        assert_eq!(
            (client.authority.as_str(), client.prefix.as_str()),
            ("hooks.internal:80", "/ramphook")
        );
        assert_eq!(client.authorization, "Bearer t");
    }

    #[test]
    fn only_plain_http_is_spoken() {
        assert!(EventClient::new("https://127.0.0.1:8443", "t").is_err());
        assert!(EventClient::new("not a url", "t").is_err());
    }
}
