//! The conformance harness: a fresh database per test on either backend, the
//! `on_both_backends!` macro, and fixtures that build partners, endpoints,
//! orders and events through the store's own API (no SQL behind its back).

use ramphook::domain::ids::new_id;
use ramphook::domain::order::{Direction, EventName};
use ramphook::domain::time::now_ms;
use ramphook::store::{
    AppendOutcome, AttemptResult, ClaimedDelivery, DeliveryFilter, DeliveryRow, EndpointPatch, EventRow, NewEndpoint,
    NewOrder, PoolSettings, Replayable, Store,
};

use crate::pg::PostgresDatabase;

/// Generates, for each named `async fn NAME(db: Db)`, the tests
/// `NAME::sqlite` and `NAME::postgres`: one set of tests, both backends.
/// Multi-threaded, so that concurrent tasks really run at once.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    super::$name($crate::harness::Db::sqlite()).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    if let Some(db) = $crate::harness::Db::postgres().await {
                        super::$name(db).await
                    }
                }
            }
        )*
    };
}

/// One test's database: a SQLite file in a temporary directory, or a
/// PostgreSQL database of its own; removed when this value is dropped.
pub struct Db {
    url: String,
    _dir: Option<tempfile::TempDir>,
    _postgres: Option<PostgresDatabase>,
}

impl Db {
    pub fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        Db {
            url: format!("sqlite://{}", dir.path().join("ramphook.db").display()),
            _dir: Some(dir),
            _postgres: None,
        }
    }

    pub async fn postgres() -> Option<Db> {
        if !crate::pg::available().await {
            return None;
        }
        let database = PostgresDatabase::create().await;
        Some(Db {
            url: database.url(),
            _dir: None,
            _postgres: Some(database),
        })
    }

    pub fn is_postgres(&self) -> bool {
        self._postgres.is_some()
    }

    /// The database's URL, for a test that must look at it from outside
    /// the store (PostgreSQL's statistics views).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A `Store` on this database (migrated on first open). Several may be
    /// open at once on PostgreSQL, like several `ramphook serve` instances.
    pub async fn open(&self) -> Store {
        // One fixed master key: every Store on a database must share it.
        let key = ramphook::secrets::MasterKey::from_base64("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=").unwrap();
        Store::open(&self.url, PoolSettings::default(), ramphook::secrets::Sealer::new(&key))
            .await
            .unwrap()
    }

    /// The stores concurrent tasks use: two instances on PostgreSQL, one
    /// (shared) on SQLite, whose file belongs to one process.
    pub async fn instances(&self) -> Vec<Store> {
        let first = self.open().await;
        if self.is_postgres() {
            vec![first, self.open().await]
        } else {
            vec![first]
        }
    }
}

pub const HOUR_MS: i64 = 3_600_000;
pub const LONG_LEASE_MS: i64 = 60_000;

/// The `Fresh` value of a write that was not expected to be a replay.
pub fn fresh<T>(result: Replayable<T>) -> T {
    match result {
        Replayable::Fresh(value) => value,
        Replayable::Replay { status, body } => panic!("unexpected replay: {status} {body}"),
        Replayable::KeyReused => panic!("unexpected KeyReused"),
    }
}

pub async fn partner(store: &Store) -> String {
    let id = new_id("ptn");
    store.create_partner(&id, "Acme Ramp", &new_id("hash")).await.unwrap();
    id
}

/// An endpoint of `partner`; `types` `None` subscribes it to every event.
pub async fn endpoint(store: &Store, partner: &str, types: Option<&[&str]>) -> String {
    let id = new_id("ep");
    store
        .create_endpoint(
            NewEndpoint {
                id: id.clone(),
                partner_id: partner.to_owned(),
                url: format!("http://127.0.0.1:9/{id}"),
                secret: format!("secret-of-{id}"),
                event_types: types.map(|t| t.iter().map(|s| s.to_string()).collect()),
                description: None,
            },
            1000,
        )
        .await
        .unwrap()
        .expect("below the endpoint cap");
    id
}

pub async fn set_enabled(store: &Store, partner: &str, endpoint: &str, enabled: bool) {
    let patch = EndpointPatch {
        enabled: Some(enabled),
        ..EndpointPatch::default()
    };
    store.update_endpoint(partner, endpoint, patch).await.unwrap().unwrap();
}

