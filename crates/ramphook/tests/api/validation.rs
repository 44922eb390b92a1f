//! Validation callbacks against real partner servers on 127.0.0.1: every
//! auth type checked by the partner, answer forms, time limits, oauth2
//! tokens, the answer cache, the gates on orders, and the configuration API.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use serde_json::{json, Value};

use crate::common::{Backend, TestServer};

on_both_backends!(
    every_auth_type_reaches_the_partner_with_its_credentials_and_none_is_logged,
    answers_are_read_by_the_contract_table,
    orders_and_private_information_are_gated,
    a_slow_partner_is_an_error_and_on_error_decides,
    a_refused_connection_is_an_error,
    oauth2_tokens_are_reused_single_flight_and_refreshed_on_401,
    answers_are_cached_within_the_ttl_and_errors_never,
    bad_configurations_are_refused_and_change_nothing,
    configurations_are_redacted_and_private_to_their_partner,
);

/// One request a fake partner received.
#[derive(Debug, Clone)]
struct Seen {
    headers: HeaderMap,
    body: Bytes,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    fn email(&self) -> String {
        self.json()["email"].as_str().unwrap_or_default().to_owned()
    }
}

/// How the fake partner answers a request: status, body, delay.
type Answer = Arc<dyn Fn(&Seen) -> (u16, String, Duration) + Send + Sync>;

#[derive(Clone)]
struct FakeState {
    seen: Arc<Mutex<Vec<Seen>>>,
    answer: Answer,
}

