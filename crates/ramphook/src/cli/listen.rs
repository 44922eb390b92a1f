//! `ramphook listen`: a stand-in for a partner's servers on their laptop. It
//! prints every webhook with both signatures checked, and answers validation
//! callbacks at `POST /validate` from `--allow` / `--deny` lists; every other
//! POST path is taken as a webhook.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use clap::Args;
use ramphook_signature::{decode_secret, WebhookHeaders};
use serde_json::json;

use super::access::{parse_request, AccessList};
use super::args::{parse_tolerance, Tolerance};
use super::report::{describe_auth, render_validation, Check, WebhookReport};

#[derive(Debug, Clone, Args)]
pub struct ListenArgs {
    /// Port on 127.0.0.1 (0 picks a free one; the address is printed).
    #[arg(long, default_value_t = 9000)]
    pub port: u16,

    /// Full address to listen on instead, e.g. 0.0.0.0:9000.
    #[arg(long, conflicts_with = "port")]
    pub listen: Option<SocketAddr>,

    /// The endpoint secret (as ramphook showed it, or whsec_<base64>) to
    /// check signatures with; without it nothing is checked.
    #[arg(long, env = "RAMPHOOK_WEBHOOK_SECRET", hide_env_values = true)]
    pub secret: Option<String>,

    /// Answer 400 to a webhook whose signature fails (so ramphook records a
    /// failure and retries) and 401 to a validation callback whose hmac fails;
    /// without it every webhook gets 200.
    #[arg(long)]
    pub strict: bool,

    /// Emails the validation callback allows (repeatable or comma-separated;
    /// "@example.com" means the whole domain). Without --allow: everyone not denied.
    #[arg(long, value_delimiter = ',', value_name = "EMAIL")]
    pub allow: Vec<String>,

    /// Emails the validation callback denies; deny wins over allow.
    #[arg(long, value_delimiter = ',', value_name = "EMAIL")]
    pub deny: Vec<String>,

    /// How far webhook-timestamp may be from now, e.g. 5m, or "off".
    #[arg(long, default_value = "5m", value_parser = parse_tolerance)]
    pub tolerance: Tolerance,
}

struct Listener {
    secret: Option<Vec<u8>>,
    strict: bool,
    access: AccessList,
    tolerance: Tolerance,
}

/// Listens until Ctrl-C or SIGTERM.
pub async fn run(args: ListenArgs) -> Result<(), String> {
    let address = args
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], args.port)));
    let socket = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    let address = socket.local_addr().map_err(|e| e.to_string())?;
    let listener = Arc::new(Listener {
        secret: args.secret.as_deref().map(decode_secret),
        strict: args.strict,
        access: AccessList::new(&args.allow, &args.deny),
        tolerance: args.tolerance,
    });
    emit(&format!(
        "listening on http://{address}\n  webhooks: POST any path, e.g. http://{address}/webhooks ({})\n  validation callbacks: POST http://{address}/validate ({})",
        match (&listener.secret, listener.strict) {
            (None, _) => "signatures not checked: no --secret",
            (Some(_), false) => "signatures checked, always answered 200",
            (Some(_), true) => "signatures checked, 400 when one fails",
        },
        listener.access.describe()
    ));
    let app = Router::new()
        .route("/validate", post(validate))
        .fallback(webhook)
        .with_state(listener);
    let shutdown = crate::shutdown::on_signal();
    axum::serve(socket, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(|e| format!("server error: {e}"))
}

/// Prints one block at once, so concurrent requests never interleave lines.
fn emit(block: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{block}");
    let _ = out.flush();
}

fn pairs(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.to_str().unwrap_or("")))
}

async fn webhook(
    State(listener): State<Arc<Listener>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        return (StatusCode::METHOD_NOT_ALLOWED, "ramphook listen takes POST\n").into_response();
    }
    let now = chrono::Utc::now().timestamp();
    let report = WebhookReport::check(
        uri.path(),
        listener.secret.as_deref(),
        WebhookHeaders::from_pairs(pairs(&headers)),
        &body,
        now,
        listener.tolerance.seconds(),
    );
    let status = if listener.strict && report.failed() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    emit(&report.render(now, status.as_u16()));
    (
        status,
        if status.is_success() {
            "ok\n"
        } else {
            "signature check failed\n"
        },
    )
        .into_response()
}

async fn validate(State(listener): State<Arc<Listener>>, headers: HeaderMap, body: Bytes) -> Response {
    let signed = WebhookHeaders::from_pairs(pairs(&headers));
    let hmac = signed.signature.is_some().then(|| match &listener.secret {
        None => Check::Skipped,
        Some(secret) => match signed.verify(
            secret,
            &body,
            chrono::Utc::now().timestamp(),
            listener.tolerance.seconds(),
        ) {
            Ok(_) => Check::Passed,
            Err(e) => Check::Failed(e.to_string()),
        },
    });
    let hmac_failed = matches!(hmac, Some(Check::Failed(_)));
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
    let auth = describe_auth(authorization, hmac);
    let (status, answer, line) = match parse_request(&body) {
        Err(why) => {
            let answer = json!({ "error": why }).to_string();
            let line = render_validation(Err(&why), &auth, &answer, 400);
            (StatusCode::BAD_REQUEST, answer, line)
        }
        Ok(_) if listener.strict && hmac_failed => {
            let answer = json!({ "error": "hmac signature check failed" }).to_string();
            let line = render_validation(Err("hmac signature check failed"), &auth, &answer, 401);
            (StatusCode::UNAUTHORIZED, answer, line)
        }
        Ok(request) => {
            let answer = json!({ "allowed": listener.access.allows(&request.email) }).to_string();
            let line = render_validation(Ok((&request.email, request.action.as_str())), &auth, &answer, 200);
            (StatusCode::OK, answer, line)
        }
    };
    emit(&line);
    (status, [("content-type", "application/json")], answer).into_response()
}
