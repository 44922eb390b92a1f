//! The black-box harness: the real `ramphook` binary on a random port with a
//! temporary SQLite database, and real HTTP receivers on 127.0.0.1.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;

use crate::pg::PostgresDatabase;

pub const ADMIN: &str = "test-admin-token-0123456789";
/// The master key of PostgreSQL test servers (SQLite ones use a key file
/// generated beside their database).
pub const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Generates, for each named `async fn NAME(backend: Backend)`, the tests
/// `NAME::sqlite` and `NAME::postgres`: one set of tests, both backends.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
                #[tokio::test]
                async fn postgres() {
                    if let Some(backend) = $crate::common::Backend::postgres().await {
                        super::$name(backend).await
                    }
                }
            }
        )*
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// PostgreSQL if it answers; otherwise says the test was skipped (or
    /// fails, when `RAMPHOOK_REQUIRE_POSTGRES=1`, as in CI).
    pub async fn postgres() -> Option<Backend> {
        crate::pg::available().await.then_some(Backend::Postgres)
    }
}

/// Waits for `condition` to hold, checking every 20 ms, failing after `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if condition().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub struct TestServer {
    // Declared first so the process is killed before its database is dropped.
    child: Option<Child>,
    postgres: Option<PostgresDatabase>,
    /// Another instance's (or a proxy's) database URL, not owned by this server.
    shared_database: Option<String>,
    pub base: String,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl TestServer {
    /// A server that may deliver to loopback, with a fast retry schedule.
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, &[]).await
    }

    /// `env` adds to (or overrides) the defaults below; an empty value unsets.
    pub async fn start_with(backend: Backend, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut all: Vec<(String, String)> = vec![
            ("RAMPHOOK_ADMIN_TOKEN".into(), ADMIN.into()),
            ("RAMPHOOK_ALLOW_CIDRS".into(), "127.0.0.0/8,::1/128".into()),
            ("RAMPHOOK_RETRY_SCHEDULE".into(), "0s,50ms,50ms".into()),
            ("RAMPHOOK_DELIVERY_TIMEOUT".into(), "2s".into()),
            ("RAMPHOOK_THROTTLE_BACKOFF".into(), "50ms".into()),
        ];
        if backend == Backend::Postgres {
            all.push(("RAMPHOOK_MASTER_KEY".into(), MASTER_KEY.into()));
        }
        for (k, v) in env {
            all.retain(|(key, _)| key != k);
            if !v.is_empty() {
                all.push((k.to_string(), v.to_string()));
            }
        }
        let postgres = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(PostgresDatabase::create().await),
        };
        let mut server = Self {
            child: None,
            postgres,
            shared_database: None,
            base: String::new(),
            client: reqwest::Client::new(),
            dir,
            env: all,
        };
        server.launch().await;
        server
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("ramphook.db")
    }

    pub fn database_url(&self) -> String {
        match (&self.shared_database, &self.postgres) {
            (Some(url), _) => url.clone(),
            (None, Some(db)) => db.url(),
            (None, None) => format!("sqlite://{}", self.db_path().display()),
        }
    }

    /// A second `ramphook serve` on this server's database (PostgreSQL).
    pub async fn another_instance(&self) -> TestServer {
        self.on_database(self.database_url()).await
    }

    /// A server like this one (same settings) on the database at `url`.
    pub async fn on_database(&self, url: String) -> TestServer {
        let mut server = Self {
            child: None,
            postgres: None,
            shared_database: Some(url),
            base: String::new(),
            client: reqwest::Client::new(),
            dir: tempfile::tempdir().unwrap(),
            env: self.env.clone(),
        };
        server.launch().await;
        server
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Starts the binary (again) on the same database; waits for its address.
    pub async fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_ramphook"));
        command
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--database-url")
            .arg(self.database_url())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        for (k, _) in std::env::vars() {
            if k.starts_with("RAMPHOOK_") {
                command.env_remove(k);
            }
        }
        for (k, v) in &self.env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("the ramphook binary starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let address = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(addr) = line.strip_prefix("ramphook listening on ") {
                    return addr.to_owned();
                }
            }
            panic!(
                "server exited before listening; log:\n{}",
                std::fs::read_to_string(self.log_path()).unwrap_or_default()
            );
        })
        .await
        .expect("server starts within 20s");
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.base = address;
        self.child = Some(child);
    }

    /// Stops the server (SIGKILL) if it runs and starts it again on the same database
    /// with `env` changed as in `start_with`.
    pub async fn restart_with(&mut self, env: &[(&str, &str)]) {
        if self.child.is_some() {
            self.kill().await;
        }
        for (k, v) in env {
            self.env.retain(|(key, _)| key != k);
            if !v.is_empty() {
                self.env.push((k.to_string(), v.to_string()));
            }
        }
        self.launch().await;
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id().unwrap() as i32
    }

    /// SIGKILL: the process dies the next instant, nothing is flushed.
    pub async fn kill(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().await.unwrap();
        let _ = child.wait().await;
    }

    /// SIGTERM, then waits (bounded) for the process to exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let mut child = self.child.take().unwrap();
        tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("exits within 30s")
            .unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        if status >= 400 {
            assert_eq!(
                content_type.as_deref(),
                Some("application/problem+json"),
                "{status} {text}"
            );
        }
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(method, path, Some(ADMIN), body).await
    }

    /// Creates a partner; returns (id, apiKey).
    pub async fn partner(&self) -> (String, String) {
        let (status, body) = self
            .admin("POST", "/v1/partners", Some(json!({"name": "Acme Ramp"})))
            .await;
        assert_eq!(status, 201, "{body}");
        (
            body["id"].as_str().unwrap().into(),
            body["apiKey"].as_str().unwrap().into(),
        )
    }

    /// Creates an endpoint for `pid` at `url` with `secret`; returns its id.
    pub async fn endpoint(&self, pid: &str, url: &str, secret: &str) -> String {
        let (status, body) = self
            .admin(
                "POST",
                &format!("/v1/partners/{pid}/endpoints"),
                Some(json!({"url": url, "secret": secret})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().into()
    }

    pub async fn order(&self, pid: &str, direction: &str) -> String {
        let (status, body) = self
            .admin(
                "POST",
                "/v1/orders",
                Some(json!({"partnerId": pid, "email": "alice@example.com", "direction": direction})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().into()
    }

    /// Posts an event; returns the event id.
    /// Posts the event `name` to an order: its status and body, whatever they are.
    pub async fn post_event(&self, order_id: &str, name: &str) -> (u16, Value) {
        self.admin(
            "POST",
            &format!("/v1/orders/{order_id}/events"),
            Some(json!({"eventName": name})),
        )
        .await
    }

    pub async fn event(&self, order_id: &str, name: &str) -> String {
        let (status, body) = self.post_event(order_id, name).await;
        assert_eq!(status, 201, "{body}");
        body["event"]["id"].as_str().unwrap().into()
    }

    pub async fn deliveries(&self, pid: &str, query: &str) -> Vec<Value> {
        let (status, body) = self
            .admin("GET", &format!("/v1/partners/{pid}/deliveries?limit=500&{query}"), None)
            .await;
        assert_eq!(status, 200, "{body}");
        body["data"].as_array().unwrap().clone()
    }
}

/// One request as a receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
    pub fn webhook_id(&self) -> &str {
        &self.headers["webhook-id"]
    }
}

/// How a receiver answers its n-th request (0-based): status and delay.
pub type Behaviour = Arc<dyn Fn(usize, &Received) -> (u16, Duration) + Send + Sync>;

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Received>>>,
    changed: Arc<Notify>,
}

#[derive(Clone)]
struct ReceiverState {
    seen: Arc<Mutex<Vec<Received>>>,
    changed: Arc<Notify>,
    behaviour: Behaviour,
}

impl Receiver {
    /// A receiver answering 200 at once.
    pub async fn ok() -> Self {
        Self::start(Arc::new(|_, _| (200, Duration::ZERO))).await
    }

    pub async fn start(behaviour: Behaviour) -> Self {
        let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
        let changed = Arc::new(Notify::new());
        let state = ReceiverState {
            seen: seen.clone(),
            changed: changed.clone(),
            behaviour,
        };
        let app = axum::Router::new()
            .route("/{*path}", post(receive))
            .route("/", post(receive))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, seen, changed }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived (bounded by `limit`).
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.changed.notified();
            let seen = self.received();
            if seen.len() >= n {
                return seen;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "receiver got {} of {n} requests within {limit:?}",
                    self.received().len()
                );
            }
        }
    }
}

