//! The partner's side of the bench: a minimal HTTP/1.1 server (hyper 1
//! directly, no framework) on 127.0.0.1 that answers `204` at once and stamps
//! each webhook's arrival — or, on `/slow` and `/hang`, answers late or never,
//! to play the unhealthy neighbour; on `/validate` it is a partner's
//! validation callback answering `{"allowed": true}` at once. It must never be the bottleneck:
//! `--scenario receiver-ceiling` measures how far it goes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::Tracker;
use crate::partner_time::PartnerTimes;

/// What every path does, switchable while running (the backlog scenario
/// starts with a partner that hangs, then brings it back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// `/slow*` answers after `slow_delay`, `/hang*` never; the rest 204 at once.
    Normal = 0,
    /// Every request is held open and never answered.
    HangAll = 1,
}

/// How the unhealthy paths behave.
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    pub slow_delay: Duration,
    /// Upper bound on how long `/hang` holds a request (loops are bounded).
    pub hang_limit: Duration,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            slow_delay: Duration::from_secs(2),
            hang_limit: Duration::from_secs(600),
        }
    }
}

struct State {
    /// `None`: count arrivals only (the backlog has no 201 to pair with).
    tracker: Option<Arc<Tracker>>,
    /// Where `/validate` notes its answer time per email (validation scenario).
    partner_times: Option<Arc<PartnerTimes>>,
    mode: AtomicU8,
    behaviour: Behaviour,
    started: Instant,
    healthy: AtomicU64,
    slow: AtomicU64,
    hung: AtomicU64,
    /// Microseconds after `started` of the first/last healthy arrival (+1; 0 = none).
    first_micros: AtomicU64,
    last_micros: AtomicU64,
    stop: watch::Receiver<bool>,
}

/// Counts of what arrived, by kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub healthy: u64,
    pub slow: u64,
    pub hung: u64,
}

pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<State>,
    stop: watch::Sender<bool>,
}

impl Receiver {
    /// Listens on `bind` (use port 0 for any free port).
    pub async fn start(bind: SocketAddr, tracker: Option<Arc<Tracker>>, behaviour: Behaviour) -> Result<Self, String> {
        Self::start_with(bind, tracker, None, behaviour).await
    }

    /// As `start`, with `/validate` noting its answer times in `partner_times`.
    pub async fn start_with(
        bind: SocketAddr,
        tracker: Option<Arc<Tracker>>,
        partner_times: Option<Arc<PartnerTimes>>,
        behaviour: Behaviour,
    ) -> Result<Self, String> {
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|e| format!("receiver cannot listen on {bind}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let state = Arc::new(State {
            tracker,
            partner_times,
            mode: AtomicU8::new(Mode::Normal as u8),
            behaviour,
            started: Instant::now(),
            healthy: AtomicU64::new(0),
            slow: AtomicU64::new(0),
            hung: AtomicU64::new(0),
            first_micros: AtomicU64::new(0),
            last_micros: AtomicU64::new(0),
            stop: stop_rx.clone(),
        });
        tokio::spawn(accept_loop(listener, state.clone(), stop_rx));
        Ok(Self {
            addr,
            state,
            stop: stop_tx,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.mode.store(mode as u8, Ordering::SeqCst);
    }

    pub fn counts(&self) -> Counts {
        Counts {
            healthy: self.state.healthy.load(Ordering::Relaxed),
            slow: self.state.slow.load(Ordering::Relaxed),
            hung: self.state.hung.load(Ordering::Relaxed),
        }
    }

    /// When the first and the last healthy webhook arrived.
    pub fn arrival_window(&self) -> Option<(Instant, Instant)> {
        let first = self.state.first_micros.load(Ordering::Relaxed);
        let last = self.state.last_micros.load(Ordering::Relaxed);
        (first > 0 && last > 0).then(|| {
            (
                self.state.started + Duration::from_micros(first - 1),
                self.state.started + Duration::from_micros(last - 1),
            )
        })
    }

    /// Stops accepting and releases every held request.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(state.clone(), request));
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            _ = stop.changed() => return,
        }
    }
}

const ALLOWED: &[u8] = br#"{"allowed":true}"#;

async fn handle(state: Arc<State>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let arrived = Instant::now();
    let kind = Kind::of(request.uri().path(), state.mode.load(Ordering::SeqCst));
    if kind == Kind::Validate {
        return Ok(validate(&state, request, arrived).await);
    }
    let event_id = request
        .headers()
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Read the (small) body so the connection stays reusable.
    let _ = request.into_body().collect().await;
    match kind {
        Kind::Healthy => {
            let micros = arrived.duration_since(state.started).as_micros() as u64 + 1;
            let _ = state
                .first_micros
                .compare_exchange(0, micros, Ordering::Relaxed, Ordering::Relaxed);
            state.last_micros.fetch_max(micros, Ordering::Relaxed);
            state.healthy.fetch_add(1, Ordering::Relaxed);
            if let (Some(tracker), Some(id)) = (&state.tracker, &event_id) {
                tracker.arrived(id, arrived);
            }
        }
        Kind::Slow => {
            state.slow.fetch_add(1, Ordering::Relaxed);
            hold(&state, state.behaviour.slow_delay).await;
        }
        Kind::Hang => {
            state.hung.fetch_add(1, Ordering::Relaxed);
            hold(&state, state.behaviour.hang_limit).await;
        }
        // Answered above, before the webhook bookkeeping.
        Kind::Validate => {}
    }
    let mut response = Response::new(Full::default());
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

/// A validation callback: reads `{"email", "action"}`, answers allowed, and
/// notes the time from arrival to the answer under the email.
async fn validate(state: &State, request: Request<Incoming>, arrived: Instant) -> Response<Full<Bytes>> {
    state.healthy.fetch_add(1, Ordering::Relaxed);
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let email = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["email"].as_str().map(str::to_owned));
    let mut response = Response::new(Full::new(Bytes::from_static(ALLOWED)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    let micros = arrived.elapsed().as_micros() as u64;
    if let (Some(times), Some(email)) = (&state.partner_times, email) {
        times.answered(&email, micros);
    }
    response
}

/// Waits `delay`, or less if the receiver stops.
async fn hold(state: &State, delay: Duration) {
    let mut stop = state.stop.clone();
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = stop.wait_for(|stopped| *stopped) => {}
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Validate,
    Healthy,
    Slow,
    Hang,
}

impl Kind {
    fn of(path: &str, mode: u8) -> Self {
        if mode == Mode::HangAll as u8 || path.starts_with("/hang") {
            Kind::Hang
        } else if path.starts_with("/validate") {
            Kind::Validate
        } else if path.starts_with("/slow") {
            Kind::Slow
        } else {
            Kind::Healthy
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_pick_the_behaviour() {
        assert_eq!(Kind::of("/ok/3", Mode::Normal as u8), Kind::Healthy);
        assert_eq!(Kind::of("/slow", Mode::Normal as u8), Kind::Slow);
        assert_eq!(Kind::of("/hang", Mode::Normal as u8), Kind::Hang);
        assert_eq!(Kind::of("/validate", Mode::Normal as u8), Kind::Validate);
        assert_eq!(Kind::of("/ok/3", Mode::HangAll as u8), Kind::Hang);
    }
}
