//! Secrets stay secret: after a full flow — endpoints with given and
//! generated secrets, a validation callback of every auth type, orders,
//! webhooks, the partner's API key and the admin token in use — neither the
//! raw database (SQLite file and WAL, or PostgreSQL rows) nor the debug log
//! holds any of them; and `ramphook rekey` moves them to a new key.

use std::time::Duration;

use serde_json::json;

use crate::common::{run_ramphook, wait_until, Backend, Receiver, TestServer, ADMIN, MASTER_KEY};

on_both_backends!(no_secret_is_stored_or_logged_in_clear);

/// Everything a backend holds, as text: the SQLite file and its WAL, or the
/// rows of every table on PostgreSQL.
async fn raw_database(server: &TestServer, backend: Backend) -> String {
    match backend {
        Backend::Sqlite => {
            let mut text = String::new();
            for suffix in ["", "-wal"] {
                let path = format!("{}{suffix}", server.db_path().display());
                if let Ok(bytes) = std::fs::read(&path) {
                    text.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
            assert!(text.contains("endpoints"), "the database file was read");
            text
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&server.database_url()).await.unwrap();
            let mut text = String::new();
            for table in [
                "partners",
                "endpoints",
                "validation_configs",
                "orders",
                "events",
                "deliveries",
                "attempts",
                "idempotency",
            ] {
                let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT CAST(t AS TEXT) FROM {table} t"))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
                text.push_str(&rows.join("\n"));
            }
            conn.close().await.unwrap();
            text
        }
    }
}

async fn no_secret_is_stored_or_logged_in_clear(backend: Backend) {
    let server = TestServer::start_with(backend, &[("RAMPHOOK_LOG", "debug,hyper=info,h2=info,rustls=info")]).await;
    let receiver = Receiver::ok().await;
    const ENDPOINT_SECRET: &str = "endpoint-SECRET-given-0001";
    let mut secrets: Vec<String> = vec![ADMIN.into(), ENDPOINT_SECRET.into()];

    // A partner per auth type, each with its own credentials in use.
    let auths = [
        json!({"type": "bearer", "token": "bearer-SECRET-tok-1234"}),
        json!({"type": "basic", "username": "ramp-user", "password": "basic-SECRET-pass-1234"}),
        json!({"type": "header", "name": "X-Partner-Key", "value": "header-SECRET-key-1234"}),
        json!({"type": "hmac", "secret": "hmac-SECRET-0123456789"}),
        json!({"type": "oauth2", "tokenUrl": format!("http://{}/token", receiver.addr),
               "clientId": "client-7", "clientSecret": "oauth-SECRET-client-1234"}),
    ];
    secrets.extend(
        [
            "bearer-SECRET-tok-1234",
            "basic-SECRET-pass-1234",
            "header-SECRET-key-1234",
            "hmac-SECRET-0123456789",
            "oauth-SECRET-client-1234",
        ]
        .map(String::from),
    );
    let mut partners = Vec::new();
    for auth in &auths {
        let (pid, api_key) = server.partner().await;
        secrets.push(api_key.clone());
        let (status, body) = server
            .call(
                "PUT",
                &format!("/v1/partners/{pid}/validation"),
                Some(&api_key),
                Some(json!({"url": receiver.url(), "auth": auth, "onError": "allow"})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        // The partner uses its key; the callback is called with the credentials.
        let (status, verdict) = server
            .call(
                "POST",
                &format!("/v1/partners/{pid}/validate"),
                Some(&api_key),
                Some(json!({"email": "alice@example.com", "action": "buy"})),
            )
            .await;
        assert_eq!(status, 200, "{verdict}");
        let (status, generated) = server
            .call(
                "POST",
                &format!("/v1/partners/{pid}/endpoints"),
                Some(&api_key),
                Some(json!({"url": receiver.url()})),
            )
            .await;
        assert_eq!(status, 201, "{generated}");
        secrets.push(generated["secret"].as_str().unwrap().to_owned());
        server.endpoint(&pid, &receiver.url(), ENDPOINT_SECRET).await;
        partners.push(pid);
    }
    // Orders and webhooks flow: the sealed secrets open where they are used.
    for pid in &partners {
        let order = server.order(pid, "on_ramp").await;
        server.event(&order, "payment_received").await;
    }
    let webhooks = || {
        receiver
            .received()
            .into_iter()
            .filter(|h| h.body.contains("\"eventName\""))
            .collect::<Vec<_>>()
    };
    wait_until(Duration::from_secs(15), "every webhook", || async {
        webhooks().len() == 2 * partners.len()
    })
    .await;
    let signed_with_given = webhooks()
        .iter()
        .filter(|h| ramphook_signature::verify_body(ENDPOINT_SECRET.as_bytes(), h.body.as_bytes()).is_ok())
        .count();
    assert_eq!(
        signed_with_given,
        partners.len(),
        "webhooks are signed with the given secret"
    );

    let stored = raw_database(&server, backend).await;
    assert!(stored.contains("v1:"), "sealed values are there");
    for secret in &secrets {
        assert!(
            !stored.contains(secret.as_str()),
            "the database holds {secret} in clear"
        );
    }
    assert!(!stored.contains("SECRET"), "no credential in clear");

    let log = server.log();
    assert!(
        log.contains("DEBUG") || log.contains("debug"),
        "the debug log was written:\n{log}"
    );
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "the log holds {secret}:\n{log}");
    }
    assert!(!log.contains("SECRET"), "the log holds a credential:\n{log}");
}

/// `ramphook rekey` re-seals everything under the new key: the server then
/// starts with the new key (and delivers, signed with the same secret), and
/// no longer with the old one.
#[tokio::test]
async fn rekey_moves_every_secret_to_the_new_key() {
    const OLD: &str = MASTER_KEY;
    const NEW: &str = "HxwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgEAAAA=";
    let mut server = TestServer::start_with(Backend::Sqlite, &[("RAMPHOOK_MASTER_KEY", OLD)]).await;
    let receiver = Receiver::ok().await;
    let (pid, _) = server.partner().await;
    server
        .endpoint(&pid, &receiver.url(), "a-partner-defined-secret-0001")
        .await;
    let (status, body) = server
        .admin(
            "PUT",
            &format!("/v1/partners/{pid}/validation"),
            Some(json!({"url": receiver.url(), "onError": "allow", "auth": {"type": "hmac", "secret": "hmac-secret-0123456789"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    server.kill().await;
    let db = server.database_url();

    let wrong = run_ramphook(
        &["rekey", "--database-url", &db, "--old-key", NEW, "--new-key", OLD],
        b"",
    )
    .await;
    assert_eq!(wrong.status.code(), Some(1), "a wrong old key changes nothing");
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("nothing was changed"));

    let key_file = server.dir.path().join("new.key");
    std::fs::write(&key_file, format!("{NEW}\n")).unwrap();
    let out = run_ramphook(
        &[
            "rekey",
            "--database-url",
            &db,
            "--old-key",
            OLD,
            "--new-key-file",
            key_file.to_str().unwrap(),
        ],
        b"",
    )
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("re-sealed 2 secrets"),
        "{out:?}"
    );

    // The old key no longer opens them: start-up refuses with one line.
    let refused = run_ramphook(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &db,
            "--master-key",
            OLD,
        ],
        b"",
    )
    .await;
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("master key"), "{stderr}");
    assert!(!stderr.contains(OLD), "{stderr}");

    server.restart_with(&[("RAMPHOOK_MASTER_KEY", NEW)]).await;
    let order = server.order(&pid, "on_ramp").await;
    server.event(&order, "payment_received").await;
    let hooks = receiver.wait_for(1, Duration::from_secs(10)).await;
    let hook = hooks.iter().find(|h| !h.body.contains("\"email\"")).cloned();
    let hook = match hook {
        Some(h) => h,
        None => receiver
            .wait_for(hooks.len() + 1, Duration::from_secs(10))
            .await
            .pop()
            .unwrap(),
    };
    ramphook_signature::verify_body(b"a-partner-defined-secret-0001", hook.body.as_bytes())
        .expect("signed with the same secret after the rekey");
}
