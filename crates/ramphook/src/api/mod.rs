//! The HTTP API: one file per resource, shared auth, extractors and
//! problem+json errors, and the router that ties them together.

pub mod auth;
pub mod deliveries;
pub mod endpoint_actions;
pub mod endpoints;
pub mod error;
pub mod extract;
pub mod openapi;
pub mod ops;
pub mod orders;
pub mod partners;
pub mod rate_limit;
pub mod validation;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::catch_panic::CatchPanicLayer;

use crate::delivery::dispatcher::Wakeup;
use crate::expiry::ExpiryAlarm;
use crate::net_guard::NetGuard;
use crate::store::Store;
use crate::validation::Validator;
use error::ApiError;

/// What every handler reads, behind one `Arc`: axum clones the state for
/// each request, and one reference count is cheaper than one per field.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

pub struct Services {
    pub store: Store,
    pub admin_token: Arc<str>,
    pub guard: NetGuard,
    pub deliveries: Wakeup,
    pub expiry: Arc<ExpiryAlarm>,
    pub metrics: PrometheusHandle,
    pub validator: Validator,
    pub limits: Limits,
}

/// Per-partner limits (RAMPHOOK_RATE_LIMIT, RAMPHOOK_MAX_ENDPOINTS_PER_PARTNER).
#[derive(Clone)]
pub struct Limits {
    /// `None` when rate limiting is off.
    pub rate_limiter: Option<rate_limit::RateLimiter>,
    pub max_endpoints_per_partner: u32,
}

pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let v1 = Router::new()
        .route("/partners", post(partners::create))
        .route("/partners/{pid}", get(partners::get))
        .route(
            "/partners/{pid}/endpoints",
            post(endpoints::create).get(endpoints::list),
        )
        .route(
            "/partners/{pid}/endpoints/{eid}",
            get(endpoints::get).patch(endpoints::update).delete(endpoints::delete),
        )
        .route(
            "/partners/{pid}/validation",
            put(validation::put).get(validation::get).delete(validation::delete),
        )
        .route("/partners/{pid}/validate", post(validation::validate))
        .route(
            "/partners/{pid}/endpoints/{eid}/rotate-secret",
            post(endpoint_actions::rotate_secret),
        )
        .route(
            "/partners/{pid}/endpoints/{eid}/test",
            post(endpoint_actions::send_test),
        )
        .route(
            "/partners/{pid}/endpoints/{eid}/recover",
            post(endpoint_actions::recover),
        )
        .route("/partners/{pid}/users/{email}/orders", get(orders::user_orders))
        .route("/partners/{pid}/deliveries", get(deliveries::list))
        .route("/orders", post(orders::create))
        .route("/orders/{id}", get(orders::get))
        .route("/orders/{id}/events", post(orders::append_event))
        .route("/deliveries/{did}", get(deliveries::get))
        .route("/deliveries/{did}/retry", post(deliveries::retry));
    Router::new()
        .nest("/v1", v1)
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(openapi::document))
        .route_layer(middleware::from_fn(count_requests))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(CatchPanicLayer::custom(|_| ApiError::internal().into_response()))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}

/// `ramphook_api_requests_total{route,method,status}` and request latency.
async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("ramphook_api_request_duration_seconds", "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("ramphook_api_requests_total", "route" => route, "method" => method, "status" => status)
        .increment(1);
    response
}