async fn receive(State(state): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> (StatusCode, &'static str) {
    let received = Received {
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let index = {
        let mut seen = state.seen.lock().unwrap();
        seen.push(received.clone());
        seen.len() - 1
    };
    state.changed.notify_waiters();
    let (status, delay) = (state.behaviour)(index, &received);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    (StatusCode::from_u16(status).unwrap(), "received")
}

/// Runs `ramphook ARGS` to completion with `stdin` fed in; a run that does not
/// end within 10 s is killed and fails the test.
pub async fn run_ramphook(args: &[&str], stdin: &[u8]) -> std::process::Output {
    use tokio::io::AsyncWriteExt;
    let mut command = Command::new(env!("CARGO_BIN_EXE_ramphook"));
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("RAMPHOOK_")) {
        command.env_remove(k);
    }
    let mut child = command.spawn().expect("the ramphook binary starts");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).await.unwrap();
    drop(input);
    tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("ramphook {args:?} did not exit within 10s"))
        .unwrap()
}

/// A webhook really sent by a real `ramphook serve`, as a receiver got it,
/// for an endpoint with `secret`. The server is returned to keep it alive.
pub async fn real_webhook(secret: &str, event: &str) -> (TestServer, Received) {
    let server = TestServer::start(Backend::Sqlite).await;
    let receiver = Receiver::ok().await;
    let (pid, _) = server.partner().await;
    server.endpoint(&pid, &receiver.url(), secret).await;
    let order = server.order(&pid, "on_ramp").await;
    server.event(&order, event).await;
    let hook = receiver.wait_for(1, Duration::from_secs(10)).await.remove(0);
    (server, hook)
}