/// A real HTTP server standing in for a partner's validation (or token) URL.
struct Fake {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    async fn start(answer: impl Fn(&Seen) -> (u16, String, Duration) + Send + Sync + 'static) -> Self {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let state = FakeState {
            seen: seen.clone(),
            answer: Arc::new(answer),
        };
        let app = axum::Router::new().route("/{*path}", post(fake)).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, seen }
    }

    fn url(&self) -> String {
        format!("http://{}/check", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn calls(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn calls_for(&self, email: &str) -> usize {
        self.seen().iter().filter(|s| s.email() == email).count()
    }
}

async fn fake(State(state): State<FakeState>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let seen = Seen { headers, body };
    state.seen.lock().unwrap().push(seen.clone());
    let (status, body, delay) = (state.answer)(&seen);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    (StatusCode::from_u16(status).unwrap(), body)
}

fn now() -> (u16, String, Duration) {
    (200, "true".into(), Duration::ZERO)
}

fn answer(status: u16, body: &str) -> (u16, String, Duration) {
    (status, body.into(), Duration::ZERO)
}

async fn configure(server: &TestServer, pid: &str, config: Value) -> Value {
    let (status, body) = server
        .admin("PUT", &format!("/v1/partners/{pid}/validation"), Some(config))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn validate(server: &TestServer, pid: &str, email: &str, action: &str) -> Value {
    let (status, body) = server
        .admin(
            "POST",
            &format!("/v1/partners/{pid}/validate"),
            Some(json!({"email": email, "action": action})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn create_order(server: &TestServer, pid: &str, email: &str, direction: &str) -> (u16, Value) {
    server
        .admin(
            "POST",
            "/v1/orders",
            Some(json!({"partnerId": pid, "email": email, "direction": direction})),
        )
        .await
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

async fn every_auth_type_reaches_the_partner_with_its_credentials_and_none_is_logged(backend: Backend) {
    let server = TestServer::start_with(backend, &[("RAMPHOOK_LOG", "debug,hyper=info,h2=info,rustls=info")]).await;
    let (pid, _) = server.partner().await;
    const BEARER: &str = "bearer-SECRET-tok-1234";
    const PASSWORD: &str = "basic-SECRET-pass-1234";
    const HEADER_VALUE: &str = "header-SECRET-key-1234";
    const HMAC: &str = "hmac-SECRET-0123456789";
    const CLIENT_SECRET: &str = "oauth-SECRET-client-1234";
    const ISSUED: &str = "issued-SECRET-access-token";

    let token_server = Fake::start(|seen| {
        let form: Vec<(String, String)> = url::form_urlencoded::parse(&seen.body).into_owned().collect();
        let right = seen.header("authorization") == Some(basic("client-7", CLIENT_SECRET).as_str())
            && form.contains(&("grant_type".into(), "client_credentials".into()))
            && form.contains(&("scope".into(), "users:read".into()))
            && seen.header("content-type") == Some("application/x-www-form-urlencoded");
        if right {
            answer(
                200,
                &json!({"access_token": ISSUED, "token_type": "Bearer", "expires_in": 3600}).to_string(),
            )
        } else {
            answer(401, r#"{"error":"invalid_client"}"#)
        }
    })
    .await;

    // The partner accepts exactly the credentials of the configured type.
    let expected: Arc<Mutex<Value>> = Arc::new(Mutex::new(json!({"type": "none"})));
    let partner = {
        let expected = expected.clone();
        Fake::start(move |seen| {
            let auth = expected.lock().unwrap().clone();
            let authorization = seen.header("authorization");
            let body_ok = seen.body.as_ref() == br#"{"email":"alice@example.com","action":"buy"}"#
                && seen.header("content-type") == Some("application/json");
            let creds_ok = match auth["type"].as_str().unwrap() {
                "none" => authorization.is_none(),
                "bearer" => authorization == Some(format!("Bearer {}", auth["token"].as_str().unwrap()).as_str()),
                "basic" => {
                    authorization
                        == Some(basic(auth["username"].as_str().unwrap(), auth["password"].as_str().unwrap()).as_str())
                }
                "header" => seen.header("x-partner-key") == auth["value"].as_str() && authorization.is_none(),
                "hmac" => ramphook_signature::verify_standard(
                    auth["secret"].as_str().unwrap().as_bytes(),
                    seen.header("webhook-id").unwrap_or(""),
                    seen.header("webhook-timestamp").unwrap_or(""),
                    seen.header("webhook-signature").unwrap_or(""),
                    &seen.body,
                    chrono::Utc::now().timestamp(),
                    Some(300),
                )
                .is_ok(),
                "oauth2" => authorization == Some(format!("Bearer {ISSUED}").as_str()),
                other => panic!("{other}"),
            };
            if body_ok && creds_ok {
                answer(200, "true")
            } else {
                answer(401, "wrong credentials")
            }
        })
        .await
    };

    let configs = [
        json!({"type": "none"}),
        json!({"type": "bearer", "token": BEARER}),
        json!({"type": "basic", "username": "ramp-user", "password": PASSWORD}),
        json!({"type": "header", "name": "X-Partner-Key", "value": HEADER_VALUE}),
        json!({"type": "hmac", "secret": HMAC}),
        json!({"type": "oauth2", "tokenUrl": format!("http://{}/token", token_server.addr),
               "clientId": "client-7", "clientSecret": CLIENT_SECRET, "scope": "users:read"}),
    ];
    for auth in &configs {
        *expected.lock().unwrap() = auth.clone();
        let shown = configure(&server, &pid, json!({"url": partner.url(), "auth": auth})).await;
        assert_eq!(shown["auth"]["type"], auth["type"]);
        for _ in 0..2 {
            let verdict = validate(&server, &pid, "Alice@Example.com", "buy").await;
            assert_eq!(verdict["outcome"], "allowed", "{auth}: {verdict}");
            assert_eq!(verdict["allowed"], true);
            assert_eq!(verdict["cached"], false);
        }
    }
    assert_eq!(partner.calls(), 12);
    assert_eq!(token_server.calls(), 1, "the oauth2 token was reused");
    let hmac_ids: HashSet<String> = partner
        .seen()
        .iter()
        .filter_map(|s| s.header("webhook-id").map(str::to_owned))
        .collect();
    assert_eq!(hmac_ids.len(), 2, "every hmac call has its own webhook-id");

    // Wrong credentials are refused by the partner: an error, denied by default.
    *expected.lock().unwrap() = json!({"type": "hmac", "secret": "another-secret-0123456"});
    let verdict = validate(&server, &pid, "alice@example.com", "buy").await;
    assert_eq!(
        (verdict["outcome"].as_str(), verdict["allowed"].as_bool()),
        (Some("error"), Some(false))
    );
    assert!(verdict["detail"].as_str().unwrap().contains("401"), "{verdict}");
    *expected.lock().unwrap() = json!({"type": "bearer", "token": "something-else"});
    configure(
        &server,
        &pid,
        json!({"url": partner.url(), "auth": {"type": "bearer", "token": BEARER}}),
    )
    .await;
    let verdict = validate(&server, &pid, "alice@example.com", "buy").await;
    assert_eq!(verdict["outcome"], "error");

    let metrics = server.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ramphook_validation_calls_total{")
                && l.contains("outcome=\"allowed\"")
                && l.contains("auth=\"hmac\"")
                && l.ends_with(" 2")),
        "{metrics}"
    );
    assert!(
        metrics.contains("ramphook_validation_duration_seconds_bucket"),
        "{metrics}"
    );

    let log = server.log();
    assert!(
        log.contains("validation callback failed"),
        "the log was written:\n{log}"
    );
    // Endpoint secrets and API keys: tests/api/secrecy.rs, over a full flow.
    for secret in [
        BEARER,
        PASSWORD,
        HEADER_VALUE,
        HMAC,
        CLIENT_SECRET,
        ISSUED,
        "SECRET",
        crate::common::ADMIN,
    ] {
        assert!(!log.contains(secret), "the log holds {secret}:\n{log}");
    }
}

async fn answers_are_read_by_the_contract_table(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (pid, _) = server.partner().await;
    let partner = Fake::start(|seen| match seen.email().as_str() {
        "nested@x.io" => answer(200, r#"{"status": "done", "data": {"allowed": true}}"#),
        "shout@x.io" => answer(200, "  YES\n"),
        "json@x.io" => answer(200, r#""Allowed""#),
        "no@x.io" => answer(200, "No"),
        "object-false@x.io" => answer(200, r#"{"isValid": 0, "ok": true}"#),
        "gone@x.io" => answer(404, ""),
        "forbidden@x.io" => answer(403, "true"),
        "broken@x.io" => answer(500, "true"),
        // Redirects are not followed: a 3xx is an error like any other status.
        "moved@x.io" => answer(307, "true"),
        "empty@x.io" => answer(200, ""),
        "shape@x.io" => answer(200, "[true]"),
        // Allowed if read in full, but past the 64 KiB bound: an error.
        "huge@x.io" => answer(200, &format!("{}true", " ".repeat(70 * 1024))),
        other => panic!("unexpected {other}"),
    })
    .await;
    configure(&server, &pid, json!({"url": partner.url(), "auth": {"type": "none"}})).await;
    for (email, outcome) in [
        ("nested@x.io", "allowed"),
        ("shout@x.io", "allowed"),
        ("json@x.io", "allowed"),
        ("no@x.io", "denied"),
        ("object-false@x.io", "denied"),
        ("gone@x.io", "denied"),
        ("forbidden@x.io", "denied"),
        ("broken@x.io", "error"),
        ("moved@x.io", "error"),
        ("empty@x.io", "error"),
        ("shape@x.io", "error"),
        ("huge@x.io", "error"),
    ] {
        let verdict = validate(&server, &pid, email, "sell").await;
        assert_eq!(verdict["outcome"], outcome, "{email}: {verdict}");
        assert_eq!(verdict["allowed"], outcome == "allowed", "{email}: {verdict}");
    }
}

async fn orders_and_private_information_are_gated(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (pid, _) = server.partner().await;
    let allow_private = Arc::new(AtomicBool::new(false));
    let partner = {
        let allow_private = allow_private.clone();
        Fake::start(move |seen| match seen.json()["action"].as_str().unwrap() {
            "buy" => answer(200, "true"),
            "sell" => answer(200, r#"{"allowed": false}"#),
            "private_info" => answer(200, &allow_private.load(Ordering::SeqCst).to_string()),
            other => panic!("unexpected action {other}"),
        })
        .await
    };
    configure(&server, &pid, json!({"url": partner.url(), "auth": {"type": "none"}})).await;

    let (status, order) = create_order(&server, &pid, "bob@example.com", "on_ramp").await;
    assert_eq!(status, 201, "{order}");
    let (status, problem) = create_order(&server, &pid, "bob@example.com", "off_ramp").await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["code"], "user_not_allowed");
    assert_eq!(problem["detail"], "user not allowed");

    let orders_path = format!("/v1/partners/{pid}/users/bob@example.com/orders");
    let (status, problem) = server.admin("GET", &orders_path, None).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (403, Some("user_not_allowed")),
        "{problem}"
    );
    assert_eq!(problem["detail"], "user not allowed");

    allow_private.store(true, Ordering::SeqCst);
    let (status, list) = server.admin("GET", &orders_path, None).await;
    assert_eq!(status, 200, "{list}");
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "the denied order left nothing: {list}");
    assert_eq!(data[0]["id"], order["id"]);
    let actions: Vec<Value> = partner.seen().iter().map(|s| s.json()["action"].clone()).collect();
    assert_eq!(actions, ["buy", "sell", "private_info", "private_info"]);
    assert!(partner.seen().iter().all(|s| s.email() == "bob@example.com"));

    // An Idempotency-Key replay answers as before without asking again.
    let send = || {
        server
            .client
            .post(format!("{}/v1/orders", server.base))
            .bearer_auth(crate::common::ADMIN)
            .header("idempotency-key", "gated-1")
            .json(&json!({"partnerId": pid, "email": "bob@example.com", "direction": "on_ramp"}))
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let calls = partner.calls();
    let again: Value = send().await.unwrap().json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    assert_eq!(partner.calls(), calls);
}

async fn a_slow_partner_is_an_error_and_on_error_decides(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (pid, _) = server.partner().await;
    let partner = Fake::start(|_| (200, "true".into(), Duration::from_secs(5))).await;
    configure(
        &server,
        &pid,
        json!({"url": partner.url(), "auth": {"type": "none"}, "timeoutMs": 200}),
    )
    .await;
    let verdict = validate(&server, &pid, "carol@example.com", "buy").await;
    assert_eq!(
        (verdict["outcome"].as_str(), verdict["allowed"].as_bool()),
        (Some("error"), Some(false))
    );
    assert!(verdict["detail"].as_str().unwrap().contains("timeout"), "{verdict}");
    let took = verdict["durationMs"].as_u64().unwrap();
    assert!((150..2000).contains(&took), "{took} ms");

    let (status, problem) = create_order(&server, &pid, "carol@example.com", "on_ramp").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (403, Some("callback_unavailable")),
        "{problem}"
    );

    configure(
        &server,
        &pid,
        json!({"url": partner.url(), "auth": {"type": "none"}, "timeoutMs": 200, "onError": "allow"}),
    )
    .await;
    let verdict = validate(&server, &pid, "carol@example.com", "buy").await;
    assert_eq!(
        (verdict["outcome"].as_str(), verdict["allowed"].as_bool()),
        (Some("error"), Some(true))
    );
    let (status, order) = create_order(&server, &pid, "carol@example.com", "on_ramp").await;
    assert_eq!(status, 201, "{order}");
}

async fn a_refused_connection_is_an_error(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (pid, _) = server.partner().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    configure(
        &server,
        &pid,
        json!({"url": format!("http://{closed}/check"), "auth": {"type": "bearer", "token": "t-0123456789"}}),
    )
    .await;
    let verdict = validate(&server, &pid, "dan@example.com", "sell").await;
    assert_eq!(verdict["outcome"], "error", "{verdict}");
    assert!(verdict["detail"].as_str().unwrap().starts_with("connect"), "{verdict}");
    let (status, problem) = create_order(&server, &pid, "dan@example.com", "off_ramp").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (403, Some("callback_unavailable")),
        "{problem}"
    );
}

async fn oauth2_tokens_are_reused_single_flight_and_refreshed_on_401(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (pid, _) = server.partner().await;
    let issued = Arc::new(AtomicUsize::new(0));
    let token_server = {
        let issued = issued.clone();
        Fake::start(move |_| {
            let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
            // A slow token endpoint makes concurrent checks overlap.
            (
                200,
                json!({"access_token": format!("tok-{n}"), "expires_in": 3600}).to_string(),
                Duration::from_millis(100),
            )
        })
        .await
    };
    let refused: Arc<Mutex<HashSet<String>>> = Arc::default();
    let partner = {
        let refused = refused.clone();
        Fake::start(move |seen| {
            let token = seen.header("authorization").unwrap_or("").trim_start_matches("Bearer ");
            if token.starts_with("tok-") && !refused.lock().unwrap().contains(token) {
                answer(200, "true")
            } else {
                answer(401, "")
            }
        })
        .await
    };
    let config = json!({"url": partner.url(), "auth": {"type": "oauth2",
        "tokenUrl": format!("http://{}/token", token_server.addr), "clientId": "c", "clientSecret": "s"}});
    configure(&server, &pid, config.clone()).await;
    for i in 0..5 {
        let verdict = validate(&server, &pid, &format!("u{i}@example.com"), "buy").await;
        assert_eq!(verdict["outcome"], "allowed", "{verdict}");
    }
    assert_eq!(token_server.calls(), 1, "one token for many checks");

    // The partner stops accepting tok-1: one new token, one retry, allowed.
    refused.lock().unwrap().insert("tok-1".into());
    let calls = partner.calls();
    let verdict = validate(&server, &pid, "late@example.com", "buy").await;
    assert_eq!(verdict["outcome"], "allowed", "{verdict}");
    assert_eq!(token_server.calls(), 2);
    assert_eq!(partner.calls(), calls + 2);

    // A refused new token too: no endless loop, an error.
    refused.lock().unwrap().insert("tok-2".into());
    refused.lock().unwrap().insert("tok-3".into());
    let verdict = validate(&server, &pid, "late@example.com", "buy").await;
    assert_eq!(verdict["outcome"], "error", "{verdict}");
    assert_eq!(token_server.calls(), 3);

    // A new configuration starts without a token; concurrent checks share one fetch.
    configure(&server, &pid, config).await;
    let checks = (0..8).map(|i| {
        let (server, pid) = (&server, &pid);
        async move { validate(server, pid, &format!("c{i}@example.com"), "sell").await }
    });
    for verdict in futures_util::future::join_all(checks).await {
        assert_eq!(verdict["outcome"], "allowed", "{verdict}");
    }
    assert_eq!(token_server.calls(), 4);
}

async fn answers_are_cached_within_the_ttl_and_errors_never(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (pid, _) = server.partner().await;
    let partner = Fake::start(|seen| match seen.email().as_str() {
        "yes@x.io" => now(),
        "no@x.io" => answer(200, "false"),
        _ => answer(503, ""),
    })
    .await;
    let config = json!({"url": partner.url(), "auth": {"type": "none"}, "cacheTtlSeconds": 60});
    configure(&server, &pid, config.clone()).await;

    for email in ["yes@x.io", "no@x.io"] {
        let first = validate(&server, &pid, email, "buy").await;
        let second = validate(&server, &pid, email, "buy").await;
        assert_eq!(first["cached"], false);
        assert_eq!(second["cached"], true, "{second}");
        assert_eq!(first["outcome"], second["outcome"]);
        assert_eq!(partner.calls_for(email), 1, "{email}");
    }
    // The gate uses the same cache; another action is another question.
    let (status, _) = create_order(&server, &pid, "yes@x.io", "on_ramp").await;
    assert_eq!(status, 201);
    assert_eq!(partner.calls_for("yes@x.io"), 1);
    validate(&server, &pid, "yes@x.io", "sell").await;
    assert_eq!(partner.calls_for("yes@x.io"), 2);

    for _ in 0..2 {
        let verdict = validate(&server, &pid, "down@x.io", "buy").await;
        assert_eq!(
            (verdict["outcome"].as_str(), verdict["cached"].as_bool()),
            (Some("error"), Some(false))
        );
    }
    assert_eq!(partner.calls_for("down@x.io"), 2, "errors are not cached");

    // PUT drops the cache; so does DELETE (then no call at all).
    configure(&server, &pid, config).await;
    assert_eq!(validate(&server, &pid, "no@x.io", "buy").await["cached"], false);
    assert_eq!(partner.calls_for("no@x.io"), 2);
    let (status, _) = server
        .admin("DELETE", &format!("/v1/partners/{pid}/validation"), None)
        .await;
    assert_eq!(status, 204);
    let verdict = validate(&server, &pid, "no@x.io", "buy").await;
    assert_eq!(
        (verdict["allowed"].as_bool(), verdict["cached"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(partner.calls_for("no@x.io"), 2);
}

async fn bad_configurations_are_refused_and_change_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (pid, _) = server.partner().await;
    let path = format!("/v1/partners/{pid}/validation");
    let url = "http://127.0.0.1:9/check";
    let none = json!({"type": "none"});
    for body in [
        json!({"url": "ftp://127.0.0.1/check", "auth": none}),
        json!({"url": "not a url", "auth": none}),
        json!({"url": "http://10.1.2.3/check", "auth": none}),
        json!({"url": url}),
        json!({"url": url, "auth": {"type": "kerberos"}}),
        json!({"url": url, "auth": {"type": "bearer"}}),
        json!({"url": url, "auth": {"type": "bearer", "token": ""}}),
        json!({"url": url, "auth": {"type": "basic", "username": "u"}}),
        json!({"url": url, "auth": {"type": "header", "name": "Bad Name", "value": "v"}}),
        json!({"url": url, "auth": {"type": "header", "name": "Content-Type", "value": "v"}}),
        json!({"url": url, "auth": {"type": "hmac", "secret": "short"}}),
        json!({"url": url, "auth": {"type": "oauth2", "tokenUrl": "http://169.254.169.254/token", "clientId": "c", "clientSecret": "s"}}),
        json!({"url": url, "auth": {"type": "oauth2", "tokenUrl": "file:///etc/passwd", "clientId": "c", "clientSecret": "s"}}),
        json!({"url": url, "auth": {"type": "oauth2", "tokenUrl": url, "clientId": "c"}}),
        json!({"url": url, "auth": none, "timeoutMs": 50}),
        json!({"url": url, "auth": none, "timeoutMs": 60000}),
        json!({"url": url, "auth": none, "timeoutMs": "3s"}),
        json!({"url": url, "auth": none, "cacheTtlSeconds": -1}),
        json!({"url": url, "auth": none, "cacheTtlSeconds": 3601}),
        json!({"url": url, "auth": none, "onError": "maybe"}),
        json!({"url": url, "auth": none, "extra": true}),
    ] {
        let (status, problem) = server.admin("PUT", &path, Some(body.clone())).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (422, Some("invalid_input")),
            "{body}: {problem}"
        );
    }
    let (status, problem) = server.admin("GET", &path, None).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (404, Some("not_found")),
        "nothing was written"
    );

    let good = json!({"url": url, "auth": none, "timeoutMs": 100, "cacheTtlSeconds": 3600, "onError": "allow"});
    let shown = configure(&server, &pid, good).await;
    assert_eq!(shown["timeoutMs"], 100);
    let (status, _) = server
        .admin("PUT", &path, Some(json!({"url": "http://10.0.0.1/x", "auth": none})))
        .await;
    assert_eq!(status, 422);
    let (_, kept) = server.admin("GET", &path, None).await;
    assert_eq!(kept, shown, "a refused PUT leaves the configuration as it was");
    assert_eq!(kept["onError"], "allow");
    assert_eq!(kept["cacheTtlSeconds"], 3600);
}

async fn configurations_are_redacted_and_private_to_their_partner(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (pid, key) = server.partner().await;
    let (other_pid, other_key) = server.partner().await;
    let path = format!("/v1/partners/{pid}/validation");
    let body = json!({"url": "http://127.0.0.1:9/check", "auth": {"type": "oauth2",
        "tokenUrl": "http://127.0.0.1:9/token", "clientId": "client-9", "clientSecret": "very-SECRET-value", "scope": "a b"}});
    let (status, shown) = server.call("PUT", &path, Some(&key), Some(body)).await;
    assert_eq!(status, 200, "the partner configures its own: {shown}");
    let (status, got) = server.call("GET", &path, Some(&key), None).await;
    assert_eq!(status, 200);
    assert_eq!(got, shown);
    assert_eq!(got["timeoutMs"], 3000);
    assert_eq!(got["onError"], "deny");
    assert_eq!(got["cacheTtlSeconds"], 0);
    assert_eq!(
        got["auth"],
        json!({"type": "oauth2", "tokenUrl": "http://127.0.0.1:9/token", "clientId": "client-9", "clientSecret": "***", "scope": "a b"})
    );
    for (auth, hidden) in [
        (json!({"type": "bearer", "token": "very-SECRET-value"}), "token"),
        (
            json!({"type": "basic", "username": "u", "password": "very-SECRET-value"}),
            "password",
        ),
        (
            json!({"type": "header", "name": "X-Key", "value": "very-SECRET-value"}),
            "value",
        ),
        (json!({"type": "hmac", "secret": "very-SECRET-value"}), "secret"),
    ] {
        let (status, shown) = server
            .call(
                "PUT",
                &path,
                Some(&key),
                Some(json!({"url": "http://127.0.0.1:9/check", "auth": auth})),
            )
            .await;
        assert_eq!(status, 200);
        let (_, got) = server.call("GET", &path, Some(&key), None).await;
        for view in [&shown, &got] {
            assert_eq!(view["auth"][hidden], "***", "{view}");
            assert!(!view.to_string().contains("SECRET"), "{view}");
        }
    }

    for (method, route, body) in [
        ("GET", path.clone(), None),
        ("DELETE", path.clone(), None),
        (
            "PUT",
            path.clone(),
            Some(json!({"url": "http://127.0.0.1:9/x", "auth": {"type": "none"}})),
        ),
        (
            "POST",
            format!("/v1/partners/{pid}/validate"),
            Some(json!({"email": "a@b.co", "action": "buy"})),
        ),
    ] {
        let (status, problem) = server.call(method, &route, Some(&other_key), body).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (404, Some("not_found")),
            "{method} {route}"
        );
    }
    let (status, _) = server
        .call(
            "GET",
            &format!("/v1/partners/{other_pid}/validation"),
            Some(&other_key),
            None,
        )
        .await;
    assert_eq!(status, 404, "the other partner has none");
    let (_, still) = server.call("GET", &path, Some(&key), None).await;
    assert_eq!(still["auth"]["type"], "hmac", "the other key changed nothing");

    let (status, problem) = server
        .call(
            "POST",
            &format!("/v1/partners/{pid}/validate"),
            Some(&key),
            Some(json!({"email": "a@b.co", "action": "withdraw"})),
        )
        .await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("invalid_input")));

    let (status, _) = server.call("DELETE", &path, Some(&key), None).await;
    assert_eq!(status, 204);
    let (status, _) = server.call("DELETE", &path, Some(&key), None).await;
    assert_eq!(status, 404);
    let verdict = validate(&server, &pid, "a@b.co", "private_info").await;
    assert_eq!(
        (verdict["allowed"].as_bool(), verdict["outcome"].as_str()),
        (Some(true), Some("allowed"))
    );
}
