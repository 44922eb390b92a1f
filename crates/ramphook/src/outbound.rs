//! Outbound HTTP to partners' URLs (webhooks, validation callbacks, oauth2
//! token requests): one client setup and one way of naming failures.
//!
//! The client is hyper-util's pooled client, used directly rather than
//! through reqwest (which wraps the same client): reqwest's own layers (a
//! URL parsed and turned into an URI again, a header map, a timeout future
//! and a redirect policy per request) were 12-16 % of the server's CPU in
//! the PostgreSQL `single` benchmark, more than the HTTP exchange itself.
//! It never follows redirects (hyper does not), resolves every name through
//! the SSRF guard (`GuardedDns`), and leaves IP literals, which the
//! connector does not resolve, to the caller (`NetGuard::refused_literal_host`).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::net_guard::{GuardError, GuardedDns, NetGuard};

/// What ramphook calls itself on every outbound request.
pub const USER_AGENT: &str = concat!("ramphook/", env!("CARGO_PKG_VERSION"));

pub type OutboundClient = Client<HttpsConnector<HttpConnector<GuardedDns>>, Full<Bytes>>;

/// A client whose connections go only where `guard` permits, over TLS with
/// Mozilla's roots (as reqwest's `rustls-tls`; ring is the one crypto
/// provider built in), keeping up to `max_idle_per_host` idle connections
/// per host for 90 s.
pub fn client(guard: &NetGuard, connect_timeout: Duration, max_idle_per_host: usize) -> OutboundClient {
    let mut http = HttpConnector::new_with_resolver(guard.hyper_resolver());
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(max_idle_per_host)
        .build(connector)
}

/// A partner's URL as hyper takes it. Stored URLs were normalised by
/// the `url` crate when they were configured (ASCII, IPv4 in dotted
/// form), which `Uri` parses as is; another text goes through `url` first,
/// as reqwest did.
pub fn target_uri(text: &str) -> Result<Uri, String> {
    if let Ok(uri) = text.parse::<Uri>() {
        if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() {
            return Ok(uri);
        }
    }
    let url = url::Url::parse(text).map_err(|e| format!("request: bad url: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "request: bad url: scheme {} is not http or https",
            url.scheme()
        ));
    }
    url.as_str()
        .parse::<Uri>()
        .map_err(|e| format!("request: bad url: {e}"))
}

/// Names the kind of a failed exchange: the guard's refusals, DNS,
/// timeout, connect, or anything else as `request`. Never the URL (it may
/// carry credentials in its query).
pub fn classify(err: &hyper_util::client::legacy::Error) -> String {
    if let Some(guard) = find_in_chain::<GuardError>(err) {
        return match guard {
            GuardError::Dns(_) => format!("dns: {guard}"),
            GuardError::Refused(_) => format!("refused_address: {guard}"),
        };
    }
    let timed_out = find_in_chain::<std::io::Error>(err).is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
    let kind = if timed_out {
        "timeout"
    } else if err.is_connect() {
        "connect"
    } else {
        "request"
    };
    format!("{kind}: {}", error_chain(err))
}

/// The first error of type `T` in `err`'s chain of sources, `err` included.
fn find_in_chain<'a, T: std::error::Error + 'static>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a T> {
    let mut source = Some(err);
    while let Some(e) = source {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        source = e.source();
    }
    None
}

/// `err` and its sources, joined by `: `.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut detail = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        detail.push_str(": ");
        detail.push_str(&e.to_string());
        source = e.source();
    }
    detail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_urls_become_uris_and_others_are_normalised_or_refused() {
        let uri = target_uri("http://127.0.0.1:8080/hooks?a=1").unwrap();
        assert_eq!(
            (uri.host(), uri.port_u16(), uri.path()),
            (Some("127.0.0.1"), Some(8080), "/hooks")
        );
        assert_eq!(
            target_uri("http://exämple.com/h").unwrap().host(),
            Some("xn--exmple-cua.com")
        );
        assert_eq!(target_uri("http://[::1]/h").unwrap().host(), Some("[::1]"));
        assert!(target_uri("ftp://example.com/")
            .unwrap_err()
            .starts_with("request: bad url"));
        assert!(target_uri("not a url").unwrap_err().starts_with("request: bad url"));
    }
}
