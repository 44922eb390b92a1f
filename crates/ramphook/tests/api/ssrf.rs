//! The SSRF guard against hostile URLs: refused when an endpoint, a
//! validation callback or an oauth2 token URL is configured (422, nothing
//! written), refused by the guard the HTTP clients connect through, and
//! refused at delivery / call time when the addresses allowed before are
//! no longer allowed.

use std::str::FromStr;
use std::time::Duration;

use ramphook::net_guard::{GuardError, NetGuard};
use serde_json::{json, Value};

use crate::common::{wait_until, Backend, Receiver, TestServer};

on_both_backends!(
    hostile_urls_are_refused_at_configuration_and_nothing_is_written,
    addresses_allowed_before_are_refused_at_delivery_and_call_time,
);

/// URLs an attacker controlling a partner account might try. Each one names
/// an internal address in some disguise, or is not an http(s) URL at all.
const HOSTILE: &[&str] = &[
    "http://127.0.0.1/",
    "http://2130706433/",   // decimal 127.0.0.1
    "http://0177.0.0.1/",   // octal
    "http://017700000001/", // octal, one number
    "http://0x7f000001/",   // hex
    "http://0x7f.0.0.1/",   // hex part
    "http://127.1/",        // short form
    "http://0/",            // 0.0.0.0
    "http://0.0.0.0:8080/",
    "http://[::]/",
    "http://[::1]:8080/hook",
    "http://[::ffff:127.0.0.1]/",               // IPv4-mapped
    "http://[::ffff:7f00:1]/",                  // IPv4-mapped, hex
    "http://[::127.0.0.1]/",                    // IPv4-compatible
    "http://[64:ff9b::7f00:1]/",                // NAT64 of 127.0.0.1
    "http://[2002:a9fe:a9fe::1]/",              // 6to4 of 169.254.169.254
    "http://169.254.169.254/latest/meta-data/", // cloud metadata
    "http://[::ffff:169.254.169.254]/",
    "http://[fd00:ec2::254]/", // AWS IPv6 metadata (unique local)
    "http://100.100.100.200/", // Alibaba metadata (carrier-grade NAT)
    "http://[fd00::1]/",
    "http://[fe80::1]/",
    "http://[fe80::1%25eth0]/", // IPv6 zone id
    "http://[ff02::1]/",        // multicast
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://localhost/",
    "http://localhost./", // trailing dot
    "http://LOCALHOST:9000/",
    "http://api.localhost/",          // RFC 6761: *.localhost is loopback
    "http://evil.example@127.0.0.1/", // userinfo trick
    "http://127.0.0.1#@evil.example/",
    "HTTP://127.0.0.1/", // uppercase scheme
    "hTtPs://[::1]/",
    "ftp://example.com/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:25/",
    "not a url",
];

/// The guard as the outbound client uses it (webhooks, validation
/// callbacks, oauth2 token requests): the stored URL
/// (normalised by `url` when it was configured) as an URI, IP literals
/// through `refused_literal_host`, every name through the connector's
/// resolver (`GuardedDns`).
#[tokio::test]
async fn the_guard_the_client_connects_through_refuses_every_hostile_url() {
    use tower::Service;
    let guard = NetGuard::default();
    let mut resolver = guard.hyper_resolver();
    let mut checked = 0;
    for text in HOSTILE {
        let Ok(url) = url::Url::parse(text) else {
            continue; // not a URL: never stored, never requested
        };
        if !matches!(url.scheme(), "http" | "https") {
            continue; // refused before any request (see the test below)
        }
        let Ok(uri) = url.as_str().parse::<axum::http::Uri>() else {
            continue; // no URI: the client refuses it before any request
        };
        let host = uri.host().expect("an http URL has a host");
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>();
        if literal.is_ok() {
            // The connector never resolves a literal: this check alone stands.
            assert!(guard.refused_literal_host(host).is_some(), "{text}: literal permitted");
        } else {
            assert!(
                guard.refused_literal_host(host).is_none(),
                "{text}: a name taken for a literal"
            );
            let name = hyper_util::client::legacy::connect::dns::Name::from_str(host).unwrap();
            match resolver.call(name).await {
                Ok(addrs) => panic!("{text}: the resolver let {:?} through", addrs.collect::<Vec<_>>()),
                Err(e) => assert!(matches!(e, GuardError::Refused(_)), "{text}: {e}"),
            }
        }
        checked += 1;
    }
    assert!(checked > 30, "only {checked} hostile URLs reached the checks");
    // Every name /etc/hosts maps to an internal address is refused too.
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let mut names = 0;
    for line in hosts.lines().map(|l| l.split('#').next().unwrap()) {
        let mut words = line.split_whitespace();
        let Some(Ok(ip)) = words.next().map(str::parse::<std::net::IpAddr>) else {
            continue;
        };
        if guard.permits(ip) {
            continue;
        }
        for name in words {
            let parsed = hyper_util::client::legacy::connect::dns::Name::from_str(name).unwrap();
            assert!(resolver.call(parsed).await.is_err(), "{name} ({ip}) resolved");
            names += 1;
        }
    }
    assert!(names > 0, "/etc/hosts names localhost at least");
    // And a public address passes, so the checks above can fail.
    assert!(guard.refused_literal_host("93.184.216.34").is_none());
}