pub fn new_order(partner: &str, expires_in_ms: i64) -> NewOrder {
    NewOrder {
        partner_id: partner.to_owned(),
        email: "alice@example.com".into(),
        direction: Direction::OnRamp,
        fiat_currency: Some("EUR".into()),
        fiat_amount: Some("100.00".into()),
        crypto_currency: None,
        crypto_amount: None,
        wallet_address: None,
        expires_in_ms,
    }
}

/// An on-ramp order awaiting payment, expiring in `expires_in_ms`.
pub async fn order_expiring(store: &Store, partner: &str, expires_in_ms: i64) -> String {
    let (order, _, _) = fresh(
        store
            .create_order(new_order(partner, expires_in_ms), None, |_| (201, String::new()))
            .await
            .unwrap(),
    );
    order.id
}

pub async fn order(store: &Store, partner: &str) -> String {
    order_expiring(store, partner, HOUR_MS).await
}

/// Appends `event` (no idempotency key); the outcome as the store decided.
pub async fn append(store: &Store, order: &str, event: EventName) -> AppendOutcome {
    let (outcome, _, _) = fresh(
        store
            .append_event(order, event, None, None, None, |_, _| (201, String::new()))
            .await
            .unwrap(),
    );
    outcome
}

/// Appends `event`, which must be accepted; the event row.
pub async fn event(store: &Store, order: &str, name: EventName) -> EventRow {
    match append(store, order, name).await {
        AppendOutcome::Appended { event, .. } => event,
        AppendOutcome::NoSuchOrder => panic!("{order}: no such order"),
        AppendOutcome::Invalid(invalid) => panic!("{name} refused: {invalid:?}"),
    }
}

/// `count` new orders of `partner`, paid: the ids of their
/// `payment_received` deliveries (`partner` has one endpoint).
pub async fn paid_order_deliveries(store: &Store, partner: &str, count: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        let o = order(store, partner).await;
        let paid = event(store, &o, EventName::PaymentReceived).await;
        ids.push(delivery_of(store, partner, &paid).await.id);
    }
    ids
}

/// Every delivery of `partner` matching `filter`, oldest first.
pub async fn deliveries(store: &Store, partner: &str, filter: &DeliveryFilter) -> Vec<DeliveryRow> {
    let page = store.list_deliveries(partner, filter, 500, None).await.unwrap();
    assert!(page.next_cursor.is_none());
    let mut rows = page.rows;
    rows.reverse();
    rows
}

pub async fn all_deliveries(store: &Store, partner: &str) -> Vec<DeliveryRow> {
    deliveries(store, partner, &DeliveryFilter::default()).await
}

/// The one delivery of `event` (to any endpoint of `partner`).
pub async fn delivery_of(store: &Store, partner: &str, event: &EventRow) -> DeliveryRow {
    let mut found: Vec<_> = all_deliveries(store, partner)
        .await
        .into_iter()
        .filter(|d| d.event_id == event.id)
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}

/// Claims whatever is due (up to 100) under a lease of `lease_ms`.
pub async fn claim(store: &Store, lease_ms: i64) -> Vec<ClaimedDelivery> {
    store.claim_due(100, 100, lease_ms, &[]).await.unwrap()
}

/// The ids of what `claim` got, sorted.
pub async fn claim_ids(store: &Store, lease_ms: i64) -> Vec<String> {
    let mut ids: Vec<String> = claim(store, lease_ms).await.into_iter().map(|c| c.id).collect();
    ids.sort();
    ids
}

pub fn sorted(ids: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    ids.sort();
    ids
}

/// One attempt's result: `status` is `delivered`, `failed` or `pending`
/// (then due again at `next_attempt_at`).
pub fn attempt(delivery: &str, code: Option<u16>, status: &'static str, next_attempt_at: i64) -> AttemptResult {
    AttemptResult {
        delivery_id: delivery.to_owned(),
        // Endpoint health bookkeeping is not what these tests look at.
        endpoint_id: String::new(),
        at: now_ms(),
        status_code: code,
        duration_ms: 12,
        error: code.is_none().then(|| "connection refused".to_owned()),
        response_body: code.map(|c| format!("answered {c}")),
        new_status: status,
        next_attempt_at,
    }
}