async fn hostile_urls_are_refused_at_configuration_and_nothing_is_written(backend: Backend) {
    // No RAMPHOOK_ALLOW_CIDRS: the default of a real deployment.
    let server = TestServer::start_with(backend, &[("RAMPHOOK_ALLOW_CIDRS", "")]).await;
    let (pid, _) = server.partner().await;
    for url in HOSTILE {
        let (status, body) = server
            .admin(
                "POST",
                &format!("/v1/partners/{pid}/endpoints"),
                Some(json!({"url": url, "secret": "a-partner-defined-secret-0001"})),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (422, Some("invalid_input")),
            "endpoint {url}: {body}"
        );

        let (status, body) = server
            .admin(
                "PUT",
                &format!("/v1/partners/{pid}/validation"),
                Some(json!({"url": url, "auth": {"type": "none"}})),
            )
            .await;
        assert_eq!(status, 422, "validation url {url}: {body}");

        let (status, body) = server
            .admin(
                "PUT",
                &format!("/v1/partners/{pid}/validation"),
                Some(json!({"url": "https://93.184.216.34/validate", "auth": {
                    "type": "oauth2", "tokenUrl": url, "clientId": "c", "clientSecret": "client-secret-0123"}})),
            )
            .await;
        assert_eq!(status, 422, "tokenUrl {url}: {body}");
        assert!(body["detail"].as_str().unwrap().contains("tokenUrl"), "{body}");
    }
    let (_, list) = server
        .admin("GET", &format!("/v1/partners/{pid}/endpoints"), None)
        .await;
    assert_eq!(list["data"], json!([]));
    let (status, _) = server
        .admin("GET", &format!("/v1/partners/{pid}/validation"), None)
        .await;
    assert_eq!(status, 404, "no validation configuration was written");

    // The same checks let a public address through, so they can fail.
    let (status, body) = server
        .admin(
            "POST",
            &format!("/v1/partners/{pid}/endpoints"),
            Some(json!({"url": "https://93.184.216.34/hook"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

async fn attempt_errors(server: &TestServer, delivery_id: &str) -> Vec<String> {
    let (_, body) = server
        .admin("GET", &format!("/v1/deliveries/{delivery_id}"), None)
        .await;
    body["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["error"].as_str().unwrap_or("").to_owned())
        .collect()
}

async fn addresses_allowed_before_are_refused_at_delivery_and_call_time(backend: Backend) {
    // Allowed at first (as when an operator allowed a range, or a name
    // resolved to a public address when the endpoint was created)...
    let mut server = TestServer::start(backend).await;
    let receiver = Receiver::ok().await;
    let (pid, _) = server.partner().await;
    let port = receiver.addr.port();
    let by_literal = format!("http://127.0.0.1:{port}/hook");
    let by_name = format!("http://localhost:{port}/hook");
    server
        .endpoint(&pid, &by_literal, "a-partner-defined-secret-0001")
        .await;
    server.endpoint(&pid, &by_name, "a-partner-defined-secret-0002").await;
    let order = server.order(&pid, "on_ramp").await;
    server.event(&order, "payment_received").await;
    receiver.wait_for(2, Duration::from_secs(10)).await;
    // Recorded, not only arrived: the restart below is a SIGKILL, and a
    // delivery still leased would hold its order's next one back until the
    // lease ran out.
    let (server_ref, pid_ref) = (&server, &pid);
    wait_until(
        Duration::from_secs(10),
        "both deliveries to be recorded",
        || async move { server_ref.deliveries(pid_ref, "status=delivered").await.len() == 2 },
    )
    .await;

    let (other, _) = server.partner().await;
    let put = |pid: String, config: Value| {
        let server = &server;
        async move {
            let (status, body) = server
                .admin("PUT", &format!("/v1/partners/{pid}/validation"), Some(config))
                .await;
            assert_eq!(status, 200, "{body}");
        }
    };
    put(
        pid.clone(),
        json!({"url": by_name, "onError": "allow", "auth": {"type": "oauth2",
            "tokenUrl": format!("http://127.0.0.1:{port}/token"), "clientId": "c", "clientSecret": "client-secret-0123"}}),
    )
    .await;
    put(
        other.clone(),
        json!({"url": by_name, "auth": {"type": "bearer", "token": "bearer-token-0123"}}),
    )
    .await;

    // ...then no longer: every call is refused on the address it would reach.
    server.restart_with(&[("RAMPHOOK_ALLOW_CIDRS", "")]).await;
    for (partner, what) in [(&pid, "oauth2 token URL"), (&other, "validation URL")] {
        let (status, verdict) = server
            .admin(
                "POST",
                &format!("/v1/partners/{partner}/validate"),
                Some(json!({"email": "alice@example.com", "action": "buy"})),
            )
            .await;
        assert_eq!(status, 200, "{verdict}");
        assert_eq!(verdict["outcome"], "error", "{what}: {verdict}");
        assert!(
            verdict["detail"].as_str().unwrap().contains("refused_address"),
            "{what}: {verdict}"
        );
    }

    server.event(&order, "crypto_tx_sent").await;
    let (server_ref, pid_ref) = (&server, &pid);
    wait_until(Duration::from_secs(15), "both deliveries to fail", || async move {
        server_ref
            .deliveries(pid_ref, "status=failed")
            .await
            .iter()
            .filter(|d| d["eventName"] == "crypto_tx_sent")
            .count()
            == 2
    })
    .await;
    for delivery in server.deliveries(&pid, "status=failed").await {
        let errors = attempt_errors(&server, delivery["id"].as_str().unwrap()).await;
        assert!(!errors.is_empty());
        for error in errors {
            assert!(error.starts_with("refused_address"), "{delivery}: {error}");
        }
    }
    assert_eq!(
        receiver.received().len(),
        2,
        "nothing reached the receiver after the restart"
    );
}
